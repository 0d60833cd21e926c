// tests/test_kernel_group_norm.cpp — GroupNorm and the fused GroupNorm + SiLU (kernels/group_norm.h;
// kernels/ layer only: plain functions over pointers).
//
//   CPU: hand-computed tiny cases of the reference; float64 central-difference gradchecks of both
//        CPU backwards on the table's kGradcheck cases (PyTorch's float64 defaults: eps 1e-6,
//        atol 1e-5, rtol 1e-3) on the kernel-level loss Σ y∘r for a random r.
//   Every implementation of the case table (cases/group_norm.h) — the CPU float path here, the
//   CUDA versions in the [gpu] cases — against the reference run in double on the same float
//   inputs, forward and backward, on every kTest case (the U-Net's shapes and awkward ones), with
//   NaN-poisoned outputs and the table's tolerances. v3 (Cached) on a group too large for it must
//   throw ValueError. Plus bitwise reproducibility of the GPU backwards.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cases/group_norm.h"
#include "core/error.h"
#include "kernel_test_util.h"
#include "kernels/activation.h"
#include "kernels/group_norm.h"
#include "test_util.h"

namespace fk = fm::kernels;
namespace fc = fm::cases;
using fm::test::random_doubles;
using fm::test::random_floats;
using fm::test::require_gradient_matches;
using fm::test::require_matches_reference;
using fm::test::to_double;
using fm::test::to_float;
using fm::test::weighted_sum;

// =================================================================================================
// The CPU reference: hand-computed values
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

// =================================================================================================
// The CPU reference: float64 gradcheck on the table's kGradcheck cases
// =================================================================================================

TEST_CASE("gradcheck: group_norm_backward_cpu and group_norm_silu_backward_cpu",
          "[group_norm][gradcheck]") {
  for (const fc::GroupNormOp& op : fc::group_norm_ops())
    for (const fc::GroupNormCase& s : fc::group_norm_cases()) {
      if (!(s.uses & fc::kGradcheck)) continue;
      const int HW = s.hw();
      INFO(op.name << " " << fc::shape_name(s) << " (" << s.where << ")");
      const std::size_t n = s.elements();
      std::vector<double> x = random_doubles(n, 51, s.x_low, s.x_high),
                          gamma = random_doubles(s.C, 52, 0.5, 1.5), beta = random_doubles(s.C, 53),
                          r = random_doubles(n, 54);
      std::vector<double> y(n), mean(s.groups()), rstd(s.groups()), dx(n), dgamma(s.C), dbeta(s.C);
      auto forward = [&] {
        op.reference_forward(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), rstd.data(),
                             s.N, s.C, HW, s.G, double(fc::kGroupNormEps));
      };
      forward();
      op.reference_backward(r.data(), x.data(), mean.data(), rstd.data(), gamma.data(), beta.data(),
                            dx.data(), dgamma.data(), dbeta.data(), s.N, s.C, HW, s.G);
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
// Every implementation of the table against the float64 reference
// =================================================================================================
namespace {

// One op on one case: the float inputs, the float64 reference, and the backward's saved inputs.
struct Problem {
  Problem(const fc::GroupNormOp& op, const fc::GroupNormCase& shape);

  const fc::GroupNormOp& op;
  const fc::GroupNormCase& shape;
  std::vector<float> x, gamma, beta, dy;
  std::vector<double> y, mean, rstd;  // the float64 forward
  // The backward's saved inputs, in float on both sides, so that the backward is tested on its own:
  // the reference forward's mean and rstd, and (for the unfused GroupNorm + SiLU) GroupNorm's output z.
  std::vector<float> saved_mean, saved_rstd, saved_z;
  std::vector<double> dx, dgamma, dbeta;  // the float64 backward from the saved inputs
};

Problem::Problem(const fc::GroupNormOp& op_, const fc::GroupNormCase& s)
    : op(op_),
      shape(s),
      x(random_floats(s.elements(), 121, s.x_low, s.x_high)),
      gamma(random_floats(s.C, 122, 0.5f, 1.5f)),
      beta(random_floats(s.C, 123)),
      dy(random_floats(s.elements(), 124)),
      y(s.elements()),
      mean(s.groups()),
      rstd(s.groups()),
      dx(s.elements()),
      dgamma(s.C),
      dbeta(s.C) {
  const int HW = s.hw();
  const double eps = double(fc::kGroupNormEps);
  const std::vector<double> xd = to_double(x), gd = to_double(gamma), bd = to_double(beta), dyd = to_double(dy);
  op.reference_forward(xd.data(), gd.data(), bd.data(), y.data(), mean.data(), rstd.data(), s.N, s.C, HW, s.G, eps);
  saved_mean = to_float(mean);
  saved_rstd = to_float(rstd);
  std::vector<double> z(s.elements()), z_mean(s.groups()), z_rstd(s.groups());
  fk::group_norm_forward_cpu<double>(xd.data(), gd.data(), bd.data(), z.data(), z_mean.data(), z_rstd.data(), s.N,
                                     s.C, HW, s.G, eps);
  saved_z = to_float(z);
  const std::vector<double> mean_d = to_double(saved_mean), rstd_d = to_double(saved_rstd);
  op.reference_backward(dyd.data(), xd.data(), mean_d.data(), rstd_d.data(), gd.data(), bd.data(), dx.data(),
                        dgamma.data(), dbeta.data(), s.N, s.C, HW, s.G);
}

void require_forward_matches(const Problem& p, const std::vector<float>& y, const std::vector<float>& mean,
                             const std::vector<float>& rstd) {
  require_matches_reference("mean", mean, p.mean, fc::group_norm_mean_tolerance(p.shape));
  require_matches_reference("rstd", rstd, p.rstd, fc::group_norm_rstd_tolerance());
  require_matches_reference("y", y, p.y, fc::group_norm_output_tolerance(p.y));
}

void require_backward_matches(const Problem& p, const std::vector<float>& dx, const std::vector<float>& dgamma,
                              const std::vector<float>& dbeta) {
  require_matches_reference("dx", dx, p.dx, fc::group_norm_output_tolerance(p.dx));
  require_matches_reference("dgamma", dgamma, p.dgamma, fc::group_norm_output_tolerance(p.dgamma));
  require_matches_reference("dbeta", dbeta, p.dbeta, fc::group_norm_output_tolerance(p.dbeta));
}

// Runs `check(implementation, problem)` for every kTest case × every implementation of `op` that
// `wanted` selects.
template <typename Wanted, typename Check>
void for_each_tested_implementation(const fc::GroupNormOp& op, Wanted wanted, Check check) {
  for (const fc::GroupNormCase& s : fc::group_norm_cases()) {
    if (!(s.uses & fc::kTest)) continue;
    const Problem problem(op, s);
    for (const fc::GroupNormImpl& impl : op.implementations) {
      if (!wanted(impl)) continue;
      INFO(op.name << " " << impl.name << " (" << fc::impl_kind_name(impl.kind) << ") on " << fc::shape_name(s)
                   << ": " << s.where << "; x in [" << s.x_low << ", " << s.x_high << "], misaligned by "
                   << s.misalign);
      check(impl, problem);
    }
  }
}

bool on_cpu(const fc::GroupNormImpl& impl) { return !fc::impl_on_gpu(impl.kind); }

std::vector<float> poisoned(std::size_t n) {
  std::vector<float> v(n);
  fm::test::poison(v.data(), n);
  return v;
}

// A CPU entry on host buffers.
void check_on_host(const fc::GroupNormImpl& impl, const Problem& p) {
  const fc::GroupNormCase& s = p.shape;
  const std::size_t n = s.elements();
  std::vector<float> y = poisoned(n), mean = poisoned(s.groups()), rstd = poisoned(s.groups()), z = poisoned(n);
  impl.forward(p.x.data(), p.gamma.data(), p.beta.data(), y.data(), mean.data(), rstd.data(), z.data(), s.N, s.C,
               s.hw(), s.G, fc::kGroupNormEps);
  require_forward_matches(p, y, mean, rstd);
  std::vector<float> dx = poisoned(n), dgamma = poisoned(s.C), dbeta = poisoned(s.C), dz = poisoned(n);
  impl.backward(p.dy.data(), p.x.data(), p.saved_mean.data(), p.saved_rstd.data(), p.gamma.data(), p.beta.data(),
                p.saved_z.data(), dz.data(), dx.data(), dgamma.data(), dbeta.data(), s.N, s.C, s.hw(), s.G);
  require_backward_matches(p, dx, dgamma, dbeta);
}

}  // namespace

TEST_CASE("group_norm and group_norm_silu CPU float path matches the float64 reference", "[group_norm]") {
  for (const fc::GroupNormOp& op : fc::group_norm_ops()) for_each_tested_implementation(op, on_cpu, check_on_host);
}

// =================================================================================================
// GPU: every CUDA version against the CPU reference
// =================================================================================================
#ifdef FM_WITH_CUDA
namespace {

using fm::test::DeviceArray;

const fc::GroupNormOp& op_named(const std::string& name) {
  const std::vector<fc::GroupNormOp>& ops = fc::group_norm_ops();
  const auto found = std::find_if(ops.begin(), ops.end(), [&](const fc::GroupNormOp& op) { return op.name == name; });
  REQUIRE(found != ops.end());
  return *found;
}

bool on_gpu(const fc::GroupNormImpl& impl) { return fc::impl_on_gpu(impl.kind); }

// A GPU entry on device buffers; x, dy and the n-element outputs shifted by the case's misalignment.
void check_on_device(const fc::GroupNormImpl& impl, const Problem& p) {
  const fc::GroupNormCase& s = p.shape;
  const std::size_t n = s.elements(), groups = s.groups(), pad = std::size_t(s.misalign);
  DeviceArray x(p.x, pad), gamma(p.gamma), beta(p.beta), dy(p.dy, pad), saved_mean(p.saved_mean),
      saved_rstd(p.saved_rstd), saved_z(p.saved_z, pad);
  DeviceArray y = DeviceArray::poisoned(n, pad), mean = DeviceArray::poisoned(groups),
              rstd = DeviceArray::poisoned(groups), z = DeviceArray::poisoned(n, pad),
              dx = DeviceArray::poisoned(n, pad), dz = DeviceArray::poisoned(n, pad),
              dgamma = DeviceArray::poisoned(s.C), dbeta = DeviceArray::poisoned(s.C);
  auto run_forward = [&] {
    impl.forward(x.get(), gamma.get(), beta.get(), y.get(), mean.get(), rstd.get(), z.get(), s.N, s.C, s.hw(), s.G,
                 fc::kGroupNormEps);
  };
  auto run_backward = [&] {
    impl.backward(dy.get(), x.get(), saved_mean.get(), saved_rstd.get(), gamma.get(), beta.get(), saved_z.get(),
                  dz.get(), dx.get(), dgamma.get(), dbeta.get(), s.N, s.C, s.hw(), s.G);
  };
  // v3 holds the group in shared memory (forward: M floats, backward: 2·M, M = (C/G)·HW); naming
  // it for a group it cannot hold is an error.
  if (!fc::group_norm_impl_runs(impl, s, false)) {
    REQUIRE_THROWS_AS(run_forward(), fm::ValueError);
  } else {
    run_forward();
    require_forward_matches(p, y.to_host(), mean.to_host(), rstd.to_host());
  }
  if (!fc::group_norm_impl_runs(impl, s, true)) {
    REQUIRE_THROWS_AS(run_backward(), fm::ValueError);
  } else {
    run_backward();
    require_backward_matches(p, dx.to_host(), dgamma.to_host(), dbeta.to_host());
  }
}

}  // namespace

// Every GPU entry of the op's table on every kTest case. One TEST_CASE per op, so that CTest runs
// them side by side (in the emulator build each takes a minute).
TEST_CASE("CUDA group_norm versions match the CPU reference", "[group_norm][gpu]") {
  FM_REQUIRE_GPU();
  for_each_tested_implementation(op_named("group_norm"), on_gpu, check_on_device);
}

TEST_CASE("CUDA group_norm_silu versions (unfused and fused) match the CPU reference", "[group_norm][gpu]") {
  FM_REQUIRE_GPU();
  for_each_tested_implementation(op_named("group_norm_silu"), on_gpu, check_on_device);
}

TEST_CASE("CUDA group_norm backwards (reductions without atomics) are bitwise reproducible",
          "[group_norm][gpu][determinism]") {
  FM_REQUIRE_GPU();
  auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](float x, float y) {
             return std::memcmp(&x, &y, sizeof(float)) == 0;
           });
  };
  const int N = 4, C = 64, HW = 196, G = 8;
  const std::size_t n = std::size_t(N) * C * HW;
  DeviceArray x(random_floats(n, 141)), dy(random_floats(n, 142)), gamma(random_floats(C, 143)),
      beta(random_floats(C, 144));
  // The saved inputs from the engine's forward (Auto): mean, rstd, and z for the unfused backward.
  DeviceArray z = DeviceArray::poisoned(n), mean = DeviceArray::poisoned(N * G), rstd = DeviceArray::poisoned(N * G);
  fk::group_norm_forward_cuda(x.get(), gamma.get(), beta.get(), z.get(), mean.get(), rstd.get(), N, C, HW, G,
                              fc::kGroupNormEps);
  for (const fc::GroupNormOp& op : fc::group_norm_ops())
    for (const fc::GroupNormImpl& impl : op.implementations) {
      if (!fc::impl_on_gpu(impl.kind)) continue;
      INFO(op.name << " " << impl.name << ": dx, dgamma, dbeta");
      std::vector<float> first[3], second[3];
      for (auto* out : {first, second}) {
        DeviceArray dx = DeviceArray::poisoned(n), dz = DeviceArray::poisoned(n), dgamma = DeviceArray::poisoned(C),
                    dbeta = DeviceArray::poisoned(C);
        impl.backward(dy.get(), x.get(), mean.get(), rstd.get(), gamma.get(), beta.get(), z.get(), dz.get(),
                      dx.get(), dgamma.get(), dbeta.get(), N, C, HW, G);
        out[0] = dx.to_host();
        out[1] = dgamma.to_host();
        out[2] = dbeta.to_host();
      }
      for (int i = 0; i < 3; ++i) REQUIRE(same_bits(first[i], second[i]));
    }
}
#endif  // FM_WITH_CUDA
