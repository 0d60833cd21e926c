// core/ops_norm.cpp — GroupNorm, and GroupNorm fused with SiLU, as differentiable ops.
//
// The forward saves the per-(sample, group) mean and 1/σ; the backward kernels use them with x to
// recompute the normalised values rather than storing them (one tensor less per layer).
#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops_nn.h"
#include "core/tensor_internal.h"
#include "kernels/group_norm.h"

namespace fm {
namespace {

struct GroupNormDims {
  int N, C, HW, G;
};

GroupNormDims check_group_norm(const char* op, const Tensor& x, int groups, const Tensor& weight,
                               const Tensor& bias, double eps) {
  internal::check_defined(op, x, "input");
  FM_CHECK(x.dim() >= 2, ShapeError, op, ": input has shape ", shape_str(x.shape()),
           ", expected (batch, channels, ...)");
  const std::int64_t C = x.size(1);
  FM_CHECK(groups >= 1 && C % groups == 0, ShapeError, op, ": ", C, " channels do not split into ",
           groups, " groups");
  FM_CHECK(eps > 0, ValueError, op, ": eps ", eps, ", expected > 0");
  internal::check_same_dtype_device(op, {&x, &weight, &bias});
  FM_CHECK(weight.dim() == 1 && weight.size(0) == C && bias.dim() == 1 && bias.size(0) == C, ShapeError,
           op, ": weight ", shape_str(weight.shape()), " and bias ", shape_str(bias.shape()),
           " must both be [", C, "]");
  std::int64_t hw = x.numel() / std::max<std::int64_t>(x.size(0) * C, 1);
  return {int(x.size(0)), int(C), int(hw), groups};
}

// fused = false: y = GN(x); fused = true: y = silu(GN(x)).
Tensor group_norm_impl(const char* op, bool fused, const Tensor& x_in, int groups, const Tensor& weight_in,
                       const Tensor& bias_in, double eps) {
  GroupNormDims d = check_group_norm(op, x_in, groups, weight_in, bias_in, eps);
  Tensor x = x_in.detach().contiguous(), w = weight_in.detach().contiguous(), b = bias_in.detach().contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mean = Tensor::empty({d.N, d.G}, x.dtype(), x.device());
  Tensor rstd = Tensor::empty({d.N, d.G}, x.dtype(), x.device());
  dispatch_kernel(
      op, x.device(), x.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        auto forward = fused ? kernels::group_norm_silu_forward_cpu<T> : kernels::group_norm_forward_cpu<T>;
        forward(x.data<T>(), w.data<T>(), b.data<T>(), y.data<T>(), mean.data<T>(), rstd.data<T>(), d.N, d.C,
                d.HW, d.G, T(eps));
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        auto forward = fused ? kernels::group_norm_silu_forward_cuda : kernels::group_norm_forward_cuda;
        forward(x.data<T>(), w.data<T>(), b.data<T>(), y.data<T>(), mean.data<T>(), rstd.data<T>(), d.N, d.C,
                d.HW, d.G, T(eps), kernels::GroupNormKernel::Auto);
      });
  return record_op(y, op, {x_in, weight_in, bias_in}, [=](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
    Tensor dw = Tensor::empty(w.shape(), w.dtype(), w.device());
    Tensor db = Tensor::empty(b.shape(), b.dtype(), b.device());
    // Only the fused backward reads beta: the SiLU derivative is taken at γ·x̂ + β.
    dispatch_kernel(
        op, x.device(), x.dtype(),
        [&](auto type) {
          using T = element_type<decltype(type)>;
          if (fused)
            kernels::group_norm_silu_backward_cpu<T>(g.data<T>(), x.data<T>(), mean.data<T>(), rstd.data<T>(),
                                                     w.data<T>(), b.data<T>(), dx.data<T>(), dw.data<T>(),
                                                     db.data<T>(), d.N, d.C, d.HW, d.G);
          else
            kernels::group_norm_backward_cpu<T>(g.data<T>(), x.data<T>(), mean.data<T>(), rstd.data<T>(),
                                                w.data<T>(), dx.data<T>(), dw.data<T>(), db.data<T>(), d.N, d.C,
                                                d.HW, d.G);
        },
        [&](auto type) {
          using T = element_type<decltype(type)>;
          if (fused)
            kernels::group_norm_silu_backward_cuda(g.data<T>(), x.data<T>(), mean.data<T>(), rstd.data<T>(),
                                                   w.data<T>(), b.data<T>(), dx.data<T>(), dw.data<T>(),
                                                   db.data<T>(), d.N, d.C, d.HW, d.G);
          else
            kernels::group_norm_backward_cuda(g.data<T>(), x.data<T>(), mean.data<T>(), rstd.data<T>(),
                                              w.data<T>(), dx.data<T>(), dw.data<T>(), db.data<T>(), d.N, d.C,
                                              d.HW, d.G);
        });
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace

Tensor group_norm(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias, double eps) {
  return group_norm_impl("group_norm", false, x, groups, weight, bias, eps);
}

Tensor group_norm_silu(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias, double eps) {
  return group_norm_impl("group_norm_silu", true, x, groups, weight, bias, eps);
}

}  // namespace fm
