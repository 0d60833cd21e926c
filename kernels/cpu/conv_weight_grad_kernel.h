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
// vector lane, then the lanes added in a fixed tree; the blocks depend on the shapes only. Where a
// block's accumulators wait between runs of images (weight_grad_block) changes no sum. The two
// copies split t into different lane counts, so they differ in the last bits from each other (as
// cpu_isa.h allows), not from run to run.
#pragma once
#include <algorithm>
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
  T* accumulators;                   // scratch: weight_grad_scratch_elements<T>(taps) elements
};

// Adds the lanes of v pairwise (lane i + half onto lane i, halving): a fixed order. Each level is
// one vector add of the upper half onto the lower half (an extract and an add), not a store and a
// chain of scalar adds: per block this ran once per accumulator, and for small images (a 7×7
// plane is 4 vector steps per image) the scalar version cost as much as the dot products.
template <typename T, int kBytes>
inline T sum_of_lanes(const typename GemmVector<T, kBytes>::type& v) {
  if constexpr (kBytes == int(sizeof(T))) {
    T lane;
    std::memcpy(&lane, &v, sizeof(T));
    return lane;
  } else {
    using Half = typename GemmVector<T, kBytes / 2>::type;
    Half low, high;
    std::memcpy(&low, &v, sizeof(Half));
    std::memcpy(&high, reinterpret_cast<const char*>(&v) + sizeof(Half), sizeof(Half));
    return sum_of_lanes<T, kBytes / 2>(low + high);
  }
}

// Images [n_begin, n_end) of one block. Its vector accumulators live in memory between runs of
// images (WeightGradDots::accumulators, entry (o, k) at ((o − group_first)·taps + k)·L, group_first
// the first output channel of the block's group): a run
// loads them (zeros for the first run), adds its images' positions and stores them back (the last
// run adds the lanes into dweight instead). Each lane still sums images in order and t ascending,
// so the bits are those of one pass over all images; but the loops can now take a few images at a
// time across all blocks, so that their dy rows stay in L1 while every tap block reads them (see
// weight_grad_dot_products).
template <typename T, int kVecBytes, int CO, int KT>
inline void weight_grad_block(const WeightGradDots<T>& a, int group_first, int n_begin, int n_end, int o0,
                              int k0) {
  using Vec = typename GemmVector<T, kVecBytes>::type;
  constexpr int L = GemmVector<T, kVecBytes>::kLanes;
  T* saved = a.accumulators + (std::int64_t(o0 - group_first) * a.taps + k0) * L;
  Vec acc[CO][KT];
  for (int c = 0; c < CO; ++c)
    for (int j = 0; j < KT; ++j) {
      if (n_begin == 0)
        acc[c][j] = Vec{};
      else
        std::memcpy(&acc[c][j], saved + (std::int64_t(c) * a.taps + j) * L, sizeof(Vec));
    }
  for (int n = n_begin; n < n_end; ++n) {
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
    for (int j = 0; j < KT; ++j) {
      if (n_end == a.images)
        a.dweight[std::int64_t(o0 + c) * a.taps + k0 + j] = sum_of_lanes<T, kVecBytes>(acc[c][j]);
      else
        std::memcpy(saved + (std::int64_t(c) * a.taps + j) * L, &acc[c][j], sizeof(Vec));
    }
}

// Bytes of vector accumulators one group of output channels may keep (an L2-sized share: they are
// loaded and stored once per block and run of images).
constexpr std::int64_t kWeightGradGroupBytes = 256 * 1024;
// Bytes of dy rows one run of images gives a block row (CO rows per image), to be read from L1 by
// all its tap blocks: a quarter of a 48 KB L1, leaving room for the x rows. Small images go
// several to a run, so that a block's work per run (the run's positions/L steps) stays well above
// the load and store of its accumulators.
constexpr std::int64_t kWeightGradRunBytes = 12 * 1024;

// How many output channels one group holds: whole blocks of CO, at least one block.
template <int kVecBytes, int CO>
int weight_grad_group_channels(int out_channels, int taps) {
  const std::int64_t blocks = kWeightGradGroupBytes / (std::int64_t(CO) * taps * kVecBytes);
  return std::min<std::int64_t>(out_channels, std::max<std::int64_t>(1, blocks) * CO);
}

// The accumulator scratch (in T) any copy needs: a group of at most kWeightGradGroupBytes, or one
// block row of 4 output channels (the widest CO) of 64-byte vectors (the widest) if that is more.
template <typename T>
std::int64_t weight_grad_scratch_elements(int taps) {
  return std::max<std::int64_t>(kWeightGradGroupBytes, std::int64_t(4) * taps * 64) / std::int64_t(sizeof(T));
}

// Every block of CO × KT, the edges in narrower blocks (one output channel, or one tap, at a time).
// Output channels go in groups whose accumulators fit kWeightGradGroupBytes; inside a group, run of
// images by run (kWeightGradRunBytes), every block of the group: a block row's dy rows of the run
// are read by all taps/KT blocks of that row while they are in L1, and the run's x planes while
// they are in L2. (Block by block over all images, as before, streamed the dy rows of every image
// from L2 once per tap block: L2 bandwidth, not the multiply-adds, set the pace.)
template <typename T, int kVecBytes, int CO, int KT>
void weight_grad_dot_products(const WeightGradDots<T>& a) {
  static_assert(CO <= 4 && kVecBytes <= 64, "weight_grad_scratch_elements assumes at most 4 × 64 bytes");
  if (a.images == 0) {  // no blocks would write: the empty sum
    std::fill(a.dweight, a.dweight + std::int64_t(a.out_channels) * a.taps, T(0));
    return;
  }
  const int full_cols = a.taps / KT * KT;
  const int group = weight_grad_group_channels<kVecBytes, CO>(a.out_channels, a.taps);
  const std::int64_t run_bytes = std::int64_t(CO) * a.positions * std::int64_t(sizeof(T));
  const int run = int(std::max<std::int64_t>(1, kWeightGradRunBytes / run_bytes));
  for (int first = 0; first < a.out_channels; first += group) {
    const int end = std::min(a.out_channels, first + group);
    const int full_end = first + (end - first) / CO * CO;
    for (int n = 0; n < a.images; n += run) {
      const int n_end = std::min(a.images, n + run);
      for (int o0 = first; o0 < full_end; o0 += CO) {
        for (int k0 = 0; k0 < full_cols; k0 += KT) weight_grad_block<T, kVecBytes, CO, KT>(a, first, n, n_end, o0, k0);
        for (int k0 = full_cols; k0 < a.taps; ++k0) weight_grad_block<T, kVecBytes, CO, 1>(a, first, n, n_end, o0, k0);
      }
      for (int o0 = full_end; o0 < end; ++o0) {
        for (int k0 = 0; k0 < full_cols; k0 += KT) weight_grad_block<T, kVecBytes, 1, KT>(a, first, n, n_end, o0, k0);
        for (int k0 = full_cols; k0 < a.taps; ++k0) weight_grad_block<T, kVecBytes, 1, 1>(a, first, n, n_end, o0, k0);
      }
    }
  }
}

// The two copies' entry points. Call the AVX-512 one only when cpu_isa.h says it runs.
void weight_grad_dot_products_portable(const WeightGradDots<float>& a);
void weight_grad_dot_products_portable(const WeightGradDots<double>& a);
void weight_grad_dot_products_avx512(const WeightGradDots<float>& a);
void weight_grad_dot_products_avx512(const WeightGradDots<double>& a);

}  // namespace fm::kernels
