// kernels/cpu/fast_exp.h — e^x for float that the compiler can vectorise, for the CPU loops that
// take an exponential per element (softmax in attention), and what is built on it: the sigmoid
// (SiLU in kernels/cpu/activation.cpp, the fused GroupNorm + SiLU in kernels/cpu/group_norm.cpp, the
// elementwise maps) and the standard normal CDF and density (exact GELU, kernels/cpu/elementwise.cpp).
//
// Why: glibc's expf is accurate but a scalar call, so a loop around it runs one element at a time
// (it was 7–15% of a CPU U-Net training step). This version is straight-line arithmetic, so GCC
// turns the loop into AVX2 code, 8 elements per instruction:
//   e^x = 2^n · e^r,  n = round(x · log2 e),  r = x − n·ln 2   (|r| ≤ ln2/2 ≈ 0.347)
//   e^r ≈ Σ_{k≤7} r^k/k!        (Taylor; the first dropped term r^8/8! < 6e-9 relative)
//   2^n  built directly in the float's exponent bits.
// ln 2 is split in a high part with few mantissa bits and a low correction (Cody & Waite) so
// n·ln2_hi is exact and r keeps full precision. Measured max relative error vs double exp over
// [−87, 88]: about 2e-7 (a few ulp; tests/test_kernel_attention.cpp checks it). fast_exp clamps
// its input to [−87, 88], so e^x never overflows to inf or becomes a denormal: below −87 the result
// is 1.6e-38 instead of a smaller number, which no softmax or sigmoid can tell apart from 0.
// fast_exp_at_most_88 clamps only below, for callers whose exponent cannot exceed 88; above 88 its
// result is garbage (the exponent bits overflow), so a caller must be sure.
//
// double keeps std::exp: the float64 path exists for gradchecks, where accuracy is the point.
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace fm::kernels {

// Every function here is always inlined: they are compiled both with the portable flags and for
// AVX-512 (kernels/cpu/cpu_isa.h), and an out-of-line copy would be shared by the linker between the
// two, so a CPU without AVX-512 could end up calling the AVX-512 one.

// e^x for x ≤ 88 (or NaN), the callers whose argument cannot overflow: fast_exp without the upper
// clamp, bitwise the same there. Each clamp costs the vectorised loop a compare and a blend (GCC
// computes the polynomial for every lane and then puts e^88 or e^−87 in the clamped ones).
[[gnu::always_inline]] inline float fast_exp_at_most_88(float x) {
  x = std::max(x, -87.0f);
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

[[gnu::always_inline]] inline float fast_exp(float x) { return fast_exp_at_most_88(std::min(x, 88.0f)); }

[[gnu::always_inline]] inline double fast_exp(double x) { return std::exp(x); }
[[gnu::always_inline]] inline double fast_exp_at_most_88(double x) { return std::exp(x); }

// sigmoid(x) = 1 / (1 + e^(−x)) for x ≥ 0 and e^x / (1 + e^x) for x < 0: one exponential of −|x|,
// which never overflows, and a result that keeps its relative accuracy for very negative x. The
// one-formula version 1 / (1 + e^(−x)) made the portable (AVX2) loops ~8× slower: below x = −88 its
// value is fast_exp's clamp turned into a denormal (6e-39), and GCC's vectorised loop computes that
// branch in every lane, so every SiLU paid a ~100-cycle denormal assist (7 ns instead of 0.85 ns per
// element, dev machine, 2026-12-02). Here the smallest value is e^−87 ≈ 1.6e-38, a normal float.
// double: std::exp, no clamp; for x → −∞ the result goes to 0, for x → +∞ to 1. No NaN either way.
template <typename T>
[[gnu::always_inline]] inline T sigmoid(T x) {
  const T e = fast_exp_at_most_88(-std::fabs(x));
  return (x >= T(0) ? T(1) : e) / (T(1) + e);
}

// The standard normal CDF Φ(x) = ½·erfc(−x/√2) and density φ(x) = e^{−x²/2}/√(2π), for float GELU
// (double keeps the libm formulas of kernels/elementwise_math.h, as for exp).
// glibc's erff is a scalar call, like expf (it was ~40% of a moons training step); this is
// straight-line arithmetic around one fast_exp. erfc(z) for z ≥ 0 is Numerical Recipes' Chebyshev
// fit (§6.2, "erfcc"): erfc(z) = t·exp(−z² − 1.26551223 + t·P(t)), t = 1/(1 + z/2), fractional error
// below 1.2e-7 everywhere. Writing Φ through erfc keeps the error relative where Φ is small
// (x → −∞, where GELU = x·Φ(x) lives on it); where Φ → 1 the error is absolute and tiny. The float
// rounding of x²/2 inside e^(−x²/2) adds up to ε·x²/2 relative, so measured against double
// (tests/test_kernel_elementwise.cpp): within 2e-6 relative for x ≥ −4, ~1.7e-5 at x = −12 (where
// Φ < 1e-30 and GELU's error is below 3e-9 absolute); glibc's erff is within an ulp or two.
[[gnu::always_inline]] inline float fast_normal_cdf(float x) {
  const float z = std::fabs(x) * 0.70710678118654752f;  // |x|/√2
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  // The exponent is at most ~3e-8 (at z = 0: t·P(t) = 1.26551226), so e^88's clamp is not needed.
  const float erfc_z = t * fast_exp_at_most_88(-z * z - 1.26551223f + t * p);  // erfc(|x|/√2)
  // Φ(x) = ½·erfc(−x/√2): for x ≥ 0 that is 1 − ½·erfc(x/√2), for x < 0 it is ½·erfc(|x|/√2).
  return x >= 0.0f ? 1.0f - 0.5f * erfc_z : 0.5f * erfc_z;
}

[[gnu::always_inline]] inline float fast_normal_pdf(float x) { return 0.39894228040143267794f * fast_exp_at_most_88(-0.5f * x * x); }

}  // namespace fm::kernels
