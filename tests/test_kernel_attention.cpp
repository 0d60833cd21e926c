// tests/test_kernel_attention.cpp — the attention kernels (kernels/attention.h) on the case table of
// cases/attention.h (kernels/ layer only: plain functions over pointers), and fast_exp, the
// vectorisable exponential of the CPU softmax.
//
//   hand-computed values of the CPU reference;
//   the float64 central-difference gradcheck of the CPU backward on the table's kGradcheck cases
//   (PyTorch's float64 defaults: eps 1e-6, atol 1e-5, rtol 1e-3) on the loss Σ O∘r for a random r;
//   the CPU GEMM version against the reference loops at the same precision, float64 and float;
//   every implementation of the table on every kTest case, forward (O, lse) and backward (dQ, dK,
//   dV), against the float64 reference on the same float inputs, outputs NaN-poisoned: the CPU
//   entries here, the GPU entries in [gpu] cases (the emulator build runs them too);
//   the fused CPU forward's two row-kernel copies (portable, AVX-512) giving the same bits;
//   the flash backward's bitwise reproducibility, and the CUDA versions' refusal of D > 128.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "cases/attention.h"
#include "core/error.h"
#include "kernel_test_util.h"
#include "kernels/attention.h"
#include "kernels/cpu/attention_rows_kernel.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/fast_exp.h"
#include "test_util.h"

namespace fk = fm::kernels;
namespace fc = fm::cases;
using namespace fm::test;

TEST_CASE("attention_forward_cpu matches hand-computed values", "[attention]") {
  SECTION("L=2, D=1: two keys, softmax of ±q") {
    // S row i = [q_i·1, q_i·(−1)]; P_i0 = 1/(1 + e^{−2 q_i}); O_i = P_i0·1 + (1 − P_i0)·3;
    // lse_i = log(e^{q_i} + e^{−q_i}).
    const std::vector<double> q = {1, 2}, k = {1, -1}, v = {1, 3};
    std::vector<double> o(2), lse(2);
    poison(o.data(), 2);
    poison(lse.data(), 2);
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
  for (const fc::AttentionCase& s : fc::attention_cases()) {
    if (!(s.uses & fc::kGradcheck)) continue;
    INFO(fc::shape_name(s) << " scale " << s.scale);
    const double scale = s.scale != 0 ? s.scale : double(fc::attention_scale(s));
    const std::size_t n = s.elements();
    std::vector<double> q = random_doubles(n, 71, -1.5, 1.5), k = random_doubles(n, 72, -1.5, 1.5),
                        v = random_doubles(n, 73), r = random_doubles(n, 74);
    std::vector<double> o(n), lse(s.rows()), dq(n), dk(n), dv(n);
    fk::attention_forward_cpu<double>(q.data(), k.data(), v.data(), o.data(), lse.data(), s.B, s.H,
                                      s.L, s.D, scale);
    poison(dq.data(), n);
    poison(dk.data(), n);
    poison(dv.data(), n);
    fk::attention_backward_cpu<double>(q.data(), k.data(), v.data(), o.data(), r.data(), lse.data(),
                                       dq.data(), dk.data(), dv.data(), s.B, s.H, s.L, s.D, scale);
    std::vector<double> o_probe(n), lse_probe(lse.size());
    auto loss = [&] {
      fk::attention_forward_cpu<double>(q.data(), k.data(), v.data(), o_probe.data(),
                                        lse_probe.data(), s.B, s.H, s.L, s.D, scale);
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

// The GEMM version (what the ops run on the CPU) against the reference loops at the same precision,
// float64 and float32, forward and backward, on every kTest case of the table (the U-Net's attention
// shapes and awkward ones: L = 1, D = 1, sizes off the GEMM's 6×16 register tile, more heads than
// threads). Stricter than the table's rule against the float64 reference, on purpose: in float64
// only the summation order differs, so agreement to ~1e-12 relative is expected; in float32 the
// scores are D-term and the outputs L-term sums of O(1) values, each rounding at ~6e-8 relative, so
// 1e-5 absolute + 1e-4 relative leaves a margin of ~10x over the worst case seen and still catches
// any wrong index (errors of O(1)).
template <typename T>
void check_attention_gemm_matches_reference(const fc::AttentionCase& s, double atol, double rtol) {
  const int B = s.B, H = s.H, L = s.L, D = s.D;
  INFO(fc::shape_name(s) << " bytes=" << sizeof(T));
  const std::size_t n = s.elements(), rows = s.rows();
  auto to_t = [](const std::vector<double>& x) { return std::vector<T>(x.begin(), x.end()); };
  const std::vector<T> q = to_t(random_doubles(n, 81, -2, 2)), k = to_t(random_doubles(n, 82, -2, 2)),
                       v = to_t(random_doubles(n, 83)), dout = to_t(random_doubles(n, 84));
  const T scale = s.scale != 0 ? T(s.scale) : T(1) / std::sqrt(T(D));
  std::vector<T> o_ref(n), lse_ref(rows), dq_ref(n), dk_ref(n), dv_ref(n);
  fk::attention_forward_cpu<T>(q.data(), k.data(), v.data(), o_ref.data(), lse_ref.data(), B, H, L, D, scale);
  fk::attention_backward_cpu<T>(q.data(), k.data(), v.data(), o_ref.data(), dout.data(), lse_ref.data(),
                                dq_ref.data(), dk_ref.data(), dv_ref.data(), B, H, L, D, scale);
  std::vector<T> o(n), lse(rows), dq(n), dk(n), dv(n);
  for (auto* buffer : {&o, &lse, &dq, &dk, &dv}) poison(buffer->data(), buffer->size());
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
  for (const fc::AttentionCase& s : fc::attention_cases()) {
    if (!(s.uses & fc::kTest)) continue;
    check_attention_gemm_matches_reference<double>(s, 1e-13, 1e-12);
    check_attention_gemm_matches_reference<float>(s, 1e-5, 1e-4);
  }
}

// The fused forward's row kernel sums each lane's keys in ascending order with one FMA per product
// (kernels/cpu/attention_rows_kernel.h), so the 8-lane and 16-lane copies must agree to the bit.
TEST_CASE("fused CPU attention rows: the portable and AVX-512 copies give the same bits", "[attention]") {
#ifndef __FMA__
  SUCCEED("this build's portable copy has no FMA");
#else
  if (fk::cpu_isa() != fk::CpuIsa::Avx512) {
    SUCCEED("this CPU (or FM_CPU_ISA) runs the portable copy only");
    return;
  }
  for (int head_dim : {4, 8, 16})
    for (int queries : {32, 17, 1}) {
      const int keys = 53, stride = 32;
      INFO("head dim " << head_dim << ", " << queries << " queries");
      const std::vector<float> scores_t = random_floats(std::size_t(keys) * stride, 71, -4, 4),
                               values = random_floats(std::size_t(keys) * head_dim, 72);
      std::vector<float> out_portable(std::size_t(queries) * head_dim), lse_portable(queries);
      std::vector<float> out_avx512 = out_portable, lse_avx512 = lse_portable;
      fk::softmax_times_values_portable(fk::AttentionRows{scores_t.data(), stride, queries, keys, head_dim,
                                                          values.data(), out_portable.data(), lse_portable.data()});
      fk::softmax_times_values_avx512(fk::AttentionRows{scores_t.data(), stride, queries, keys, head_dim,
                                                        values.data(), out_avx512.data(), lse_avx512.data()});
      REQUIRE(std::memcmp(out_portable.data(), out_avx512.data(), out_portable.size() * sizeof(float)) == 0);
      REQUIRE(std::memcmp(lse_portable.data(), lse_avx512.data(), lse_portable.size() * sizeof(float)) == 0);
    }
#endif
}

namespace {

// One case's inputs and the float64 reference on them. The backward's saved inputs (O, lse) are the
// reference forward's, rounded to float, on both sides: the backward is checked on its own.
struct AttentionProblem {
  float scale;
  std::vector<float> q, k, v, dout, o_saved, lse_saved;
  std::vector<double> o_ref, lse_ref, dq_ref, dk_ref, dv_ref;

  explicit AttentionProblem(const fc::AttentionCase& s) : scale(fc::attention_scale(s)) {
    const std::size_t n = s.elements();
    q = random_floats(n, 131, -fc::kAttentionQkRange, fc::kAttentionQkRange);
    k = random_floats(n, 132, -fc::kAttentionQkRange, fc::kAttentionQkRange);
    v = random_floats(n, 133);
    dout = random_floats(n, 134);
    const std::vector<double> qd = to_double(q), kd = to_double(k), vd = to_double(v), dod = to_double(dout);
    o_ref.resize(n);
    lse_ref.resize(s.rows());
    fk::attention_forward_cpu<double>(qd.data(), kd.data(), vd.data(), o_ref.data(), lse_ref.data(), s.B, s.H, s.L,
                                      s.D, double(scale));
    o_saved = to_float(o_ref);
    lse_saved = to_float(lse_ref);
    const std::vector<double> o_d = to_double(o_saved), lse_d = to_double(lse_saved);
    dq_ref.resize(n);
    dk_ref.resize(n);
    dv_ref.resize(n);
    fk::attention_backward_cpu<double>(qd.data(), kd.data(), vd.data(), o_d.data(), dod.data(), lse_d.data(),
                                       dq_ref.data(), dk_ref.data(), dv_ref.data(), s.B, s.H, s.L, s.D,
                                       double(scale));
  }

  void require_forward_matches(const std::vector<float>& o, const std::vector<float>& lse) const {
    require_matches_reference("O", o, o_ref, fc::attention_output_tolerance(o_ref));
    require_matches_reference("lse", lse, lse_ref, fc::attention_lse_tolerance(lse_ref));
  }
  void require_backward_matches(const std::vector<float>& dq, const std::vector<float>& dk,
                                const std::vector<float>& dv) const {
    require_matches_reference("dQ", dq, dq_ref, fc::attention_gradient_tolerance(dq_ref));
    require_matches_reference("dK", dk, dk_ref, fc::attention_gradient_tolerance(dk_ref));
    require_matches_reference("dV", dv, dv_ref, fc::attention_gradient_tolerance(dv_ref));
  }
};

std::vector<float> poisoned_host(std::size_t n) {
  std::vector<float> v(n);
  poison(v.data(), n);
  return v;
}

}  // namespace

TEST_CASE("attention CPU implementations match the float64 reference", "[attention]") {
  for (const fc::AttentionCase& s : fc::attention_cases()) {
    if (!(s.uses & fc::kTest)) continue;
    const AttentionProblem p(s);
    const std::size_t n = s.elements();
    for (const fc::AttentionImpl& impl : fc::attention_implementations()) {
      if (fc::impl_on_gpu(impl.kind)) continue;
      INFO(impl.name << " " << fc::shape_name(s) << " scale " << p.scale);
      std::vector<float> o = poisoned_host(n), lse = poisoned_host(s.rows()), dq = poisoned_host(n),
                         dk = poisoned_host(n), dv = poisoned_host(n);
      impl.forward(p.q.data(), p.k.data(), p.v.data(), o.data(), lse.data(), s.B, s.H, s.L, s.D, p.scale);
      impl.backward(p.q.data(), p.k.data(), p.v.data(), p.o_saved.data(), p.dout.data(), p.lse_saved.data(),
                    dq.data(), dk.data(), dv.data(), s.B, s.H, s.L, s.D, p.scale);
      p.require_forward_matches(o, lse);
      p.require_backward_matches(dq, dk, dv);
    }
  }
}

// =================================================================================================
// GPU
// =================================================================================================
#ifdef FM_WITH_CUDA

TEST_CASE("CUDA attention (every GPU implementation) matches the CPU reference", "[attention][gpu]") {
  FM_REQUIRE_GPU();
  for (const fc::AttentionCase& s : fc::attention_cases()) {
    if (!(s.uses & fc::kTest)) continue;
    const AttentionProblem p(s);
    const std::size_t n = s.elements();
    const DeviceArray d_q(p.q), d_k(p.k), d_v(p.v), d_dout(p.dout), d_o_in(p.o_saved), d_lse_in(p.lse_saved);
    for (const fc::AttentionImpl& impl : fc::attention_implementations()) {
      if (!fc::impl_on_gpu(impl.kind) || impl.input_rounding != 0) continue;  // tensor cores: the next case
      INFO(impl.name << " " << fc::shape_name(s) << " scale " << p.scale);
      DeviceArray o = DeviceArray::poisoned(n), lse = DeviceArray::poisoned(s.rows()), dq = DeviceArray::poisoned(n),
                  dk = DeviceArray::poisoned(n), dv = DeviceArray::poisoned(n);
      impl.forward(d_q.get(), d_k.get(), d_v.get(), o.get(), lse.get(), s.B, s.H, s.L, s.D, p.scale);
      impl.backward(d_q.get(), d_k.get(), d_v.get(), d_o_in.get(), d_dout.get(), d_lse_in.get(), dq.get(), dk.get(),
                    dv.get(), s.B, s.H, s.L, s.D, p.scale);
      p.require_forward_matches(o.to_host(), lse.to_host());
      p.require_backward_matches(dq.to_host(), dk.to_host(), dv.to_host());
    }
  }
}

// Both GPU versions with their products in TF32 or bfloat16, the way the engine runs them under those
// precisions: the unfused one (cuBLAS GEMMs, kernels = library) and the fused one on the tensor cores
// (ours). Forward, against the float64 reference within a bound derived the way
// tests/test_kernel_gemm.cpp derives the GEMM's: with u the inputs' rounding (ours rounds to nearest:
// 2^-11 for TF32, 2^-8 for bfloat16; cuBLAS's mode is not documented: truncation, 2^-10 and 2^-7) and
// γ_n = (n + 2)·2^-23 / (1 − …),
//   each score S_ij is off by at most e_ij = ((2u + u²) + (1 + u)²·γ_D)·scale·Σ_d |q_id·k_jd|;
//   a softmax of scores each off by at most e_i = max_j e_ij (plus its own FP32 rounding, γ_L + 4·2^-24
//   relative, and for the fused version's online softmax 8·2^-23 per key tile of at least 16 keys: the
//   exp2f of each rescale factor, within 2 ulps, and the two products it enters) gives probabilities
//   within a factor exp(±2·e_i) of P_ij, and lse within e_i (+ γ_L and a few ulps);
//   O = P̃·Ṽ, with P and V rounded to u and summed in FP32, is then within
//   (exp(2·e_i)·(1 + 2u + u² + γ_L) − 1)·Σ_j P_ij·|v_jd|.
// Backward: no bound derived (the softmax's Jacobian multiplies the errors by up to |dP|); a check
// that it runs, writes finite gradients that differ from FP32's under bfloat16 (the rounding
// happened; the fused version's long-sequence fallback gives FP32's bits instead), within 64·u of the
// largest reference gradient (a smoke bound, not a derived one).
TEST_CASE("CUDA attention with TF32 or bfloat16 products (unfused and fused): the forward within its derived bound",
          "[attention][gpu]") {
  FM_REQUIRE_GPU();
  // Each tensor-core entry of the table with its FP32 partner (the same kind: flash, or unfused cuBLAS).
  auto fp32_partner = [](const fc::AttentionImpl& impl) -> const fc::AttentionImpl& {
    for (const fc::AttentionImpl& other : fc::attention_implementations())
      if (other.kind == impl.kind && other.input_rounding == 0) return other;
    FAIL("no FP32 version of kind " << int(impl.kind));
    return impl;
  };
  int checked = 0;
  for (const fc::AttentionImpl& version : fc::attention_implementations()) {
    if (!fc::impl_on_gpu(version.kind) || version.input_rounding == 0) continue;
    const fc::AttentionImpl& fp32 = fp32_partner(version);
    const bool bf16 = version.math == fk::GemmMath::Bf16;
    for (const fc::AttentionCase& s : fc::attention_cases()) {
      if (!(s.uses & fc::kTest)) continue;
      const AttentionProblem p(s);
      const std::size_t n = s.elements();
      const double u = version.input_rounding;
      INFO(version.name << " " << fc::shape_name(s));
      const DeviceArray d_q(p.q), d_k(p.k), d_v(p.v), d_dout(p.dout), d_o_in(p.o_saved), d_lse_in(p.lse_saved);
      DeviceArray o = DeviceArray::poisoned(n), lse = DeviceArray::poisoned(s.rows());
      version.forward(d_q.get(), d_k.get(), d_v.get(), o.get(), lse.get(), s.B, s.H, s.L, s.D, p.scale);
      const std::vector<float> o_got = o.to_host(), lse_got = lse.to_host();
      DeviceArray o32 = DeviceArray::poisoned(n), lse32 = DeviceArray::poisoned(s.rows());
      fp32.forward(d_q.get(), d_k.get(), d_v.get(), o32.get(), lse32.get(), s.B, s.H, s.L, s.D, p.scale);
      if (bf16) REQUIRE(o_got != o32.to_host());  // the rounding happened
      const double v = 0x1p-23;
      const double gamma_d = (s.D + 2) * v / (1 - (s.D + 2) * v), gamma_l = (s.L + 2) * v / (1 - (s.L + 2) * v);
      const double online_softmax = 8 * double((s.L + 15) / 16) * v;
      for (int head = 0; head < s.B * s.H; ++head)
        for (int i = 0; i < s.L; ++i) {
          const std::size_t row = std::size_t(head) * s.L + std::size_t(i);
          const float* qi = &p.q[row * s.D];
          std::vector<double> prob(std::size_t(s.L));
          double e = 0;
          for (int j = 0; j < s.L; ++j) {
            const float* kj = &p.k[(std::size_t(head) * s.L + std::size_t(j)) * s.D];
            double score = 0, magnitude = 0;
            for (int d = 0; d < s.D; ++d) {
              score += double(qi[d]) * double(kj[d]);
              magnitude += std::abs(double(qi[d]) * double(kj[d]));
            }
            e = std::max(e, ((2 * u + u * u) + (1 + u) * (1 + u) * gamma_d) * double(p.scale) * magnitude);
            prob[std::size_t(j)] = std::exp(double(p.scale) * score - p.lse_ref[row]);
          }
          e += gamma_l + 4 * 0x1p-24 + online_softmax;
          const double lse_bound = e + gamma_l + 4 * 0x1p-24 * (1 + std::abs(p.lse_ref[row]));
          if (!(std::abs(double(lse_got[row]) - p.lse_ref[row]) <= lse_bound))
            FAIL("lse row " << row << " = " << lse_got[row] << ", reference " << p.lse_ref[row] << ", allowed "
                            << lse_bound);
          const double factor = std::exp(2 * e) * (1 + 2 * u + u * u + gamma_l) - 1;
          for (int d = 0; d < s.D; ++d) {
            double magnitude = 0;
            for (int j = 0; j < s.L; ++j)
              magnitude += prob[std::size_t(j)] *
                           std::abs(double(p.v[(std::size_t(head) * s.L + std::size_t(j)) * s.D + std::size_t(d)]));
            const std::size_t at = row * s.D + std::size_t(d);
            const double bound = factor * magnitude + 0x1p-24 * std::abs(p.o_ref[at]);
            if (!(std::abs(double(o_got[at]) - p.o_ref[at]) <= bound))
              FAIL("O element " << at << " = " << o_got[at] << ", reference " << p.o_ref[at] << ", allowed "
                                << bound);
          }
        }
      // The backward: runs, finite, near the reference, and (bfloat16) not the FP32 result. The first
      // element outside the smoke bound fails the case (one check per element would be millions of
      // assertions on the emulator).
      DeviceArray dq = DeviceArray::poisoned(n), dk = DeviceArray::poisoned(n), dv = DeviceArray::poisoned(n);
      version.backward(d_q.get(), d_k.get(), d_v.get(), d_o_in.get(), d_dout.get(), d_lse_in.get(), dq.get(),
                       dk.get(), dv.get(), s.B, s.H, s.L, s.D, p.scale);
      DeviceArray dq32 = DeviceArray::poisoned(n), dk32 = DeviceArray::poisoned(n), dv32 = DeviceArray::poisoned(n);
      fp32.backward(d_q.get(), d_k.get(), d_v.get(), d_o_in.get(), d_dout.get(), d_lse_in.get(), dq32.get(),
                    dk32.get(), dv32.get(), s.B, s.H, s.L, s.D, p.scale);
      bool differs = false;
      double largest = 0;  // over all three (dQ and dK are exactly 0 at L = 1, their rounding is not)
      for (const std::vector<double>* want : {&p.dq_ref, &p.dk_ref, &p.dv_ref})
        for (double x : *want) largest = std::max(largest, std::abs(x));
      for (auto [name, got, fp32_values, want] : {std::tuple{"dQ", dq.to_host(), dq32.to_host(), &p.dq_ref},
                                           std::tuple{"dK", dk.to_host(), dk32.to_host(), &p.dk_ref},
                                           std::tuple{"dV", dv.to_host(), dv32.to_host(), &p.dv_ref}}) {
        for (std::size_t at = 0; at < got.size(); ++at) {
          if (!std::isfinite(got[at]) || !(std::abs(double(got[at]) - (*want)[at]) <= 64 * u * largest))
            FAIL(name << " element " << at << " = " << got[at] << ", reference " << (*want)[at]
                      << ", smoke bound " << 64 * u * largest);
          differs = differs || got[at] != fp32_values[at];
        }
      }
      // The fused backward runs the FP32 kernels above 8 key tiles (kernels/attention.h): then it must
      // be FP32's result exactly; otherwise, under bfloat16, not FP32's.
      const bool fp32_backward =
          version.kind == fc::ImplKind::CudaCustom && !fk::attention_tensor_core_backward_runs(s.L, s.D);
      if (fp32_backward) REQUIRE_FALSE(differs);
      else if (bf16) REQUIRE(differs);
      ++checked;
    }
  }
  REQUIRE(checked > 0);
}

TEST_CASE("CUDA flash attention backward is bitwise reproducible", "[attention][gpu][determinism]") {
  // The flash backward promises determinism (no atomics): dQ, dK, dV of two runs on the same inputs
  // must have the same bits. A U-Net-sized problem, so that many blocks run at once.
  FM_REQUIRE_GPU();
  auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](float x, float y) {
             return std::memcmp(&x, &y, sizeof(float)) == 0;
           });
  };
  const int B = 2, H = 4, L = 196, D = 16;
  const std::size_t n = std::size_t(B) * H * L * D;
  DeviceArray q(random_floats(n, 151)), k(random_floats(n, 152)), v(random_floats(n, 153)),
      dout(random_floats(n, 154));
  DeviceArray o = DeviceArray::poisoned(n), lse = DeviceArray::poisoned(std::size_t(B) * H * L);
  // FP32 and the tensor-core versions (which sum dQ's key-tile shares in the same fixed order).
  for (fk::GemmMath math : {fk::GemmMath::Fp32, fk::GemmMath::Tf32, fk::GemmMath::Bf16}) {
    INFO("math " << int(math));
    fk::attention_forward_cuda_flash(q.get(), k.get(), v.get(), o.get(), lse.get(), B, H, L, D, 0.25f, math);
    std::vector<float> first[3], second[3];
    for (auto* out : {first, second}) {
      DeviceArray dq = DeviceArray::poisoned(n), dk = DeviceArray::poisoned(n), dv = DeviceArray::poisoned(n);
      fk::attention_backward_cuda_flash(q.get(), k.get(), v.get(), o.get(), dout.get(), lse.get(), dq.get(),
                                        dk.get(), dv.get(), B, H, L, D, 0.25f, math);
      out[0] = dq.to_host();
      out[1] = dk.to_host();
      out[2] = dv.to_host();
    }
    for (int i = 0; i < 3; ++i) REQUIRE(same_bits(first[i], second[i]));
  }
}

TEST_CASE("CUDA attention rejects head dims above 128 before touching the device", "[attention][gpu]") {
  // No FM_REQUIRE_GPU: the size check runs before any CUDA call, so this holds on any machine.
  float* none = nullptr;
  for (const fc::AttentionImpl& impl : fc::attention_implementations()) {
    if (!fc::impl_on_gpu(impl.kind)) continue;
    INFO(impl.name);
    REQUIRE_THROWS_AS(impl.forward(none, none, none, none, none, 1, 1, 4, 129, 1.f), fm::ValueError);
  }
}
#endif  // FM_WITH_CUDA
