// kernels/cpu/conv_forward_kernel.h — the forward pass of a stride-1 "same" convolution (the U-Net's
// 3×3, padding 1, and through the flipped kernel its input gradient; over phase planes also the
// stride-2 ones and their input gradient, see PaddedLayout in kernels/cpu/conv2d_im2col.cpp) read
// straight from a padded image, written once for any vector width and compiled twice like the weight gradient's dot
// products (kernels/cpu/conv_weight_grad_kernel.h, whose layout it shares): portable
// (kernels/cpu/conv_kernels.cpp) and AVX-512 (kernels/cpu/conv_kernels_avx512.cpp).
//
// With x zero-padded to Hp × Wp planes, output position t = i·Wp + j reads tap (c, r, s) at
// t + tap_offsets[k]: row k of im2col's col matrix is a shifted stretch of the padded image. So
// this is the GEMM micro-kernel (kernels/cpu/gemm_micro_kernel.h: MR output channels × two vectors
// of positions in registers, one rank-1 update per tap) with its packed B panel replaced by those
// stretches, read in place: no im2col and no packing of B. The output comes out "wide", at row
// width Wp; the caller drops the Wp − W extra columns of each row (they summed pixels of the next
// row) while adding the bias.
//
// Determinism: each output is one sum, taps k ascending (acc = 0, then acc = w·x + acc), the same
// in both copies, so they give the same bits wherever the compiler contracts the same FMAs.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/cpu/gemm_micro_kernel.h"

namespace fm::kernels {

template <typename T>
struct ForwardFromPadded {
  const T* x_padded;                // one image, laid out as in conv_weight_grad_kernel.h
  const std::int64_t* tap_offsets;  // [taps]
  const T* weight_panels;           // [panels][taps][rows per panel]: W packed tap-major, rows
                                    // past out_channels zero
  int out_channels, taps;
  int positions;                    // y_wide's row length: a multiple of 128 bytes' worth of T
  T* y_wide;                        // [out_channels][positions]
};

template <typename T, int kVecBytes, int MR>
void forward_from_padded(const ForwardFromPadded<T>& a) {
  using Vec = typename GemmVector<T, kVecBytes>::type;
  constexpr int L = GemmVector<T, kVecBytes>::kLanes;
  for (int o0 = 0; o0 < a.out_channels; o0 += MR) {
    const int rows = a.out_channels - o0 < MR ? a.out_channels - o0 : MR;
    const T* w = a.weight_panels + std::int64_t(o0) * a.taps;  // panel o0 / MR
    for (int t0 = 0; t0 < a.positions; t0 += 2 * L) {
      Vec acc[MR][2];
      for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = Vec{};
      for (int k = 0; k < a.taps; ++k) {
        const T* row = a.x_padded + a.tap_offsets[k] + t0;
        Vec b0, b1;
        std::memcpy(&b0, row, sizeof(Vec));  // unaligned: the shifts are any number of T
        std::memcpy(&b1, row + L, sizeof(Vec));
        const T* wk = w + std::int64_t(k) * MR;
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
          acc[i][0] += wk[i] * b0;
          acc[i][1] += wk[i] * b1;
        }
      }
      for (int i = 0; i < rows; ++i) {
        T* y = a.y_wide + std::int64_t(o0 + i) * a.positions + t0;
        std::memcpy(y, &acc[i][0], sizeof(Vec));
        std::memcpy(y + L, &acc[i][1], sizeof(Vec));
      }
    }
  }
}

// The output channels of one weight panel in each copy (kernels/cpu/conv_kernels*.cpp): 6 × 2
// vectors of accumulators fit the 16 AVX2 registers with the two x vectors and a broadcast weight,
// 8 × 2 the 32 AVX-512 ones (and divide the U-Net's channel counts).
constexpr int kForwardPanelRowsPortable = 6;
constexpr int kForwardPanelRowsAvx512 = 8;

void forward_from_padded_portable(const ForwardFromPadded<float>& a);
void forward_from_padded_portable(const ForwardFromPadded<double>& a);
void forward_from_padded_avx512(const ForwardFromPadded<float>& a);
void forward_from_padded_avx512(const ForwardFromPadded<double>& a);

}  // namespace fm::kernels
