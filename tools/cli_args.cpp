// tools/cli_args.cpp — the flag parser (see cli_args.h).
#include "tools/cli_args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace fm::tools {

CliArgs::CliArgs(int argc, char** argv, std::set<std::string> value_flags, std::set<std::string> switch_flags) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      positional_.push_back(arg);
      continue;
    }
    std::string flag = arg, value;
    bool inline_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inline_value = true;
    }
    if (switch_flags.count(flag)) {
      FM_CHECK(!inline_value, ConfigError, flag, ": takes no value");
      values_[flag] = "1";
    } else if (value_flags.count(flag)) {
      if (!inline_value) {
        FM_CHECK(i + 1 < argc, ConfigError, flag, ": expected a value after it");
        value = argv[++i];
      }
      FM_CHECK(!values_.count(flag), ConfigError, flag, ": given twice");
      values_[flag] = value;
    } else {
      throw ConfigError(cat(flag, ": unknown option (--help lists the options)"));
    }
  }
}

bool CliArgs::has(const std::string& flag) const { return values_.count(flag) != 0; }

std::string CliArgs::get(const std::string& flag, const std::string& fallback) const {
  auto it = values_.find(flag);
  return it == values_.end() ? fallback : it->second;
}

std::string CliArgs::required(const std::string& flag) const {
  auto it = values_.find(flag);
  FM_CHECK(it != values_.end() && !it->second.empty(), ConfigError, flag, ": required");
  return it->second;
}

long long CliArgs::integer(const std::string& flag, long long min, long long max) const {
  std::string text = required(flag);
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  FM_CHECK(errno == 0 && end && *end == '\0' && v >= min && v <= max, ConfigError, flag, ": got \"", text,
           "\", expected an integer in [", min, ", ", max, "]");
  return v;
}

double CliArgs::number(const std::string& flag, double min, double max) const {
  std::string text = required(flag);
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  FM_CHECK(errno == 0 && end && *end == '\0' && std::isfinite(v) && v >= min && v <= max, ConfigError, flag,
           ": got \"", text, "\", expected a number in [", min, ", ", max, "]");
  return v;
}

}  // namespace fm::tools
