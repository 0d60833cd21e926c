// tests/test_kernel_elementwise.cpp — the CPU elementwise maps (kernels/cpu/elementwise.cpp): each op
// in float against its float64 formula (kernels/elementwise_math.h), dense and strided loops giving
// the same bits, and the accuracy of the vectorisable normal CDF and density behind float GELU
// (kernels/cpu/fast_exp.h).
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/fast_exp.h"
#include "kernels/elementwise.h"
#include "kernels/elementwise_math.h"
#include "kernel_test_util.h"

namespace fk = fm::kernels;
using fk::dense_geometry;
using namespace fm::test;

namespace {

// The same n elements read with stride 2 (every other element of a buffer twice as long): the
// general path, which walks rows instead of one flat loop.
fk::ElementwiseGeometry strided_geometry(std::int64_t n) {
  fk::ElementwiseGeometry g = dense_geometry(n);
  g.a_strides[0] = g.b_strides[0] = 2;
  return g;
}

// x over [−12, 12] (both tails of Φ and σ) plus the exact points 0 and ±tiny.
std::vector<float> test_inputs() {
  std::vector<float> x = random_floats(4093, 31, -12.f, 12.f);
  for (float v : {0.f, 1e-30f, -1e-30f, 1e-4f, -1e-4f, 5.f, -5.f}) x.push_back(v);
  return x;
}

}  // namespace

TEST_CASE("fast_normal_cdf and fast_normal_pdf are within a few float ulp of the float64 values",
          "[elementwise]") {
  // Compared with the float64 formulas at the same (float) input, x over [−12, 6] in steps of 1e-3.
  // Both go through e^(−x²/2), and x²/2 rounded to float is off by up to ε·x²/2 absolute, which
  // e^(·) turns into that much relative error: 1e-6 at x = −4, 9e-6 at x = −12. On top come Numerical
  // Recipes' erfc (< 1.2e-7) and fast_exp (~2e-7). Hence 2e-6 for x ≥ −4 (where GELU and its gradient
  // are not negligible) and 2e-5 below, where |GELU| < 1.3e-4 and its error stays below 3e-9 absolute.
  double worst_core = 0, worst_tail = 0, worst_pdf = 0;
  for (int i = 0; i <= 18000; ++i) {
    const float x = float(-12.0 + i * 1e-3);
    const double cdf = 0.5 * std::erfc(-double(x) / std::sqrt(2.0));
    const double pdf = std::exp(-0.5 * double(x) * double(x)) / std::sqrt(2 * M_PI);
    const double cdf_error = std::fabs(fk::fast_normal_cdf(x) - cdf) / cdf;
    (x >= -4.0f ? worst_core : worst_tail) = std::max(x >= -4.0f ? worst_core : worst_tail, cdf_error);
    if (x >= -4.0f) worst_pdf = std::max(worst_pdf, std::fabs(fk::fast_normal_pdf(x) - pdf) / pdf);
  }
  INFO("worst relative error: cdf " << worst_core << " (x >= -4), " << worst_tail << " (x < -4); pdf " << worst_pdf);
  CHECK(worst_core < 2e-6);
  CHECK(worst_tail < 2e-5);
  CHECK(worst_pdf < 2e-6);
}

TEST_CASE("float unary maps match their float64 formula and dense and strided loops agree bitwise", "[elementwise]") {
  const std::vector<float> x = test_inputs();
  const std::int64_t n = std::int64_t(x.size());
  std::vector<float> x_strided(2 * x.size());
  for (std::size_t i = 0; i < x.size(); ++i) x_strided[2 * i] = x[i];
  using fk::UnaryOp;
  for (UnaryOp op : {UnaryOp::Identity, UnaryOp::Neg, UnaryOp::Affine, UnaryOp::Square, UnaryOp::Tanh, UnaryOp::Sin,
                     UnaryOp::Cos, UnaryOp::Sigmoid, UnaryOp::Relu, UnaryOp::Silu, UnaryOp::Gelu}) {
    INFO("unary op " << int(op));
    std::vector<float> dense(x.size()), strided(x.size());
    poison(dense.data(), dense.size());
    poison(strided.data(), strided.size());
    fk::unary_cpu<float>(op, x.data(), dense.data(), dense_geometry(n), 1.5, -0.25);
    fk::unary_cpu<float>(op, x_strided.data(), strided.data(), strided_geometry(n), 1.5, -0.25);
    std::vector<double> reference(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) reference[i] = fk::apply_unary<double>(op, x[i], 1.5, -0.25);
    // Pointwise functions of one float: a few ulp of the output's own size (2e-6 ≈ 16 ulp). The
    // absolute floor of 3e-9 is for GELU's far negative tail (see the test above: there the float
    // value is ~1e-5 relative, below 3e-9 absolute; the float64 formula 1 + erf loses its digits too).
    require_matches_reference("dense", dense, reference, fm::cases::Tolerance{3e-9, 2e-6});
    FM_REQUIRE_CLOSE(strided.data(), dense.data(), dense.size(), 0.0, 0.0);
  }
}

TEST_CASE("float binary maps (the activations' backwards) match their float64 formula", "[elementwise]") {
  const std::vector<float> x = test_inputs();
  const std::vector<float> g = random_floats(x.size(), 32);
  const std::int64_t n = std::int64_t(x.size());
  using fk::BinaryOp;
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::ReluBackward, BinaryOp::SiluBackward,
                      BinaryOp::GeluBackward, BinaryOp::TanhBackward}) {
    INFO("binary op " << int(op));
    std::vector<float> y(x.size());
    poison(y.data(), y.size());
    fk::binary_cpu<float>(op, x.data(), g.data(), y.data(), dense_geometry(n));
    std::vector<double> reference(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) reference[i] = fk::apply_binary<double>(op, x[i], g[i]);
    // The backwards add two terms of up to |x|·φ(x) ≈ 0.24 or |g|: rounding of O(1) terms, so the
    // scaled rule (an absolute 2e-6 of the output's scale) rather than a purely relative one.
    require_matches_reference("dense", y, reference, 2e-6, 2e-6);
  }
}
