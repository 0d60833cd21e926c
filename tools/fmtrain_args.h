// tools/fmtrain_args.h — fmtrain's command line turned into a TrainRequest.
//
// A library function rather than code in fmtrain_main.cpp, so that the binary and the fuzz target
// (fuzz/fuzz_cli_args.cpp) run the very same parser.
#pragma once
#include "tools/train_run.h"

namespace fm::tools {

// Parses `fmtrain CONFIG.json [--out DIR] [--set key=value ...] [--quiet]`,
// `fmtrain --resume RUN_DIR [--set ...]` and `--help` / `-h`. Throws fm::ConfigError naming the
// argument for an unknown option, a missing value, a second config, or a config given with --resume.
TrainRequest parse_train_args(int argc, char** argv);

}  // namespace fm::tools
