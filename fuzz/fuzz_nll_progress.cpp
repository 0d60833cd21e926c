// fuzz/fuzz_nll_progress.cpp — libFuzzer target: any bytes as the progress file of `fmeval nll --csv`
// (tools/nll_progress.h decode_nll_progress, behind load_nll_progress: the file a stopped run goes on
// from).
//
// The reader documents fm::FormatError for a damaged file and fm::ConfigError for one of another run;
// anything else escaping is a bug, and so is an accepted file that breaks what it promises: exactly
// the run's number of values, each NaN (not finished) or finite, and counts that are not negative.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "tools/nll_progress.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t kExamples = 16;
  fm::tools::NllProgress progress;
  // Settings of the shape evaluate_nll writes (a few of them): a file must match them to be read.
  progress.settings = {{"n", 16}, {"solver", "dopri5"}, {"rtol", 1e-5}, {"checkpoint", "run/c.safetensors"}};
  progress.values.assign(kExamples, 0.0);
  try {
    fm::tools::decode_nll_progress(std::string(reinterpret_cast<const char*>(data), size), "fuzz.partial.json",
                                   progress);
    if (progress.values.size() != kExamples || progress.nfe < 0 || !(progress.seconds >= 0)) std::abort();
    for (double v : progress.values)
      if (!std::isnan(v) && !std::isfinite(v)) std::abort();
    if (progress.finished() < 0 || progress.finished() > std::int64_t(kExamples)) std::abort();
  } catch (const fm::Error&) {
  }
  return 0;
}
