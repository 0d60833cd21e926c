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
//         (stores it, for the first slice of a beta = 0 product: C is never zero-filled first)
//
// B's panels come from pack_b_panel for a matrix B (gemm_cpu), or from a caller's packing function
// (gemm_cpu_pack_b, kernels/cpu/gemm_pack_b.h: the convolution packs im2col panels straight from the
// image).
//
// The micro-kernel (kernels/cpu/gemm_micro_kernel.h) keeps its MR×NR block of C in vector registers
// and does one rank-1 update per k. It comes in two copies, picked at run time by
// kernels/cpu/cpu_isa.h: the portable one compiled here (AVX2 + FMA in the default x86-64-v3 build:
// 6×16 floats) and an AVX-512 one (kernels/cpu/gemm_avx512.cpp: 8×32 floats). Packing makes every
// micro-kernel read unit-stride and lets transposed operands cost nothing extra.
//
// Determinism: every element of C is produced by exactly one thread, and its sum runs over k in the
// same order (KC slices in order, k ascending inside a slice) whatever the thread count, so results
// are bitwise reproducible. The slices depend on K alone, not on the copy, so the portable (with FMA)
// and AVX-512 copies give bitwise the same C too; a build without FMA (plain x86-64) rounds each
// product separately and differs from them in the last bits.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include <omp.h>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/gemm_micro_kernel.h"
#include "kernels/cpu/gemm_pack_b.h"
#include "kernels/gemm.h"

namespace fm::kernels {
namespace {

// The portable copy's block: MR rows × NR columns of C, NR = two 32-byte vectors. With 16 AVX2
// registers: 12 accumulators + 2 B vectors + 1 broadcast A value (the classic 6×16 float kernel).
constexpr int kPortableRows = 6;
template <typename T>
constexpr int portable_cols() {
  return 2 * 32 / int(sizeof(T));
}

// K is cut into ceil(K / kMaxSliceDepth) slices of (nearly) equal depth: a packed A micro-panel
// (8 × 320 floats, 10 KiB) stays in L1, and no slice is left a few k deep (K = 288 is one slice,
// 784 is 3 × 261/262, not 3 × 256 + 16) — a thin slice costs a full read and write of C for little
// work. The cut depends on K only (see Determinism above).
constexpr int kMaxSliceDepth = kGemmMaxSliceDepth;  // kernels/cpu/gemm_pack_b.h
// gemm_slice_count and gemm_slice_begin (kernels/cpu/gemm_pack_b.h) make the cut.

// NC: the columns of one packed B slice (KC × NC), about half of a core's L2 so that A, C and the
// streaming have the other half: 256 KiB for the portable copy (512 KiB L2 on the AMD EPYC this
// engine was first tuned on), 1 MiB for the AVX-512 copy (every AVX-512 Xeon has 1–2 MiB of L2 per
// core). A multiple of NR. It does not change results.
template <typename T>
int slice_width(int bytes, int NR) {
  return std::max(NR, bytes / int(kMaxSliceDepth * sizeof(T)) / NR * NR);
}

// Packs op(B)[k0 : k0+kc, j0 : j0+cols] into b_panel[k * width + j], width =
// gemm_packed_width(NR, cols) (one vector when the valid columns fit in one); columns past cols are
// zero.
template <typename T>
void pack_b_panel(const T* B, int ldb, bool trans_b, int k0, int kc, int j0, int cols, int width,
                  T* b_panel) {
  if (!trans_b) {
    // A full panel of two or one 64-byte vectors per row (the AVX-512 copy's widths): a
    // fixed-size row copy that the compiler turns into a few vector moves.
    if (cols == width) {
      if (width == 2 * 64 / int(sizeof(T))) {
        for (int k = 0; k < kc; ++k)
          std::memcpy(b_panel + std::size_t(k) * width, B + std::size_t(k0 + k) * ldb + j0, 128);
        return;
      }
      if (width == 64 / int(sizeof(T))) {
        for (int k = 0; k < kc; ++k)
          std::memcpy(b_panel + std::size_t(k) * width, B + std::size_t(k0 + k) * ldb + j0, 64);
        return;
      }
    }
    for (int k = 0; k < kc; ++k) {
      T* dst = b_panel + std::size_t(k) * width;
      const T* src = B + std::size_t(k0 + k) * ldb + j0;
      for (int j = 0; j < cols; ++j) dst[j] = src[j];
      for (int j = cols; j < width; ++j) dst[j] = T(0);
    }
  } else {
    // Column j of op(B) is row j0 + j of B: read each one along k (unit stride), float in 8×8
    // transposed blocks, the rest (and double, the gradcheck type) one element at a time.
    int j_done = 0;
    if constexpr (std::is_same_v<T, float>) {
      for (; j_done + 8 <= cols; j_done += 8) {
        const T* src = B + std::size_t(j0 + j_done) * ldb + k0;
        int k = 0;
        for (; k + 8 <= kc; k += 8)
          transpose_8x8(src + k, ldb, 1.0f, b_panel + std::size_t(k) * width + j_done, width);
        for (; k < kc; ++k)
          for (int j = 0; j < 8; ++j)
            b_panel[std::size_t(k) * width + j_done + j] = src[std::size_t(j) * ldb + k];
      }
    }
    for (int j = j_done; j < cols; ++j) {
      const T* src = B + std::size_t(j0 + j) * ldb + k0;
      for (int k = 0; k < kc; ++k) b_panel[std::size_t(k) * width + j] = src[k];
    }
    if (cols < width)
      for (int k = 0; k < kc; ++k)
        for (int j = cols; j < width; ++j) b_panel[std::size_t(k) * width + j] = T(0);
  }
}

// Packs alpha · op(A)[i0 : i0+MR, k0 : k0+kc] into a_panel[k * MR + i]; rows past M are zero.
template <typename T, int MR>
void pack_a_panel(const T* A, int lda, bool trans_a, T alpha, int i0, int M, int k0, int kc,
                  T* a_panel) {
  const int rows = std::min(MR, M - i0);
  if (trans_a) {  // op(A)[i, k] = A[k, i]: MR consecutive values per k
    for (int k = 0; k < kc; ++k) {
      T* dst = a_panel + std::size_t(k) * MR;
      const T* src = A + std::size_t(k0 + k) * lda + i0;
      for (int i = 0; i < rows; ++i) dst[i] = alpha * src[i];
      for (int i = rows; i < MR; ++i) dst[i] = T(0);
    }
  } else {  // row i0 + i of A, read along k (unit stride)
    if constexpr (std::is_same_v<T, float> && MR == 8) {  // 8×8 transposed blocks while they fit
      if (rows == MR) {
        const T* src = A + std::size_t(i0) * lda + k0;
        int k = 0;
        for (; k + 8 <= kc; k += 8)
          transpose_8x8(src + k, lda, alpha, a_panel + std::size_t(k) * MR, MR);
        for (; k < kc; ++k)
          for (int i = 0; i < MR; ++i)
            a_panel[std::size_t(k) * MR + i] = alpha * src[std::size_t(i) * lda + k];
        return;
      }
    }
    for (int i = 0; i < rows; ++i) {
      const T* src = A + std::size_t(i0 + i) * lda + k0;
      for (int k = 0; k < kc; ++k) a_panel[std::size_t(k) * MR + i] = alpha * src[k];
    }
    for (int k = 0; k < kc; ++k)
      for (int i = rows; i < MR; ++i) a_panel[std::size_t(k) * MR + i] = T(0);
  }
}

template <typename T>
using MicroKernel = void (*)(int kc, const T* a_panel, const T* b_panel, T* C, int ldc, int rows,
                             int cols, bool overwrite);

// The packed B slice, kept per calling thread between calls (no allocation or zero-fill per GEMM:
// the conv calls one GEMM per image). The whole team of a parallel GEMM shares the caller's.
template <typename T>
T* b_slice_buffer(std::size_t size) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < size) buffer.resize(size);
  return buffer.data();
}

// The blocked GEMM around one micro-kernel with an MR×NR block. pack_b(k0, kc, j0, cols, width,
// panel) packs op(B)[k0 : k0+kc, j0 : j0+cols] (pack_b_panel for a matrix B; the convolution packs
// straight from the image, see kernels/cpu/gemm_pack_b.h).
template <typename T, int MR, int NR, typename PackB>
void gemm_blocked(MicroKernel<T> micro_kernel, int slice_bytes, bool trans_a, int M, int N, int K,
                  T alpha, const T* A, int lda, const PackB& pack_b, T beta, T* C, int ldc) {
  const int NC = slice_width<T>(slice_bytes, NR);
  // Threads pay off only for products of at least ~10^6 multiply-adds (~0.1 ms on one core);
  // below that, waking and joining them costs more than it saves.
  const bool parallel = std::int64_t(M) * N * std::max(K, 1) > (std::int64_t(1) << 20);
  const int max_threads = parallel ? omp_get_max_threads() : 1;

  const int row_panels = (M + MR - 1) / MR;
  const int nc_max = std::min(NC, (N + NR - 1) / NR * NR);
  T* b_packed = b_slice_buffer<T>(std::size_t(std::min(K, kMaxSliceDepth)) * nc_max);
  const int slices = K > 0 ? gemm_slice_count(K) : 0;

#pragma omp parallel num_threads(max_threads) if (parallel)
  {
    // beta · C first. beta == 0 needs no pass: the first K slice's micro-kernels overwrite C (so
    // NaN or garbage in C never leaks into the result), unless K == 0 leaves nothing to write.
    if (beta != T(1) && (beta != T(0) || slices == 0)) {
#pragma omp for schedule(static)
      for (int i = 0; i < M; ++i) {
        T* c_row = C + std::size_t(i) * ldc;
        if (beta == T(0))
          std::fill(c_row, c_row + N, T(0));
        else
          for (int j = 0; j < N; ++j) c_row[j] *= beta;
      }
    }

    alignas(64) T a_panel[MR * kMaxSliceDepth];
    const int threads = omp_get_num_threads();
    for (int j0 = 0; j0 < N; j0 += NC) {
      const int nc = std::min(NC, N - j0);
      const int col_panels = (nc + NR - 1) / NR;
      // When there are fewer row panels than threads (small M), also split the columns so that
      // every thread gets work; each (row panel, column chunk) is one work item.
      const int col_chunks =
          std::min(col_panels, std::max(1, (2 * threads + row_panels - 1) / row_panels));
      const int panels_per_chunk = (col_panels + col_chunks - 1) / col_chunks;
      for (int slice = 0; slice < slices; ++slice) {
        const int k0 = gemm_slice_begin(K, slice), kc = gemm_slice_begin(K, slice + 1) - k0;
        // Pack this slice of B together; the implicit barrier at the end of the `omp for` makes
        // the packed slice complete before anyone reads it.
#pragma omp for schedule(static)
        for (int jp = 0; jp < col_panels; ++jp) {
          const int col = j0 + jp * NR, cols = std::min(NR, N - col);
          pack_b(k0, kc, col, cols, gemm_packed_width(NR, cols),
                 b_packed + std::size_t(jp) * kc * NR);
        }
        // Multiply; the implicit barrier at the end also keeps anyone from repacking B for the
        // next slice while another thread still reads this one.
        const bool overwrite = beta == T(0) && slice == 0;
#pragma omp for schedule(static)
        for (int item = 0; item < row_panels * col_chunks; ++item) {
          const int ip = item / col_chunks, chunk = item % col_chunks;
          const int i0 = ip * MR;
          pack_a_panel<T, MR>(A, lda, trans_a, alpha, i0, M, k0, kc, a_panel);
          const int jp_end = std::min(col_panels, (chunk + 1) * panels_per_chunk);
          for (int jp = chunk * panels_per_chunk; jp < jp_end; ++jp) {
            const int col = j0 + jp * NR;
            micro_kernel(kc, a_panel, b_packed + std::size_t(jp) * kc * NR,
                         C + std::size_t(i0) * ldc + col, ldc, std::min(MR, M - i0),
                         std::min(NR, N - col), overwrite);
          }
        }
      }
    }
  }
}

// gemm_blocked with the micro-kernel copy `isa` names.
template <typename T, typename PackB>
void gemm_on_copy(CpuIsa isa, bool trans_a, int M, int N, int K, T alpha, const T* A, int lda,
                  const PackB& pack_b, T beta, T* C, int ldc) {
  if (isa == CpuIsa::Avx512) {
    constexpr int NR = avx512_gemm_cols<T>();
    gemm_blocked<T, kAvx512GemmRows, NR>(gemm_micro_kernel_avx512, 1 << 20, trans_a, M, N, K,
                                         alpha, A, lda, pack_b, beta, C, ldc);
  } else {
    constexpr int NR = portable_cols<T>();
    gemm_blocked<T, kPortableRows, NR>(gemm_micro_kernel<T, 32, kPortableRows, NR>, 256 << 10,
                                       trans_a, M, N, K, alpha, A, lda, pack_b, beta, C, ldc);
  }
}

}  // namespace

template <typename T>
void gemm_cpu_on(CpuIsa isa, bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A,
                 int lda, const T* B, int ldb, T beta, T* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  const auto pack_matrix = [=](int k0, int kc, int j0, int cols, int width, T* panel) {
    pack_b_panel<T>(B, ldb, trans_b, k0, kc, j0, cols, width, panel);
  };
  gemm_on_copy<T>(isa, trans_a, M, N, K, alpha, A, lda, pack_matrix, beta, C, ldc);
}

template <typename T>
void gemm_cpu_pack_b(bool trans_a, int M, int N, int K, T alpha, const T* A, int lda,
                     const GemmPackB<T>& b, T beta, T* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  const auto pack_source = [&b](int k0, int kc, int j0, int cols, int width, T* panel) {
    b.pack(b.context, k0, kc, j0, cols, width, panel);
  };
  gemm_on_copy<T>(cpu_isa(), trans_a, M, N, K, alpha, A, lda, pack_source, beta, C, ldc);
}

template <typename T>
void gemm_cpu(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
              const T* B, int ldb, T beta, T* C, int ldc) {
  gemm_cpu_on<T>(cpu_isa(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <typename T>
void gemm_batched_cpu(int batch, bool trans_a, bool trans_b, int M, int N, int K, T alpha,
                      const T* A, int lda, std::int64_t stride_a, const T* B, int ldb,
                      std::int64_t stride_b, T beta, T* C, int ldc, std::int64_t stride_c) {
  for (int b = 0; b < batch; ++b)
    gemm_cpu(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda, B + b * stride_b, ldb, beta,
             C + b * stride_c, ldc);
}

namespace {
// The `rows` × `cols` matrix at `p` with row stride `ld`, widened to float with the same layout (its
// last row only as long as the matrix): gemm_cpu then sees the float operand it would have seen.
template <typename T>
std::vector<float> widened_matrix(const T* p, int rows, int cols, int ld) {
  if (rows == 0 || cols == 0) return {};
  std::vector<float> out(std::size_t(rows - 1) * std::size_t(ld) + std::size_t(cols));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = float(p[i]);
  return out;
}
}  // namespace

template <typename TA, typename TB, typename TC>
void gemm_batched_mixed_cpu(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const TA* A,
                            int lda, std::int64_t stride_a, const TB* B, int ldb, std::int64_t stride_b, float beta,
                            TC* C, int ldc, std::int64_t stride_c) {
  // A shared B (stride 0: a weight under a batch of inputs) is widened once.
  std::vector<float> shared_b;
  if (stride_b == 0) shared_b = widened_matrix(B, trans_b ? N : K, trans_b ? K : N, ldb);
  for (int b = 0; b < batch; ++b) {
    const std::vector<float> a = widened_matrix(A + b * stride_a, trans_a ? K : M, trans_a ? M : K, lda);
    std::vector<float> own_b;
    if (stride_b != 0) own_b = widened_matrix(B + b * stride_b, trans_b ? N : K, trans_b ? K : N, ldb);
    const float* b_data = stride_b == 0 ? shared_b.data() : own_b.data();
    TC* c_entry = C + b * stride_c;
    std::vector<float> c = beta != 0.f ? widened_matrix(c_entry, M, N, ldc)
                                       : std::vector<float>(M > 0 && N > 0 ? std::size_t(M - 1) * ldc + N : 0);
    if (c.empty()) continue;
    gemm_cpu<float>(trans_a, trans_b, M, N, K, alpha, a.data(), lda, b_data, ldb, beta, c.data(), ldc);
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) c_entry[std::int64_t(i) * ldc + j] = TC(c[std::size_t(i) * ldc + j]);
  }
}

template void gemm_batched_mixed_cpu<bf16, float, bf16>(int, bool, bool, int, int, int, float, const bf16*, int,
                                                        std::int64_t, const float*, int, std::int64_t, float, bf16*,
                                                        int, std::int64_t);
template void gemm_batched_mixed_cpu<bf16, bf16, float>(int, bool, bool, int, int, int, float, const bf16*, int,
                                                        std::int64_t, const bf16*, int, std::int64_t, float, float*,
                                                        int, std::int64_t);
template void gemm_batched_mixed_cpu<bf16, bf16, bf16>(int, bool, bool, int, int, int, float, const bf16*, int,
                                                       std::int64_t, const bf16*, int, std::int64_t, float, bf16*,
                                                       int, std::int64_t);

template void gemm_cpu_on<float>(CpuIsa, bool, bool, int, int, int, float, const float*, int,
                                 const float*, int, float, float*, int);
template void gemm_cpu_on<double>(CpuIsa, bool, bool, int, int, int, double, const double*, int,
                                  const double*, int, double, double*, int);
template void gemm_cpu_pack_b<float>(bool, int, int, int, float, const float*, int,
                                     const GemmPackB<float>&, float, float*, int);
template void gemm_cpu_pack_b<double>(bool, int, int, int, double, const double*, int,
                                      const GemmPackB<double>&, double, double*, int);
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
