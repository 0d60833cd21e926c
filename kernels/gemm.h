// kernels/gemm.h — general matrix multiply, the workhorse under matmul, Linear and the CPU conv.
//
// Row-major convention throughout: C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C, where
// op(X) = X or Xᵀ. lda/ldb/ldc are row strides (elements between consecutive rows) of A, B, C as
// stored. Batched versions step A, B, C by stride_a/b/c elements per batch entry (0 broadcasts).
#pragma once
#include <cstdint>

#include "kernels/bfloat16.h"
#include "kernels/runtime.h"

namespace fm::kernels {

template <typename T>
void gemm_cpu(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
              const T* B, int ldb, T beta, T* C, int ldc);

template <typename T>
void gemm_batched_cpu(int batch, bool trans_a, bool trans_b, int M, int N, int K, T alpha,
                      const T* A, int lda, std::int64_t stride_a, const T* B, int ldb,
                      std::int64_t stride_b, T beta, T* C, int ldc, std::int64_t stride_c);

// cuBLAS (FP32, no TF32) on cuda_stream(). Same row-major convention as the CPU version.
void gemm_batched_cublas(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                         const float* A, int lda, std::int64_t stride_a, const float* B, int ldb,
                         std::int64_t stride_b, float beta, float* C, int ldc, std::int64_t stride_c);

// The same through cuBLAS with TF32 tensor-core math allowed (CUBLAS_TF32_TENSOR_OP_MATH for this
// call only): the library baseline of the TF32 path. (The emulator's cuBLAS computes it in FP32.)
void gemm_batched_cublas_tf32(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                              const float* A, int lda, std::int64_t stride_a, const float* B, int ldb,
                              std::int64_t stride_b, float beta, float* C, int ldc, std::int64_t stride_c);

// The arithmetic of a GEMM's products: the engine's precision switch (core/kernel_choice.h) as
// kernels/ sees it. gemm_batched_cublas_in picks gemm_batched_cublas, _tf32 or _bf16 by it.
enum class GemmMath { Fp32, Tf32, Bf16 };
void gemm_batched_cublas_in(GemmMath math, int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                            const float* A, int lda, std::int64_t stride_a, const float* B, int ldb,
                            std::int64_t stride_b, float beta, float* C, int ldc, std::int64_t stride_c);

// And with bfloat16 tensor-core math (cublasGemmStridedBatchedEx, CUBLAS_COMPUTE_32F_FAST_16BF: A and
// B rounded to bfloat16, FP32 accumulation): the library baseline of the bfloat16 path.
void gemm_batched_cublas_bf16(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                              const float* A, int lda, std::int64_t stride_a, const float* B, int ldb,
                              std::int64_t stride_b, float beta, float* C, int ldc, std::int64_t stride_c);

// Our own tensor-core GEMMs (kernels/cuda/gemm_tensor_cores.cu, WMMA, FP32 accumulation), on
// cuda_stream(); sm_80 or newer. FP32 matrices in memory; the inputs are rounded as they are staged:
// to TF32 (m16n16k8; about 2^-10 relative error per product) or to bfloat16 (m16n16k16; about 2^-7).
// beta = 0 does not read C.
void gemm_batched_cuda_bf16(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                            const float* A, int lda, std::int64_t stride_a, const float* B, int ldb,
                            std::int64_t stride_b, float beta, float* C, int ldc, std::int64_t stride_c);
void gemm_batched_cuda_tf32(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                            const float* A, int lda, std::int64_t stride_a, const float* B, int ldb,
                            std::int64_t stride_b, float beta, float* C, int ldc, std::int64_t stride_c);

// ---- bfloat16 operands (a Linear layer on bfloat16 activations) ----------------------------------
// A, B and C each float or bf16 — the combinations the engine uses: (bf16, float → bf16) for
// activations times float32 weights and for the input gradient, (bf16, bf16 → float) for the weight
// gradient, (bf16, bf16 → bf16) for a product of two activations. Computed in float; a bfloat16 C is
// rounded once, and read (beta ≠ 0) as its bfloat16 values.
// CPU: each operand widened exactly with its own layout, gemm_cpu in float, C rounded: the float GEMM's
// bits, rounded once.
template <typename TA, typename TB, typename TC>
void gemm_batched_mixed_cpu(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const TA* A,
                            int lda, std::int64_t stride_a, const TB* B, int ldb, std::int64_t stride_b, float beta,
                            TC* C, int ldc, std::int64_t stride_c);
// CUDA: our tensor-core GEMM in bfloat16 (operands rounded to bfloat16 as they are staged: exact for
// bfloat16 operands, the float32 weights rounded), FP32 accumulation. sm_80 or newer.
template <typename TA, typename TB, typename TC>
void gemm_batched_mixed_cuda(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const TA* A,
                             int lda, std::int64_t stride_a, const TB* B, int ldb, std::int64_t stride_b, float beta,
                             TC* C, int ldc, std::int64_t stride_c);

}  // namespace fm::kernels
