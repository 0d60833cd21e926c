// kernels/philox.h — Philox4x32-10, the counter-based generator behind the training noise, and the
// conversions from its 32-bit words to uniform and normal numbers. Header-only, compiled by both the
// host compiler (kernels/cpu/random.cpp, core/) and nvcc (kernels/cuda/random.cu), so that a
// (counter, key) gives the same numbers on the CPU and on the GPU, bit for bit.
//
// Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel Random Numbers: As Easy as 1, 2, 3", SC'11;
// the generator of cuRAND's curand_init(Philox) and of PyTorch's CUDA noise): a 128-bit counter and a
// 64-bit key go through ten rounds of "multiply to 64 bits, swap the halves, xor in the key" and come
// out as four 32-bit words that look independent for every distinct (counter, key). Nothing is
// stateful: the i-th number of a stream is computed directly from i, so any slice of a tensor can be
// drawn alone (another thread, another rank) and equals the same slice of the whole.
//
// Normals (Box–Muller from two 53-bit uniforms, in double). Bitwise CPU/GPU equality needs more than
// equal words: std::log/std::sin and CUDA's log/sin are different approximations. So log and sincos
// are computed here with polynomials using only operations IEEE 754 defines exactly (+ − × ÷ sqrt and
// fused multiply-add): those round identically on every conforming machine. Two rules keep the
// compilers from changing the arithmetic: every multiply-add is an explicit fma, and no plain product
// ever feeds an addition (GCC and nvcc contract `a*b + c` into an fma by default; with no such pattern
// they have nothing to contract). On the device the __d*_rn intrinsics also forbid contraction.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define FM_PHILOX_FN __host__ __device__ inline
#else
#define FM_PHILOX_FN inline
#endif

namespace fm::kernels::philox {

struct Words {
  std::uint32_t w[4];
};

// Split 32×32 → 64-bit product: the round's only non-linear step.
FM_PHILOX_FN void mul_hi_lo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  const std::uint64_t product = std::uint64_t(a) * std::uint64_t(b);
  hi = std::uint32_t(product >> 32);
  lo = std::uint32_t(product);
}

// Philox4x32 with 10 rounds: the Random123 reference's constants and round structure.
FM_PHILOX_FN Words philox4x32_10(Words counter, std::uint32_t key0, std::uint32_t key1) {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;      // round multipliers
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;    // key schedule (golden ratio, √3 − 1)
  std::uint32_t* x = counter.w;
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    mul_hi_lo(kMul0, x[0], hi0, lo0);
    mul_hi_lo(kMul1, x[2], hi1, lo1);
    const std::uint32_t y0 = hi1 ^ x[1] ^ key0, y1 = lo1, y2 = hi0 ^ x[3] ^ key1, y3 = lo0;
    x[0] = y0, x[1] = y1, x[2] = y2, x[3] = y3;
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  return counter;
}

// Two words as one 64-bit word (low word first).
FM_PHILOX_FN std::uint64_t join(std::uint32_t low, std::uint32_t high) {
  return std::uint64_t(low) | (std::uint64_t(high) << 32);
}

// Uniforms in [0, 1): the top 53 bits (double) or top 24 bits (float) of a 64-bit word, exact.
// The float is the double truncated to 24 bits, so it never rounds up to 1.
FM_PHILOX_FN double uniform_double(std::uint64_t word) { return double(word >> 11) * 0x1p-53; }
FM_PHILOX_FN float uniform_float(std::uint64_t word) { return float(word >> 40) * 0x1p-24f; }
// ⌊word·n / 2^64⌋, the high half of the 128-bit product (Lemire's integer in [0, n) from a word).
FM_PHILOX_FN std::uint64_t mul_high_64(std::uint64_t word, std::uint64_t n) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(word, n);
#else
  return std::uint64_t((static_cast<unsigned __int128>(word) * n) >> 64);
#endif
}

// ---- IEEE-exact arithmetic: the same rounding on host and device, never contracted ----------------
#if defined(__CUDA_ARCH__)
FM_PHILOX_FN double fma_exact(double a, double b, double c) { return __fma_rn(a, b, c); }
FM_PHILOX_FN double mul_exact(double a, double b) { return __dmul_rn(a, b); }
FM_PHILOX_FN double add_exact(double a, double b) { return __dadd_rn(a, b); }
FM_PHILOX_FN double sub_exact(double a, double b) { return __dsub_rn(a, b); }
FM_PHILOX_FN double div_exact(double a, double b) { return __ddiv_rn(a, b); }
FM_PHILOX_FN double sqrt_exact(double a) { return __dsqrt_rn(a); }
FM_PHILOX_FN std::uint64_t bits_of(double x) { return std::uint64_t(__double_as_longlong(x)); }
FM_PHILOX_FN double double_of(std::uint64_t b) { return __longlong_as_double((long long)b); }
#else
FM_PHILOX_FN double fma_exact(double a, double b, double c) { return std::fma(a, b, c); }
FM_PHILOX_FN double mul_exact(double a, double b) { return a * b; }
FM_PHILOX_FN double add_exact(double a, double b) { return a + b; }
FM_PHILOX_FN double sub_exact(double a, double b) { return a - b; }
FM_PHILOX_FN double div_exact(double a, double b) { return a / b; }
FM_PHILOX_FN double sqrt_exact(double a) { return std::sqrt(a); }
FM_PHILOX_FN std::uint64_t bits_of(double x) {
  std::uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}
FM_PHILOX_FN double double_of(std::uint64_t b) {
  double x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}
#endif

// ln(u) for a normal double u in (0, 1] (what Box–Muller needs; no zero, subnormal, inf or NaN).
// u = m·2^e with m ∈ [√½, √2); ln m = 2·atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172, and
// 2·atanh(s) = 2s + 2s³·Σ_{k≥1} s^{2k−2}/(2k + 1): twelve terms reach 4e-19 relative, below double
// rounding. ln 2 is split (hi with 32 trailing zero bits, so e·hi is exact) for a one-rounding sum.
FM_PHILOX_FN double log_unit_interval(double u) {
  const std::uint64_t bits = bits_of(u);
  int exponent = int((bits >> 52) & 0x7ff) - 1023;
  double m = double_of((bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull);  // [1, 2)
  if (m > 1.4142135623730951) {
    m = mul_exact(m, 0.5);  // exact
    exponent += 1;
  }
  const double s = div_exact(sub_exact(m, 1.0), add_exact(m, 1.0));  // m − 1 exact (Sterbenz)
  const double s2 = mul_exact(s, s);
  // Coefficients 1/(2k + 1), k = 12 … 1, rounded to double.
  double q = 0x1.47ae147ae147bp-5;
  q = fma_exact(q, s2, 0x1.642c8590b2164p-5);
  q = fma_exact(q, s2, 0x1.8618618618618p-5);
  q = fma_exact(q, s2, 0x1.af286bca1af28p-5);
  q = fma_exact(q, s2, 0x1.e1e1e1e1e1e1ep-5);
  q = fma_exact(q, s2, 0x1.1111111111111p-4);
  q = fma_exact(q, s2, 0x1.3b13b13b13b14p-4);
  q = fma_exact(q, s2, 0x1.745d1745d1746p-4);
  q = fma_exact(q, s2, 0x1.c71c71c71c71cp-4);
  q = fma_exact(q, s2, 0x1.2492492492492p-3);
  q = fma_exact(q, s2, 0x1.999999999999ap-3);
  q = fma_exact(q, s2, 0x1.5555555555555p-2);
  const double two_s = add_exact(s, s);                   // exact doubling (an add, not a product)
  const double two_s3 = mul_exact(two_s, s2);             // feeds only an fma's multiplicand
  const double e = double(exponent);
  constexpr double kLn2Hi = 0x1.62e42p-1, kLn2Lo = 0x1.fdf473de6af28p-22;
  const double small = fma_exact(two_s3, q, fma_exact(e, kLn2Lo, two_s));
  return fma_exact(e, kLn2Hi, small);
}

// (sin, cos) of π·f/2 for f ∈ [−½, ½] quarter turns: |πf/2| ≤ π/4, where Taylor series of 10–11
// terms are below double rounding.
FM_PHILOX_FN void sincos_quarter_turn(double f, double& sin_out, double& cos_out) {
  const double f2 = mul_exact(f, f);
  // sin(πf/2)/f: coefficients (−1)^j (π/2)^{2j+1}/(2j+1)!, j = 9 … 0.
  double sp = -0x1.8a404211f9547p-45;
  sp = fma_exact(sp, f2, 0x1.aaec32af93359p-38);
  sp = fma_exact(sp, f2, -0x1.6fadb9f155744p-31);
  sp = fma_exact(sp, f2, 0x1.e8f434d018d63p-25);
  sp = fma_exact(sp, f2, -0x1.e3074fde8871fp-19);
  sp = fma_exact(sp, f2, 0x1.50783487ee782p-13);
  sp = fma_exact(sp, f2, -0x1.32d2cce62bd86p-8);
  sp = fma_exact(sp, f2, 0x1.466bc6775aae2p-4);
  sp = fma_exact(sp, f2, -0x1.4abbce625be53p-1);
  sp = fma_exact(sp, f2, 0x1.921fb54442d18p+0);
  // cos(πf/2): coefficients (−1)^j (π/2)^{2j}/(2j)!, j = 10 … 0.
  double cp = 0x1.ef6e308d6d1c4p-49;
  cp = fma_exact(cp, f2, -0x1.2a0c591af8314p-41);
  cp = fma_exact(cp, f2, 0x1.20c62c2f2d7f5p-34);
  cp = fma_exact(cp, f2, -0x1.b6e24f44b128fp-28);
  cp = fma_exact(cp, f2, 0x1.f9d38a3763cc3p-22);
  cp = fma_exact(cp, f2, -0x1.a6d1f2a204a8cp-16);
  cp = fma_exact(cp, f2, 0x1.e1f506891babbp-11);
  cp = fma_exact(cp, f2, -0x1.55d3c7e3cbffap-6);
  cp = fma_exact(cp, f2, 0x1.03c1f081b5ac4p-2);
  cp = fma_exact(cp, f2, -0x1.3bd3cc9be45dep+0);
  cp = fma_exact(cp, f2, 1.0);
  sin_out = mul_exact(f, sp), cos_out = cp;
}

// (sin, cos) of π·t/2 for any t (in quarter turns): t = q + f with q the nearest integer and
// f = t − q ∈ [−½, ½] (exact), then rotated by q quarter turns.
FM_PHILOX_FN void sincos_half_pi(double t, double& sin_out, double& cos_out) {
  const double q = floor(add_exact(t, 0.5));  // floor is exact
  const double f = sub_exact(t, q);           // exact: q is the integer nearest t
  double s, c;
  sincos_quarter_turn(f, s, c);
  const std::int64_t turns = std::int64_t(q) & 3;
  switch (turns) {
    case 0: sin_out = s, cos_out = c; break;
    case 1: sin_out = c, cos_out = -s; break;
    case 2: sin_out = -s, cos_out = -c; break;
    default: sin_out = -c, cos_out = s; break;
  }
}

// (sin, cos) of 2π·k/2^53 for a 53-bit integer k (a uniform angle). The reduction is exact integer
// arithmetic: q = the nearest quarter turn, f = the remainder in quarter turns ∈ [−½, ½).
FM_PHILOX_FN void sincos_turns(std::uint64_t k, double& sin_out, double& cos_out) {
  const std::uint64_t quarter = std::uint64_t(1) << 51;  // one quarter turn in units of 2^-53 turns
  const std::uint64_t q = (k + (quarter >> 1)) >> 51;     // 0 … 4
  const std::int64_t r = std::int64_t(k) - std::int64_t(q << 51);
  const double f = double(r) * 0x1p-51;                   // exact: |r| < 2^50
  double s, c;
  sincos_quarter_turn(f, s, c);
  switch (q & 3) {  // rotate by q quarter turns
    case 0: sin_out = s, cos_out = c; break;
    case 1: sin_out = c, cos_out = -s; break;
    case 2: sin_out = -s, cos_out = -c; break;
    default: sin_out = -c, cos_out = s; break;
  }
}

// Two independent standard normals from one Philox block (Box–Muller): the first 64-bit word gives
// u ∈ (0, 1] (so ln u is finite), the second the angle. radius = √(−2 ln u); (r·cos, r·sin).
FM_PHILOX_FN void normal_pair(const Words& block, double& first, double& second) {
  const double u = double((join(block.w[0], block.w[1]) >> 11) + 1) * 0x1p-53;  // exact
  const double radius = sqrt_exact(mul_exact(-2.0, log_unit_interval(u)));      // ×(−2) exact
  double sin_angle, cos_angle;
  sincos_turns(join(block.w[2], block.w[3]) >> 11, sin_angle, cos_angle);
  first = mul_exact(radius, cos_angle);
  second = mul_exact(radius, sin_angle);
}

// ---- where a number sits in a stream -----------------------------------------------------------------
// key = the run's seed (64 bits); counter = (element block, sample index, step, stream). Each block
// of four words gives two values of a sample: two normals, or two 64-bit words for two uniforms.
// Element j of sample i at `step` in `stream` is lane j % 2 of block (j / 2) of counter
// (j / 2, i, step, stream) — a function of those numbers only.
FM_PHILOX_FN Words block_at(std::uint64_t seed, std::uint32_t stream, std::uint32_t step, std::uint32_t sample,
                            std::uint32_t block) {
  Words counter{{block, sample, step, stream}};
  return philox4x32_10(counter, std::uint32_t(seed), std::uint32_t(seed >> 32));
}

FM_PHILOX_FN double normal_at(std::uint64_t seed, std::uint32_t stream, std::uint32_t step, std::uint32_t sample,
                              std::uint64_t element) {
  double first, second;
  normal_pair(block_at(seed, stream, step, sample, std::uint32_t(element >> 1)), first, second);
  return (element & 1) ? second : first;
}

FM_PHILOX_FN std::uint64_t word_at(std::uint64_t seed, std::uint32_t stream, std::uint32_t step,
                                   std::uint32_t sample, std::uint64_t element) {
  const Words b = block_at(seed, stream, step, sample, std::uint32_t(element >> 1));
  return (element & 1) ? join(b.w[2], b.w[3]) : join(b.w[0], b.w[1]);
}

}  // namespace fm::kernels::philox
