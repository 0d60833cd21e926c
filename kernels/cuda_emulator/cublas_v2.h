// kernels/cuda_emulator/cublas_v2.h — the part of cuBLAS the project calls, for the emulator build.
//
// cublasSgemmStridedBatched and cublasGemmStridedBatchedEx are implemented in cublas_reference.cpp as
// plain loops that follow cuBLAS's documented column-major contract, so our row-major wrapper
// (kernels/cuda/gemm_cublas.cpp) is tested for the way it maps its arguments; cuBLAS's own speed and
// rounding are not emulated, except that the bfloat16 compute type rounds its inputs to bfloat16.
#pragma once
#include <cstdint>

#include "cuda_runtime.h"

enum cublasStatus_t {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_ALLOC_FAILED = 3,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_ARCH_MISMATCH = 8,
  CUBLAS_STATUS_MAPPING_ERROR = 11,
  CUBLAS_STATUS_EXECUTION_FAILED = 13,
  CUBLAS_STATUS_INTERNAL_ERROR = 14,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasMath_t { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 };  // both computed in FP32 here

struct cublasContext;
using cublasHandle_t = cublasContext*;

cublasStatus_t cublasCreate(cublasHandle_t* handle);
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream);
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode);
// Accepted and unused: the reference GEMM needs no workspace.
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void* workspace, std::size_t bytes);
// C_i = alpha·op(A_i)·op(B_i) + beta·C_i for i < batch, every matrix column-major; op(A) is m×k,
// op(B) is k×n, C is m×n; A_i = A + i·stride_a and so on.
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t trans_a,
                                         cublasOperation_t trans_b, int m, int n, int k,
                                         const float* alpha, const float* A, int lda,
                                         long long stride_a, const float* B, int ldb,
                                         long long stride_b, const float* beta, float* C, int ldc,
                                         long long stride_c, int batch);

// The mixed-precision entry point, for what the project uses of it: FP32 matrices (CUDA_R_32F) with
// FP32 compute, or FP32 compute on bfloat16 tensor cores (CUBLAS_COMPUTE_32F_FAST_16BF: the library
// rounds A and B to bfloat16; here to nearest, ties to even) or TF32 ones (computed in FP32 here, as
// CUBLAS_TF32_TENSOR_OP_MATH is). Anything else returns CUBLAS_STATUS_NOT_SUPPORTED. alpha and beta
// point to floats. The numeric values are the toolkit's.
enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16BF = 14 };
using cudaDataType = cudaDataType_t;
enum cublasComputeType_t {
  CUBLAS_COMPUTE_32F = 68,
  CUBLAS_COMPUTE_32F_FAST_16BF = 75,
  CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
};
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t trans_a,
                                          cublasOperation_t trans_b, int m, int n, int k, const void* alpha,
                                          const void* A, cudaDataType a_type, int lda, long long stride_a,
                                          const void* B, cudaDataType b_type, int ldb, long long stride_b,
                                          const void* beta, void* C, cudaDataType c_type, int ldc,
                                          long long stride_c, int batch, cublasComputeType_t compute,
                                          cublasGemmAlgo_t algo);
