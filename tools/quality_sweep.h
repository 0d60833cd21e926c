// tools/quality_sweep.h — `fmeval sweep RUN_DIR`: how sample quality grows with training and with
// the sampling budget. Two sweeps, each a series of Fréchet evaluations (tools/eval_classifier.h):
//
//   steps: every checkpoint the run kept (train.keep_checkpoints → checkpoint_step_NNNNNNN.safetensors)
//          sampled with the run's own sample settings: distance against training step.
//   nfe:   the final checkpoint sampled by each solver at each budget of velocity evaluations (a
//          fixed-step solver with e evaluations per step gets NFE/e steps; dopri5 gets tolerances
//          and reports the NFE it used): distance against NFE.
//
// Results go to RUN_DIR/quality_vs_steps.{csv,png} and RUN_DIR/quality_vs_nfe.{csv,png}, each
// plot with the train-vs-test floor drawn as a line. Every point uses the same n, the same real
// test images and the same sampling seed, so the points differ only in what the sweep varies.
//
// Layer: tools/.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "flow/solver.h"
#include "tools/eval_classifier.h"

namespace fm::tools {

struct QualitySweepRequest {
  std::string run_dir;
  std::string classifier;  // empty: find_classifier (./classifier.safetensors, then beside the run)
  std::string data_dir = kFashionMnistDir;
  std::int64_t n = 1000;
  bool sweep_steps = true;
  bool sweep_nfe = true;
  std::vector<int> nfe_budgets = {4, 8, 16, 32};
  std::vector<std::string> solvers = flow::solver_names();
  std::vector<double> dopri5_tolerances = {1e-2, 1e-3, 1e-4};  // used as both rtol and atol
  Device device = Device::CPU;
};

struct QualityPoint {
  std::string sweep;           // "steps" or "nfe"
  std::int64_t checkpoint_step = 0;
  std::string solver;
  std::int64_t solver_steps = 0;  // fixed-step solvers; 0 for dopri5
  double tolerance = 0;           // dopri5; 0 for fixed-step solvers
  std::int64_t nfe = 0;
  double fd = 0;
  double sampling_seconds = 0;
};

struct QualitySweepResult {
  std::vector<QualityPoint> points;
  double floor = 0, floor_std = 0;  // train vs test at this n (mean and spread of the first evaluation's draws)
  std::int64_t n = 0;
  std::vector<std::string> files;   // what was written
};

// Checks the run directory and the flags before any sampling; then evaluates, writes the CSVs and
// plots, and returns every point. `log` receives progress lines (may be null).
// Under mpirun (inside fmeval's ShardOverRanks scope) every rank samples its share; rank 0 writes the files.
QualitySweepResult run_quality_sweep(const QualitySweepRequest& request,
                                     const std::function<void(const std::string&)>& log);

}  // namespace fm::tools
