// core/ops_attention.cpp — scaled dot-product attention softmax(q·kᵀ/√d)·v as one op.
//
// Forward saves the output and the per-row log-sum-exp of the scores; the backward recomputes the
// attention probabilities from them (the flash-attention recipe), so the L×L matrix is never kept.
// On CUDA, "custom" runs the fused flash kernels; "library" runs cuBLAS matmuls + a softmax kernel.
// On the CPU it runs the GEMM formulation (kernels/cpu/attention_gemm.cpp), which the tests check
// against the reference loops in kernels/cpu/attention.cpp.
// bfloat16 q, k, v (a U-Net with bfloat16 activations) give a bfloat16 output with a float log-sum-exp;
// on CUDA they run the flash kernels on the bfloat16 tensor cores whatever the precision setting.
#include <cmath>
#include <type_traits>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/kernel_choice.h"
#include "core/ops_nn.h"
#include "core/tensor_internal.h"
#include "kernels/attention.h"

namespace fm {

Tensor scaled_dot_product_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in) {
  const char* op = "scaled_dot_product_attention";
  for (const Tensor* t : {&q_in, &k_in, &v_in})
    internal::check_dim(op, *t, 4, "q/k/v", "(batch, heads, tokens, head_dim)");
  internal::check_same_dtype_device(op, {&q_in, &k_in, &v_in});
  FM_CHECK(q_in.shape() == k_in.shape() && q_in.shape() == v_in.shape(), ShapeError, op,
           ": q, k, v shapes differ: ", shape_str(q_in.shape()), ", ", shape_str(k_in.shape()), ", ",
           shape_str(v_in.shape()));
  const int B = int(q_in.size(0)), H = int(q_in.size(1)), L = int(q_in.size(2)), D = int(q_in.size(3));
  FM_CHECK(D >= 1 && D <= 128, ShapeError, op, ": head_dim ", D, ", expected 1..128");
  const double scale = 1.0 / std::sqrt(double(D));
  Tensor q = q_in.detach().contiguous(), k = k_in.detach().contiguous(), v = v_in.detach().contiguous();
  Tensor o = Tensor::empty(q.shape(), q.dtype(), q.device());
  // The log-sum-exp in the compute type: float for bfloat16 activations.
  Tensor lse = Tensor::empty({B, H, L}, compute_dtype(q.dtype()), q.device());
  // T: the activations' element type; P: lse's and the scale's (float for bfloat16).
  dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>(
      op, q.device(), q.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        using P = compute_t<T>;
        kernels::attention_forward_cpu_gemm(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), lse.data<P>(), B, H,
                                            L, D, P(scale));
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        if constexpr (std::is_same_v<T, bf16>) {
          require_project_kernels_for_bf16(op, "cuBLAS");
          kernels::attention_forward_cuda_flash(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(),
                                                lse.data<float>(), B, H, L, D, float(scale));
        } else if (kernel_impl() == KernelImpl::Library) {
          // Both float versions' products follow the precision (tensor cores under tf32 and bf16).
          kernels::attention_forward_cuda_unfused(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), lse.data<T>(),
                                                  B, H, L, D, T(scale), precision_gemm_math());
        } else {
          kernels::attention_forward_cuda_flash(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), lse.data<T>(), B,
                                                H, L, D, T(scale), precision_gemm_math());
        }
      });
  Tensor o_saved = o.detach();
  return record_op(o, op, {q_in, k_in, v_in}, [=](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    // The gradient arrives in o's dtype (autograd keeps each tensor's gradient in its dtype).
    FM_CHECK(g.dtype() == q.dtype(), DTypeError, op, ": gradient ", g.describe(), " for a ", dtype_name(q.dtype()),
             " output");
    Tensor dq = Tensor::empty(q.shape(), q.dtype(), q.device());
    Tensor dk = Tensor::empty(q.shape(), q.dtype(), q.device());
    Tensor dv = Tensor::empty(q.shape(), q.dtype(), q.device());
    dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>(
        op, q.device(), q.dtype(),
        [&](auto type) {
          using T = element_type<decltype(type)>;
          using P = compute_t<T>;
          kernels::attention_backward_cpu_gemm(q.data<T>(), k.data<T>(), v.data<T>(), o_saved.data<T>(), g.data<T>(),
                                               lse.data<P>(), dq.data<T>(), dk.data<T>(), dv.data<T>(), B, H, L, D,
                                               P(scale));
        },
        [&](auto type) {
          using T = element_type<decltype(type)>;
          if constexpr (std::is_same_v<T, bf16>) {
            require_project_kernels_for_bf16(op, "cuBLAS");
            kernels::attention_backward_cuda_flash(q.data<T>(), k.data<T>(), v.data<T>(), o_saved.data<T>(),
                                                   g.data<T>(), lse.data<float>(), dq.data<T>(), dk.data<T>(),
                                                   dv.data<T>(), B, H, L, D, float(scale));
          } else if (kernel_impl() == KernelImpl::Library) {
            kernels::attention_backward_cuda_unfused(q.data<T>(), k.data<T>(), v.data<T>(), o_saved.data<T>(),
                                                     g.data<T>(), lse.data<T>(), dq.data<T>(), dk.data<T>(),
                                                     dv.data<T>(), B, H, L, D, T(scale), precision_gemm_math());
          } else {
            kernels::attention_backward_cuda_flash(q.data<T>(), k.data<T>(), v.data<T>(), o_saved.data<T>(),
                                                   g.data<T>(), lse.data<T>(), dq.data<T>(), dk.data<T>(),
                                                   dv.data<T>(), B, H, L, D, T(scale), precision_gemm_math());
          }
        });
    return std::vector<Tensor>{dq, dk, dv};
  });
}

}  // namespace fm
