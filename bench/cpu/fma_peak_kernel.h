// bench/cpu/fma_peak_kernel.h — the loop that measures a core's ceiling for the CPU kernel lab
// (bench/cpu/fma_peak.h): independent chains of vector multiply-adds and nothing else. Written once
// for any vector width and compiled twice, like the engine's kernels (kernels/cpu/cpu_isa.h): 32-byte
// vectors in the portable copy (bench/cpu/fma_peak.cpp, x86-64-v3: AVX2 + FMA) and 64-byte vectors in
// the AVX-512 one (bench/cpu/fma_peak_avx512.cpp, x86-64-v4).
//
// Why chains: one FMA waits for its input for the instruction's latency (4 cycles on current x86
// cores), and a core starts up to two per cycle, so at least 8 independent accumulators keep both
// units busy. kChains = 12 leaves margin and fits the 16 AVX2 registers with the two operands (and the
// 32 AVX-512 ones easily). GCC contracts `acc * a + b` into one FMA instruction (-ffp-contract=fast is
// its default outside ISO mode); a and b come in as arguments, so nothing is folded at compile time.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/cpu/gemm_micro_kernel.h"

namespace fm::bench {

constexpr int kFmaChains = 12;

// Runs `iterations` rounds of acc_c = acc_c · a + b on kFmaChains vectors (acc_c starts at c in every
// lane) and returns the sum of every lane of every chain, so the work cannot be dropped. With a = 1
// and b = 1 each lane ends at c + iterations exactly (below 2^24): the test checks the count.
// Floating-point operations done: 2 · kFmaChains · lanes · iterations.
template <int kVecBytes>
float fma_chains(std::int64_t iterations, float a, float b) {
  using Vec = typename kernels::GemmVector<float, kVecBytes>::type;
  constexpr int L = kernels::GemmVector<float, kVecBytes>::kLanes;
  Vec acc[kFmaChains];
  for (int c = 0; c < kFmaChains; ++c) acc[c] = Vec{} + float(c);
  const Vec va = Vec{} + a, vb = Vec{} + b;
  for (std::int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kFmaChains; ++c) acc[c] = acc[c] * va + vb;
  }
  float lanes[L];
  float total = 0;
  for (int c = 0; c < kFmaChains; ++c) {
    std::memcpy(lanes, &acc[c], sizeof(Vec));
    for (int l = 0; l < L; ++l) total += lanes[l];
  }
  return total;
}

// Floats per vector of each copy: what the caller multiplies the operation count by.
constexpr int kFmaLanesPortable = 8;
constexpr int kFmaLanesAvx512 = 16;

float fma_chains_portable(std::int64_t iterations, float a, float b);
float fma_chains_avx512(std::int64_t iterations, float a, float b);

}  // namespace fm::bench
