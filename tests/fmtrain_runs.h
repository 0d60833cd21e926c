// tests/fmtrain_runs.h — running fmtrain's library half from a test: a new run, a resumed run, and the
// per-step losses its metrics.jsonl logged (tests/test_tools_fmtrain.cpp, tests/test_tools_straight.cpp).
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/io/jsonl.h"
#include "tools/train_run.h"

namespace fm::test {

// fmtrain CONFIG --out OUT --set OVERRIDE... (quiet); returns the exit code.
inline int train_run(const std::filesystem::path& config, const std::filesystem::path& out,
                     std::vector<std::string> overrides = {}) {
  fm::tools::TrainRequest request;
  request.config_path = config.string();
  request.out_dir = out.string();
  request.overrides = std::move(overrides);
  request.quiet = true;
  return fm::tools::run_training(request);
}

// fmtrain --resume RUN --set OVERRIDE... (train.steps=N to extend the run).
inline int resume_run(const std::filesystem::path& run, std::vector<std::string> overrides) {
  fm::tools::TrainRequest request;
  request.resume_dir = run.string();
  request.overrides = std::move(overrides);
  request.quiet = true;
  return fm::tools::run_training(request);
}

// The "loss" of every step line of RUN/metrics.jsonl (not the eval lines).
inline std::vector<double> logged_losses(const std::filesystem::path& run) {
  std::vector<double> out;
  for (const auto& line : fm::io::read_jsonl((run / "metrics.jsonl").string()).lines)
    if (line.record.contains("loss") && !line.record.contains("event")) out.push_back(line.record["loss"].get<double>());
  return out;
}

}  // namespace fm::test
