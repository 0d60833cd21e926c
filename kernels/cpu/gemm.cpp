// kernels/cpu/gemm.cpp — row-major GEMM on the CPU: the engine's CPU matmul, Linear and im2col
// conv.
//
// C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C, blocked the way BLIS / GotoBLAS do it
// (Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication", TOMS 2008):
//
//   for each KC-deep slice of K:                     (so a packed panel stays in cache)
//     pack op(B)[slice, :] into NR-wide column panels (k-major: NR values per k, zero-padded)
//     for each MR-tall row panel of op(A) (split across OpenMP threads):
//       pack alpha · op(A)[panel, slice]              (k-major: MR values per k, zero-padded)
//       for each NR-wide panel of B: the micro-kernel adds the MR×NR block of A·B into C
//
// The micro-kernel keeps its MR×NR block of C in vector registers (GCC vector extensions, which
// become AVX2/FMA with -march=native and plain SSE otherwise) and does one rank-1 update per k:
// MR·NR multiply-adds per MR + NR loads. Packing makes every micro-kernel read unit-stride and lets
// transposed operands cost nothing extra.
//
// Determinism: every element of C is produced by exactly one thread, and its sum runs over k in the
// same order (KC slices in order, k ascending inside a slice) whatever the thread count, so results
// are bitwise reproducible.
#include <algorithm>
#include <cstring>
#include <vector>

#include <omp.h>

#include "kernels/gemm.h"

namespace fm::kernels {
namespace {

// Register block per type: MR rows × NR columns of C, NR = two 32-byte vectors. With 16 AVX2
// registers: 12 accumulators + 2 B vectors + 1 broadcast A value (the classic 6×16 float kernel).
template <typename T>
struct MicroTile;
template <>
struct MicroTile<float> {
  typedef float Vec __attribute__((vector_size(32)));
  static constexpr int kLanes = 8;
};
template <>
struct MicroTile<double> {
  typedef double Vec __attribute__((vector_size(32)));
  static constexpr int kLanes = 4;
};
constexpr int kMicroRows = 6;  // MR

// Cache blocking: a packed B slice (KC × NC) of 256 KiB fills about half of a 512 KiB per-core L2
// (the 2-core AMD EPYC machine this engine trains on; BLIS's rule of thumb leaves the other half
// for A, C and streaming); an A micro-panel (MR × KC, 6 KiB for float) stays in L1.
constexpr int kSliceDepth = 256;  // KC
template <typename T>
constexpr int slice_width() {  // NC: 256 floats or 128 doubles, a multiple of NR either way
  return int(256 * 1024 / (kSliceDepth * sizeof(T)));
}

// op(X)(row, col) for a row-major X with row stride ld, transposed or not.
template <typename T>
inline T element(const T* X, int ld, bool transposed, int row, int col) {
  return transposed ? X[std::size_t(col) * ld + row] : X[std::size_t(row) * ld + col];
}

// Packs op(B)[k0 : k0+kc, j0 : j0+NR] into b_panel[k * NR + j]; columns past N are zero.
template <typename T>
void pack_b_panel(const T* B, int ldb, bool trans_b, int k0, int kc, int j0, int N, T* b_panel) {
  constexpr int NR = 2 * MicroTile<T>::kLanes;
  const int cols = std::min(NR, N - j0);
  for (int k = 0; k < kc; ++k) {
    T* dst = b_panel + std::size_t(k) * NR;
    if (!trans_b) {
      const T* src = B + std::size_t(k0 + k) * ldb + j0;
      for (int j = 0; j < cols; ++j) dst[j] = src[j];
    } else {
      for (int j = 0; j < cols; ++j) dst[j] = B[std::size_t(j0 + j) * ldb + (k0 + k)];
    }
    for (int j = cols; j < NR; ++j) dst[j] = T(0);
  }
}

// Packs alpha · op(A)[i0 : i0+MR, k0 : k0+kc] into a_panel[k * MR + i]; rows past M are zero.
template <typename T>
void pack_a_panel(const T* A, int lda, bool trans_a, T alpha, int i0, int M, int k0, int kc,
                  T* a_panel) {
  const int rows = std::min(kMicroRows, M - i0);
  for (int k = 0; k < kc; ++k) {
    T* dst = a_panel + std::size_t(k) * kMicroRows;
    for (int i = 0; i < rows; ++i) dst[i] = alpha * element(A, lda, trans_a, i0 + i, k0 + k);
    for (int i = rows; i < kMicroRows; ++i) dst[i] = T(0);
  }
}

// C[0:rows, 0:cols] += a_panel · b_panel over kc steps (rows <= MR, cols <= NR; the packed
// panels are zero-padded, so the full MR×NR block is computed and only the valid part stored).
template <typename T>
void micro_kernel(int kc, const T* a_panel, const T* b_panel, T* C, int ldc, int rows, int cols) {
  using Vec = typename MicroTile<T>::Vec;
  constexpr int L = MicroTile<T>::kLanes;
  constexpr int NR = 2 * L;
  Vec acc[kMicroRows][2];
  for (int i = 0; i < kMicroRows; ++i) acc[i][0] = acc[i][1] = Vec{};
  for (int k = 0; k < kc; ++k) {
    Vec b0, b1;
    std::memcpy(&b0, b_panel + std::size_t(k) * NR, sizeof(Vec));  // unaligned vector loads
    std::memcpy(&b1, b_panel + std::size_t(k) * NR + L, sizeof(Vec));
    const T* a = a_panel + std::size_t(k) * kMicroRows;
#pragma GCC unroll 6
    for (int i = 0; i < kMicroRows; ++i) {
      acc[i][0] += a[i] * b0;  // scalar · vector broadcasts the scalar
      acc[i][1] += a[i] * b1;
    }
  }
  if (rows == kMicroRows && cols == NR) {
    for (int i = 0; i < kMicroRows; ++i) {
      T* c_row = C + std::size_t(i) * ldc;
      Vec c0, c1;
      std::memcpy(&c0, c_row, sizeof(Vec));
      std::memcpy(&c1, c_row + L, sizeof(Vec));
      c0 += acc[i][0];
      c1 += acc[i][1];
      std::memcpy(c_row, &c0, sizeof(Vec));
      std::memcpy(c_row + L, &c1, sizeof(Vec));
    }
  } else {
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) C[std::size_t(i) * ldc + j] += acc[i][j / L][j % L];
  }
}

}  // namespace

template <typename T>
void gemm_cpu(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
              const T* B, int ldb, T beta, T* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  constexpr int NR = 2 * MicroTile<T>::kLanes;
  constexpr int NC = slice_width<T>();
  // Threads pay off only for products of at least ~10^6 multiply-adds (~0.1 ms on one core);
  // below that, waking and joining them costs more than it saves.
  const bool parallel = std::int64_t(M) * N * std::max(K, 1) > (std::int64_t(1) << 20);
  const int max_threads = parallel ? omp_get_max_threads() : 1;

  const int row_panels = (M + kMicroRows - 1) / kMicroRows;
  const int nc_max = std::min(NC, (N + NR - 1) / NR * NR);
  std::vector<T> b_packed(std::size_t(kSliceDepth) * nc_max);

#pragma omp parallel num_threads(max_threads) if (parallel)
  {
    // beta · C first (beta == 0 overwrites, so NaN or garbage in C never leaks into the result).
#pragma omp for schedule(static)
    for (int i = 0; i < M; ++i) {
      T* c_row = C + std::size_t(i) * ldc;
      if (beta == T(0))
        std::fill(c_row, c_row + N, T(0));
      else if (beta != T(1))
        for (int j = 0; j < N; ++j) c_row[j] *= beta;
    }

    alignas(64) T a_panel[kMicroRows * kSliceDepth];
    const int threads = omp_get_num_threads();
    for (int j0 = 0; j0 < N; j0 += NC) {
      const int nc = std::min(NC, N - j0);
      const int col_panels = (nc + NR - 1) / NR;
      // When there are fewer row panels than threads (small M), also split the columns so that
      // every thread gets work; each (row panel, column chunk) is one work item.
      const int col_chunks =
          std::min(col_panels, std::max(1, (2 * threads + row_panels - 1) / row_panels));
      const int panels_per_chunk = (col_panels + col_chunks - 1) / col_chunks;
      for (int k0 = 0; k0 < K; k0 += kSliceDepth) {
        const int kc = std::min(kSliceDepth, K - k0);
        // Pack this slice of B together; the implicit barrier at the end of the `omp for` makes
        // the packed slice complete before anyone reads it.
#pragma omp for schedule(static)
        for (int jp = 0; jp < col_panels; ++jp) {
          pack_b_panel(B, ldb, trans_b, k0, kc, j0 + jp * NR, N,
                       b_packed.data() + std::size_t(jp) * kc * NR);
        }
        // Multiply; the implicit barrier at the end also keeps anyone from repacking B for the
        // next slice while another thread still reads this one.
#pragma omp for schedule(static)
        for (int item = 0; item < row_panels * col_chunks; ++item) {
          const int ip = item / col_chunks, chunk = item % col_chunks;
          const int i0 = ip * kMicroRows;
          pack_a_panel(A, lda, trans_a, alpha, i0, M, k0, kc, a_panel);
          const int jp_end = std::min(col_panels, (chunk + 1) * panels_per_chunk);
          for (int jp = chunk * panels_per_chunk; jp < jp_end; ++jp) {
            const int col = j0 + jp * NR;
            micro_kernel(kc, a_panel, b_packed.data() + std::size_t(jp) * kc * NR,
                         C + std::size_t(i0) * ldc + col, ldc, std::min(kMicroRows, M - i0),
                         std::min(NR, N - col));
          }
        }
      }
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
template void gemm_cpu<double>(bool, bool, int, int, int, double, const double*, int, const double*,
                               int, double, double*, int);
template void gemm_batched_cpu<float>(int, bool, bool, int, int, int, float, const float*, int,
                                      std::int64_t, const float*, int, std::int64_t, float, float*,
                                      int, std::int64_t);
template void gemm_batched_cpu<double>(int, bool, bool, int, int, int, double, const double*, int,
                                       std::int64_t, const double*, int, std::int64_t, double,
                                       double*, int, std::int64_t);

}  // namespace fm::kernels
