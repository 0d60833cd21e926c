// bench/cpu/fma_peak.h — the CPU's ceiling for the kernel lab (`fmbench cpu-kernels`): the float
// multiply-adds per second this machine retires, measured, not taken from a data sheet (a VM's clock,
// a core that splits a 512-bit FMA into two 256-bit halves, or a neighbour's load all show up here as
// they do in the kernels). Measured with the copy the engine's kernels run (AVX-512 or portable,
// kernels/cpu/cpu_isa.h) on the thread count they run with (OpenMP's), so "% of peak" compares like
// with like.
#pragma once

namespace fm::bench {

struct CpuPeak {
  double gflops = 0;       // floating-point operations per second / 1e9, all threads together
  double gflops_per_thread = 0;  // the same loop on one thread
  int threads = 1;
  const char* isa = "";    // "avx512" or "portable": the copy measured (and the kernels' copy)
};

// Best of `rounds` timed runs of about `seconds_per_round` each (the fastest: on a shared machine the
// least disturbed), every thread running the loop at once; then once more on a single thread.
CpuPeak measure_fma_peak(int rounds = 5, double seconds_per_round = 0.05);

}  // namespace fm::bench
