// tools/final_samples.h — fmtrain's last stage, after the last step: samples from the trained model
// (EMA weights when sample.use_ema), their quality on 2-D data (sliced W2 to fresh data, next to its
// floor), and the files that report them: samples.npy, samples.png and summary.json. A class-conditional
// model samples uniformly drawn labels at guidance 0 and also writes samples_labels.npy (and on 2-D data
// the mode fraction, with the picture coloured by label).
#pragma once
#include <cstdint>
#include <string>

#include "core/io/jsonl.h"
#include "tools/conditional_sampling.h"
#include "tools/config.h"
#include "tools/run_paths.h"
#include "tools/run_setup.h"

namespace fm::tools {

// What the last stage reads of a finished training run.
struct FinishedRun {
  const Json& config;  // the resolved config
  const RunPaths& paths;
  RunObjects& objects;  // the model (with its EMA), solver, data and trainer
  Device device;
  const std::string& title;  // the pictures' title: data, model and parameter count
  double train_seconds;
};

// The final samples and how they were drawn (what summary.json reports of them).
struct FinalSamples {
  RunSamples drawn;
  std::int64_t n = 0;        // sample.n
  bool ema_weights = false;  // drawn with the EMA weights (sample.use_ema and the run has an EMA)
};

// sample.n points or images from sample.seed (EMA weights when sample.use_ema; uniformly drawn labels for a
// class-conditional model). Data parallel, every rank calls it inside a ShardOverRanks scope
// (tools/sharded_sampling.h): each integrates its share and all get the whole result, the bits one
// process draws.
FinalSamples draw_final_samples(const FinishedRun& run);

// Writes `sampled` (from draw_final_samples) to samples.npy and samples.png, and summary.json last (after
// `metrics` is synced); on 2-D data also appends an "eval" event to `metrics` and prints the quality.
// Rank 0 only.
void write_final_samples(const FinishedRun& run, const FinalSamples& sampled, io::JsonlWriter& metrics);

}  // namespace fm::tools
