// bench/cpu_ops.h — `fmbench cpu-ops`: what a tiny op costs on the CPU besides its arithmetic.
//
// On tensors of one to a few dozen elements the arithmetic is a few nanoseconds; everything else is
// the engine's per-op overhead: argument checks, the output's TensorImpl and Storage, the dispatch to
// a kernel, and (when an input requires grad) the autograd Node with its saved tensors and closure.
// This is what a training step of a small model (moons) and every optimiser step pay per op, and
// what issue 13's targets bound: at most 0.3 µs per op without grad and 0.4 µs while recording.
//
// Needs no GPU and makes no CUDA call, so it runs in CPU-only builds and on machines without a device.
#pragma once
#include <cstdint>
#include <string>

namespace fm::bench {

struct CpuOpsOptions {
  int repeats = 21;              // timed repeats per row; the median is reported (--repeats N)
  double seconds_per_repeat = 0.002;  // each repeat runs about this long (iterations calibrated)
  std::int64_t iterations = 0;   // --iterations N: exactly N ops per repeat, no calibration (callgrind)
  bool quick = false;            // --quick: 3 short repeats per row (a smoke test, not a measurement)
  std::string filter;            // --filter TEXT: only rows whose "op shape mode" contains TEXT
  std::string csv_path;          // --csv FILE: one row per (op, shape, mode)
};

// Prints the table (op, shape, mode, median and minimum ns per op, target); returns the exit code.
int run_cpu_ops(const CpuOpsOptions& options);

}  // namespace fm::bench
