// tools/fmtrain_main.cpp — `fmtrain`: train a flow-matching model from a JSON config.
//
//   fmtrain CONFIG.json [--out DIR] [--set key.path=value ...]
//   fmtrain --resume RUN_DIR [--set train.steps=N ...]
//
// The run directory gets config.json (resolved), metrics.jsonl, checkpoint.safetensors,
// samples.npy + samples.png, loss.png and summary.json. Bad input is one line on stderr and exit 2,
// before anything is written. Ctrl-C finishes the current step, saves a checkpoint and exits.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "core/error.h"
#include "tools/config.h"
#include "tools/train_run.h"

namespace {

const char* kUsage =
    "usage: fmtrain CONFIG.json [--out DIR] [--set key.path=value ...] [--quiet]\n"
    "       fmtrain --resume RUN_DIR [--set train.steps=N ...] [--quiet]\n"
    "       fmtrain --help      (lists every config key, its default and allowed values)\n";

fm::tools::TrainRequest parse_args(int argc, char** argv) {
  fm::tools::TrainRequest request;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) throw fm::ConfigError(fm::cat(flag, ": expected a value after it"));
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      request.help = true;
    } else if (arg == "--out") {
      request.out_dir = value("--out");
    } else if (arg == "--set") {
      request.overrides.push_back(value("--set"));
    } else if (arg.rfind("--set=", 0) == 0) {
      request.overrides.push_back(arg.substr(6));
    } else if (arg == "--resume") {
      request.resume_dir = value("--resume");
    } else if (arg == "--quiet") {
      request.quiet = true;
    } else if (!arg.empty() && arg[0] == '-') {
      throw fm::ConfigError(fm::cat(arg, ": unknown option (fmtrain --help)"));
    } else if (request.config_path.empty()) {
      request.config_path = arg;
    } else {
      throw fm::ConfigError(fm::cat(arg, ": unexpected argument; one CONFIG.json only"));
    }
  }
  if (!request.help && request.config_path.empty() == request.resume_dir.empty())
    throw fm::ConfigError(request.config_path.empty() ? "expected a CONFIG.json or --resume RUN_DIR"
                                                      : "give either CONFIG.json or --resume RUN_DIR, not both");
  if (!request.resume_dir.empty() && !request.out_dir.empty())
    throw fm::ConfigError("--out: a resumed run continues in its own directory");
  return request;
}

void on_signal(int) { fm::tools::request_stop(); }

}  // namespace

int main(int argc, char** argv) {
  try {
    fm::tools::TrainRequest request = parse_args(argc, argv);
    if (request.help) {
      std::cout << kUsage << "\nconfig keys (dotted path = default — allowed; meaning):\n"
                << fm::tools::describe_schema();
      return 0;
    }
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    return fm::tools::run_training(request);
  } catch (const fm::Error& e) {
    std::fprintf(stderr, "fmtrain: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fmtrain: unexpected error: %s\n", e.what());
    return 1;
  }
}
