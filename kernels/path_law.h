// kernels/path_law.h — the coefficients of an affine probability path at time t, the same bits on the
// host and on the device (flow/scheduler.h's schedulers, flow/path.h's sample()):
//
//   x_t = α_t·x1 + σ_t·x0          u_t = α̇_t·x1 + σ̇_t·x0
//
//   condot   α = t,            σ = 1 − t,          α̇ = 1,           σ̇ = −1
//   cosine   α = sin(πt/2),    σ = cos(πt/2),      α̇ = (π/2)·σ,     σ̇ = −(π/2)·α
//   vp       with s = 1 − t, β(s) = β_min + s·(β_max − β_min), T(s) = β_min·s + ½(β_max − β_min)·s²:
//            α = e^{−T/2},     σ = √(1 − e^{−T}),  α̇ = ½·β(s)·α,    σ̇ = −α·α̇/σ at the clamped time
//
// computed in double. Every operation is IEEE-exact in the sense of kernels/philox.h (explicit fma,
// no product feeding an addition; exp, expm1, sin and cos from such operations), so the CPU loop, the
// CUDA kernel and the host's scheduler (which calls path_at below) agree bit for bit: a training step
// takes its coefficients where its times are (on the device, no read back) with the numbers the host
// would have made. Header-only formulas, compiled by the host compiler and by nvcc; the kernels over
// arrays are declared at the end (CPU: kernels/cpu/path_law.cpp, CUDA: kernels/cuda/path_law.cu).
#pragma once
#include <cstdint>

#include "kernels/philox.h"
#include "kernels/time_law.h"  // philox::exp_exact, exp_series_quotient

namespace fm::kernels {

enum class PathLawKind : std::int32_t { CondOT = 0, Cosine = 1, VP = 2 };

struct PathLaw {
  PathLawKind kind = PathLawKind::CondOT;
  double beta_min = 0.1, beta_max = 20.0;  // vp
  double clamp_epsilon = 1e-5;             // vp's σ̇ is evaluated at min(max(t, ε), 1 − ε)
};

struct PathCoefficients {
  double alpha = 0, sigma = 0, d_alpha = 0, d_sigma = 0;
};

namespace philox {

// e^x − 1 without the cancellation of exp(x) − 1 near 0: its Taylor series to x^18 for |x| < ½ (the
// next term is below 2^-60 relative), exp_exact(x) − 1 beyond.
FM_PHILOX_FN double expm1_exact(double x) {
  if (!(x > -0.5 && x < 0.5)) return sub_exact(exp_exact(x), 1.0);
  return mul_exact(exp_series_quotient(x, 18), x);
}

}  // namespace philox

// The coefficients at time t (a double: the value of a float or double time, exactly).
FM_PHILOX_FN PathCoefficients path_at(const PathLaw& law, double t) {
  using namespace philox;
  PathCoefficients out;
  if (law.kind == PathLawKind::CondOT) {
    out.alpha = t, out.sigma = sub_exact(1.0, t), out.d_alpha = 1.0, out.d_sigma = -1.0;
  } else if (law.kind == PathLawKind::Cosine) {
    constexpr double kHalfPi = 0x1.921fb54442d18p+0;
    sincos_half_pi(t, out.alpha, out.sigma);
    out.d_alpha = mul_exact(kHalfPi, out.sigma);
    out.d_sigma = -mul_exact(kHalfPi, out.alpha);
  } else {
    const double spread = sub_exact(law.beta_max, law.beta_min);
    const double half_spread = mul_exact(0.5, spread);
    // T(s) = s·(β_min + ½(β_max − β_min)·s) and β(s) = β_min + s·(β_max − β_min).
    auto integrated = [&](double s) { return mul_exact(s, fma_exact(half_spread, s, law.beta_min)); };
    auto rate = [&](double s) { return fma_exact(s, spread, law.beta_min); };
    const double s = sub_exact(1.0, t);
    const double T = integrated(s);
    out.alpha = exp_exact(mul_exact(-0.5, T));
    out.sigma = sqrt_exact(-expm1_exact(-T));  // 1 − e^{−T} without cancellation near t = 1
    out.d_alpha = mul_exact(mul_exact(0.5, rate(s)), out.alpha);
    // σ̇ = −α·α̇/σ diverges as σ → 0 at t = 1: evaluated at the clamped time (flow/scheduler.h).
    const double upper = sub_exact(1.0, law.clamp_epsilon);
    const double tc = t < law.clamp_epsilon ? law.clamp_epsilon : (t > upper ? upper : t);
    const double sc = sub_exact(1.0, tc), Tc = integrated(sc);
    const double alpha_c = exp_exact(mul_exact(-0.5, Tc));
    const double d_alpha_c = mul_exact(mul_exact(0.5, rate(sc)), alpha_c);
    out.d_sigma = -div_exact(mul_exact(alpha_c, d_alpha_c), sqrt_exact(-expm1_exact(-Tc)));
  }
  return out;
}

// out [4, n]: rows α, σ, α̇, σ̇ of each time t[i], each computed in double and rounded once to T.
template <typename T>
void path_coefficients_cpu(const T* t, T* out, std::int64_t n, const PathLaw& law);
// t and out are device pointers (float), on cuda_stream().
void path_coefficients_cuda(const float* t, float* out, std::int64_t n, const PathLaw& law);

}  // namespace fm::kernels
