// tools/train_run.h — one fmtrain run: resolve the config, prepare (or reopen) the run directory,
// train with progress and metrics, checkpoint, sample, evaluate and draw the pictures.
#pragma once
#include <string>
#include <vector>

namespace fm::tools {

struct TrainRequest {
  std::string config_path;             // a new run from this config ...
  std::string resume_dir;              // ... or continue this run directory
  std::string out_dir;                 // --out (new runs)
  std::vector<std::string> overrides;  // --set key=value
  bool quiet = false;
  bool help = false;
};

// Returns the process exit code (0 done, 130 stopped by a signal after saving a checkpoint).
int run_training(const TrainRequest& request);

// Asks the running training loop to stop after the current step (signal-safe).
void request_stop();

}  // namespace fm::tools
