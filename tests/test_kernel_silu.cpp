// tests/test_kernel_silu.cpp — the SiLU kernels (kernels/activation.h) on the case table of
// cases/silu.h (kernels/ layer only: plain functions over pointers).
//
//   hand-computed values of the CPU reference, float64 and float;
//   the float64 central-difference gradcheck of the CPU backward on the table's kGradcheck cases
//   (PyTorch's float64 defaults: eps 1e-6, atol 1e-5, rtol 1e-3) on the loss Σ y∘r for a random r;
//   every implementation of the table on every kTest case, forward and backward, against the float64
//   reference on the same float inputs, outputs NaN-poisoned: the CPU entries here, the GPU entries
//   in [gpu] cases (the emulator build runs them too; cuDNN only where it is available), also with
//   every buffer shifted off 16-byte alignment on the misaligned cases.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "cases/silu.h"
#include "kernel_test_util.h"
#include "kernels/activation.h"
#include "kernels/runtime.h"
#include "test_util.h"

namespace fk = fm::kernels;
namespace fc = fm::cases;
using namespace fm::test;

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
  poison(y.data(), y.size());
  poison(dx.data(), dx.size());
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

TEST_CASE("gradcheck: silu_backward_cpu", "[activation][gradcheck]") {
  for (const fc::SiluCase& c : fc::silu_cases()) {
    if (!(c.uses & fc::kGradcheck)) continue;
    INFO("n=" << fc::shape_name(c));
    const std::int64_t n = c.elements();
    std::vector<double> x = random_doubles(n, 11, -4, 4), r = random_doubles(n, 12);
    std::vector<double> y(n), dx(n);
    fk::silu_backward_cpu<double>(x.data(), r.data(), dx.data(), n);
    require_gradient_matches("silu wrt x", x, dx, [&] {
      fk::silu_forward_cpu<double>(x.data(), y.data(), n);
      return weighted_sum(y, r);
    });
  }
}

namespace {

// One case's inputs and the float64 reference on them. x over [-8, 8] covers both tails of σ and
// its steep middle.
struct SiluProblem {
  std::vector<float> x, dy;
  std::vector<double> y_ref, dx_ref;
  std::vector<float> y_saved;  // the forward's output as a backward would get it (only cuDNN reads it)

  explicit SiluProblem(const fc::SiluCase& c) {
    const std::size_t n = std::size_t(c.elements());
    x = random_floats(n, 101, -8, 8);
    dy = random_floats(n, 102);
    const std::vector<double> xd = to_double(x), dyd = to_double(dy);
    y_ref.resize(n);
    dx_ref.resize(n);
    fk::silu_forward_cpu<double>(xd.data(), y_ref.data(), std::int64_t(n));
    fk::silu_backward_cpu<double>(xd.data(), dyd.data(), dx_ref.data(), std::int64_t(n));
    y_saved = to_float(y_ref);
  }
};

std::string describe(const fc::SiluImpl& impl, const fc::SiluCase& c) {
  return std::string(impl.name) + " n=" + fc::shape_name(c) + " misaligned by " + std::to_string(c.misalign) + " floats";
}

}  // namespace

TEST_CASE("silu CPU implementations match the float64 reference", "[activation]") {
  for (const fc::SiluCase& c : fc::silu_cases()) {
    // The misaligned cases are for the GPU's float4 path: the CPU loops have no aligned variant.
    if (!(c.uses & fc::kTest) || c.misalign) continue;
    const SiluProblem p(c);
    const std::size_t n = p.x.size();
    for (const fc::SiluImpl& impl : fc::silu_implementations()) {
      if (fc::impl_on_gpu(impl.kind)) continue;
      INFO(describe(impl, c));
      std::vector<float> y(n), dx(n);
      poison(y.data(), n);
      poison(dx.data(), n);
      impl.forward(p.x.data(), y.data(), c.dims);
      impl.backward(p.x.data(), p.y_saved.data(), p.dy.data(), dx.data(), c.dims);
      require_matches_reference("silu forward", y, p.y_ref, fc::silu_tolerance(p.y_ref));
      require_matches_reference("silu backward", dx, p.dx_ref, fc::silu_tolerance(p.dx_ref));
    }
  }
}

#ifdef FM_WITH_CUDA
TEST_CASE("CUDA silu (every GPU implementation) matches the CPU reference", "[activation][gpu]") {
  FM_REQUIRE_GPU();
  if (!fk::cudnn_available())
    WARN("cuDNN is not available in this build (CUDA emulator): its version is not tested here");
  for (const fc::SiluCase& c : fc::silu_cases()) {
    if (!(c.uses & fc::kTest)) continue;
    const SiluProblem p(c);
    const std::size_t n = p.x.size();
    const DeviceArray d_x(p.x, c.misalign), d_dy(p.dy, c.misalign), d_y_saved(p.y_saved, c.misalign);
    for (const fc::SiluImpl& impl : fc::silu_implementations()) {
      if (!fc::impl_on_gpu(impl.kind) || !fc::silu_impl_available(impl)) continue;
      INFO(describe(impl, c));
      DeviceArray y = DeviceArray::poisoned(n, c.misalign), dx = DeviceArray::poisoned(n, c.misalign);
      impl.forward(d_x.get(), y.get(), c.dims);
      impl.backward(d_x.get(), d_y_saved.get(), d_dy.get(), dx.get(), c.dims);
      require_matches_reference("silu forward", y.to_host(), p.y_ref, fc::silu_tolerance(p.y_ref));
      require_matches_reference("silu backward", dx.to_host(), p.dx_ref, fc::silu_tolerance(p.dx_ref));
    }
  }
}
#endif  // FM_WITH_CUDA
