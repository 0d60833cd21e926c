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

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";

// The shared checks of both entry points: q, k, v of one shape [B, H, L, D] with 1 <= D <= 128.
void check_heads(const char* op, const Tensor& q, const Tensor& k, const Tensor& v) {
  for (const Tensor* t : {&q, &k, &v}) internal::check_dim(op, *t, 4, "q/k/v", "(batch, heads, tokens, head_dim)");
  internal::check_same_dtype_device(op, {&q, &k, &v});
  FM_CHECK(q.shape() == k.shape() && q.shape() == v.shape(), ShapeError, op, ": q, k, v shapes differ: ",
           shape_str(q.shape()), ", ", shape_str(k.shape()), ", ", shape_str(v.shape()));
  FM_CHECK(q.size(3) >= 1 && q.size(3) <= 128, ShapeError, op, ": head_dim ", q.size(3), ", expected 1..128");
}

// o = softmax(scale·q·kᵀ)·v and the rows' log-sum-exp, on contiguous q, k, v (views of one buffer
// or not): the kernel of each device and precision.
// `op` names the entry point in errors.
void attention_forward(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, Tensor& lse,
                       double scale) {
  const int B = int(q.size(0)), H = int(q.size(1)), L = int(q.size(2)), D = int(q.size(3));
  o = Tensor::empty(q.shape(), q.dtype(), q.device());
  // The log-sum-exp in the compute type: float for bfloat16 activations.
  lse = Tensor::empty({B, H, L}, compute_dtype(q.dtype()), q.device());
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
}

// dq, dk, dv (contiguous, preallocated: separate tensors or slices of one) from the forward's
// saved q, k, v, o, lse and the output gradient g (contiguous): the probabilities are recomputed.
void attention_backward(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                        const Tensor& lse, const Tensor& g, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                        double scale) {
  // The gradient arrives in o's dtype (autograd keeps each tensor's gradient in its dtype).
  FM_CHECK(g.dtype() == q.dtype(), DTypeError, op, ": gradient ", g.describe(), " for a ", dtype_name(q.dtype()),
           " output");
  const int B = int(q.size(0)), H = int(q.size(1)), L = int(q.size(2)), D = int(q.size(3));
  dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>(
      op, q.device(), q.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        using P = compute_t<T>;
        kernels::attention_backward_cpu_gemm(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), g.data<T>(),
                                             lse.data<P>(), dq.data<T>(), dk.data<T>(), dv.data<T>(), B, H, L, D,
                                             P(scale));
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        if constexpr (std::is_same_v<T, bf16>) {
          require_project_kernels_for_bf16(op, "cuBLAS");
          kernels::attention_backward_cuda_flash(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), g.data<T>(),
                                                 lse.data<float>(), dq.data<T>(), dk.data<T>(), dv.data<T>(), B, H,
                                                 L, D, float(scale));
        } else if (kernel_impl() == KernelImpl::Library) {
          kernels::attention_backward_cuda_unfused(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), g.data<T>(),
                                                   lse.data<T>(), dq.data<T>(), dk.data<T>(), dv.data<T>(), B, H, L,
                                                   D, T(scale), precision_gemm_math());
        } else {
          kernels::attention_backward_cuda_flash(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), g.data<T>(),
                                                 lse.data<T>(), dq.data<T>(), dk.data<T>(), dv.data<T>(), B, H, L,
                                                 D, T(scale), precision_gemm_math());
        }
      });
}

// Slice `which` (0 = q, 1 = k, 2 = v) of a contiguous [3, B, H, L, D] tensor: a contiguous view.
Tensor part(const Tensor& packed, int which) { return packed.narrow(0, which, 1).squeeze(0); }

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in) {
  check_heads(kOp, q_in, k_in, v_in);
  const double scale = 1.0 / std::sqrt(double(q_in.size(3)));
  Tensor q = q_in.detach().contiguous(), k = k_in.detach().contiguous(), v = v_in.detach().contiguous();
  Tensor o, lse;
  attention_forward(kOp, q, k, v, o, lse, scale);
  Tensor o_saved = o.detach();
  return record_op(o, kOp, {q_in, k_in, v_in}, [=](const Tensor& g) {
    Tensor dq = Tensor::empty(q.shape(), q.dtype(), q.device());
    Tensor dk = Tensor::empty(q.shape(), q.dtype(), q.device());
    Tensor dv = Tensor::empty(q.shape(), q.dtype(), q.device());
    attention_backward(kOp, q, k, v, o_saved, lse, g.contiguous(), dq, dk, dv, scale);
    return std::vector<Tensor>{dq, dk, dv};
  });
}

Tensor scaled_dot_product_attention_packed(const Tensor& qkv_in) {
  const char* op = "scaled_dot_product_attention_packed";
  FM_CHECK(qkv_in.defined() && qkv_in.dim() == 5 && qkv_in.size(0) == 3, ShapeError, op, ": qkv ",
           qkv_in.defined() ? shape_str(qkv_in.shape()) : "undefined",
           ", expected [3, batch, heads, tokens, head_dim] (q, k, v stacked)");
  const Tensor qkv = qkv_in.detach().contiguous();
  const Tensor q = part(qkv, 0), k = part(qkv, 1), v = part(qkv, 2);
  check_heads(op, q, k, v);
  const double scale = 1.0 / std::sqrt(double(q.size(3)));
  Tensor o, lse;
  attention_forward(op, q, k, v, o, lse, scale);
  Tensor o_saved = o.detach();
  // One gradient for the one input, its three slices written by the kernels in place: no zero-filled
  // [3, …] tensor per slice and no sums of them, which three narrow()s of qkv would cost.
  return record_op(o, op, {qkv_in}, [=](const Tensor& g) {
    Tensor dqkv = Tensor::empty(qkv.shape(), qkv.dtype(), qkv.device());
    attention_backward(op, q, k, v, o_saved, lse, g.contiguous(), part(dqkv, 0), part(dqkv, 1), part(dqkv, 2), scale);
    return std::vector<Tensor>{dqkv};
  });
}

}  // namespace fm
