// tests/fmtrain_runs.h — running fmtrain's library half from a test: a new run, a resumed run, the
// per-step losses its metrics.jsonl logged, and the CUDA-against-CPU check of a config
// (tests/test_tools_fmtrain*.cpp, tests/test_tools_straight.cpp).
#pragma once
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "core/io/jsonl.h"
#include "tools/config.h"
#include "tools/train_run.h"

namespace fm::test {

// The small, fast run the fmtrain tests share (an MLP on moons, 40 steps: a few hundred
// milliseconds) with `patch` and then `extra` merged in (JSON merge patches, applied in turn so a
// null in either removes a key of the base), written to WHERE/config.json.
inline std::filesystem::path write_small_run_config(const std::filesystem::path& where,
                                                    const fm::tools::Json& patch = fm::tools::Json::object(),
                                                    const fm::tools::Json& extra = fm::tools::Json::object()) {
  fm::tools::Json config = {{"data", {{"name", "moons"}}},
                            {"model", {{"type", "mlp"}, {"hidden_width", 32}, {"hidden_layers", 2}}},
                            {"train", {{"steps", 40}, {"batch_size", 64}, {"lr", 1e-3}, {"seed", 3}, {"log_every", 1},
                                       {"checkpoint_every", 20}, {"ema_decay", 0.9}}},
                            {"sample", {{"solver", "euler"}, {"steps", 5}, {"n", 200}}},
                            {"eval", {{"n", 200}, {"projections", 16}}}};
  config.merge_patch(patch);
  config.merge_patch(extra);
  std::filesystem::create_directories(where);
  const std::filesystem::path path = where / "config.json";
  std::ofstream(path) << config.dump(2);
  return path;
}

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

// CONFIG (40 steps) trained on the CPU, on CUDA, and on CUDA split at step 20 and resumed, in DIR.
// The split run must be bitwise the whole one (the device's reductions use no atomics). The CUDA
// losses must be within 1e-5 relative of the CPU's: same data, same initial weights, so they differ
// only by float32 summation order, which Adam's steps carry forward. On the CUDA emulator
// (2026-11-22) all 40 moons losses agreed to 9.5e-8 relative; 1e-5 leaves room for the GPU's fused
// multiply-adds and expf.
inline void require_cuda_tracks_cpu_and_resumes(const std::filesystem::path& config, const std::filesystem::path& dir) {
  REQUIRE(train_run(config, dir / "cpu", {"device=cpu"}) == 0);
  REQUIRE(train_run(config, dir / "cuda", {"device=cuda"}) == 0);
  REQUIRE(train_run(config, dir / "split", {"device=cuda", "train.steps=20"}) == 0);
  REQUIRE(resume_run(dir / "split", {"train.steps=40"}) == 0);
  const std::vector<double> cpu = logged_losses(dir / "cpu"), cuda = logged_losses(dir / "cuda"),
                            split = logged_losses(dir / "split");
  REQUIRE(cuda.size() == 40);
  REQUIRE(cuda == split);
  REQUIRE(cuda.size() == cpu.size());
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    INFO("step " << i + 1);
    REQUIRE(cuda[i] == Approx(cpu[i]).epsilon(1e-5));
  }
}

}  // namespace fm::test
