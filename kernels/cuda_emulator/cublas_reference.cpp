// kernels/cuda_emulator/cublas_reference.cpp — cuBLAS's strided-batched GEMMs as plain loops.
//
// Column-major, as cuBLAS documents it: element (r, c) of a matrix with leading dimension ld is at
// [r + c·ld]; op(X) is X or Xᵀ. Accumulates in double so the emulator's GEMM is a clean reference.
#include <cstdint>

#include "cublas_v2.h"
#include "cuda_bf16.h"

struct cublasContext {};

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  static cublasContext the_context;
  *handle = &the_context;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void*, std::size_t) {
  return handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

namespace {
// The loops both entry points share; `input` is what the multiply sees of an element of A or B.
template <typename Input>
cublasStatus_t reference_gemm(cublasHandle_t handle, cublasOperation_t trans_a, cublasOperation_t trans_b, int m,
                              int n, int k, const float* alpha, const float* A, int lda, long long stride_a,
                              const float* B, int ldb, long long stride_b, const float* beta, float* C, int ldc,
                              long long stride_c, int batch, Input input) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  // The argument checks cuBLAS documents for this call.
  const int rows_a = trans_a == CUBLAS_OP_N ? m : k, rows_b = trans_b == CUBLAS_OP_N ? k : n;
  if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < (rows_a > 1 ? rows_a : 1) ||
      ldb < (rows_b > 1 ? rows_b : 1) || ldc < (m > 1 ? m : 1))
    return CUBLAS_STATUS_INVALID_VALUE;
  // Issued on the stream: recorded while it captures (with alpha and beta by value, as cuBLAS
  // reads host-pointer scalars when the call is made).
  const float alpha_value = *alpha, beta_value = *beta;
  fm_emu::run_or_record([=] {
  for (int i = 0; i < batch; ++i) {
    const float* a = A + i * stride_a;
    const float* b = B + i * stride_b;
    float* c = C + i * stride_c;
    for (int col = 0; col < n; ++col)
      for (int row = 0; row < m; ++row) {
        double acc = 0.0;
        for (int p = 0; p < k; ++p) {
          const float a_rp = trans_a == CUBLAS_OP_N ? a[row + std::int64_t(p) * lda]
                                                    : a[p + std::int64_t(row) * lda];
          const float b_pc = trans_b == CUBLAS_OP_N ? b[p + std::int64_t(col) * ldb]
                                                    : b[col + std::int64_t(p) * ldb];
          acc += double(input(a_rp)) * double(input(b_pc));
        }
        float& out = c[row + std::int64_t(col) * ldc];
        // beta == 0 means C is not read (it may hold NaN), as in cuBLAS.
        out = beta_value == 0.f ? float(alpha_value * acc)
                                : float(alpha_value * acc + double(beta_value) * out);
      }
  }
  });
  return CUBLAS_STATUS_SUCCESS;
}
}  // namespace

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t trans_a,
                                         cublasOperation_t trans_b, int m, int n, int k,
                                         const float* alpha, const float* A, int lda,
                                         long long stride_a, const float* B, int ldb,
                                         long long stride_b, const float* beta, float* C, int ldc,
                                         long long stride_c, int batch) {
  return reference_gemm(handle, trans_a, trans_b, m, n, k, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc,
                        stride_c, batch, [](float x) { return x; });
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t trans_a,
                                          cublasOperation_t trans_b, int m, int n, int k, const void* alpha,
                                          const void* A, cudaDataType a_type, int lda, long long stride_a,
                                          const void* B, cudaDataType b_type, int ldb, long long stride_b,
                                          const void* beta, void* C, cudaDataType c_type, int ldc,
                                          long long stride_c, int batch, cublasComputeType_t compute,
                                          cublasGemmAlgo_t algo) {
  if (a_type != CUDA_R_32F || b_type != CUDA_R_32F || c_type != CUDA_R_32F || algo != CUBLAS_GEMM_DEFAULT)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  const auto* a = static_cast<const float*>(A);
  const auto* b = static_cast<const float*>(B);
  auto* c = static_cast<float*>(C);
  const auto* alpha_f = static_cast<const float*>(alpha);
  const auto* beta_f = static_cast<const float*>(beta);
  if (compute == CUBLAS_COMPUTE_32F || compute == CUBLAS_COMPUTE_32F_FAST_TF32)
    return reference_gemm(handle, trans_a, trans_b, m, n, k, alpha_f, a, lda, stride_a, b, ldb, stride_b, beta_f, c,
                          ldc, stride_c, batch, [](float x) { return x; });
  if (compute == CUBLAS_COMPUTE_32F_FAST_16BF)
    return reference_gemm(handle, trans_a, trans_b, m, n, k, alpha_f, a, lda, stride_a, b, ldb, stride_b, beta_f, c,
                          ldc, stride_c, batch, [](float x) { return __bfloat162float(__float2bfloat16(x)); });
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
