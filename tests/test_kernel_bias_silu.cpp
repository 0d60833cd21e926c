// tests/test_kernel_bias_silu.cpp — the fused bias + SiLU kernels (kernels/activation.h) on the case
// table of cases/bias_silu.h (kernels/ layer only: plain functions over pointers).
//
//   hand-computed values of the CPU reference in both layouts (NCHW and [rows, C]);
//   the float64 central-difference gradcheck of the CPU backward (wrt x and bias) on the table's
//   kGradcheck cases (PyTorch's float64 defaults: eps 1e-6, atol 1e-5, rtol 1e-3) on Σ y∘r;
//   every implementation of the table on every kTest case, forward and backward (dx, dbias), against
//   the float64 reference on the same float inputs, outputs NaN-poisoned: the CPU entry here, the
//   GPU entry in a [gpu] case (the emulator build runs it too), also with x, dy, y, dx shifted off
//   16-byte alignment on the misaligned cases.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "cases/bias_silu.h"
#include "kernel_test_util.h"
#include "kernels/activation.h"
#include "test_util.h"

namespace fk = fm::kernels;
namespace fc = fm::cases;
using namespace fm::test;

TEST_CASE("bias_silu CPU matches hand-computed values in both layouts", "[activation]") {
  const std::vector<double> x = {0, 1, -1, 2}, bias = {1, -1}, dy = {1, 1, 1, 1};
  std::vector<double> y(4), dx(4), dbias(2);
  SECTION("NCHW: N=1, C=2, HW=2 — channel c owns a run of HW elements") {
    // pre-activations x + bias[c] = {1, 2, −2, 1}
    fk::bias_silu_forward_cpu<double>(x.data(), bias.data(), y.data(), 1, 2, 2);
    const std::vector<double> expected = {0.7310585786300049, 1.7615941559557646,
                                          -0.2384058440442351, 0.7310585786300049};
    FM_REQUIRE_CLOSE(y.data(), expected.data(), 4, 1e-15, 1e-14);
    poison(dbias.data(), 2);
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
    poison(dbias.data(), 2);
    fk::bias_silu_backward_cpu<double>(x.data(), bias.data(), dy.data(), dx.data(), dbias.data(),
                                       2, 2, 1);
    const std::vector<double> expected_dbias = {1.427670511871487, 1.427670511871487};
    FM_REQUIRE_CLOSE(dbias.data(), expected_dbias.data(), 2, 1e-15, 1e-14);
  }
}

TEST_CASE("gradcheck: bias_silu_backward_cpu in both layouts", "[activation][gradcheck]") {
  for (const fc::BiasSiluCase& s : fc::bias_silu_cases()) {
    if (!(s.uses & fc::kGradcheck)) continue;
    const std::size_t n = s.elements();
    INFO(fc::shape_name(s));
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

namespace {

// One case's inputs and the float64 reference on them.
struct BiasSiluProblem {
  std::vector<float> x, bias, dy;
  std::vector<double> y_ref, dx_ref, dbias_ref;

  explicit BiasSiluProblem(const fc::BiasSiluCase& s) {
    const std::size_t n = s.elements();
    x = random_floats(n, 111, -4, 4);
    bias = random_floats(s.C, 112);
    dy = random_floats(n, 113);
    const std::vector<double> xd = to_double(x), bd = to_double(bias), dyd = to_double(dy);
    y_ref.resize(n);
    dx_ref.resize(n);
    dbias_ref.resize(s.C);
    fk::bias_silu_forward_cpu<double>(xd.data(), bd.data(), y_ref.data(), s.outer, s.C, s.inner);
    fk::bias_silu_backward_cpu<double>(xd.data(), bd.data(), dyd.data(), dx_ref.data(), dbias_ref.data(), s.outer,
                                       s.C, s.inner);
  }

  void require_matches(const std::vector<float>& y, const std::vector<float>& dx, const std::vector<float>& dbias) const {
    require_matches_reference("bias_silu y", y, y_ref, fc::bias_silu_elementwise_tolerance(y_ref));
    require_matches_reference("bias_silu dx", dx, dx_ref, fc::bias_silu_elementwise_tolerance(dx_ref));
    require_matches_reference("bias_silu dbias", dbias, dbias_ref, fc::bias_silu_dbias_tolerance(dbias_ref));
  }
};

std::string describe(const fc::BiasSiluImpl& impl, const fc::BiasSiluCase& s) {
  return std::string(impl.name) + " " + fc::shape_name(s) + " misaligned by " + std::to_string(s.misalign);
}

}  // namespace

TEST_CASE("bias_silu CPU implementations match the float64 reference", "[activation]") {
  for (const fc::BiasSiluCase& s : fc::bias_silu_cases()) {
    // The misaligned cases are for the GPU kernels: the CPU loops have no aligned variant.
    if (!(s.uses & fc::kTest) || s.misalign) continue;
    const BiasSiluProblem p(s);
    const std::size_t n = s.elements();
    for (const fc::BiasSiluImpl& impl : fc::bias_silu_implementations()) {
      if (fc::impl_on_gpu(impl.kind)) continue;
      INFO(describe(impl, s));
      std::vector<float> y(n), dx(n), dbias(s.C);
      poison(y.data(), n);
      poison(dx.data(), n);
      poison(dbias.data(), dbias.size());
      impl.forward(p.x.data(), p.bias.data(), y.data(), s.outer, s.C, s.inner);
      impl.backward(p.x.data(), p.bias.data(), p.dy.data(), dx.data(), dbias.data(), s.outer, s.C, s.inner);
      p.require_matches(y, dx, dbias);
    }
  }
}

#ifdef FM_WITH_CUDA
TEST_CASE("CUDA bias_silu forward and backward match the CPU reference", "[activation][gpu]") {
  FM_REQUIRE_GPU();
  for (const fc::BiasSiluCase& s : fc::bias_silu_cases()) {
    if (!(s.uses & fc::kTest)) continue;
    const BiasSiluProblem p(s);
    const std::size_t n = s.elements();
    const DeviceArray d_x(p.x, s.misalign), d_bias(p.bias), d_dy(p.dy, s.misalign);
    for (const fc::BiasSiluImpl& impl : fc::bias_silu_implementations()) {
      if (!fc::impl_on_gpu(impl.kind)) continue;
      INFO(describe(impl, s));
      DeviceArray y = DeviceArray::poisoned(n, s.misalign), dx = DeviceArray::poisoned(n, s.misalign),
                  dbias = DeviceArray::poisoned(s.C);
      impl.forward(d_x.get(), d_bias.get(), y.get(), s.outer, s.C, s.inner);
      impl.backward(d_x.get(), d_bias.get(), d_dy.get(), dx.get(), dbias.get(), s.outer, s.C, s.inner);
      p.require_matches(y.to_host(), dx.to_host(), dbias.to_host());
    }
  }
}
#endif  // FM_WITH_CUDA
