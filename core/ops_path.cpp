// core/ops_path.cpp — path_coefficients(t, law): an affine path's α_t, σ_t, α̇_t, σ̇_t at per-sample
// times, made on t's device by the kernels of kernels/path_law.h (see core/ops.h). flow/path.h takes
// a training batch's coefficients from here, so a batch whose times were drawn on the device is mixed
// there too, with no read back; flow/scheduler.h's host values come from path_coefficients_at.
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/tensor_internal.h"

namespace fm {

Tensor path_coefficients(const Tensor& t_in, const PathLaw& law) {
  internal::check_dim("path_coefficients", t_in, 1, "t", "(N,)");
  internal::check_same_dtype_device("path_coefficients", {&t_in});
  FM_CHECK(law.kind != PathLawKind::VP || (law.beta_min > 0 && law.beta_max >= law.beta_min), ValueError,
           "path_coefficients: vp needs 0 < beta_min <= beta_max, got beta_min ", law.beta_min, ", beta_max ",
           law.beta_max);
  const Tensor t = t_in.detach().contiguous();
  const std::int64_t n = t.size(0);
  Tensor out = Tensor::empty({4, n}, t.dtype(), t.device());
  dispatch_kernel(
      "path_coefficients", t.device(), t.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::path_coefficients_cpu<T>(t.data<T>(), out.data<T>(), n, law);
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::path_coefficients_cuda(t.data<T>(), out.data<T>(), n, law);
      });
  return out;
}

PathCoefficients path_coefficients_at(const PathLaw& law, double t) { return kernels::path_at(law, t); }

}  // namespace fm
