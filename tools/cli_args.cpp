// tools/cli_args.cpp — the flag parser (see cli_args.h).
#include "tools/cli_args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <type_traits>

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
  FM_CHECK(it != values_.end(), ConfigError, flag, ": required");
  FM_CHECK(!it->second.empty(), ConfigError, flag, ": got an empty value, expected one after it");
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

template <typename T>
std::vector<T> parse_list(const std::string& flag, const std::string& text) {
  std::vector<T> values;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    FM_CHECK(!item.empty(), ConfigError, flag, ": empty item in \"", text, "\" (expected a comma-separated list)");
    if constexpr (std::is_same_v<T, std::string>) {
      values.push_back(item);
    } else {
      std::size_t used = 0;
      T value{};
      try {
        if constexpr (std::is_integral_v<T>) {
          long long wide = std::stoll(item, &used);
          // std::stoll reads 64 bits; narrowing "4294967300" to int would silently give 4.
          if (wide < std::numeric_limits<T>::min() || wide > std::numeric_limits<T>::max()) used = 0;
          value = T(wide);
        } else {
          value = T(std::stod(item, &used));
        }
      } catch (const std::exception&) {  // std::invalid_argument or std::out_of_range from stoll/stod
        used = 0;
      }
      FM_CHECK(used == item.size(), ConfigError, flag, ": \"", item, "\" is not a number (expected a list like ",
               std::is_integral_v<T> ? "4,8,16" : "1e-2,1e-3", ")");
      values.push_back(value);
    }
  }
  FM_CHECK(!values.empty(), ConfigError, flag, ": expected a comma-separated list, got nothing");
  return values;
}

template std::vector<int> parse_list<int>(const std::string&, const std::string&);
template std::vector<double> parse_list<double>(const std::string&, const std::string&);
template std::vector<std::string> parse_list<std::string>(const std::string&, const std::string&);

}  // namespace fm::tools
