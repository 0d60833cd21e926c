// bench/cpu/fma_peak.cpp — the measured FMA ceiling (bench/cpu/fma_peak.h) and the portable copy of
// its loop (bench/cpu/fma_peak_kernel.h; the AVX-512 copy is bench/cpu/fma_peak_avx512.cpp).
#include "bench/cpu/fma_peak.h"

#include <algorithm>
#include <chrono>
#include <cstdint>

#include <omp.h>

#include "bench/cpu/fma_peak_kernel.h"
#include "kernels/cpu/cpu_isa.h"

namespace fm::bench {

float fma_chains_portable(std::int64_t iterations, float a, float b) { return fma_chains<32>(iterations, a, b); }

namespace {

// Where the compiler cannot target AVX-512, fma_peak_avx512.cpp is built with the portable flags and
// cpu_isa() never picks it (FM_HAVE_AVX512_KERNELS unset), as with the engine's kernels.
float run_chains(bool avx512, std::int64_t iterations, float a, float b) {
  return avx512 ? fma_chains_avx512(iterations, a, b) : fma_chains_portable(iterations, a, b);
}

// Seconds of the fastest of `rounds` runs of `iterations` on `threads` threads at once.
double fastest_round(bool avx512, std::int64_t iterations, int threads, int rounds) {
  double best = 1e30;
  volatile float sink = 0;  // keeps every run's result alive
  for (int round = 0; round < rounds; ++round) {
    const auto start = std::chrono::steady_clock::now();
    float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    total += run_chains(avx512, iterations, 1.0f, 1e-8f);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    sink = sink + total;
  }
  return best;
}

}  // namespace

CpuPeak measure_fma_peak(int rounds, double seconds_per_round) {
  CpuPeak peak;
  const bool avx512 = kernels::use_avx512_kernels();
  peak.isa = avx512 ? "avx512" : "portable";
  peak.threads = omp_get_max_threads();
  const int lanes = avx512 ? kFmaLanesAvx512 : kFmaLanesPortable;
  const double flops_per_iteration = 2.0 * kFmaChains * lanes;
  // Calibrate on one thread: grow the count until a run takes a tenth of a round.
  std::int64_t iterations = 1 << 14;
  while (fastest_round(avx512, iterations, 1, 1) < seconds_per_round / 10 && iterations < (std::int64_t(1) << 40))
    iterations *= 4;
  const double calibration = fastest_round(avx512, iterations, 1, 1);
  iterations = std::max<std::int64_t>(1, std::int64_t(double(iterations) * seconds_per_round / calibration));
  const double all = fastest_round(avx512, iterations, peak.threads, rounds);
  const double one = fastest_round(avx512, iterations, 1, rounds);
  peak.gflops = flops_per_iteration * double(iterations) * peak.threads / all * 1e-9;
  peak.gflops_per_thread = flops_per_iteration * double(iterations) / one * 1e-9;
  return peak;
}

}  // namespace fm::bench
