// kernels/cuda/gemm_cublas.cpp — row-major batched GEMM through cuBLAS (which is column-major).
//
// A row-major C = op(A)·op(B) is, read column-major, Cᵀ = op(B)ᵀ·op(A)ᵀ: so we call cuBLAS with
// the operands swapped and the same transpose flags, and no data moves.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/library_handles.h"
#include "kernels/gemm.h"
#include "kernels/runtime.h"

namespace fm::kernels {

void gemm_batched_cublas(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                         const float* A, int lda, std::int64_t stride_a, const float* B, int ldb,
                         std::int64_t stride_b, float beta, float* C, int ldc, std::int64_t stride_c) {
  cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  FM_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas_handle(), op_b, op_a, N, M, K, &alpha, B, ldb,
                                            stride_b, A, lda, stride_a, &beta, C, ldc, stride_c,
                                            batch));
  count_library_call();  // kernels/runtime.h's counters
}

void gemm_batched_cublas_tf32(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                              const float* A, int lda, std::int64_t stride_a, const float* B, int ldb,
                              std::int64_t stride_b, float beta, float* C, int ldc, std::int64_t stride_c) {
  // The handle stays in plain FP32 math (kernels/cuda/runtime.cpp) for every other caller.
  FM_CUBLAS_CHECK(cublasSetMathMode(cublas_handle(), CUBLAS_TF32_TENSOR_OP_MATH));
  gemm_batched_cublas(batch, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C,
                      ldc, stride_c);
  FM_CUBLAS_CHECK(cublasSetMathMode(cublas_handle(), CUBLAS_DEFAULT_MATH));
}

void gemm_batched_cublas_bf16(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                              const float* A, int lda, std::int64_t stride_a, const float* B, int ldb,
                              std::int64_t stride_b, float beta, float* C, int ldc, std::int64_t stride_c) {
  // The same operand swap as gemm_batched_cublas; FP32 matrices, bfloat16 tensor-core compute.
  cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  FM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(cublas_handle(), op_b, op_a, N, M, K, &alpha, B, CUDA_R_32F, ldb,
                                             stride_b, A, CUDA_R_32F, lda, stride_a, &beta, C, CUDA_R_32F, ldc,
                                             stride_c, batch, CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT));
  count_library_call();
}

void gemm_batched_cublas_in(GemmMath math, int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                            const float* A, int lda, std::int64_t stride_a, const float* B, int ldb,
                            std::int64_t stride_b, float beta, float* C, int ldc, std::int64_t stride_c) {
  auto* gemm = math == GemmMath::Tf32   ? gemm_batched_cublas_tf32
               : math == GemmMath::Bf16 ? gemm_batched_cublas_bf16
                                        : gemm_batched_cublas;
  gemm(batch, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c);
}

}  // namespace fm::kernels
