// kernels/cpu/fast_exp.h — e^x for float that the compiler can vectorise, for the CPU loops that
// take an exponential per element (softmax in attention), and the sigmoid built on it (SiLU in
// kernels/cpu/activation.cpp and the fused GroupNorm + SiLU in kernels/cpu/group_norm.cpp).
//
// Why: glibc's expf is accurate but a scalar call, so a loop around it runs one element at a time
// (it was 7–15% of a CPU U-Net training step). This version is straight-line arithmetic, so GCC
// turns the loop into AVX2 code, 8 elements per instruction:
//   e^x = 2^n · e^r,  n = round(x · log2 e),  r = x − n·ln 2   (|r| ≤ ln2/2 ≈ 0.347)
//   e^r ≈ Σ_{k≤7} r^k/k!        (Taylor; the first dropped term r^8/8! < 6e-9 relative)
//   2^n  built directly in the float's exponent bits.
// ln 2 is split in a high part with few mantissa bits and a low correction (Cody & Waite) so
// n·ln2_hi is exact and r keeps full precision. Measured max relative error vs double exp over
// [−87, 88]: about 2e-7 (a few ulp; tests/test_kernel_attention.cpp checks it). Inputs are
// clamped to [−87, 88], so e^x never overflows to inf or becomes a denormal: below −87 the result
// is 1.6e-38 instead of a smaller number, which no softmax or sigmoid can tell apart from 0.
//
// double keeps std::exp: the float64 path exists for gradchecks, where accuracy is the point.
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace fm::kernels {

inline float fast_exp(float x) {
  x = std::max(std::min(x, 88.0f), -87.0f);
  // Round x·log2(e) to the nearest integer by adding and subtracting 1.5·2^23: at that magnitude
  // a float has no fraction bits, so the addition itself rounds (without -ffast-math the compiler
  // keeps both operations).
  constexpr float kRoundingShift = 12582912.0f;
  const float n = (x * 1.44269504088896341f + kRoundingShift) - kRoundingShift;
  const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723212e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t biased_exponent = static_cast<std::int32_t>(n) + 127;  // n ∈ [−126, 127]
  return p * std::bit_cast<float>(biased_exponent << 23);
}

inline double fast_exp(double x) { return std::exp(x); }

// sigmoid(x) = 1 / (1 + e^(−x)). For x → −∞, e^(−x) grows to +inf (double) or to fast_exp's clamp
// of 1.7e38 (float) and the result is 0 or within 6e-39 of it; for x → +∞, e^(−x) goes to 0 and the
// result is 1. No NaN either way.
template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + fast_exp(-x));
}

}  // namespace fm::kernels
