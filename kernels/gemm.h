// kernels/gemm.h — general matrix multiply, the workhorse under matmul, Linear and the CPU conv.
//
// Row-major convention throughout: C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C, where
// op(X) = X or Xᵀ. lda/ldb/ldc are row strides (elements between consecutive rows) of A, B, C as
// stored. Batched versions step A, B, C by stride_a/b/c elements per batch entry (0 broadcasts).
#pragma once
#include <cstdint>

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

// Our own TF32 tensor-core GEMM (kernels/cuda/gemm_tf32.cu, WMMA m16n16k8, FP32 accumulation), on
// cuda_stream(); sm_80 or newer. Error: the inputs' rounding to TF32 (about 2^-10 relative per
// product) plus FP32 accumulation. beta = 0 does not read C.
void gemm_batched_cuda_tf32(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                            const float* A, int lda, std::int64_t stride_a, const float* B, int ldb,
                            std::int64_t stride_b, float beta, float* C, int ldc, std::int64_t stride_c);

}  // namespace fm::kernels
