// fuzz/fuzz_config.cpp — libFuzzer target: a JSON run config plus --set overrides through the same
// calls fmtrain makes (tools/config.h: parse_config_text, apply_overrides, resolve_config).
//
// Input layout: the bytes up to the first newline are the overrides, separated by tabs
// ("train.lr=0.01\tsample.solver=rk4"); the rest is the config file. An input without a newline is
// all config and no overrides. Every documented failure is an fm::Error (ConfigError, IOError);
// anything else escaping is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "tools/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  std::string_view config_text = input;
  if (std::size_t newline = input.find('\n'); newline != std::string_view::npos) {
    std::string_view line = input.substr(0, newline);
    config_text = input.substr(newline + 1);
    while (!line.empty()) {
      std::size_t tab = line.find('\t');
      overrides.emplace_back(line.substr(0, tab));
      line = tab == std::string_view::npos ? std::string_view() : line.substr(tab + 1);
    }
  }
  try {
    fm::tools::Json user = fm::tools::parse_config_text(config_text, "fuzz.json");
    fm::tools::apply_overrides(user, overrides);
    fm::tools::Json resolved = fm::tools::resolve_config(user);
    // A resolved config is what a run records as config.json and reads back on --resume.
    fm::tools::resolve_config(fm::tools::parse_config_text(resolved.dump(), "fuzz resolved config.json"));
  } catch (const fm::Error&) {
  }
  return 0;
}
