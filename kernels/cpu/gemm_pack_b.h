// kernels/cpu/gemm_pack_b.h — the CPU GEMM (kernels/cpu/gemm.cpp) with its B operand packed by the
// caller: C[M,N] = alpha · op(A) · B + beta · C, where B exists only as a function that writes the
// GEMM's packed panels.
//
// Why: the blocked GEMM copies every KC×NR block of B into a packed panel before multiplying. When
// B is itself a copy made for the GEMM — the im2col matrix of a convolution — the copy into col and
// the copy into the panel can be one: the convolution writes each panel straight from the image
// (kernels/cpu/conv2d_im2col.cpp), and the K×P col matrix is never written or read back.
//
// The packed layout the callback writes: panel[k·width + j] = B[k0 + k, j0 + j] for k < kc and
// j < cols, and 0 for cols ≤ j < width (width ≥ cols is one or two of the micro-kernel's vectors,
// gemm_packed_width in kernels/cpu/gemm_micro_kernel.h). Panels are packed concurrently by the
// GEMM's threads (each panel by one thread), so the callback must only read shared state.
//
// Results are bitwise those of gemm_cpu on the materialised B: the GEMM's summation order does not
// depend on how B is packed.
//
// Also here: the GEMM's cut of K into slices (gemm_slice_count, gemm_slice_begin), shared with code
// that must sum as the GEMM sums.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fm::kernels {

// The deepest K slice the GEMM packs at once: pack callbacks get kc ≤ this.
constexpr int kGemmMaxSliceDepth = 320;

// K is cut into ceil(K / kGemmMaxSliceDepth) slices of (nearly) equal depth (kernels/cpu/gemm.cpp
// says why). A C element is C + acc(slice 0) + acc(slice 1) + ..., each acc summed from zero over
// its slice, so code that must match the GEMM bit for bit (the fused MLP's layer kernel,
// kernels/cpu/mlp_layer_kernel.h) cuts K with these same two functions. The cut depends on K only.
// Always inlined, as everything in a header that the AVX-512 copies include (kernels/cpu/fast_exp.h
// says why).
[[gnu::always_inline]] inline int gemm_slice_count(int K) { return K > kGemmMaxSliceDepth ? (K + kGemmMaxSliceDepth - 1) / kGemmMaxSliceDepth : 1; }
[[gnu::always_inline]] inline int gemm_slice_begin(int K, int slice) { return int(std::int64_t(K) * slice / gemm_slice_count(K)); }

template <typename T>
struct GemmPackB {
  void (*pack)(const void* context, int k0, int kc, int j0, int cols, int width, T* panel);
  const void* context;  // handed to pack unchanged
};

template <typename T>
void gemm_cpu_pack_b(bool trans_a, int M, int N, int K, T alpha, const T* A, int lda,
                     const GemmPackB<T>& b, T beta, T* C, int ldc);

// dst[c·dst_stride + r] = alpha · src[r·src_stride + c] for an 8×8 block of floats (the GEMM's
// packing and the convolution's packers use it): eight vector loads, the classic three rounds of
// shuffles (pairs of floats, pairs of pairs, 128-bit halves), eight vector stores. Packing a panel against the grain of its rows (A not transposed, B
// transposed) is such a transpose; one element at a time it cost as much as the multiply for the
// conv's weight-gradient GEMM (M = 32 rows share each packed B).
inline void transpose_8x8(const float* src, std::size_t src_stride, float alpha, float* dst,
                          std::size_t dst_stride) {
  typedef float V8 __attribute__((vector_size(32)));
  // Unaligned vector loads and stores. Not memcpy into the arrays below: GCC then copies through
  // the stack in 16-byte halves and each 32-byte reload stalls on store forwarding.
  typedef float V8Unaligned __attribute__((vector_size(32), aligned(4), may_alias));
  V8 r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i)
    r[i] = alpha * *reinterpret_cast<const V8Unaligned*>(src + i * src_stride);
  for (int i = 0; i < 8; i += 2) {  // interleave rows 2i, 2i+1
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 8; i += 4) {  // then pairs of those
    u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 1] = __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[i + 2] = __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 3] = __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int i = 0; i < 4; ++i) {  // then 128-bit halves: column i and column i + 4
    const V8 low = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    const V8 high = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    *reinterpret_cast<V8Unaligned*>(dst + i * dst_stride) = low;
    *reinterpret_cast<V8Unaligned*>(dst + (i + 4) * dst_stride) = high;
  }
}

}  // namespace fm::kernels
