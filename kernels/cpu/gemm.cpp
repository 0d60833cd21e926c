// kernels/cpu/gemm.cpp — row-major GEMM on the CPU.
//
// The loop order is i-k-j: the innermost loop walks a row of B and a row of C with unit stride, which
// the compiler vectorises. Transposed operands are read through index arithmetic; rows of C are
// split across OpenMP threads (each C element is written by one thread, so results do not depend on
// the thread count's scheduling).
#include <vector>

#include "kernels/gemm.h"

namespace fm::kernels {

template <typename T>
void gemm_cpu(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
              const T* B, int ldb, T beta, T* C, int ldc) {
  // When B is transposed, copy it once into row-major [K, N] so the inner loop stays unit-stride.
  std::vector<T> b_copy;
  const T* b_rows = B;
  int b_ld = ldb;
  if (trans_b) {
    b_copy.resize(std::size_t(K) * N);
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < K; ++k) b_copy[std::size_t(k) * N + n] = B[std::size_t(n) * ldb + k];
    b_rows = b_copy.data();
    b_ld = N;
  }
#pragma omp parallel for schedule(static) if (std::int64_t(M) * N * K > 32768)
  for (int i = 0; i < M; ++i) {
    T* c_row = C + std::size_t(i) * ldc;
    if (beta == T(0)) {
      for (int j = 0; j < N; ++j) c_row[j] = T(0);
    } else if (beta != T(1)) {
      for (int j = 0; j < N; ++j) c_row[j] *= beta;
    }
    for (int k = 0; k < K; ++k) {
      T a_ik = trans_a ? A[std::size_t(k) * lda + i] : A[std::size_t(i) * lda + k];
      T scaled = alpha * a_ik;
      const T* b_row = b_rows + std::size_t(k) * b_ld;
      for (int j = 0; j < N; ++j) c_row[j] += scaled * b_row[j];
    }
  }
}

template <typename T>
void gemm_batched_cpu(int batch, bool trans_a, bool trans_b, int M, int N, int K, T alpha,
                      const T* A, int lda, std::int64_t stride_a, const T* B, int ldb,
                      std::int64_t stride_b, T beta, T* C, int ldc, std::int64_t stride_c) {
  for (int b = 0; b < batch; ++b)
    gemm_cpu(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b, ldb, beta,
             C + b * stride_c, ldc);
}

template void gemm_cpu<float>(bool, bool, int, int, int, float, const float*, int, const float*,
                              int, float, float*, int);
template void gemm_cpu<double>(bool, bool, int, int, int, double, const double*, int,
                               const double*, int, double, double*, int);
template void gemm_batched_cpu<float>(int, bool, bool, int, int, int, float, const float*, int,
                                      std::int64_t, const float*, int, std::int64_t, float, float*,
                                      int, std::int64_t);
template void gemm_batched_cpu<double>(int, bool, bool, int, int, int, double, const double*, int,
                                       std::int64_t, const double*, int, std::int64_t, double,
                                       double*, int, std::int64_t);

}  // namespace fm::kernels
