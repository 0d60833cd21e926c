// core/ops_matmul.cpp — matrix products on CPU loops or cuBLAS.
//
// A transposed view (e.g. Wᵀ in a Linear layer) is passed to GEMM as a transpose flag rather than
// copied. Backward: for C = A·B, dA = dC·Bᵀ and dB = Aᵀ·dC (summed over the batch when B is shared).
#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/tensor_internal.h"
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

// C[batch] = A[batch]·B[batch] (B may be shared: stride 0). No autograd.
Tensor matmul_forward(const Tensor& a, const Tensor& b) {
  internal::check_same_dtype_device("matmul", {&a, &b});
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
  Tensor c = Tensor::empty(out_shape, a.dtype(), a.device());
  if (c.numel() == 0) return c;
  if (K == 0) return c.fill_(0.0), c;

  GemmOperand A = as_gemm_operand(a), B = as_gemm_operand(b);
  std::int64_t stride_a = M * K, stride_b = shared_b ? 0 : K * N, stride_c = M * N;
  // A shared-B product with a row-major A folds the batch into M: one big GEMM instead of many.
  if (shared_b && !A.transposed && A.ld == K && batch > 1) {
    M *= batch;
    batch = 1;
  }
  dispatch_kernel(
      "matmul", a.device(), a.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::gemm_batched_cpu<T>(int(batch), A.transposed, B.transposed, int(M), int(N), int(K), T(1),
                                     A.tensor.data<T>(), A.ld, stride_a, B.tensor.data<T>(), B.ld, stride_b, T(0),
                                     c.data<T>(), int(N), stride_c);
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::gemm_batched_cublas(int(batch), A.transposed, B.transposed, int(M), int(N), int(K), T(1),
                                     A.tensor.data<T>(), A.ld, stride_a, B.tensor.data<T>(), B.ld, stride_b, T(0),
                                     c.data<T>(), int(N), stride_c);
      });
  return c;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  Tensor c = matmul_forward(a, b);
  Tensor a_saved = a.detach(), b_saved = b.detach();
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record_op(c, "matmul", {a, b}, [=](const Tensor& g) {
    Tensor ga, gb;
    if (need_a) ga = matmul_forward(g, b_saved.transpose(-1, -2));
    if (need_b) {
      if (b_saved.dim() == 2 && g.dim() > 2) {
        // Shared B: dB = Σ_batch Aᵀ·dC = (A flattened over batch)ᵀ · (dC flattened over batch).
        Tensor a2 = a_saved.reshape({-1, a_saved.size(-1)});
        Tensor g2 = g.reshape({-1, g.size(-1)});
        gb = matmul_forward(a2.transpose(0, 1), g2);
      } else {
        gb = matmul_forward(a_saved.transpose(-1, -2), g);
      }
    }
    return std::vector<Tensor>{ga, gb};
  });
}

}  // namespace fm
