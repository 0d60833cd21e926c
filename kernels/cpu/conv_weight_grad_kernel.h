// kernels/cpu/conv_weight_grad_kernel.h — the weight gradient of a stride-1 "same" convolution (the
// U-Net's 3×3, padding 1; and, over phase planes, of a stride-2 one: PaddedLayout in
// kernels/cpu/conv2d_im2col.cpp) as dot products along the pixels, written once for any vector width and
// compiled twice: portable (kernels/cpu/conv_kernels.cpp, 32-byte vectors) and AVX-512
// (kernels/cpu/conv_kernels_avx512.cpp, 64-byte vectors); kernels/cpu/cpu_isa.h picks one.
//
//   dW[o, c, r, s] = Σ_n Σ_{i, j} dy[n, o, i, j] · x[n, c, i + r − ph, j + s − pw]
//
// The caller (kernels/cpu/conv2d_im2col.cpp) lays each image out so that this needs no im2col:
//   x_padded: every channel plane zero-padded to Hp × Wp (Wp = W + 2·pw, Hp = H + 2·ph);
//   dy_wide:  every dy plane written at the same row width Wp, the Wp − W extra columns zero.
// Output position t = i·Wp + j then reads, for tap (c, r, s), padded plane c at t + r·Wp + s: every
// tap is the same stretch of t shifted by a constant (tap_offsets), so a gradient entry is the dot
// product of a dy row with a shifted x row. A block of CO output channels × KT taps keeps CO·KT
// vector accumulators: per step along t, CO dy loads and KT x loads feed CO·KT multiply-adds, with
// no packing and no transposes (the GEMM formulation packs colᵀ, an 8×8 transpose per 64 values).
// The extra columns and the tail up to a whole vector are zero in dy_wide, so what the shifted x
// reads there (the next row's padding or pixels) is multiplied by zero.
//
// Determinism: every entry is one thread's sum, images of the chunk in order, t ascending in each
// vector lane, then the lanes added in a fixed tree; the blocks depend on the shapes only. The two
// copies split t into different lane counts, so they differ in the last bits from each other (as
// cpu_isa.h allows), not from run to run.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/cpu/gemm_micro_kernel.h"

namespace fm::kernels {

template <typename T>
struct WeightGradDots {
  const T* dy_wide;                  // [images][out_channels][positions]
  const T* x_padded;                 // [images][image_stride], planes at c · plane_stride
  const std::int64_t* tap_offsets;   // [taps]: c · plane_stride + r · Wp + s
  std::int64_t dy_image_stride, x_image_stride;
  int images, out_channels, taps;
  int positions;                     // dy_wide's row length: a multiple of 64 bytes' worth of T
  T* dweight;                        // [out_channels][taps], overwritten
};

// Adds the lanes of v pairwise (lane i + half onto lane i, halving): a fixed order.
template <typename T, typename Vec, int L>
inline T sum_of_lanes(const Vec& v) {
  T lanes[L];
  std::memcpy(lanes, &v, sizeof(Vec));
  for (int half = L / 2; half >= 1; half /= 2)
    for (int i = 0; i < half; ++i) lanes[i] += lanes[i + half];
  return lanes[0];
}

// dweight[o0 .. o0+CO, k0 .. k0+KT] = the dot products over every image and position.
template <typename T, int kVecBytes, int CO, int KT>
inline void weight_grad_block(const WeightGradDots<T>& a, int o0, int k0) {
  using Vec = typename GemmVector<T, kVecBytes>::type;
  constexpr int L = GemmVector<T, kVecBytes>::kLanes;
  Vec acc[CO][KT];
  for (int c = 0; c < CO; ++c)
    for (int j = 0; j < KT; ++j) acc[c][j] = Vec{};
  for (int n = 0; n < a.images; ++n) {
    const T* dy = a.dy_wide + n * a.dy_image_stride + std::int64_t(o0) * a.positions;
    const T* x = a.x_padded + n * a.x_image_stride;
    const T* taps[KT];
    for (int j = 0; j < KT; ++j) taps[j] = x + a.tap_offsets[k0 + j];
    for (int t = 0; t < a.positions; t += L) {
      Vec d[CO];
      for (int c = 0; c < CO; ++c) std::memcpy(&d[c], dy + std::int64_t(c) * a.positions + t, sizeof(Vec));
#pragma GCC unroll 8
      for (int j = 0; j < KT; ++j) {
        Vec v;
        std::memcpy(&v, taps[j] + t, sizeof(Vec));  // unaligned: the shifts are any number of T
        for (int c = 0; c < CO; ++c) acc[c][j] += d[c] * v;
      }
    }
  }
  for (int c = 0; c < CO; ++c)
    for (int j = 0; j < KT; ++j)
      a.dweight[std::int64_t(o0 + c) * a.taps + k0 + j] = sum_of_lanes<T, Vec, L>(acc[c][j]);
}

// Every block of CO × KT, the edges in narrower blocks (one output channel, or one tap, at a time).
template <typename T, int kVecBytes, int CO, int KT>
void weight_grad_dot_products(const WeightGradDots<T>& a) {
  const int full_rows = a.out_channels / CO * CO, full_cols = a.taps / KT * KT;
  for (int o0 = 0; o0 < full_rows; o0 += CO) {
    for (int k0 = 0; k0 < full_cols; k0 += KT) weight_grad_block<T, kVecBytes, CO, KT>(a, o0, k0);
    for (int k0 = full_cols; k0 < a.taps; ++k0) weight_grad_block<T, kVecBytes, CO, 1>(a, o0, k0);
  }
  for (int o0 = full_rows; o0 < a.out_channels; ++o0) {
    for (int k0 = 0; k0 < full_cols; k0 += KT) weight_grad_block<T, kVecBytes, 1, KT>(a, o0, k0);
    for (int k0 = full_cols; k0 < a.taps; ++k0) weight_grad_block<T, kVecBytes, 1, 1>(a, o0, k0);
  }
}

// The two copies' entry points. Call the AVX-512 one only when cpu_isa.h says it runs.
void weight_grad_dot_products_portable(const WeightGradDots<float>& a);
void weight_grad_dot_products_portable(const WeightGradDots<double>& a);
void weight_grad_dot_products_avx512(const WeightGradDots<float>& a);
void weight_grad_dot_products_avx512(const WeightGradDots<double>& a);

}  // namespace fm::kernels
