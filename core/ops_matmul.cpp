// core/ops_matmul.cpp — matrix products on CPU loops or cuBLAS, and the Linear layer's x·Wᵀ + b.
//
// A transposed view (e.g. Wᵀ in a Linear layer) is passed to GEMM as a transpose flag rather than
// copied. Backward: for C = A·B, dA = dC·Bᵀ and dB = Aᵀ·dC (summed over the batch when B is shared).
// linear() starts C at the bias rows and lets GEMM add the product onto them (beta = 1): one pass
// over the output instead of GEMM's zero-fill plus a separate broadcast add, and one autograd node.
//
// bfloat16: a Linear layer on bfloat16 activations multiplies bfloat16 x by float32 weights into a
// bfloat16 output (the bias enters as the output's first value, so rounded to bfloat16 first), its
// input gradient is bfloat16 and its weight and bias gradients float32; a product of two bfloat16
// tensors is bfloat16. Those products run kernels/gemm.h's mixed GEMMs: on the CPU the float GEMM on
// widened operands, on CUDA our bfloat16 tensor-core GEMM whatever the precision setting.
#include <optional>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/tensor_internal.h"
#include "core/kernel_choice.h"
#include "kernels/gemm.h"

namespace fm {
namespace {

// How a 2-D matrix (the last two dims of t) is laid out for GEMM: as stored (row stride ld), or
// transposed-contiguous. Anything else is made contiguous first.
struct GemmOperand {
  Tensor tensor;
  bool transposed = false;
  int ld = 0;
};

GemmOperand as_gemm_operand(const Tensor& t) {
  int n = t.dim();
  std::int64_t rows = t.size(n - 2), cols = t.size(n - 1);
  std::int64_t row_stride = t.strides()[n - 2], col_stride = t.strides()[n - 1];
  // Batch dims (if any) must be packed so a single batch stride steps through them.
  bool batch_packed = true;
  std::int64_t expected = rows * cols;
  for (int d = n - 3; d >= 0; --d) {
    if (t.size(d) != 1 && t.strides()[d] != expected) batch_packed = false;
    expected *= t.size(d);
  }
  if (batch_packed && (col_stride == 1 || cols == 1) && row_stride >= cols)
    return {t, false, int(std::max<std::int64_t>(row_stride, 1))};
  if (batch_packed && (row_stride == 1 || rows == 1) && col_stride >= rows)
    return {t, true, int(std::max<std::int64_t>(col_stride, 1))};
  Tensor c = t.contiguous();
  return {c, false, int(std::max<std::int64_t>(cols, 1))};
}

// Whether a product has a bfloat16 operand (it then runs the mixed GEMMs), and the check that its
// operand and output dtypes are a combination they take.
bool involves_bf16(const Tensor& a, const Tensor& b) {
  return a.dtype() == DType::BFloat16 || b.dtype() == DType::BFloat16;
}
void check_bf16_product(const Tensor& a, const Tensor& b, DType out) {
  const bool ok = a.dtype() == DType::BFloat16 &&
                  ((b.dtype() == DType::Float32 && out == DType::BFloat16) ||
                   (b.dtype() == DType::BFloat16 && (out == DType::BFloat16 || out == DType::Float32)));
  FM_CHECK(ok, DTypeError, "matmul: ", dtype_name(a.dtype()), " · ", dtype_name(b.dtype()), " -> ", dtype_name(out),
           " has no kernel (bfloat16 products: bfloat16 · float32 -> bfloat16, bfloat16 · bfloat16 -> bfloat16 "
           "or float32)");
}

// The mixed GEMM for the bfloat16 combinations check_bf16_product allows (types picked at runtime).
template <typename Gemm>
void run_bf16_gemm(DType b_dtype, DType c_dtype, Gemm&& gemm) {
  if (b_dtype == DType::Float32) return gemm(TypeTag<float>{}, TypeTag<bf16>{});
  if (c_dtype == DType::Float32) return gemm(TypeTag<bf16>{}, TypeTag<float>{});
  gemm(TypeTag<bf16>{}, TypeTag<bf16>{});
}

// C[batch] = A[batch]·B[batch] (B may be shared: stride 0), plus `bias` broadcast over C's rows
// when it is given (a [N] tensor). No autograd. C's dtype is a's unless `out_dtype` says otherwise
// (a bfloat16 product's weight gradient is float32).
Tensor matmul_forward(const Tensor& a, const Tensor& b, const Tensor& bias = Tensor(),
                      std::optional<DType> out_dtype = std::nullopt) {
  const DType c_dtype = out_dtype.value_or(a.dtype());
  if (involves_bf16(a, b)) {
    FM_CHECK(a.device() == b.device(), DeviceError, "matmul: inputs on ", device_name(a.device()), " and ",
             device_name(b.device()));
    check_bf16_product(a, b, c_dtype);
  } else {
    internal::check_same_dtype_device("matmul", {&a, &b});
    FM_CHECK(c_dtype == a.dtype(), Error, "matmul: internal: a ", dtype_name(a.dtype()), " product asked for ",
             dtype_name(c_dtype));
  }
  FM_CHECK(a.dim() >= 2 && b.dim() >= 2, ShapeError, "matmul: inputs need at least 2 dims, got ",
           shape_str(a.shape()), " and ", shape_str(b.shape()));
  std::int64_t M = a.size(-2);
  const std::int64_t K = a.size(-1), N = b.size(-1);
  FM_CHECK(b.size(-2) == K, ShapeError, "matmul: inner sizes differ: ", shape_str(a.shape()), " · ",
           shape_str(b.shape()));
  Shape batch_shape(a.shape().begin(), a.shape().end() - 2);
  bool shared_b = b.dim() == 2;
  if (!shared_b) {
    Shape b_batch(b.shape().begin(), b.shape().end() - 2);
    FM_CHECK(b_batch == batch_shape, ShapeError, "matmul: batch dims differ: ",
             shape_str(a.shape()), " · ", shape_str(b.shape()));
  }
  std::int64_t batch = shape_numel(batch_shape);
  Shape out_shape = batch_shape;
  out_shape.push_back(M);
  out_shape.push_back(N);
  // With a bias, C starts as the bias rows and GEMM accumulates onto them (beta = 1). For K no
  // deeper than the CPU GEMM's slice (kernels/cpu/gemm.cpp) every element is bias + (its dot
  // product), rounded once: bitwise what matmul followed by add gives.
  // (A fresh tensor either way: contiguous() of a one-row expand is the bias itself, which GEMM would
  // then overwrite.)
  Tensor c = Tensor::empty(out_shape, c_dtype, a.device());
  if (bias.defined()) c.copy_(bias.expand(out_shape));  // converted to C's dtype
  const double beta = bias.defined() ? 1.0 : 0.0;
  if (c.numel() == 0 || (K == 0 && bias.defined())) return c;
  if (K == 0) return c.fill_(0.0), c;

  GemmOperand A = as_gemm_operand(a), B = as_gemm_operand(b);
  std::int64_t stride_a = M * K, stride_b = shared_b ? 0 : K * N, stride_c = M * N;
  // A shared-B product with a row-major A folds the batch into M: one big GEMM instead of many.
  if (shared_b && !A.transposed && A.ld == K && batch > 1) {
    M *= batch;
    batch = 1;
  }
  if (involves_bf16(a, b)) {
    run_bf16_gemm(b.dtype(), c_dtype, [&](auto b_type, auto c_type) {
      using TB = element_type<decltype(b_type)>;
      using TC = element_type<decltype(c_type)>;
      const int m = int(M), n = int(N), k = int(K);
      const bf16* a_data = A.tensor.data<bf16>();
      const TB* b_data = B.tensor.data<TB>();
      dispatch_kernel<TypeList<bf16>, TypeList<bf16>>(
          "matmul", a.device(), DType::BFloat16,
          [&](auto) {
            kernels::gemm_batched_mixed_cpu(int(batch), A.transposed, B.transposed, m, n, k, 1.f, a_data, A.ld,
                                            stride_a, b_data, B.ld, stride_b, float(beta), c.data<TC>(), n, stride_c);
          },
          [&](auto) {
            require_project_kernels_for_bf16("matmul", "cuBLAS");
            kernels::gemm_batched_mixed_cuda(int(batch), A.transposed, B.transposed, m, n, k, 1.f, a_data, A.ld,
                                             stride_a, b_data, B.ld, stride_b, float(beta), c.data<TC>(), n, stride_c);
          });
    });
    return c;
  }
  dispatch_kernel(
      "matmul", a.device(), a.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::gemm_batched_cpu<T>(int(batch), A.transposed, B.transposed, int(M), int(N), int(K), T(1),
                                     A.tensor.data<T>(), A.ld, stride_a, B.tensor.data<T>(), B.ld, stride_b, T(beta),
                                     c.data<T>(), int(N), stride_c);
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        // Strict FP32 through cuBLAS, or TF32 / bfloat16 tensor cores: ours or cuBLAS's
        // (core/kernel_choice.h).
        const int m = int(M), n = int(N), k = int(K);
        if (kernel_impl() == KernelImpl::Library || precision() == Precision::FP32)
          return kernels::gemm_batched_cublas_in(precision_gemm_math(), int(batch), A.transposed, B.transposed, m, n,
                                                 k, T(1), A.tensor.data<T>(), A.ld, stride_a, B.tensor.data<T>(),
                                                 B.ld, stride_b, T(beta), c.data<T>(), n, stride_c);
        auto* ours = precision() == Precision::TF32 ? kernels::gemm_batched_cuda_tf32 : kernels::gemm_batched_cuda_bf16;
        ours(int(batch), A.transposed, B.transposed, m, n, k, T(1), A.tensor.data<T>(), A.ld, stride_a,
             B.tensor.data<T>(), B.ld, stride_b, T(beta), c.data<T>(), n, stride_c);
      });
  return c;
}

// The gradients of C = A·B for the inputs that need one.
std::vector<Tensor> matmul_backward(const Tensor& g, const Tensor& a_saved, const Tensor& b_saved, bool need_a,
                                    bool need_b) {
  // Each gradient in its input's dtype (a bfloat16 product's float32 weight gets a float32 one).
  Tensor ga, gb;
  if (need_a) ga = matmul_forward(g, b_saved.transpose(-1, -2), Tensor(), a_saved.dtype());
  if (need_b) {
    if (b_saved.dim() == 2 && g.dim() > 2) {
      // Shared B: dB = Σ_batch Aᵀ·dC = (A flattened over batch)ᵀ · (dC flattened over batch).
      Tensor a2 = a_saved.reshape({-1, a_saved.size(-1)});
      Tensor g2 = g.reshape({-1, g.size(-1)});
      gb = matmul_forward(a2.transpose(0, 1), g2, Tensor(), b_saved.dtype());
    } else {
      gb = matmul_forward(a_saved.transpose(-1, -2), g, Tensor(), b_saved.dtype());
    }
  }
  return {ga, gb};
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  Tensor c = matmul_forward(a, b);
  Tensor a_saved = a.detach(), b_saved = b.detach();
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record_op(c, "matmul", {a, b},
                   [=](const Tensor& g) { return matmul_backward(g, a_saved, b_saved, need_a, need_b); });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  FM_CHECK(x.defined() && weight.defined(), ValueError, "linear: input or weight is undefined");
  FM_CHECK(weight.dim() == 2, ShapeError, "linear: weight has shape ", shape_str(weight.shape()),
           ", expected 2 dims (out, in)");
  FM_CHECK(x.dim() >= 2 && x.size(-1) == weight.size(1), ShapeError, "linear: input ", shape_str(x.shape()),
           " does not end in ", weight.size(1), " features (weight ", shape_str(weight.shape()),
           "); expected [..., ", weight.size(1), "]");
  if (!bias.defined()) return matmul(x, weight.transpose(0, 1));
  FM_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), ShapeError, "linear: bias has shape ",
           shape_str(bias.shape()), ", expected [", weight.size(0), "]");
  internal::check_same_dtype_device("linear", {&weight, &bias});  // x's against weight's: matmul_forward
  // The transposed view goes to GEMM as a flag, not a copy.
  Tensor weight_t = weight.transpose(0, 1);
  Tensor y = matmul_forward(x, weight_t, bias);
  Tensor x_saved = x.detach(), weight_t_saved = weight_t.detach();
  bool need_x = x.requires_grad(), need_weight = weight.requires_grad(), need_bias = bias.requires_grad();
  Shape bias_shape = bias.shape();
  const DType bias_dtype = bias.dtype();
  return record_op(y, "linear", {x, weight, bias}, [=](const Tensor& g) {
    std::vector<Tensor> product = matmul_backward(g, x_saved, weight_t_saved, need_x, need_weight);
    // The product's gradient is for Wᵀ; W's is its transpose (a view, as transpose's backward gives).
    Tensor g_weight = product[1].defined() ? product[1].transpose(0, 1) : Tensor();
    // The bias gradient in the bias's dtype: a bfloat16 g widened exactly, then summed.
    return std::vector<Tensor>{product[0], g_weight,
                               need_bias ? sum_to_shape(g.to(bias_dtype), bias_shape) : Tensor()};
  });
}

}  // namespace fm
