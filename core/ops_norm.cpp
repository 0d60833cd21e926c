// core/ops_norm.cpp — GroupNorm, and GroupNorm fused with SiLU, as differentiable ops.
//
// The forward saves the per-(sample, group) mean and 1/σ; the backward kernels use them with x to
// recompute the normalised values rather than storing them (one tensor less per layer).
//
// Dtypes: x, weight and bias alike (float32, or float64 on the CPU), or bfloat16 activations with
// float32 weight and bias (a model's float32 parameters normalising bfloat16 activations): then y and
// dx are bfloat16, and the statistics, dweight and dbias float32.
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
  internal::check_same_dtype_device(op, {&weight, &bias});
  FM_CHECK(x.device() == weight.device(), DeviceError, op, ": input on ", device_name(x.device()),
           ", weight on ", device_name(weight.device()));
  const DType parameter_dtype = compute_dtype(x.dtype());
  FM_CHECK(weight.dtype() == parameter_dtype, DTypeError, op, ": a ", dtype_name(x.dtype()), " input takes ",
           dtype_name(parameter_dtype), " weight and bias, got ", dtype_name(weight.dtype()));
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
  Tensor mean = Tensor::empty({d.N, d.G}, w.dtype(), x.device());  // statistics in the parameters' dtype
  Tensor rstd = Tensor::empty({d.N, d.G}, w.dtype(), x.device());
  // T: the activations' element type; P: the parameters' and statistics' (float for bfloat16).
  dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>(
      op, x.device(), x.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        using P = compute_t<T>;
        if (fused)
          kernels::group_norm_silu_forward_cpu(x.data<T>(), w.data<P>(), b.data<P>(), y.data<T>(), mean.data<P>(),
                                               rstd.data<P>(), d.N, d.C, d.HW, d.G, P(eps));
        else
          kernels::group_norm_forward_cpu(x.data<T>(), w.data<P>(), b.data<P>(), y.data<T>(), mean.data<P>(),
                                          rstd.data<P>(), d.N, d.C, d.HW, d.G, P(eps));
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        if (fused)
          kernels::group_norm_silu_forward_cuda(x.data<T>(), w.data<float>(), b.data<float>(), y.data<T>(),
                                                mean.data<float>(), rstd.data<float>(), d.N, d.C, d.HW, d.G,
                                                float(eps), kernels::GroupNormKernel::Auto);
        else
          kernels::group_norm_forward_cuda(x.data<T>(), w.data<float>(), b.data<float>(), y.data<T>(),
                                           mean.data<float>(), rstd.data<float>(), d.N, d.C, d.HW, d.G, float(eps),
                                           kernels::GroupNormKernel::Auto);
      });
  return record_op(y, op, {x_in, weight_in, bias_in}, [=](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
    Tensor dw = Tensor::empty(w.shape(), w.dtype(), w.device());
    Tensor db = Tensor::empty(b.shape(), b.dtype(), b.device());
    // Only the fused backward reads beta: the SiLU derivative is taken at γ·x̂ + β.
    // The gradient arrives in y's dtype (autograd keeps each tensor's gradient in its dtype).
    FM_CHECK(g.dtype() == x.dtype(), DTypeError, op, ": gradient ", g.describe(), " for a ", dtype_name(x.dtype()),
             " output");
    dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>(
        op, x.device(), x.dtype(),
        [&](auto type) {
          using T = element_type<decltype(type)>;
          using P = compute_t<T>;
          if (fused)
            kernels::group_norm_silu_backward_cpu(g.data<T>(), x.data<T>(), mean.data<P>(), rstd.data<P>(),
                                                  w.data<P>(), b.data<P>(), dx.data<T>(), dw.data<P>(),
                                                  db.data<P>(), d.N, d.C, d.HW, d.G);
          else
            kernels::group_norm_backward_cpu(g.data<T>(), x.data<T>(), mean.data<P>(), rstd.data<P>(), w.data<P>(),
                                             dx.data<T>(), dw.data<P>(), db.data<P>(), d.N, d.C, d.HW, d.G);
        },
        [&](auto type) {
          using T = element_type<decltype(type)>;
          if (fused)
            kernels::group_norm_silu_backward_cuda(g.data<T>(), x.data<T>(), mean.data<float>(),
                                                   rstd.data<float>(), w.data<float>(), b.data<float>(),
                                                   dx.data<T>(), dw.data<float>(), db.data<float>(), d.N, d.C,
                                                   d.HW, d.G);
          else
            kernels::group_norm_backward_cuda(g.data<T>(), x.data<T>(), mean.data<float>(), rstd.data<float>(),
                                              w.data<float>(), dx.data<T>(), dw.data<float>(), db.data<float>(),
                                              d.N, d.C, d.HW, d.G);
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
