// tests/test_kernel_norm_act_attn.cpp — the GroupNorm, SiLU and attention kernels (kernels/ layer
// only: plain functions over pointers).
//
//   CPU: hand-computed tiny cases; float64 central-difference gradchecks of every CPU backward
//        (PyTorch's float64 defaults: eps 1e-6, atol 1e-5, rtol 1e-3) on the kernel-level loss
//        Σ y∘r for a random r.
//   GPU: every CUDA version against the CPU reference run in double on the same float inputs,
//        forward and backward, on the U-Net's shapes and awkward ones, with NaN-poisoned outputs;
//        plus bitwise reproducibility of the reductions that promise it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/cpu/fast_exp.h"
#include "kernels/group_norm.h"
#include "kernels/runtime.h"
#include "test_util.h"

namespace fk = fm::kernels;

namespace {

std::vector<double> random_doubles(std::size_t n, std::uint64_t seed, double lo = -1.0,
                                   double hi = 1.0) {
  std::vector<double> v(n);
  fm::test::fill_uniform(v.data(), n, seed, lo, hi);
  return v;
}

double weighted_sum(const std::vector<double>& y, const std::vector<double>& weights) {
  double sum = 0;
  for (std::size_t i = 0; i < y.size(); ++i) sum += y[i] * weights[i];
  return sum;
}

// Central differences of loss() with respect to every element of `input`, compared with the
// analytic gradient: |analytic − numeric| <= 1e-5 + 1e-3·|numeric| (PyTorch's float64 gradcheck
// defaults). With eps = 1e-6 the truncation error is O(eps²) ≈ 1e-12 and the rounding error
// ≈ 1e-16·|loss| / eps ≈ 1e-10, both far inside the tolerance; a wrong formula is not.
void require_gradient_matches(const std::string& what, std::vector<double>& input,
                              const std::vector<double>& analytic,
                              const std::function<double()>& loss) {
  REQUIRE(analytic.size() == input.size());
  const double eps = 1e-6;
  std::vector<double> numeric(input.size());
  for (std::size_t i = 0; i < input.size(); ++i) {
    const double saved = input[i];
    input[i] = saved + eps;
    const double loss_plus = loss();
    input[i] = saved - eps;
    const double loss_minus = loss();
    input[i] = saved;
    numeric[i] = (loss_plus - loss_minus) / (2 * eps);
  }
  INFO("gradient of " << what);
  FM_REQUIRE_CLOSE(analytic.data(), numeric.data(), analytic.size(), 1e-5, 1e-3);
}

}  // namespace

// =================================================================================================
// SiLU and bias + SiLU, CPU
// =================================================================================================

TEST_CASE("silu_forward_cpu and silu_backward_cpu match hand-computed values", "[activation]") {
  // silu(x) = x/(1+e^-x), silu'(x) = σ(x)(1 + x(1 − σ(x))); values from Python's math module.
  const std::vector<double> x = {0, 1, -1, 2, -30, 30, -1000};
  const std::vector<double> expected_y = {0.0,
                                          0.7310585786300049,
                                          -0.2689414213699951,
                                          1.7615941559557646,
                                          -2.8072868906517896e-12,
                                          29.999999999997197,
                                          0.0};
  const std::vector<double> expected_dx = {0.5,
                                           0.9276705118714869,
                                           0.07232948812851325,
                                           1.0907842487848955,
                                           -2.713710660963134e-12,
                                           1.000000000002711,
                                           0.0};
  std::vector<double> y(x.size()), dx(x.size()), dy(x.size(), 1.0);
  fm::test::poison(y.data(), y.size());
  fm::test::poison(dx.data(), dx.size());
  fk::silu_forward_cpu<double>(x.data(), y.data(), std::int64_t(x.size()));
  fk::silu_backward_cpu<double>(x.data(), dy.data(), dx.data(), std::int64_t(x.size()));
  // x = −1000: exp(1000) overflows to inf and must give 0, not NaN.
  FM_REQUIRE_CLOSE(y.data(), expected_y.data(), y.size(), 1e-15, 1e-14);
  FM_REQUIRE_CLOSE(dx.data(), expected_dx.data(), dx.size(), 1e-15, 1e-14);

  std::vector<float> xf = {0.f, 1.f, -1.f}, yf(3);
  fk::silu_forward_cpu<float>(xf.data(), yf.data(), 3);
  std::vector<float> expected_f = {0.f, 0.7310585786f, -0.2689414214f};
  FM_REQUIRE_CLOSE(yf.data(), expected_f.data(), 3, 1e-7, 1e-6);
}

TEST_CASE("bias_silu CPU matches hand-computed values in both layouts", "[activation]") {
  const std::vector<double> x = {0, 1, -1, 2}, bias = {1, -1}, dy = {1, 1, 1, 1};
  std::vector<double> y(4), dx(4), dbias(2);
  SECTION("NCHW: N=1, C=2, HW=2 — channel c owns a run of HW elements") {
    // pre-activations x + bias[c] = {1, 2, −2, 1}
    fk::bias_silu_forward_cpu<double>(x.data(), bias.data(), y.data(), 1, 2, 2);
    const std::vector<double> expected = {0.7310585786300049, 1.7615941559557646,
                                          -0.2384058440442351, 0.7310585786300049};
    FM_REQUIRE_CLOSE(y.data(), expected.data(), 4, 1e-15, 1e-14);
    fm::test::poison(dbias.data(), 2);
    fk::bias_silu_backward_cpu<double>(x.data(), bias.data(), dy.data(), dx.data(), dbias.data(),
                                       1, 2, 2);
    const std::vector<double> expected_dbias = {2.0184547606563825, 0.8368862630865914};
    FM_REQUIRE_CLOSE(dbias.data(), expected_dbias.data(), 2, 1e-15, 1e-14);
  }
  SECTION("[rows, C]: rows=2, C=2, inner=1 — channel is the column") {
    // pre-activations {1, 0, 0, 1}
    fk::bias_silu_forward_cpu<double>(x.data(), bias.data(), y.data(), 2, 2, 1);
    const std::vector<double> expected = {0.7310585786300049, 0.0, 0.0, 0.7310585786300049};
    FM_REQUIRE_CLOSE(y.data(), expected.data(), 4, 1e-15, 1e-14);
    fm::test::poison(dbias.data(), 2);
    fk::bias_silu_backward_cpu<double>(x.data(), bias.data(), dy.data(), dx.data(), dbias.data(),
                                       2, 2, 1);
    const std::vector<double> expected_dbias = {1.427670511871487, 1.427670511871487};
    FM_REQUIRE_CLOSE(dbias.data(), expected_dbias.data(), 2, 1e-15, 1e-14);
  }
}

TEST_CASE("gradcheck: silu_backward_cpu", "[activation][gradcheck]") {
  const std::int64_t n = 11;
  std::vector<double> x = random_doubles(n, 11, -4, 4), r = random_doubles(n, 12);
  std::vector<double> y(n), dx(n);
  fk::silu_backward_cpu<double>(x.data(), r.data(), dx.data(), n);
  require_gradient_matches("silu wrt x", x, dx, [&] {
    fk::silu_forward_cpu<double>(x.data(), y.data(), n);
    return weighted_sum(y, r);
  });
}

TEST_CASE("gradcheck: bias_silu_backward_cpu in both layouts", "[activation][gradcheck]") {
  struct Shape { std::int64_t outer; int C; std::int64_t inner; };
  for (Shape s : {Shape{2, 3, 4}, Shape{5, 3, 1}, Shape{1, 1, 1}}) {
    const std::size_t n = std::size_t(s.outer * s.C * s.inner);
    INFO("outer=" << s.outer << " C=" << s.C << " inner=" << s.inner);
    std::vector<double> x = random_doubles(n, 21, -3, 3), bias = random_doubles(s.C, 22);
    std::vector<double> r = random_doubles(n, 23), y(n), dx(n), dbias(s.C);
    fk::bias_silu_backward_cpu<double>(x.data(), bias.data(), r.data(), dx.data(), dbias.data(),
                                       s.outer, s.C, s.inner);
    auto loss = [&] {
      fk::bias_silu_forward_cpu<double>(x.data(), bias.data(), y.data(), s.outer, s.C, s.inner);
      return weighted_sum(y, r);
    };
    require_gradient_matches("bias_silu wrt x", x, dx, loss);
    require_gradient_matches("bias_silu wrt bias", bias, dbias, loss);
  }
}

// =================================================================================================
// GroupNorm (and fused GroupNorm + SiLU), CPU
// =================================================================================================

TEST_CASE("group_norm_forward_cpu matches hand-computed values", "[group_norm]") {
  // x = [1, 2 | 3, 4] as N=1, C=2, HW=2; γ = {1, 2}, β = {0, 1}; eps = 0 to keep numbers exact.
  const std::vector<double> x = {1, 2, 3, 4}, gamma = {1, 2}, beta = {0, 1};
  std::vector<double> y(4), mean(2), rstd(2);
  SECTION("G=1: one group over both channels") {
    // μ = 2.5, σ² = (2.25 + 0.25 + 0.25 + 2.25)/4 = 1.25, rstd = 1/sqrt(1.25)
    fk::group_norm_forward_cpu<double>(x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                                       rstd.data(), 1, 2, 2, 1, 0.0);
    const std::vector<double> expected = {-1.3416407864998738, -0.4472135954999579,
                                          1.8944271909999157, 3.6832815729997477};
    FM_REQUIRE_CLOSE(y.data(), expected.data(), 4, 1e-14, 1e-14);
    CHECK(mean[0] == Approx(2.5).epsilon(1e-15));
    CHECK(rstd[0] == Approx(0.8944271909999159).epsilon(1e-14));
  }
  SECTION("G=2: each channel its own group") {
    // channel 0: [1, 2] → μ 1.5, σ² 0.25, rstd 2, x̂ = [−1, 1]; channel 1: [3, 4] → x̂ = [−1, 1]
    fk::group_norm_forward_cpu<double>(x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                                       rstd.data(), 1, 2, 2, 2, 0.0);
    const std::vector<double> expected = {-1, 1, -1, 3}, expected_mean = {1.5, 3.5},
                              expected_rstd = {2, 2};
    FM_REQUIRE_CLOSE(y.data(), expected.data(), 4, 1e-14, 1e-14);
    FM_REQUIRE_CLOSE(mean.data(), expected_mean.data(), 2, 1e-14, 1e-14);
    FM_REQUIRE_CLOSE(rstd.data(), expected_rstd.data(), 2, 1e-14, 1e-14);
  }
}

TEST_CASE("group_norm_backward_cpu with dy = 1 and one channel per group", "[group_norm]") {
  // With G = C each group is one channel; y's sum over a channel is HW·β[c] whatever x is, so an
  // all-ones dy gives dx = 0, dγ = Σ x̂ = 0 and dβ = N·HW.
  const int N = 2, C = 3, HW = 5, G = 3;
  std::vector<double> x = random_doubles(N * C * HW, 31), gamma = random_doubles(C, 32),
                      beta = random_doubles(C, 33);
  std::vector<double> y(x.size()), mean(N * G), rstd(N * G), dy(x.size(), 1.0), dx(x.size()),
      dgamma(C), dbeta(C);
  fk::group_norm_forward_cpu<double>(x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                                     rstd.data(), N, C, HW, G, 1e-5);
  fm::test::poison(dx.data(), dx.size());
  fk::group_norm_backward_cpu<double>(dy.data(), x.data(), mean.data(), rstd.data(), gamma.data(),
                                      dx.data(), dgamma.data(), dbeta.data(), N, C, HW, G);
  const std::vector<double> zeros(x.size(), 0.0), expected_dbeta(C, double(N * HW));
  FM_REQUIRE_CLOSE(dx.data(), zeros.data(), dx.size(), 1e-12, 0.0);
  FM_REQUIRE_CLOSE(dgamma.data(), zeros.data(), C, 1e-12, 0.0);
  FM_REQUIRE_CLOSE(dbeta.data(), expected_dbeta.data(), C, 1e-12, 0.0);
}

TEST_CASE("group_norm_silu_forward_cpu equals silu(group_norm(x))", "[group_norm]") {
  const int N = 2, C = 6, HW = 7, G = 3;
  std::vector<double> x = random_doubles(N * C * HW, 41, -2, 2), gamma = random_doubles(C, 42),
                      beta = random_doubles(C, 43);
  std::vector<double> z(x.size()), composed(x.size()), fused(x.size()), mean(N * G), rstd(N * G),
      fused_mean(N * G), fused_rstd(N * G);
  fk::group_norm_forward_cpu<double>(x.data(), gamma.data(), beta.data(), z.data(), mean.data(),
                                     rstd.data(), N, C, HW, G, 1e-5);
  fk::silu_forward_cpu<double>(z.data(), composed.data(), std::int64_t(z.size()));
  fk::group_norm_silu_forward_cpu<double>(x.data(), gamma.data(), beta.data(), fused.data(),
                                          fused_mean.data(), fused_rstd.data(), N, C, HW, G, 1e-5);
  FM_REQUIRE_CLOSE(fused.data(), composed.data(), fused.size(), 1e-15, 1e-14);
  FM_REQUIRE_CLOSE(fused_mean.data(), mean.data(), mean.size(), 0.0, 0.0);
  FM_REQUIRE_CLOSE(fused_rstd.data(), rstd.data(), rstd.size(), 0.0, 0.0);
}

TEST_CASE("group_norm CPU rejects channels not divisible by groups", "[group_norm]") {
  std::vector<double> buf(64);
  REQUIRE_THROWS_AS(fk::group_norm_forward_cpu<double>(buf.data(), buf.data(), buf.data(),
                                                       buf.data(), buf.data(), buf.data(), 1, 6,
                                                       2, 4, 1e-5),
                    fm::ShapeError);
}

TEST_CASE("gradcheck: group_norm_backward_cpu and group_norm_silu_backward_cpu",
          "[group_norm][gradcheck]") {
  struct Shape { int N, C, HW, G; };
  for (bool fused_silu : {false, true})
    for (Shape s : {Shape{2, 6, 5, 3}, Shape{1, 4, 3, 1}, Shape{2, 3, 4, 3}, Shape{1, 2, 1, 1}}) {
      INFO((fused_silu ? "group_norm_silu" : "group_norm") << " N=" << s.N << " C=" << s.C
                                                           << " HW=" << s.HW << " G=" << s.G);
      const std::size_t n = std::size_t(s.N) * s.C * s.HW;
      std::vector<double> x = random_doubles(n, 51, -2, 2), gamma = random_doubles(s.C, 52, 0.5, 1.5),
                          beta = random_doubles(s.C, 53), r = random_doubles(n, 54);
      std::vector<double> y(n), mean(s.N * s.G), rstd(s.N * s.G), dx(n), dgamma(s.C), dbeta(s.C);
      const double eps = 1e-5;
      auto forward = [&] {
        if (fused_silu)
          fk::group_norm_silu_forward_cpu<double>(x.data(), gamma.data(), beta.data(), y.data(),
                                                  mean.data(), rstd.data(), s.N, s.C, s.HW, s.G, eps);
        else
          fk::group_norm_forward_cpu<double>(x.data(), gamma.data(), beta.data(), y.data(),
                                             mean.data(), rstd.data(), s.N, s.C, s.HW, s.G, eps);
      };
      forward();
      if (fused_silu)
        fk::group_norm_silu_backward_cpu<double>(r.data(), x.data(), mean.data(), rstd.data(),
                                                 gamma.data(), beta.data(), dx.data(),
                                                 dgamma.data(), dbeta.data(), s.N, s.C, s.HW, s.G);
      else
        fk::group_norm_backward_cpu<double>(r.data(), x.data(), mean.data(), rstd.data(),
                                            gamma.data(), dx.data(), dgamma.data(), dbeta.data(),
                                            s.N, s.C, s.HW, s.G);
      auto loss = [&] {
        forward();
        return weighted_sum(y, r);
      };
      require_gradient_matches("x", x, dx, loss);
      require_gradient_matches("gamma", gamma, dgamma, loss);
      require_gradient_matches("beta", beta, dbeta, loss);
    }
}

// =================================================================================================
// Attention, CPU
// =================================================================================================

TEST_CASE("attention_forward_cpu matches hand-computed values", "[attention]") {
  SECTION("L=2, D=1: two keys, softmax of ±q") {
    // S row i = [q_i·1, q_i·(−1)]; P_i0 = 1/(1 + e^{−2 q_i}); O_i = P_i0·1 + (1 − P_i0)·3;
    // lse_i = log(e^{q_i} + e^{−q_i}).
    const std::vector<double> q = {1, 2}, k = {1, -1}, v = {1, 3};
    std::vector<double> o(2), lse(2);
    fm::test::poison(o.data(), 2);
    fm::test::poison(lse.data(), 2);
    fk::attention_forward_cpu<double>(q.data(), k.data(), v.data(), o.data(), lse.data(), 1, 1, 2,
                                      1, 1.0);
    const std::vector<double> expected_o = {1.2384058440442354, 1.035972419924183},
                              expected_lse = {1.1269280110429725, 2.01814992791781};
    FM_REQUIRE_CLOSE(o.data(), expected_o.data(), 2, 1e-14, 1e-14);
    FM_REQUIRE_CLOSE(lse.data(), expected_lse.data(), 2, 1e-14, 1e-14);
  }
  SECTION("q = 0: uniform attention, O = mean of V, lse = log L") {
    const int B = 1, H = 2, L = 3, D = 2;
    std::vector<double> q(B * H * L * D, 0.0), k = random_doubles(q.size(), 61),
                        v = random_doubles(q.size(), 62), o(q.size()), lse(B * H * L);
    fk::attention_forward_cpu<double>(q.data(), k.data(), v.data(), o.data(), lse.data(), B, H, L,
                                      D, 0.5);
    std::vector<double> expected_o(q.size()), expected_lse(lse.size(), std::log(3.0));
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < L; ++i)
        for (int d = 0; d < D; ++d) {
          double mean = 0;
          for (int j = 0; j < L; ++j) mean += v[(h * L + j) * D + d] / L;
          expected_o[(h * L + i) * D + d] = mean;
        }
    FM_REQUIRE_CLOSE(o.data(), expected_o.data(), o.size(), 1e-14, 1e-14);
    FM_REQUIRE_CLOSE(lse.data(), expected_lse.data(), lse.size(), 1e-14, 1e-14);
  }
  SECTION("L=1: the only key gets weight 1") {
    const std::vector<double> q = {1, 2, 3}, k = {0.5, -1, 2}, v = {7, 8, 9};
    std::vector<double> o(3), lse(1);
    fk::attention_forward_cpu<double>(q.data(), k.data(), v.data(), o.data(), lse.data(), 1, 1, 1,
                                      3, 0.25);
    FM_REQUIRE_CLOSE(o.data(), v.data(), 3, 1e-15, 0.0);
    CHECK(lse[0] == Approx(0.25 * (0.5 - 2 + 6)).epsilon(1e-15));  // log e^{S} = S
  }
}

TEST_CASE("gradcheck: attention_backward_cpu", "[attention][gradcheck]") {
  struct Shape { int B, H, L, D; double scale; };
  for (Shape s : {Shape{1, 2, 5, 3, 0.7}, Shape{2, 1, 4, 2, 1.3}, Shape{1, 1, 1, 2, 0.5}}) {
    INFO("B=" << s.B << " H=" << s.H << " L=" << s.L << " D=" << s.D);
    const std::size_t n = std::size_t(s.B) * s.H * s.L * s.D;
    std::vector<double> q = random_doubles(n, 71, -1.5, 1.5), k = random_doubles(n, 72, -1.5, 1.5),
                        v = random_doubles(n, 73), r = random_doubles(n, 74);
    std::vector<double> o(n), lse(std::size_t(s.B) * s.H * s.L), dq(n), dk(n), dv(n);
    fk::attention_forward_cpu<double>(q.data(), k.data(), v.data(), o.data(), lse.data(), s.B, s.H,
                                      s.L, s.D, s.scale);
    fm::test::poison(dq.data(), n);
    fm::test::poison(dk.data(), n);
    fm::test::poison(dv.data(), n);
    fk::attention_backward_cpu<double>(q.data(), k.data(), v.data(), o.data(), r.data(), lse.data(),
                                       dq.data(), dk.data(), dv.data(), s.B, s.H, s.L, s.D,
                                       s.scale);
    std::vector<double> o_probe(n), lse_probe(lse.size());
    auto loss = [&] {
      fk::attention_forward_cpu<double>(q.data(), k.data(), v.data(), o_probe.data(),
                                        lse_probe.data(), s.B, s.H, s.L, s.D, s.scale);
      return weighted_sum(o_probe, r);
    };
    require_gradient_matches("q", q, dq, loss);
    require_gradient_matches("k", k, dk, loss);
    require_gradient_matches("v", v, dv, loss);
  }
}

TEST_CASE("fast_exp agrees with exp to a few ulp and clamps instead of overflowing", "[attention]") {
  // Float rounding alone is 6e-8 relative; the range reduction and the degree-7 polynomial add a
  // few ulp more. 4e-7 (~3 ulp) is what the header promises with a margin of 2x over the worst
  // case measured; a wrong coefficient or a wrong ln 2 split is off by 1e-5 or worse.
  double worst = 0;
  for (double x = -87.0; x <= 88.0; x += 1.0 / 1024 + 1e-7) {
    const float xf = float(x);
    const double exact = std::exp(double(xf));
    worst = std::max(worst, std::fabs(double(fk::fast_exp(xf)) - exact) / exact);
  }
  INFO("max relative error " << worst);
  CHECK(worst < 4e-7);
  CHECK(fk::fast_exp(0.0f) == 1.0f);
  CHECK(fk::fast_exp(-1000.0f) > 0.0f);  // clamped at −87: tiny but normal, never a denormal
  CHECK(fk::fast_exp(-1000.0f) < 2e-38f);
  CHECK(std::isfinite(fk::fast_exp(1000.0f)));
  CHECK(std::isnan(fk::fast_exp(std::nanf(""))));  // a NaN still shows up downstream
  CHECK(fk::fast_exp(0.5) == std::exp(0.5));      // double is std::exp itself
}

// The GEMM version (what the ops run on the CPU) against the reference loops, float64 and float32,
// forward and backward, on the U-Net's attention shapes and awkward ones (L = 1, D = 1, sizes off
// the GEMM's 6×16 register tile, more heads than threads). Tolerances: in float64 only the
// summation order differs, so agreement to ~1e-12 relative is expected; in float32 the scores are
// D-term and the outputs L-term sums of O(1) values, each rounding at ~6e-8 relative, so 1e-5
// absolute + 1e-4 relative leaves a margin of ~10x over the worst case seen and still catches any
// wrong index (errors of O(1)).
template <typename T>
void check_attention_gemm_matches_reference(int B, int H, int L, int D, double atol, double rtol) {
  INFO("B=" << B << " H=" << H << " L=" << L << " D=" << D << " bytes=" << sizeof(T));
  const std::size_t n = std::size_t(B) * H * L * D, rows = std::size_t(B) * H * L;
  auto to_t = [](const std::vector<double>& x) { return std::vector<T>(x.begin(), x.end()); };
  const std::vector<T> q = to_t(random_doubles(n, 81, -2, 2)), k = to_t(random_doubles(n, 82, -2, 2)),
                       v = to_t(random_doubles(n, 83)), dout = to_t(random_doubles(n, 84));
  const T scale = T(1) / std::sqrt(T(D));
  std::vector<T> o_ref(n), lse_ref(rows), dq_ref(n), dk_ref(n), dv_ref(n);
  fk::attention_forward_cpu<T>(q.data(), k.data(), v.data(), o_ref.data(), lse_ref.data(), B, H, L, D, scale);
  fk::attention_backward_cpu<T>(q.data(), k.data(), v.data(), o_ref.data(), dout.data(), lse_ref.data(),
                                dq_ref.data(), dk_ref.data(), dv_ref.data(), B, H, L, D, scale);
  std::vector<T> o(n), lse(rows), dq(n), dk(n), dv(n);
  for (auto* buffer : {&o, &lse, &dq, &dk, &dv}) fm::test::poison(buffer->data(), buffer->size());
  fk::attention_forward_cpu_gemm<T>(q.data(), k.data(), v.data(), o.data(), lse.data(), B, H, L, D, scale);
  // The backward is fed the reference's O and lse, so it is checked on its own.
  fk::attention_backward_cpu_gemm<T>(q.data(), k.data(), v.data(), o_ref.data(), dout.data(),
                                     lse_ref.data(), dq.data(), dk.data(), dv.data(), B, H, L, D, scale);
  FM_REQUIRE_CLOSE(o.data(), o_ref.data(), n, atol, rtol);
  FM_REQUIRE_CLOSE(lse.data(), lse_ref.data(), rows, atol, rtol);
  FM_REQUIRE_CLOSE(dq.data(), dq_ref.data(), n, atol, rtol);
  FM_REQUIRE_CLOSE(dk.data(), dk_ref.data(), n, atol, rtol);
  FM_REQUIRE_CLOSE(dv.data(), dv_ref.data(), n, atol, rtol);
}

TEST_CASE("attention CPU GEMM version matches the reference loops", "[attention]") {
  struct Shape { int B, H, L, D; };
  for (Shape s : {Shape{2, 4, 196, 8}, Shape{2, 4, 49, 16}, Shape{1, 4, 196, 32}, Shape{1, 1, 1, 1},
                  Shape{3, 1, 7, 1}, Shape{1, 5, 23, 13}, Shape{2, 3, 50, 128}}) {
    check_attention_gemm_matches_reference<double>(s.B, s.H, s.L, s.D, 1e-13, 1e-12);
    check_attention_gemm_matches_reference<float>(s.B, s.H, s.L, s.D, 1e-5, 1e-4);
  }
}

// =================================================================================================
// GPU: every CUDA version against the CPU reference
// =================================================================================================
#ifdef FM_WITH_CUDA
namespace {

// A float buffer on the device, filled from the host; freed on scope exit.
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<float>& host, std::size_t front_padding = 0)
      : size_(host.size()), padding_(front_padding) {
    base_ = static_cast<float*>(fk::cuda_malloc(std::max<std::size_t>(size_ + padding_, 1) * sizeof(float)));
    if (size_) fk::cuda_copy_to_device(base_ + padding_, host.data(), size_ * sizeof(float));
  }
  // NaN-filled, so an element a kernel forgets to write fails the comparison. front_padding
  // shifts the data off the allocation's alignment (padding 1 = 4 bytes: not 16-byte aligned).
  static DeviceArray poisoned(std::size_t n, std::size_t front_padding = 0) {
    std::vector<float> host(n);
    fm::test::poison(host.data(), n);
    return DeviceArray(host, front_padding);
  }
  DeviceArray(DeviceArray&& other) noexcept
      : base_(other.base_), size_(other.size_), padding_(other.padding_) {
    other.base_ = nullptr;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { fk::cuda_free(base_); }

  float* get() const { return base_ + padding_; }
  std::vector<float> to_host() const {
    std::vector<float> host(size_);
    if (size_) fk::cuda_copy_to_host(host.data(), get(), size_ * sizeof(float));
    return host;
  }

 private:
  float* base_ = nullptr;
  std::size_t size_ = 0, padding_ = 0;
};

std::vector<float> random_floats(std::size_t n, std::uint64_t seed, float lo = -1.f, float hi = 1.f) {
  std::vector<float> v(n);
  fm::test::fill_uniform(v.data(), n, seed, lo, hi);
  return v;
}
std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }
std::vector<float> to_float(const std::vector<double>& v) {
  std::vector<float> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = float(v[i]);
  return out;
}
double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

// GPU float result against the double CPU reference. Per element
//   |gpu − ref| <= scale_rel·max(max|ref|, 1) + elem_rel·|ref|
// The first term judges entries near zero by the size of the whole output (where they came from
// sums with cancellation, their own magnitude says nothing about the rounding they carry). The
// floor of 1 is the scale of the test inputs: an output that cancels to exactly 0 in exact
// arithmetic (attention with L = 1 has dQ = dK = 0) still carries rounding of O(1) terms.
void require_matches_reference(const std::string& what, const std::vector<float>& gpu,
                               const std::vector<double>& reference, double scale_rel,
                               double elem_rel) {
  REQUIRE(gpu.size() == reference.size());
  const std::vector<float> ref = to_float(reference);
  const double atol = scale_rel * std::max(max_abs(reference), 1.0);
  INFO(what << " (max |ref| = " << max_abs(reference) << ")");
  FM_REQUIRE_CLOSE(gpu.data(), ref.data(), gpu.size(), atol, elem_rel);
}

// Float rounding error sizes behind the tolerances below (FLT_EPSILON ≈ 1.2e-7):
//  * element-wise kernels (SiLU): expf is within 2 ulp, and x·σ(x) adds a couple more, so a few
//    ulps of the output's scale — 2e-6 allows ~16 ulp;
constexpr double kElementwiseRel = 2e-6;
//  * one-pass reductions over up to a few thousand terms (dbias, dγ, dβ, GroupNorm statistics):
//    float summation error grows like √n·ε for random-sign terms (≈ 7e-6 at n = 3136); 1e-4
//    leaves more than 10× headroom, while an indexing or formula bug is off by O(1);
constexpr double kReductionRel = 1e-4;
//  * attention: scores are D-term dot products, P goes through exp, and the backward's
//    dS = P∘(dP − D_i) subtracts two O(1) numbers before summing L of them: a few 1e-5 at L=196;
//    5e-4 of the output's scale still catches a missing tile, a wrong mask or a stale rescale.
constexpr double kAttentionForwardRel = 2e-4;
constexpr double kAttentionBackwardRel = 5e-4;

}  // namespace

TEST_CASE("CUDA silu (naive and vectorised) matches the CPU reference", "[activation][gpu]") {
  FM_REQUIRE_GPU();
  for (std::size_t n : {std::size_t(1), std::size_t(3), std::size_t(4), std::size_t(1000),
                        std::size_t(1000003), std::size_t(1) << 20})
    for (std::size_t misalign : {std::size_t(0), std::size_t(1)}) {
      INFO("n=" << n << " misaligned by " << misalign << " floats");
      const std::vector<float> x = random_floats(n, 101, -8, 8), dy = random_floats(n, 102);
      std::vector<double> ref_y(n), ref_dx(n);
      const std::vector<double> xd = to_double(x), dyd = to_double(dy);
      fk::silu_forward_cpu<double>(xd.data(), ref_y.data(), std::int64_t(n));
      fk::silu_backward_cpu<double>(xd.data(), dyd.data(), ref_dx.data(), std::int64_t(n));
      DeviceArray d_x(x, misalign), d_dy(dy, misalign);
      {
        DeviceArray y = DeviceArray::poisoned(n, misalign), dx = DeviceArray::poisoned(n, misalign);
        fk::silu_forward_cuda_naive(d_x.get(), y.get(), std::int64_t(n));
        fk::silu_backward_cuda_naive(d_x.get(), d_dy.get(), dx.get(), std::int64_t(n));
        require_matches_reference("silu forward naive", y.to_host(), ref_y, kElementwiseRel, kElementwiseRel);
        require_matches_reference("silu backward naive", dx.to_host(), ref_dx, kElementwiseRel, kElementwiseRel);
      }
      {
        DeviceArray y = DeviceArray::poisoned(n, misalign), dx = DeviceArray::poisoned(n, misalign);
        fk::silu_forward_cuda(d_x.get(), y.get(), std::int64_t(n));
        fk::silu_backward_cuda(d_x.get(), d_dy.get(), dx.get(), std::int64_t(n));
        require_matches_reference("silu forward v2", y.to_host(), ref_y, kElementwiseRel, kElementwiseRel);
        require_matches_reference("silu backward v2", dx.to_host(), ref_dx, kElementwiseRel, kElementwiseRel);
      }
    }
}

TEST_CASE("CUDA bias_silu forward and backward match the CPU reference", "[activation][gpu]") {
  FM_REQUIRE_GPU();
  struct Shape { std::int64_t outer; int C; std::int64_t inner; };
  for (Shape s : {Shape{4, 64, 196}, Shape{2, 32, 784}, Shape{3, 5, 7}, Shape{128, 64, 16},
                  Shape{1, 1, 1}, Shape{2, 3, 1}, Shape{33, 128, 1}, Shape{1000, 12, 1},
                  Shape{7, 5, 1}, Shape{256, 512, 1}})
    for (std::size_t misalign : {std::size_t(0), std::size_t(1)}) {
      INFO("outer=" << s.outer << " C=" << s.C << " inner=" << s.inner << " misaligned by "
                    << misalign);
      const std::size_t n = std::size_t(s.outer * s.C * s.inner);
      const std::vector<float> x = random_floats(n, 111, -4, 4), bias = random_floats(s.C, 112),
                               dy = random_floats(n, 113);
      const std::vector<double> xd = to_double(x), bd = to_double(bias), dyd = to_double(dy);
      std::vector<double> ref_y(n), ref_dx(n), ref_dbias(s.C);
      fk::bias_silu_forward_cpu<double>(xd.data(), bd.data(), ref_y.data(), s.outer, s.C, s.inner);
      fk::bias_silu_backward_cpu<double>(xd.data(), bd.data(), dyd.data(), ref_dx.data(),
                                         ref_dbias.data(), s.outer, s.C, s.inner);
      DeviceArray d_x(x, misalign), d_bias(bias), d_dy(dy, misalign);
      DeviceArray y = DeviceArray::poisoned(n, misalign), dx = DeviceArray::poisoned(n, misalign),
                  dbias = DeviceArray::poisoned(s.C);
      fk::bias_silu_forward_cuda(d_x.get(), d_bias.get(), y.get(), s.outer, s.C, s.inner);
      fk::bias_silu_backward_cuda(d_x.get(), d_bias.get(), d_dy.get(), dx.get(), dbias.get(),
                                  s.outer, s.C, s.inner);
      require_matches_reference("bias_silu y", y.to_host(), ref_y, kElementwiseRel, kElementwiseRel);
      require_matches_reference("bias_silu dx", dx.to_host(), ref_dx, kElementwiseRel, kElementwiseRel);
      require_matches_reference("bias_silu dbias", dbias.to_host(), ref_dbias, kReductionRel, kReductionRel);
    }
}

TEST_CASE("CUDA group_norm and group_norm_silu match the CPU reference", "[group_norm][gpu]") {
  FM_REQUIRE_GPU();
  struct Case { int N, C, HW, G; float offset; std::size_t misalign; };
  const Case cases[] = {
      // the U-Net's shapes (28×28, 14×14, 7×7 feature maps, 8 groups)
      {2, 32, 784, 8, 0.f, 0}, {4, 64, 196, 8, 0.f, 0}, {3, 128, 49, 8, 0.f, 0},
      {32, 64, 196, 8, 0.f, 0},  // N·G = 256 groups: more than the SMs
      {2, 64, 784, 8, 0.f, 0},   // the largest U-Net group: v3's backward needs 50 KB (> 48 KB)
      // mean far from zero: Welford must not lose the variance to cancellation
      {2, 32, 784, 8, 3.f, 0},
      // awkward: one group, one channel per group, HW = 1, odd sizes, misaligned (scalar path)
      {2, 32, 784, 1, 0.f, 0}, {2, 8, 5, 8, 0.f, 0}, {3, 16, 1, 4, 0.f, 0}, {1, 6, 13, 3, 0.f, 0},
      {5, 12, 7, 4, 0.f, 0}, {4, 64, 196, 8, 0.f, 1},
      // few large groups: the split-across-blocks path (vectorised, scalar, chunk ≠ channel)
      {1, 64, 4096, 1, 0.f, 0}, {2, 32, 4096, 8, 0.f, 0}, {1, 3, 6001, 1, 0.f, 0},
      {1, 40, 1000, 2, 0.f, 0}, {1, 64, 4096, 1, 0.f, 1},
  };
  for (bool fused_silu : {false, true})
    for (const Case& s : cases) {
      INFO((fused_silu ? "group_norm_silu" : "group_norm") << " N=" << s.N << " C=" << s.C
           << " HW=" << s.HW << " G=" << s.G << " offset=" << s.offset << " misaligned by "
           << s.misalign);
      const std::size_t n = std::size_t(s.N) * s.C * s.HW, groups = std::size_t(s.N) * s.G;
      const float eps = 1e-5f;
      const std::vector<float> x = random_floats(n, 121, s.offset - 1.f, s.offset + 1.f),
                               gamma = random_floats(s.C, 122, 0.5f, 1.5f),
                               beta = random_floats(s.C, 123), dy = random_floats(n, 124);
      const std::vector<double> xd = to_double(x), gd = to_double(gamma), bd = to_double(beta),
                                dyd = to_double(dy);
      std::vector<double> ref_y(n), ref_mean(groups), ref_rstd(groups);
      if (fused_silu)
        fk::group_norm_silu_forward_cpu<double>(xd.data(), gd.data(), bd.data(), ref_y.data(),
                                                ref_mean.data(), ref_rstd.data(), s.N, s.C, s.HW,
                                                s.G, double(eps));
      else
        fk::group_norm_forward_cpu<double>(xd.data(), gd.data(), bd.data(), ref_y.data(),
                                           ref_mean.data(), ref_rstd.data(), s.N, s.C, s.HW, s.G,
                                           double(eps));
      // The backward gets the same float mean/rstd on both sides, so it is tested on its own.
      const std::vector<float> mean_f = to_float(ref_mean), rstd_f = to_float(ref_rstd);
      const std::vector<double> mean_d = to_double(mean_f), rstd_d = to_double(rstd_f);
      std::vector<double> ref_dx(n), ref_dgamma(s.C), ref_dbeta(s.C);
      if (fused_silu)
        fk::group_norm_silu_backward_cpu<double>(dyd.data(), xd.data(), mean_d.data(),
                                                 rstd_d.data(), gd.data(), bd.data(), ref_dx.data(),
                                                 ref_dgamma.data(), ref_dbeta.data(), s.N, s.C,
                                                 s.HW, s.G);
      else
        fk::group_norm_backward_cpu<double>(dyd.data(), xd.data(), mean_d.data(), rstd_d.data(),
                                            gd.data(), ref_dx.data(), ref_dgamma.data(),
                                            ref_dbeta.data(), s.N, s.C, s.HW, s.G);

      DeviceArray d_x(x, s.misalign), d_gamma(gamma), d_beta(beta), d_dy(dy, s.misalign),
          d_mean_in(mean_f), d_rstd_in(rstd_f);
      // Both kernel families on every case: v3 holds the group in shared memory (forward: M
      // floats, backward: 2·M, M = (C/G)·HW), v2 streams it; naming v3 for a group it cannot hold
      // is an error.
      const std::int64_t group_size = std::int64_t(s.C / s.G) * s.HW;
      for (fk::GroupNormKernel kernel : {fk::GroupNormKernel::Cached, fk::GroupNormKernel::Streaming}) {
        const bool cached = kernel == fk::GroupNormKernel::Cached;
        INFO((cached ? "v3 cached" : "v2 streaming"));
        DeviceArray y = DeviceArray::poisoned(n, s.misalign), mean = DeviceArray::poisoned(groups),
                    rstd = DeviceArray::poisoned(groups), dx = DeviceArray::poisoned(n, s.misalign),
                    dgamma = DeviceArray::poisoned(s.C), dbeta = DeviceArray::poisoned(s.C);
        auto run_forward = [&] {
          (fused_silu ? fk::group_norm_silu_forward_cuda : fk::group_norm_forward_cuda)(
              d_x.get(), d_gamma.get(), d_beta.get(), y.get(), mean.get(), rstd.get(), s.N, s.C,
              s.HW, s.G, eps, kernel);
        };
        auto run_backward = [&] {
          if (fused_silu)
            fk::group_norm_silu_backward_cuda(d_dy.get(), d_x.get(), d_mean_in.get(),
                                              d_rstd_in.get(), d_gamma.get(), d_beta.get(), dx.get(),
                                              dgamma.get(), dbeta.get(), s.N, s.C, s.HW, s.G, kernel);
          else
            fk::group_norm_backward_cuda(d_dy.get(), d_x.get(), d_mean_in.get(), d_rstd_in.get(),
                                         d_gamma.get(), dx.get(), dgamma.get(), dbeta.get(), s.N,
                                         s.C, s.HW, s.G, kernel);
        };
        if (cached && fk::group_norm_cache_bytes(group_size, false) > fk::kGroupNormMaxCacheBytes) {
          REQUIRE_THROWS_AS(run_forward(), fm::ValueError);
        } else {
          run_forward();
          // The mean of a float group is off by rounding at the *data's* scale (|x| up to
          // offset + 1), not at the mean's own near-zero scale: judge it against the data. 1e-5 of
          // the data's scale is ~80 ulps, far above the float sum's error over a few thousand
          // elements (v3) or Welford's (v2).
          const std::vector<float> got = mean.to_host(), want = to_float(ref_mean);
          const double data_scale = std::fabs(s.offset) + 1.0;
          INFO("mean");
          FM_REQUIRE_CLOSE(got.data(), want.data(), groups, 1e-5 * data_scale, 0.0);
          // y is O(1): a few ulps per element plus the statistics' error scaled by |x̂| ≲ 2.
          require_matches_reference("rstd", rstd.to_host(), ref_rstd, 0.0, kReductionRel);
          require_matches_reference("y", y.to_host(), ref_y, kReductionRel, kReductionRel);
        }
        if (cached && fk::group_norm_cache_bytes(group_size, true) > fk::kGroupNormMaxCacheBytes) {
          REQUIRE_THROWS_AS(run_backward(), fm::ValueError);
        } else {
          run_backward();
          require_matches_reference("dx", dx.to_host(), ref_dx, kReductionRel, kReductionRel);
          require_matches_reference("dgamma", dgamma.to_host(), ref_dgamma, kReductionRel,
                                    kReductionRel);
          require_matches_reference("dbeta", dbeta.to_host(), ref_dbeta, kReductionRel,
                                    kReductionRel);
        }
      }
    }
}

namespace {
enum class AttentionVersion { Flash, Unfused };

void check_attention_version(AttentionVersion version, int B, int H, int L, int D) {
  const char* name = version == AttentionVersion::Flash ? "flash" : "unfused";
  INFO(name << " B=" << B << " H=" << H << " L=" << L << " D=" << D);
  const std::size_t n = std::size_t(B) * H * L * D, rows = std::size_t(B) * H * L;
  const float scale = 1.f / std::sqrt(float(D));
  // |q|, |k| up to 2: scores spread over several units, so the softmax is far from uniform and a
  // wrong online rescale or a missing key tile shows.
  const std::vector<float> q = random_floats(n, 131, -2, 2), k = random_floats(n, 132, -2, 2),
                           v = random_floats(n, 133), dout = random_floats(n, 134);
  const std::vector<double> qd = to_double(q), kd = to_double(k), vd = to_double(v),
                            dod = to_double(dout);
  std::vector<double> ref_o(n), ref_lse(rows);
  fk::attention_forward_cpu<double>(qd.data(), kd.data(), vd.data(), ref_o.data(), ref_lse.data(),
                                    B, H, L, D, double(scale));
  // The backward's saved inputs (O, lse) are the reference's, rounded to float, on both sides.
  const std::vector<float> o_f = to_float(ref_o), lse_f = to_float(ref_lse);
  const std::vector<double> o_d = to_double(o_f), lse_d = to_double(lse_f);
  std::vector<double> ref_dq(n), ref_dk(n), ref_dv(n);
  fk::attention_backward_cpu<double>(qd.data(), kd.data(), vd.data(), o_d.data(), dod.data(),
                                     lse_d.data(), ref_dq.data(), ref_dk.data(), ref_dv.data(), B,
                                     H, L, D, double(scale));

  DeviceArray d_q(q), d_k(k), d_v(v), d_dout(dout), d_o_in(o_f), d_lse_in(lse_f);
  DeviceArray o = DeviceArray::poisoned(n), lse = DeviceArray::poisoned(rows),
              dq = DeviceArray::poisoned(n), dk = DeviceArray::poisoned(n),
              dv = DeviceArray::poisoned(n);
  if (version == AttentionVersion::Flash) {
    fk::attention_forward_cuda_flash(d_q.get(), d_k.get(), d_v.get(), o.get(), lse.get(), B, H, L,
                                     D, scale);
    fk::attention_backward_cuda_flash(d_q.get(), d_k.get(), d_v.get(), d_o_in.get(), d_dout.get(),
                                      d_lse_in.get(), dq.get(), dk.get(), dv.get(), B, H, L, D,
                                      scale);
  } else {
    fk::attention_forward_cuda_unfused(d_q.get(), d_k.get(), d_v.get(), o.get(), lse.get(), B, H,
                                       L, D, scale);
    fk::attention_backward_cuda_unfused(d_q.get(), d_k.get(), d_v.get(), d_o_in.get(),
                                        d_dout.get(), d_lse_in.get(), dq.get(), dk.get(), dv.get(),
                                        B, H, L, D, scale);
  }
  require_matches_reference("O", o.to_host(), ref_o, kAttentionForwardRel, kAttentionForwardRel);
  // lse ≈ log L + max score: an absolute quantity; a few ulps of its scale.
  require_matches_reference("lse", lse.to_host(), ref_lse, 1e-5, 0.0);
  require_matches_reference("dQ", dq.to_host(), ref_dq, kAttentionBackwardRel, kAttentionBackwardRel);
  require_matches_reference("dK", dk.to_host(), ref_dk, kAttentionBackwardRel, kAttentionBackwardRel);
  require_matches_reference("dV", dv.to_host(), ref_dv, kAttentionBackwardRel, kAttentionBackwardRel);
}

struct AttentionShape { int B, H, L, D; };
// The U-Net's three attention layers (downs.1: 14×14 tokens, head dim 32; mids.0: 7×7, 16;
// ups.0: 14×14, 8), then awkward ones: D = 1, one head, D = 128 with L past a tile boundary,
// L = 1, an exact tile, odd D (padded to 64 and 128), L just past two tiles. The flash backward
// sums dQ from per-key-tile partials up to 8 key tiles and otherwise runs its dQ kernel: L = 300
// at D = 100 (32-key tiles: 10) takes the dQ kernel. The flash forward runs a last key tile of at
// most 16 keys as a 16-key step: L = 80 (64 + 16) is the largest such tail, L = 81 the smallest
// that is not.
const AttentionShape kAttentionShapes[] = {
    {2, 4, 196, 32}, {2, 4, 49, 16},  {2, 4, 196, 8},   {1, 1, 7, 1},     {1, 2, 130, 128},
    {2, 1, 1, 8},    {1, 1, 64, 64},  {1, 3, 33, 48},   {2, 2, 100, 100}, {1, 1, 129, 20},
    {1, 1, 300, 100}, {1, 2, 80, 16}, {1, 1, 81, 24},
};
}  // namespace

TEST_CASE("CUDA flash attention matches the CPU reference", "[attention][gpu]") {
  FM_REQUIRE_GPU();
  for (const AttentionShape& s : kAttentionShapes)
    check_attention_version(AttentionVersion::Flash, s.B, s.H, s.L, s.D);
}

TEST_CASE("CUDA unfused (cuBLAS) attention matches the CPU reference", "[attention][gpu]") {
  FM_REQUIRE_GPU();
  for (const AttentionShape& s : kAttentionShapes)
    check_attention_version(AttentionVersion::Unfused, s.B, s.H, s.L, s.D);
}

TEST_CASE("CUDA reductions without atomics are bitwise reproducible", "[gpu][determinism]") {
  FM_REQUIRE_GPU();
  auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](float x, float y) {
             return std::memcmp(&x, &y, sizeof(float)) == 0;
           });
  };
  SECTION("group_norm_backward_cuda: dx, dγ, dβ") {
    const int N = 4, C = 64, HW = 196, G = 8;
    const std::size_t n = std::size_t(N) * C * HW;
    DeviceArray x(random_floats(n, 141)), dy(random_floats(n, 142)),
        gamma(random_floats(C, 143)), beta(random_floats(C, 144));
    DeviceArray y = DeviceArray::poisoned(n), mean = DeviceArray::poisoned(N * G),
                rstd = DeviceArray::poisoned(N * G);
    fk::group_norm_forward_cuda(x.get(), gamma.get(), beta.get(), y.get(), mean.get(), rstd.get(),
                                N, C, HW, G, 1e-5f);
    std::vector<float> first[3], second[3];
    for (auto* out : {first, second}) {
      DeviceArray dx = DeviceArray::poisoned(n), dgamma = DeviceArray::poisoned(C),
                  dbeta = DeviceArray::poisoned(C);
      fk::group_norm_backward_cuda(dy.get(), x.get(), mean.get(), rstd.get(), gamma.get(),
                                   dx.get(), dgamma.get(), dbeta.get(), N, C, HW, G);
      out[0] = dx.to_host();
      out[1] = dgamma.to_host();
      out[2] = dbeta.to_host();
    }
    for (int i = 0; i < 3; ++i) REQUIRE(same_bits(first[i], second[i]));
  }
  SECTION("attention_backward_cuda_flash: dQ, dK, dV") {
    const int B = 2, H = 4, L = 196, D = 16;
    const std::size_t n = std::size_t(B) * H * L * D;
    DeviceArray q(random_floats(n, 151)), k(random_floats(n, 152)), v(random_floats(n, 153)),
        dout(random_floats(n, 154));
    DeviceArray o = DeviceArray::poisoned(n), lse = DeviceArray::poisoned(std::size_t(B) * H * L);
    fk::attention_forward_cuda_flash(q.get(), k.get(), v.get(), o.get(), lse.get(), B, H, L, D, 0.25f);
    std::vector<float> first[3], second[3];
    for (auto* out : {first, second}) {
      DeviceArray dq = DeviceArray::poisoned(n), dk = DeviceArray::poisoned(n),
                  dv = DeviceArray::poisoned(n);
      fk::attention_backward_cuda_flash(q.get(), k.get(), v.get(), o.get(), dout.get(), lse.get(),
                                        dq.get(), dk.get(), dv.get(), B, H, L, D, 0.25f);
      out[0] = dq.to_host();
      out[1] = dk.to_host();
      out[2] = dv.to_host();
    }
    for (int i = 0; i < 3; ++i) REQUIRE(same_bits(first[i], second[i]));
  }
}

TEST_CASE("CUDA attention rejects head dims above 128 before touching the device",
          "[attention][gpu]") {
  // No FM_REQUIRE_GPU: the size check runs before any CUDA call, so this holds on any machine.
  float* none = nullptr;
  REQUIRE_THROWS_AS(fk::attention_forward_cuda_flash(none, none, none, none, none, 1, 1, 4, 129, 1.f),
                    fm::ValueError);
  REQUIRE_THROWS_AS(fk::attention_forward_cuda_unfused(none, none, none, none, none, 1, 1, 4, 129, 1.f),
                    fm::ValueError);
}
#endif  // FM_WITH_CUDA
