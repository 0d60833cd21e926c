// tools/straight_eval.h — how good a 2-D flow is at each sampling budget, and how straight it is:
// the numbers behind `fmeval straight` and the reflow / OT / distillation comparison (issue 15).
//
// For a checkpoint of a 2-D model: from the same n source draws x0, Euler with k steps for each k of
// the list, and dopri5 at a tolerance; each result's sliced W2 to n fresh data points, next to the
// floor (two independent data samples); and the flow's straightness S (flow/straightness.h) along
// Euler trajectories of `straightness_steps` steps.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tools/checkpoint_model.h"

namespace fm::tools {

struct StraightEvalRequest {
  std::int64_t n = 2000;
  std::vector<int> euler_steps{1, 2, 4, 8, 16, 100};
  double dopri5_tolerance = 1e-5;  // rtol = atol; 0 skips dopri5
  int straightness_steps = 100;
  std::uint64_t seed = 0;          // x0 and the fresh data of repeat r: seed + r
  // The sliced W2 of 2,000 points moves by a factor of two between draws (moons, 1-RF at 100 Euler
  // steps: 0.049 to 0.11 over seeds 0-3, 2026-12-02), so every number is a mean over repeats.
  int repeats = 5;
};

struct NfeQuality {
  std::string solver;
  std::int64_t nfe = 0;      // dopri5: the mean over the repeats, rounded
  double sliced_w2 = 0;      // mean over the repeats
  double sliced_w2_std = 0;  // their standard deviation
};

struct StraightEvalResult {
  std::vector<NfeQuality> rows;
  double sliced_w2_floor = 0;      // mean over the repeats
  double straightness = 0, relative_straightness = 0;  // means over the repeats
  Tensor trajectories;  // [steps + 1, trajectory_count, 2]: Euler paths of the first few draws (CPU)
  Json to_json() const;
};

// ConfigError when the checkpoint is not a 2-D model. trajectory_count paths are kept for pictures.
StraightEvalResult evaluate_straightness_2d(CheckpointModel& loaded, const StraightEvalRequest& request,
                                            std::int64_t trajectory_count = 0);

// Several evaluated checkpoints side by side: a CSV (label, solver, nfe, sliced_w2, ratio_to_floor,
// straightness), and a log-log plot of sliced W2 against Euler NFE, one line per checkpoint, with the
// floor. Returns the files written.
struct LabelledStraightResult {
  std::string label;
  StraightEvalResult result;
};
std::vector<std::string> write_straight_comparison(const std::vector<LabelledStraightResult>& results,
                                                   const std::string& csv_path, const std::string& png_path);
// The kept trajectories drawn over fresh data points: each path as a trail of dots from x0 to x1.
void write_trajectory_png(const std::string& path, const StraightEvalResult& result, const Tensor& data_points,
                          const std::string& title);

}  // namespace fm::tools
