// kernels/time_law.h — the training time t of one sample, as a function of its Philox place, the same
// bits on the host and on the device (flow/time_sampler.h's samplers, drawn where they are used).
//
//   uniform       t = u                                    u = the sample's first 53-bit uniform
//   logit_normal  t = 1 / (1 + exp(−(mean + std·z)))       z = the sample's first standard normal
//   warp          t = ((A·u + B)·u + C)·u                  A = 4(1 − s), B = 6(s − 1), C = 3 − 2s
//   grid          t = min(k − 1, ⌊u·k⌋) / k
//
// then clamped to [0, upper] (upper: the largest value below 1 in the output's dtype) and rounded once
// to the output's dtype. Every operation is IEEE-exact in the sense of kernels/philox.h (explicit fma,
// no product feeding an addition), and exp is computed here with such operations (std::exp and
// CUDA's exp are different approximations), so the CPU loop and the CUDA kernel agree bit for bit
// and a run's times do not depend on where they were drawn. Header-only: compiled by the host
// compiler and by nvcc.
#pragma once
#include <cstdint>

#include "kernels/philox.h"

namespace fm::kernels {

enum class TimeLawKind : std::int32_t { Uniform = 0, LogitNormal = 1, Warp = 2, Grid = 3 };

struct TimeLaw {
  TimeLawKind kind = TimeLawKind::Uniform;
  double mean = 0.0, std = 1.0;  // logit_normal
  double slope = 1.0;            // warp
  std::int32_t points = 1;       // grid
};

namespace philox {

// (e^r − 1)/r = Σ r^(n−1)/n!, n = 1 … terms (terms ≤ 18), in Horner form from 1/terms! with exact
// fmas: the series behind exp_exact (13 terms) and expm1_exact (kernels/path_law.h, 18 terms).
FM_PHILOX_FN double exp_series_quotient(double r, int terms) {
  constexpr double kInverseFactorial[19] = {
      1.0,                   1.0,                   0.5,                   0x1.5555555555555p-3, 0x1.5555555555555p-5,
      0x1.1111111111111p-7,  0x1.6c16c16c16c17p-10, 0x1.a01a01a01a01ap-13, 0x1.a01a01a01a01ap-16,
      0x1.71de3a556c734p-19, 0x1.27e4fb7789f5cp-22, 0x1.ae64567f544e4p-26, 0x1.1eed8eff8d898p-29,
      0x1.6124613a86d09p-33, 0x1.93974a8c07c9dp-37, 0x1.ae7f3e733b81fp-41, 0x1.ae7f3e733b81fp-45,
      0x1.952c77030ad4ap-49, 0x1.6827863b97d97p-53};  // 1/n!, n = 0 … 18
  double p = kInverseFactorial[terms];
  for (int n = terms - 1; n >= 1; --n) p = fma_exact(p, r, kInverseFactorial[n]);
  return p;
}

// exp(x) in double, within about one ulp, from IEEE-exact operations only. x = k·ln 2 + r with
// k = round(x / ln 2) and |r| ≤ ½ ln 2 (ln 2 split so k·hi is exact), e^r from its Taylor series to
// r¹³ (the next term is below 2^-57 relative), then scaled by 2^k with two exact power-of-two
// products (so a subnormal result is rounded once). Overflow gives +inf, deep underflow +0.
FM_PHILOX_FN double exp_exact(double x) {
  if (x != x) return x;                         // NaN stays NaN
  if (x > 709.782712893384) return double_of(0x7ff0000000000000ull);  // +inf
  if (x < -745.2) return 0.0;
  constexpr double kInvLn2 = 0x1.71547652b82fep+0;
  constexpr double kLn2Hi = 0x1.62e42fee00000p-1, kLn2Lo = 0x1.a39ef35793c76p-33;
  const double k = floor(fma_exact(x, kInvLn2, 0.5));  // floor is exact
  double r = fma_exact(-k, kLn2Hi, x);                  // exact: k·hi has trailing zeros
  r = fma_exact(-k, kLn2Lo, r);
  // e^r = 1 + r·(e^r − 1)/r, the series to r¹³.
  const double p = fma_exact(exp_series_quotient(r, 13), r, 1.0);
  // 2^k as two normal powers of two (k ∈ [−1075, 1024]): the first product is exact, the second
  // rounds once if the result is subnormal.
  const int ki = int(k);
  const int k1 = ki / 2, k2 = ki - k1;
  const double scale1 = double_of(std::uint64_t(1023 + k1) << 52), scale2 = double_of(std::uint64_t(1023 + k2) << 52);
  return mul_exact(mul_exact(p, scale1), scale2);
}

// Seed 003's polynomial warp w(u, s) = 4(1 − s)u³ + 6(s − 1)u² + (3 − 2s)u in Horner form.
FM_PHILOX_FN double time_warp(double u, double slope) {
  const double a = mul_exact(4.0, sub_exact(1.0, slope)), b = mul_exact(6.0, sub_exact(slope, 1.0));
  const double c = sub_exact(3.0, add_exact(slope, slope));
  return mul_exact(fma_exact(fma_exact(a, u, b), u, c), u);
}

// sigmoid(mean + std·z) = 1 / (1 + exp(−(mean + std·z))).
FM_PHILOX_FN double logistic_of_normal(double z, double mean, double std) {
  const double logit = fma_exact(std, z, mean);
  return div_exact(1.0, add_exact(1.0, exp_exact(-logit)));
}

// The grid time of a uniform: index ⌊u·k⌋ (at most k − 1) over k.
FM_PHILOX_FN double grid_time(double u, std::int32_t points) {
  std::int32_t index = std::int32_t(mul_exact(u, double(points)));
  if (index > points - 1) index = points - 1;
  return div_exact(double(index), double(points));
}

// The law's time from the sample's own draws (u: its first uniform, z: its first normal), unclamped.
FM_PHILOX_FN double time_from_draw(const TimeLaw& law, double u, double z) {
  switch (law.kind) {
    case TimeLawKind::LogitNormal: return logistic_of_normal(z, law.mean, law.std);
    case TimeLawKind::Warp: return time_warp(u, law.slope);
    case TimeLawKind::Grid: return grid_time(u, law.points);
    default: return u;
  }
}

// Sample `sample`'s time at (seed, stream, step), clamped to [0, upper], in double (upper: the largest
// value below 1 in the output's dtype, so rounding cannot reach 1, where some paths are singular). Its draw is
// element 0 of the sample's row: the first uniform (word_at) or the first normal (normal_at).
FM_PHILOX_FN double time_at(const TimeLaw& law, double upper, std::uint64_t seed, std::uint32_t stream, std::uint32_t step,
                            std::uint32_t sample) {
  double u = 0, z = 0;
  if (law.kind == TimeLawKind::LogitNormal) z = normal_at(seed, stream, step, sample, 0);
  else u = uniform_double(word_at(seed, stream, step, sample, 0));
  const double t = time_from_draw(law, u, z);
  return t < 0.0 ? 0.0 : (t > upper ? upper : t);
}

}  // namespace philox
}  // namespace fm::kernels
