// tools/fmtrain_args.cpp — fmtrain's argument parser (see fmtrain_args.h).
#include "tools/fmtrain_args.h"

#include <string>

#include "core/error.h"

namespace fm::tools {

TrainRequest parse_train_args(int argc, char** argv) {
  TrainRequest request;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) throw ConfigError(cat(flag, ": expected a value after it"));
      if (argv[i + 1][0] == '\0') throw ConfigError(cat(flag, ": got an empty value, expected one after it"));
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
      throw ConfigError(cat(arg, ": unknown option (fmtrain --help)"));
    } else if (request.config_path.empty()) {
      request.config_path = arg;
    } else {
      throw ConfigError(cat(arg, ": unexpected argument; one CONFIG.json only"));
    }
  }
  if (!request.help && request.config_path.empty() == request.resume_dir.empty())
    throw ConfigError(request.config_path.empty() ? "expected a CONFIG.json or --resume RUN_DIR"
                                                  : "give either CONFIG.json or --resume RUN_DIR, not both");
  if (!request.resume_dir.empty() && !request.out_dir.empty())
    throw ConfigError("--out: a resumed run continues in its own directory");
  return request;
}

}  // namespace fm::tools
