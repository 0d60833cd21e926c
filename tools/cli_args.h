// tools/cli_args.h — a small "--flag value" parser for the command-line tools: unknown flags,
// missing values and malformed numbers are one-line ConfigErrors naming the flag. fuzz/fuzz_cli_args.cpp
// feeds it arbitrary argument vectors with each tool's flag set.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace fm::tools {

// The largest seed a tool or a config takes: 2^53 − 1, the largest n for which n and n + 1 are both
// exact doubles (JSON numbers often are doubles), so a seed means the same to every reader of a config.
constexpr long long kMaxSeed = (1LL << 53) - 1;

class CliArgs {
 public:
  // value_flags take one value ("--n 64" or "--n=64"); switch_flags take none.
  CliArgs(int argc, char** argv, std::set<std::string> value_flags, std::set<std::string> switch_flags);
  bool has(const std::string& flag) const;
  std::string get(const std::string& flag, const std::string& fallback) const;
  std::string required(const std::string& flag) const;
  long long integer(const std::string& flag, long long min, long long max) const;
  double number(const std::string& flag, double min, double max) const;
  std::uint64_t seed(const std::string& flag = "--seed") const { return std::uint64_t(integer(flag, 0, kMaxSeed)); }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// A comma-separated flag value: "4,8,16" -> {4, 8, 16}. T is int, double or std::string; an empty
// item, an item that is not a number, or an int out of range is a one-line ConfigError naming the flag.
template <typename T>
std::vector<T> parse_list(const std::string& flag, const std::string& text);

}  // namespace fm::tools
