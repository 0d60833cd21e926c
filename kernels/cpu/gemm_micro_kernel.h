// kernels/cpu/gemm_micro_kernel.h — the register-blocked inner loop of the CPU GEMM
// (kernels/cpu/gemm.cpp), written once for any vector width.
//
// A micro-kernel adds the product of a packed MR×kc panel of A and a packed kc×NR panel of B into
// an MR×NR block of C, keeping that block in vector registers for the whole kc loop: one rank-1
// update per k, MR·NR multiply-adds for MR + NR loads. Two copies are compiled from this source:
//   portable (gemm.cpp, x86-64-v3):   32-byte vectors, 6×16 floats / 6×8 doubles: 12 of the 16
//                                      AVX2 registers hold C
//   AVX-512 (gemm_avx512.cpp, x86-64-v4): 64-byte vectors, 8×32 floats / 8×16 doubles: 16 of the 32
//                                      zmm registers hold C. MR = 8 divides the U-Net's channel
//                                      counts (16, 32, 288), which 6, 12 or 14 would not.
// Both copies compute every C element the same way: acc = 0, then acc = a·b + acc for k ascending
// (one FMA each where the build has FMA), then C += acc, or C = acc + 0 for the first K slice of
// a product with beta = 0 (`overwrite`: no zero-fill of C beforehand, bitwise the same as
// 0 + acc, and garbage or NaN in C never leaks in). So they give bitwise the same results.
// They are distinct template instantiations (32- vs 64-byte vectors): the linker, which keeps one
// copy of each inline instantiation, can never hand the portable path a copy compiled for AVX-512.
// Keep it so: instantiate the 64-byte versions only in gemm_avx512.cpp.
#pragma once
#include <cstring>

#include "kernels/cpu/cpu_isa.h"

namespace fm::kernels {

template <typename T, int kVecBytes>
struct GemmVector {
  typedef T type __attribute__((vector_size(kVecBytes)));
  static constexpr int kLanes = kVecBytes / int(sizeof(T));
};

// C[0:rows, 0:cols] += a_panel · b_panel (or = when overwrite), with a_panel[k·MR + i] and
// b_panel[k·kUsed·L + j] (packed and zero-padded by the caller), L the lanes of one vector. kUsed = 2
// for the full NR-wide block; a panel of at most one vector's width (N = 8, the last one of N = 196
// or 784) is packed one vector wide (gemm_packed_width) and multiplied with kUsed = 1, paying for no
// zero columns.
template <typename T, int kVecBytes, int MR, int kUsed>
inline void gemm_micro_tile(int kc, const T* a_panel, const T* b_panel, T* C, int ldc, int rows,
                            int cols, bool overwrite) {
  using Vec = typename GemmVector<T, kVecBytes>::type;
  constexpr int L = GemmVector<T, kVecBytes>::kLanes;
  Vec acc[MR][kUsed];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < kUsed; ++v) acc[i][v] = Vec{};
  for (int k = 0; k < kc; ++k) {
    Vec b[kUsed];
    for (int v = 0; v < kUsed; ++v)  // unaligned vector loads
      std::memcpy(&b[v], b_panel + std::size_t(k) * kUsed * L + v * L, sizeof(Vec));
    const T* a = a_panel + std::size_t(k) * MR;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < kUsed; ++v) acc[i][v] += a[i] * b[v];  // scalar · vector broadcasts
  }
  // overwrite: C = acc + 0, which is 0 + acc (what a zero-filled C would give) bit for bit: the
  // compiler must keep the add (it turns a −0 into +0), and it costs nothing next to the loads.
  if (rows == MR && cols == kUsed * L) {
    if (overwrite) {
      for (int i = 0; i < MR; ++i)
        for (int v = 0; v < kUsed; ++v) {
          const Vec sum = acc[i][v] + T(0);
          std::memcpy(C + std::size_t(i) * ldc + v * L, &sum, sizeof(Vec));
        }
    } else {
      for (int i = 0; i < MR; ++i)
        for (int v = 0; v < kUsed; ++v) {
          T* c = C + std::size_t(i) * ldc + v * L;
          Vec sum;
          std::memcpy(&sum, c, sizeof(Vec));
          sum += acc[i][v];
          std::memcpy(c, &sum, sizeof(Vec));
        }
    }
  } else if (overwrite) {
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) C[std::size_t(i) * ldc + j] = acc[i][j / L][j % L] + T(0);
  } else {
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) C[std::size_t(i) * ldc + j] += acc[i][j / L][j % L];
  }
}

// The row width a B panel with `cols` valid columns is packed at: NR = two vectors, or one vector
// (NR / 2) when that holds them all.
inline int gemm_packed_width(int NR, int cols) { return cols <= NR / 2 ? NR / 2 : NR; }

template <typename T, int kVecBytes, int MR, int NR>
void gemm_micro_kernel(int kc, const T* a_panel, const T* b_panel, T* C, int ldc, int rows,
                       int cols, bool overwrite) {
  constexpr int L = GemmVector<T, kVecBytes>::kLanes;
  static_assert(NR == 2 * L, "a micro-kernel block row is two vectors wide");
  if (gemm_packed_width(NR, cols) == L)
    gemm_micro_tile<T, kVecBytes, MR, 1>(kc, a_panel, b_panel, C, ldc, rows, cols, overwrite);
  else
    gemm_micro_tile<T, kVecBytes, MR, 2>(kc, a_panel, b_panel, C, ldc, rows, cols, overwrite);
}

// The AVX-512 copy's block (kernels/cpu/gemm_avx512.cpp) and its entry points. Call them only when
// kernels/cpu/cpu_isa.h says the AVX-512 copies run: elsewhere they stop the process with an illegal
// instruction.
constexpr int kAvx512GemmRows = 8;
template <typename T>
constexpr int avx512_gemm_cols() {
  return 2 * 64 / int(sizeof(T));
}
void gemm_micro_kernel_avx512(int kc, const float* a_panel, const float* b_panel, float* C, int ldc,
                              int rows, int cols, bool overwrite);
void gemm_micro_kernel_avx512(int kc, const double* a_panel, const double* b_panel, double* C,
                              int ldc, int rows, int cols, bool overwrite);

// gemm_cpu (kernels/gemm.h) with the copy named, instead of cpu_isa()'s choice: lets the tests run
// both copies in one process and compare them. isa must be Portable or cpu_isa().
template <typename T>
void gemm_cpu_on(CpuIsa isa, bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A,
                 int lda, const T* B, int ldb, T beta, T* C, int ldc);

}  // namespace fm::kernels
