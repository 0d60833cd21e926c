// tools/tool_flags.h — the flags each command-line tool accepts, in one place: the tools' main()s
// parse with these sets, and so does the fuzz target of the argument parsers (fuzz/fuzz_cli_args.cpp).
// fmtrain's own parser is tools/fmtrain_args.h.
#pragma once
#include <set>
#include <string>

namespace fm::tools {

struct ToolFlags {
  std::set<std::string> value_flags;   // take one value: "--n 64" or "--n=64"
  std::set<std::string> switch_flags;  // take none
};

inline const ToolFlags& fmsample_flags() {
  static const ToolFlags flags{{"--checkpoint", "--n", "--out", "--npy", "--solver", "--steps", "--rtol", "--atol",
                                "--weights", "--seed", "--device", "--kernels", "--guidance", "--class"},
                               {"--help", "--grid-by-class"}};
  return flags;
}

inline const ToolFlags& fmreflow_flags() {
  static const ToolFlags flags{{"--teacher", "--out", "--count", "--solver", "--steps", "--seed", "--chunk", "--weights",
                                "--device", "--kernels"},
                               {"--help", "--quiet"}};
  return flags;
}

inline const ToolFlags& fmeval_train_classifier_flags() {
  static const ToolFlags flags{{"--out", "--epochs", "--data-dir", "--seed", "--batch-size", "--lr", "--device"},
                               {"--help"}};
  return flags;
}

inline const ToolFlags& fmeval_evaluate_flags() {
  static const ToolFlags flags{{"--checkpoint", "--samples", "--classifier", "--n", "--solver", "--steps", "--rtol",
                                "--atol", "--weights", "--seed", "--data-dir", "--device", "--kernels", "--floor-draws"},
                               {"--help"}};
  return flags;
}

inline const ToolFlags& fmeval_straight_flags() {
  static const ToolFlags flags{{"--checkpoint", "--labels", "--n", "--nfe", "--tolerance", "--seed", "--repeats", "--csv", "--png",
                                "--trajectories", "--weights", "--device", "--kernels", "--classifier", "--data-dir"},
                               {"--help"}};
  return flags;
}

inline const ToolFlags& fmeval_sweep_flags() {
  static const ToolFlags flags{{"--classifier", "--n", "--only", "--nfe", "--solvers", "--tolerances", "--data-dir",
                                "--device", "--kernels"},
                               {"--help"}};
  return flags;
}

// `fmeval guidance` (tools/guidance_eval.h).
inline const ToolFlags& fmeval_guidance_flags() {
  static const ToolFlags flags{{"--checkpoint", "--weights-list", "--n", "--classifier", "--data-dir", "--solver", "--steps",
                                "--rtol", "--atol", "--weights", "--seed", "--csv", "--png", "--device", "--kernels"},
                               {"--help"}};
  return flags;
}

// `fmeval nll` (tools/nll_eval.h).
inline const ToolFlags& fmeval_nll_flags() {
  static const ToolFlags flags{{"--checkpoint", "--divergence", "--probes", "--probe", "--solver", "--steps", "--rtol",
                                "--atol", "--n", "--batch", "--seed", "--weights", "--device", "--data-dir", "--csv",
                                "--condition"},
                               {"--help"}};
  return flags;
}

}  // namespace fm::tools
