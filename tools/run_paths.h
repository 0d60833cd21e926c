// tools/run_paths.h — the files of an fmtrain run directory, named in one place.
#pragma once
#include <filesystem>

namespace fm::tools {

struct RunPaths {
  std::filesystem::path dir;
  std::filesystem::path config() const { return dir / "config.json"; }
  std::filesystem::path metrics() const { return dir / "metrics.jsonl"; }
  std::filesystem::path checkpoint() const { return dir / "checkpoint.safetensors"; }
  std::filesystem::path loss_png() const { return dir / "loss.png"; }
  std::filesystem::path samples_npy() const { return dir / "samples.npy"; }
  std::filesystem::path samples_png() const { return dir / "samples.png"; }
  std::filesystem::path summary() const { return dir / "summary.json"; }
};

}  // namespace fm::tools
