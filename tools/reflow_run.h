// tools/reflow_run.h — fmreflow's work as a library call (tools/fmreflow_main.cpp parses the flags;
// the tests call this directly): a teacher checkpoint's flow turned into a reflow pairs file.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "core/tensor.h"

namespace fm::tools {

struct ReflowPairsRequest {
  std::string teacher;        // checkpoint written by fmtrain
  std::string out;            // the pairs file to write (or complete)
  std::int64_t count = 100000;
  std::string solver = "rk4";
  int steps = 20;
  std::uint64_t seed = 0;
  std::int64_t chunk = 4096;
  std::string weights = "auto";
  Device device = Device::CPU;
};

// Draws x0 from the teacher's source (its data.source; pair i's draws at (seed, step 0, sample i)),
// solves the teacher's ODE from each, and writes the pairs (flow/reflow_pairs.h), resuming a partial
// generation. progress(done, total) after each chunk.
void make_reflow_pairs(const ReflowPairsRequest& request,
                       const std::function<void(std::int64_t done, std::int64_t total)>& progress = {});

}  // namespace fm::tools
