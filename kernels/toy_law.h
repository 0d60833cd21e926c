// kernels/toy_law.h — a 2-D toy data point (flow/datasets2d.h's moons, spiral, 8 gaussians,
// checkerboard) from its draws, the same bits on the host and on the device:
//
//   moons         θ = π·u; outer (cos θ, sin θ) for an even index, inner (1 − cos θ, ½ − sin θ) for
//                 an odd one; + noise·(z1, z2); then (p − center)·scale when normalised
//   spiral        θ = 6π·u; scale/(2π)·θ·(cos θ, sin θ) + 0.1·scale·(z1, z2); class ⌊3u⌋ (the turn)
//   8gaussians    k = below(8); radius·(cos 2πk/8, sin 2πk/8) + std·(z1, z2); class k
//   checkerboard  x = −2 + 4u; one of the column's two filled cells (below(2)); y = row + u2; ×scale
//
// u: a uniform draw, z: a standard normal, below(n): an integer in [0, n), taken in that order from
// the draws (a Generator in order, or one sample's Philox place: draw d is element 2d of the sample's
// row, kernels/philox.h). Every operation is IEEE-exact in the sense of kernels/philox.h (explicit
// fma, no product feeding an addition; sin and cos from such operations), so the CPU loop, the CUDA
// kernel and the host's distributions (which call toy_point with their own draws) agree bit for bit,
// whatever -march the host code was built for: a recorded training step draws its batch on the
// device with the numbers the host would have drawn. Header-only formulas, compiled by the host
// compiler and by nvcc; the kernels over arrays are declared at the end (CPU: kernels/cpu/toy_law.cpp,
// CUDA: kernels/cuda/toy_law.cu).
#pragma once
#include <cstdint>

#include "kernels/labels.h"  // label_dropped
#include "kernels/philox.h"
#include "kernels/random.h"  // PhiloxPlace

namespace fm::kernels {

enum class ToyLawKind : std::int32_t { Moons = 0, Spiral = 1, EightGaussians = 2, Checkerboard = 3 };

struct ToyLaw {
  ToyLawKind kind = ToyLawKind::Moons;
  double noise = 0.05;           // moons: the noise's std, before normalisation
  std::int32_t normalize = 1;    // moons: map to (p − center)·normalize_scale
  double center_x = 0.5, center_y = 0.25, normalize_scale = 2.0;  // moons
  double scale = 1.0;            // spiral, checkerboard
  double radius = 2.0, std = 0.1;  // 8 gaussians
};

struct ToyPoint {
  double x = 0, y = 0;
  std::int32_t label = 0;  // the mode the point was drawn from
};

// One sample's Philox place as a source of draws, on the host or the device: the draws of
// core/random.h's PhiloxSampleDraws (draw d from element 2d), without its virtual calls.
struct PhiloxPlaceDraws {
  std::uint64_t seed;
  std::uint32_t stream, step, sample;
  std::uint64_t next = 0;
  FM_PHILOX_FN double uniform() { return philox::uniform_double(philox::word_at(seed, stream, step, sample, 2 * next++)); }
  FM_PHILOX_FN double normal() { return philox::normal_at(seed, stream, step, sample, 2 * next++); }
  FM_PHILOX_FN std::uint64_t below(std::uint64_t n) {
    return philox::mul_high_64(philox::word_at(seed, stream, step, sample, 2 * next++), n);
  }
};

// Point number `index` (moons alternate by index) from `draws`, which has uniform(), normal() and
// below(n) in the meaning above: a PhiloxPlaceDraws, or on the host any fm::RandomDraws.
template <typename Draws>
FM_PHILOX_FN ToyPoint toy_point(const ToyLaw& law, std::int64_t index, Draws& draws) {
  using namespace philox;
  ToyPoint p;
  if (law.kind == ToyLawKind::Moons) {
    double s, c;
    const double u = draws.uniform();
    sincos_half_pi(add_exact(u, u), s, c);  // θ = π·u is 2u quarter turns (u + u is exact)
    const bool outer = index % 2 == 0;
    p.x = outer ? c : sub_exact(1.0, c);
    p.y = outer ? s : sub_exact(0.5, s);
    p.x = fma_exact(law.noise, draws.normal(), p.x);
    p.y = fma_exact(law.noise, draws.normal(), p.y);
    if (law.normalize) {
      p.x = mul_exact(sub_exact(p.x, law.center_x), law.normalize_scale);
      p.y = mul_exact(sub_exact(p.y, law.center_y), law.normalize_scale);
    }
    p.label = outer ? 0 : 1;
  } else if (law.kind == ToyLawKind::Spiral) {
    constexpr double kSixPi = 0x1.2d97c7f3321d2p+4, kTwoPi = 0x1.921fb54442d18p+2;
    double s, c;
    const double u = draws.uniform();
    sincos_half_pi(mul_exact(12.0, u), s, c);  // θ = 6π·u is 12u quarter turns
    const double radius = mul_exact(div_exact(law.scale, kTwoPi), mul_exact(kSixPi, u));
    const double noise_std = mul_exact(0.1, law.scale);
    p.x = fma_exact(noise_std, draws.normal(), mul_exact(radius, c));
    p.y = fma_exact(noise_std, draws.normal(), mul_exact(radius, s));
    const std::int32_t turn = std::int32_t(mul_exact(3.0, u));  // ⌊3u⌋: 0, 1 or 2 (u < 1)
    p.label = turn < 2 ? turn : 2;
  } else if (law.kind == ToyLawKind::EightGaussians) {
    const std::uint64_t mode = draws.below(8);
    double s, c;
    sincos_half_pi(mul_exact(0.5, double(mode)), s, c);  // 2π·k/8 is k/2 quarter turns
    p.x = fma_exact(law.std, draws.normal(), mul_exact(law.radius, c));
    p.y = fma_exact(law.std, draws.normal(), mul_exact(law.radius, s));
    p.label = std::int32_t(mode);
  } else {
    const double x = fma_exact(4.0, draws.uniform(), -2.0);
    const std::int32_t column = std::int32_t(floor(x));  // −2 … 1
    // The filled rows of this column: those with column + row even, i.e. {−2, 0} or {−1, 1}.
    const std::int32_t upper = std::int32_t(draws.below(2));
    const std::int32_t row = -2 + 2 * upper + ((column % 2 + 2) % 2);
    const double y = add_exact(double(row), draws.uniform());
    p.x = mul_exact(law.scale, x);
    p.y = mul_exact(law.scale, y);
    p.label = 2 * (column + 2) + upper;
  }
  return p;
}

// out [n, 2]: point first_sample + i of (seed, stream, step) in row i, computed in double and rounded
// once to T. labels (may be null) [n]: each point's mode, from the same pass (an eager step of a
// class-conditional model on the CPU reads both; toy_labels_* makes labels alone, with dropout).
template <typename T>
void toy_points_cpu(T* out, std::int32_t* labels, std::int64_t n, const PhiloxPlace& place, const ToyLaw& law);
// out is a device pointer; place.step_on_device is honoured.
void toy_points_cuda(float* out, std::int64_t n, const PhiloxPlace& place, const ToyLaw& law);

// labels [n]: the mode of point first_sample + i (toy_point's label at `place`), or null_class where
// label_dropped at dropout_place (its own stream; the same first sample) says so. CUDA: device
// pointer, and both places' step_on_device honoured.
void toy_labels_cpu(std::int32_t* labels, std::int64_t n, const PhiloxPlace& place, const ToyLaw& law, double dropout,
                    std::int32_t null_class, const PhiloxPlace& dropout_place);
void toy_labels_cuda(std::int32_t* labels, std::int64_t n, const PhiloxPlace& place, const ToyLaw& law, double dropout,
                     std::int32_t null_class, const PhiloxPlace& dropout_place);

}  // namespace fm::kernels
