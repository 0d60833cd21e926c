// kernels/cuda/group_norm.cu — CUDA GroupNorm and GroupNorm + SiLU, forward and backward, on
// float32 or bfloat16 activations (x, y, dy, dx) with float32 γ, β, statistics and gradients of γ, β.
//
// Layer: kernels/cuda (hand-written kernels over device pointers, launched on cuda_stream()).
// Formulas: kernels/group_norm.h. Reference: kernels/cpu/group_norm.cpp.
//
// Cost model (write it down before optimising): a few flops per element against
//   forward : read x, write y              = 8 bytes/element  (+ γ, β, mean, rstd: negligible)
//   backward: read x and dy, write dx      = 12 bytes/element (+ [N, C] partial sums: negligible)
// so the kernels are memory-bound and the target is the device's copy bandwidth.
// Example: N=128, C=64, HW=784 (28×28) is 6.4 M elements: forward 51 MB, backward 77 MB, i.e.
// ~15 µs and ~23 µs at H100's ~3.35 TB/s.
//
// Two kernel families (the caller picks one with GroupNormKernel; Auto chooses as described in
// kernels/group_norm.h): v3 "cached" (near the end of the kernels below) holds the group in shared
// memory so x and dy are read from DRAM once; v2 "streaming" (described next) works for any group
// size and is what large groups use. v1, the kernel lab's naive start, is group_norm_naive.cu.
//
// Forward, main path: one 256-thread block per (n, g). The group's M = (C/G)·HW values are one
// contiguous span; the block runs Welford's online mean/variance over it (Welford 1962; merged
// across threads with Chan et al.'s pairwise formula), then normalises the same span in the same
// launch. The second read of x comes from L2, not DRAM: a group is at most tens of KB and is
// re-read microseconds later, so DRAM sees x once and y once: the 8-byte minimum.
// Forward, split path: when there are fewer groups than SMs and each group is large (sampling at
// batch 1, large images), one block per group would leave most SMs idle. The group is cut into
// chunks: launch 1 writes each chunk's Welford triple (count, mean, M2); launch 2 merges the
// triples of its group in a fixed order (every block of the group gets the same mean/rstd) and
// normalises its chunk.
//
// Backward: per (n, c), one warp sums dz and dz·x̂ over HW (dz = dy, or dy·silu'(z) for the fused
// version). Those [N, C] sums give everything: dβ[c] and dγ[c] are their sums over n (a separate
// fixed-order pass, no atomics: bitwise reproducible), and the group means dx needs are
// Σ_c γ[c]·(sums over the group's channels). Main path: one block per (n, g) does the channel sums
// of its group, then dx over the group (second read of x and dy from L2 again). Split path (few,
// large groups): the channel sums are one launch with a warp per (n, c), dx a second launch over
// chunks of each group. Both paths run the same arithmetic in the same order, so they give the
// same bits.
//
// Vector loads/stores (four elements: a float4, or 8 bytes of bfloat16; kernels/cuda/element_access.cuh)
// are used when HW % 4 == 0 and the big pointers are aligned to four elements: then a vector never
// straddles two channels and every group, channel row and chunk (chunks are multiples of 4) starts
// on a vector boundary. Otherwise the same code runs with scalar accesses. Every kernel is a
// template over the activations' element type T; all arithmetic is in float, and a bfloat16 output
// is rounded once when stored. The byte counts above halve for bfloat16.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/element_access.cuh"
#include "kernels/group_norm.h"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Groups smaller than this are never split: one block streams them in a few microseconds, about
// the cost of the extra launch a split needs.
constexpr std::int64_t kSplitMinGroupSize = 16384;
// Chunks are at least this large so each block of the split path has real work.
constexpr std::int64_t kSplitMinChunk = 4096;

__device__ __forceinline__ float silu_derivative_f(float z) {
  const float s = 1.f / (1.f + expf(-z));
  return s * (1.f + z * (1.f - s));
}

// ---- Welford statistics -----------------------------------------------------------------------
struct Welford {
  float count;  // float: exact up to 2^24 elements per partial, and it enters float formulas anyway
  float mean;
  float m2;     // Σ (x − mean)²
};

__device__ __forceinline__ void welford_add(Welford& w, float x) {
  w.count += 1.f;
  const float delta = x - w.mean;
  w.mean += delta / w.count;
  w.m2 += delta * (x - w.mean);
}

// Chan, Golub & LeVeque (1979): merge two partial results.
//   n = n_a + n_b, δ = mean_b − mean_a, mean = mean_a + δ·n_b/n, M2 = M2_a + M2_b + δ²·n_a·n_b/n.
__device__ __forceinline__ Welford welford_merge(const Welford& a, const Welford& b) {
  const float count = a.count + b.count;
  if (count == 0.f) return Welford{0.f, 0.f, 0.f};
  const float delta = b.mean - a.mean;
  const float b_share = b.count / count;
  return Welford{count, a.mean + delta * b_share, a.m2 + b.m2 + delta * delta * a.count * b_share};
}

// Merge the block's 256 partial results; every thread gets the block total. The merge order is
// fixed (shuffle-down tree within each warp, then warp 0 over the 8 warp results), so the bits do
// not depend on scheduling. Call at most once per kernel (it reuses static shared memory).
__device__ Welford block_reduce_welford(Welford w) {
  __shared__ Welford warp_results[kWarps];
  __shared__ Welford block_result;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int offset = 16; offset > 0; offset /= 2) {
    Welford other{__shfl_down_sync(kFullMask, w.count, offset),
                  __shfl_down_sync(kFullMask, w.mean, offset),
                  __shfl_down_sync(kFullMask, w.m2, offset)};
    // Lanes whose partner lies beyond lane 31 read their own value back; their results are never
    // used (only lane 0 carries the warp total), but keep them harmless.
    if (lane + offset < 32) w = welford_merge(w, other);
  }
  if (lane == 0) warp_results[warp] = w;
  __syncthreads();
  if (warp == 0) {
    w = lane < kWarps ? warp_results[lane] : Welford{0.f, 0.f, 0.f};
    for (int offset = 16; offset > 0; offset /= 2) {
      Welford other{__shfl_down_sync(kFullMask, w.count, offset),
                    __shfl_down_sync(kFullMask, w.mean, offset),
                    __shfl_down_sync(kFullMask, w.m2, offset)};
      if (lane + offset < 32) w = welford_merge(w, other);
    }
    if (lane == 0) block_result = w;
  }
  __syncthreads();
  return block_result;
}

// This thread's share of the Welford statistics of group_x[begin, end).
template <typename T, bool kVectorized>
__device__ Welford welford_over_range(const T* __restrict__ group_x, int begin, int end) {
  Welford w{0.f, 0.f, 0.f};
  if constexpr (kVectorized) {
    const int vectors = (end - begin) / 4;
    for (int v = threadIdx.x; v < vectors; v += blockDim.x) {
      const float4 a = load_at<true>(group_x + begin, v);
      welford_add(w, a.x);
      welford_add(w, a.y);
      welford_add(w, a.z);
      welford_add(w, a.w);
    }
  } else {
    for (int i = begin + threadIdx.x; i < end; i += blockDim.x) welford_add(w, load_at<false>(group_x, i));
  }
  return w;
}

// Variance from M2 is biased (divide by the count), as in the GroupNorm paper. M2 ≥ 0 in exact
// arithmetic; the clamp keeps a rounding-level negative from producing NaN.
__device__ __forceinline__ float rstd_from(const Welford& w, float eps) {
  const float variance = fmaxf(w.m2 / w.count, 0.f);
  return 1.f / sqrtf(variance + eps);  // correctly rounded sqrt and division, not rsqrtf's 2 ulp
}

template <bool kApplySilu>
__device__ __forceinline__ float normalize_one(float x, float mean, float rstd, float gamma_c,
                                               float beta_c) {
  // (x − μ)·rstd first, not x·(γ·rstd) + (β − μ·γ·rstd): the latter cancels catastrophically when
  // |μ| ≫ σ.
  const float z = gamma_c * ((x - mean) * rstd) + beta_c;
  if constexpr (kApplySilu) return z / (1.f + expf(-z));  // silu(z) = z·sigmoid(z)
  else return z;
}

// Normalise group elements [begin, end). first_channel is the group's first channel g·C/G. The
// source is the group in memory (T) or the cached kernel's float copy of it (S = float).
template <bool kVectorized, bool kApplySilu, typename S, typename T>
__device__ void normalize_range(const S* __restrict__ group_x, T* __restrict__ group_y,
                                const float* __restrict__ gamma, const float* __restrict__ beta,
                                int first_channel, int HW, int begin, int end,
                                float mean, float rstd) {
  if constexpr (kVectorized) {
    const int vectors = (end - begin) / 4;
    for (int v = threadIdx.x; v < vectors; v += blockDim.x) {
      const int c = first_channel + (begin + 4 * v) / HW;  // the 4 elements share c (HW%4==0)
      const float gc = gamma[c], bc = beta[c];
      const float4 a = load_at<true>(group_x + begin, v);
      store_at<true>(group_y + begin, v,
                     make_float4(normalize_one<kApplySilu>(a.x, mean, rstd, gc, bc),
                                 normalize_one<kApplySilu>(a.y, mean, rstd, gc, bc),
                                 normalize_one<kApplySilu>(a.z, mean, rstd, gc, bc),
                                 normalize_one<kApplySilu>(a.w, mean, rstd, gc, bc)));
    }
  } else {
    for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
      const int c = first_channel + i / HW;
      store_at<false>(group_y, i, normalize_one<kApplySilu>(load_at<false>(group_x, i), mean, rstd, gamma[c], beta[c]));
    }
  }
}

// ---- forward kernels --------------------------------------------------------------------------
// Main path: grid = N·G blocks, block ng = n·G + g.
template <typename T, bool kVectorized, bool kApplySilu>
__global__ void __launch_bounds__(kThreads)
group_norm_forward_kernel(const T* __restrict__ x, const float* __restrict__ gamma,
                          const float* __restrict__ beta, T* __restrict__ y,
                          float* __restrict__ mean_out, float* __restrict__ rstd_out, int C, int HW,
                          int G, float eps) {
  const int ng = blockIdx.x;
  const int channels_per_group = C / G;
  const int group_size = channels_per_group * HW;  // < 2^31, checked on the host
  const std::int64_t offset = std::int64_t(ng) * group_size;
  const Welford stats =
      block_reduce_welford(welford_over_range<T, kVectorized>(x + offset, 0, group_size));
  const float rstd = rstd_from(stats, eps);
  if (threadIdx.x == 0) {
    mean_out[ng] = stats.mean;
    rstd_out[ng] = rstd;
  }
  normalize_range<kVectorized, kApplySilu>(x + offset, y + offset, gamma, beta,
                                           (ng % G) * channels_per_group, HW, 0, group_size,
                                           stats.mean, rstd);
}

// Split path, launch 1: grid (splits, N·G). partial is [N·G, splits, 3] (count, mean, M2).
template <typename T, bool kVectorized>
__global__ void __launch_bounds__(kThreads)
group_norm_partial_stats_kernel(const T* __restrict__ x, float* __restrict__ partial, int C,
                                int HW, int G, int chunk) {
  const int split = blockIdx.x, splits = gridDim.x, ng = blockIdx.y;
  const int group_size = (C / G) * HW;
  const int begin = split * chunk;
  const int end = min(group_size, begin + chunk);
  const Welford w = block_reduce_welford(
      welford_over_range<T, kVectorized>(x + std::int64_t(ng) * group_size, begin, end));
  if (threadIdx.x == 0) {
    float* out = partial + (std::int64_t(ng) * splits + split) * 3;
    out[0] = w.count;
    out[1] = w.mean;
    out[2] = w.m2;
  }
}

// Split path, launch 2: same grid. Every block merges its group's triples in split order (so all
// blocks of a group agree bit for bit), block 0 of the group stores mean/rstd, all normalise.
template <typename T, bool kVectorized, bool kApplySilu>
__global__ void __launch_bounds__(kThreads)
group_norm_normalize_split_kernel(const T* __restrict__ x, const float* __restrict__ gamma,
                                  const float* __restrict__ beta, T* __restrict__ y,
                                  const float* __restrict__ partial, float* __restrict__ mean_out,
                                  float* __restrict__ rstd_out, int C, int HW, int G,
                                  int chunk, float eps) {
  __shared__ float group_mean;
  __shared__ float group_rstd;
  const int split = blockIdx.x, splits = gridDim.x, ng = blockIdx.y;
  const int channels_per_group = C / G;
  const int group_size = channels_per_group * HW;
  if (threadIdx.x == 0) {
    Welford total{0.f, 0.f, 0.f};
    for (int s = 0; s < splits; ++s) {
      const float* p = partial + (std::int64_t(ng) * splits + s) * 3;
      total = welford_merge(total, Welford{p[0], p[1], p[2]});
    }
    group_mean = total.mean;
    group_rstd = rstd_from(total, eps);
    if (split == 0) {
      mean_out[ng] = group_mean;
      rstd_out[ng] = group_rstd;
    }
  }
  __syncthreads();
  const int begin = split * chunk;
  const int end = min(group_size, begin + chunk);
  const std::int64_t offset = std::int64_t(ng) * group_size;
  normalize_range<kVectorized, kApplySilu>(x + offset, y + offset, gamma, beta,
                                           (ng % G) * channels_per_group, HW, begin, end,
                                           group_mean, group_rstd);
}

// ---- backward building blocks -----------------------------------------------------------------
// dz: gradient at the GroupNorm output z = γ·x̂ + β (the SiLU's input in the fused version).
template <bool kApplySilu>
__device__ __forceinline__ float dz_of(float dy, float xhat, float gamma_c, float beta_c) {
  if constexpr (kApplySilu) return dy * silu_derivative_f(gamma_c * xhat + beta_c);
  else return dy;
}

// One warp: Σ_hw dz and Σ_hw dz·x̂ over one channel row (n, c) of HW elements; the xor-shuffle
// tree leaves the same totals in every lane (float addition is commutative, so partners agree).
template <typename T, bool kVectorized, bool kApplySilu>
__device__ void warp_channel_row_sums(const T* __restrict__ x_row, const T* __restrict__ dy_row,
                                      int HW, float mean, float rstd, float gamma_c, float beta_c,
                                      float& sum_dz, float& sum_dz_xhat) {
  const int lane = threadIdx.x % 32;
  float a = 0.f, b = 0.f;
  if constexpr (kVectorized) {
    for (int v = lane; v < HW / 4; v += 32) {
      const float4 xv = load_at<true>(x_row, v), gv = load_at<true>(dy_row, v);
      const float xs[4] = {xv.x, xv.y, xv.z, xv.w};
      const float gs[4] = {gv.x, gv.y, gv.z, gv.w};
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float xhat = (xs[k] - mean) * rstd;
        const float dz = dz_of<kApplySilu>(gs[k], xhat, gamma_c, beta_c);
        a += dz;
        b += dz * xhat;
      }
    }
  } else {
    for (int i = lane; i < HW; i += 32) {
      const float xhat = (load_at<false>(x_row, i) - mean) * rstd;
      const float dz = dz_of<kApplySilu>(load_at<false>(dy_row, i), xhat, gamma_c, beta_c);
      a += dz;
      b += dz * xhat;
    }
  }
  a = warp_sum(a);
  b = warp_sum(b);
  sum_dz = a;
  sum_dz_xhat = b;
}

// Channel sums of one (n, c) row, stored to the [N, C] partial arrays.
template <typename T, bool kVectorized, bool kApplySilu>
__device__ void store_channel_sums(const T* __restrict__ dy, const T* __restrict__ x,
                                   const float* __restrict__ mean, const float* __restrict__ rstd,
                                   const float* __restrict__ gamma, const float* __restrict__ beta,
                                   float* channel_sum_dz, float* channel_sum_dz_xhat, int n, int c,
                                   int C, int HW, int G) {
  const int ng = n * G + c / (C / G);
  const std::int64_t row = (std::int64_t(n) * C + c) * HW;
  float a, b;
  warp_channel_row_sums<T, kVectorized, kApplySilu>(x + row, dy + row, HW, mean[ng], rstd[ng],
                                                 gamma[c], kApplySilu ? beta[c] : 0.f, a, b);
  if (threadIdx.x % 32 == 0) {
    channel_sum_dz[std::int64_t(n) * C + c] = a;
    channel_sum_dz_xhat[std::int64_t(n) * C + c] = b;
  }
}

// Warp 0 turns the group's channel sums into mean(dxhat) and mean(dxhat·x̂) (dxhat = γ·dz) and
// publishes them in shared memory; the caller must __syncthreads() before reading them. The
// channel sums may have been written by this same block before a __syncthreads(): plain loads
// (no __restrict__/const, so no read-only-cache path) see them.
__device__ void group_gradient_means(const float* channel_sum_dz, const float* channel_sum_dz_xhat,
                                     const float* __restrict__ gamma, int n, int g, int C, int G,
                                     int HW, float* shared_means /*[2]*/) {
  if (threadIdx.x >= 32) return;
  const int lane = threadIdx.x;
  const int channels_per_group = C / G;
  float a = 0.f, b = 0.f;
  for (int cl = lane; cl < channels_per_group; cl += 32) {
    const int c = g * channels_per_group + cl;
    a += gamma[c] * channel_sum_dz[std::int64_t(n) * C + c];
    b += gamma[c] * channel_sum_dz_xhat[std::int64_t(n) * C + c];
  }
  a = warp_sum(a);
  b = warp_sum(b);
  if (lane == 0) {
    const float group_size = float(channels_per_group * HW);
    shared_means[0] = a / group_size;
    shared_means[1] = b / group_size;
  }
}

// dx = rstd·(dxhat − mean(dxhat) − x̂·mean(dxhat·x̂)) over group elements [begin, end).
template <typename T, bool kVectorized, bool kApplySilu>
__device__ void write_dx_range(const T* __restrict__ group_dy, const T* __restrict__ group_x,
                               T* __restrict__ group_dx, const float* __restrict__ gamma,
                               const float* __restrict__ beta, int first_channel, int HW,
                               int begin, int end, float mean, float rstd,
                               float mean_dxhat, float mean_dxhat_xhat) {
  auto dx_of = [&](float x, float dy, float gamma_c, float beta_c) {
    const float xhat = (x - mean) * rstd;
    const float dxhat = gamma_c * dz_of<kApplySilu>(dy, xhat, gamma_c, beta_c);
    return rstd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
  };
  if constexpr (kVectorized) {
    const int vectors = (end - begin) / 4;
    for (int v = threadIdx.x; v < vectors; v += blockDim.x) {
      const int c = first_channel + (begin + 4 * v) / HW;
      const float gc = gamma[c], bc = kApplySilu ? beta[c] : 0.f;
      const float4 xv = load_at<true>(group_x + begin, v), gv = load_at<true>(group_dy + begin, v);
      store_at<true>(group_dx + begin, v,
                     make_float4(dx_of(xv.x, gv.x, gc, bc), dx_of(xv.y, gv.y, gc, bc),
                                 dx_of(xv.z, gv.z, gc, bc), dx_of(xv.w, gv.w, gc, bc)));
    }
  } else {
    for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
      const int c = first_channel + i / HW;
      store_at<false>(group_dx, i, dx_of(load_at<false>(group_x, i), load_at<false>(group_dy, i), gamma[c],
                                         kApplySilu ? beta[c] : 0.f));
    }
  }
}

// ---- backward kernels -------------------------------------------------------------------------
// Main path: grid = N·G blocks. Warps take the group's channels round-robin for the channel sums,
// then the whole block writes dx.
template <typename T, bool kVectorized, bool kApplySilu>
__global__ void __launch_bounds__(kThreads)
group_norm_backward_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                           const float* __restrict__ mean, const float* __restrict__ rstd,
                           const float* __restrict__ gamma, const float* __restrict__ beta,
                           T* __restrict__ dx, float* channel_sum_dz,
                           float* channel_sum_dz_xhat, int C, int HW, int G) {
  __shared__ float means[2];
  const int ng = blockIdx.x, n = ng / G, g = ng % G;
  const int channels_per_group = C / G;
  const int warp = threadIdx.x / 32;
  for (int cl = warp; cl < channels_per_group; cl += kWarps)
    store_channel_sums<T, kVectorized, kApplySilu>(dy, x, mean, rstd, gamma, beta, channel_sum_dz,
                                                channel_sum_dz_xhat, n, g * channels_per_group + cl,
                                                C, HW, G);
  __syncthreads();  // makes the channel sums (global writes of this block) visible to warp 0
  group_gradient_means(channel_sum_dz, channel_sum_dz_xhat, gamma, n, g, C, G, HW, means);
  __syncthreads();
  const int group_size = channels_per_group * HW;
  const std::int64_t offset = std::int64_t(ng) * group_size;
  write_dx_range<T, kVectorized, kApplySilu>(dy + offset, x + offset, dx + offset, gamma, beta,
                                          g * channels_per_group, HW, 0, group_size, mean[ng],
                                          rstd[ng], means[0], means[1]);
}

// Split path, launch 1: one warp per (n, c) row; grid = ⌈N·C / 8⌉ blocks.
template <typename T, bool kVectorized, bool kApplySilu>
__global__ void __launch_bounds__(kThreads)
group_norm_channel_sums_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                               const float* __restrict__ mean, const float* __restrict__ rstd,
                               const float* __restrict__ gamma, const float* __restrict__ beta,
                               float* __restrict__ channel_sum_dz,
                               float* __restrict__ channel_sum_dz_xhat, int N, int C, int HW,
                               int G) {
  const std::int64_t nc = std::int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (nc >= std::int64_t(N) * C) return;  // whole warps leave together: the shuffles stay full
  store_channel_sums<T, kVectorized, kApplySilu>(dy, x, mean, rstd, gamma, beta, channel_sum_dz,
                                              channel_sum_dz_xhat, int(nc / C), int(nc % C), C,
                                              HW, G);
}

// Split path, launch 2: grid (splits, N·G); each block writes dx for one chunk of its group.
template <typename T, bool kVectorized, bool kApplySilu>
__global__ void __launch_bounds__(kThreads)
group_norm_dx_split_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                           const float* __restrict__ mean, const float* __restrict__ rstd,
                           const float* __restrict__ gamma, const float* __restrict__ beta,
                           T* __restrict__ dx, const float* channel_sum_dz,
                           const float* channel_sum_dz_xhat, int C, int HW, int G,
                           int chunk) {
  __shared__ float means[2];
  const int split = blockIdx.x, ng = blockIdx.y, n = ng / G, g = ng % G;
  const int channels_per_group = C / G;
  group_gradient_means(channel_sum_dz, channel_sum_dz_xhat, gamma, n, g, C, G, HW, means);
  __syncthreads();
  const int group_size = channels_per_group * HW;
  const std::int64_t offset = std::int64_t(ng) * group_size;
  const int begin = split * chunk;
  const int end = min(group_size, begin + chunk);
  write_dx_range<T, kVectorized, kApplySilu>(dy + offset, x + offset, dx + offset, gamma, beta,
                                          g * channels_per_group, HW, begin, end, mean[ng],
                                          rstd[ng], means[0], means[1]);
}

// dγ[c] = Σ_n channel_sum_dz_xhat[n, c], dβ[c] = Σ_n channel_sum_dz[n, c].
// A block covers kSumChannels consecutive channels (threadIdx.x: coalesced reads along c) with
// kSumRows rows of threads (threadIdx.y) that each add every kSumRows-th n; the rows' partial sums
// are then added in a fixed order, so the result is deterministic. The first version had one thread
// per channel walk all N rows: for the U-Net's C = 32..128 that was a single block making N = 256
// round trips to memory one after another. On the H100 (2026-11-22) the whole v3 backward of
// 256×64×28×28 took 77.7 µs in fmbench while ncu timed its main kernel at 59.6 µs.
constexpr int kSumChannels = 32, kSumRows = 16;

__global__ void __launch_bounds__(kSumChannels* kSumRows)
    sum_channel_sums_over_batch_kernel(const float* __restrict__ channel_sum_dz,
                                       const float* __restrict__ channel_sum_dz_xhat,
                                       float* __restrict__ dgamma, float* __restrict__ dbeta,
                                       int N, int C) {
  __shared__ float partial_dz[kSumRows][kSumChannels], partial_dz_xhat[kSumRows][kSumChannels];
  const int c = blockIdx.x * kSumChannels + threadIdx.x;
  float a = 0.f, b = 0.f;
  if (c < C) {
#pragma unroll 4
    for (int n = threadIdx.y; n < N; n += kSumRows) {
      a += channel_sum_dz[std::int64_t(n) * C + c];
      b += channel_sum_dz_xhat[std::int64_t(n) * C + c];
    }
  }
  partial_dz[threadIdx.y][threadIdx.x] = a;
  partial_dz_xhat[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return;
  a = 0.f, b = 0.f;
  for (int row = 0; row < kSumRows; ++row) {
    a += partial_dz[row][threadIdx.x];
    b += partial_dz_xhat[row][threadIdx.x];
  }
  dbeta[c] = a;
  dgamma[c] = b;
}

// ---- v3: the group held in shared memory (one DRAM read) ---------------------------------------
// v2 reads each group twice and counts on L2 for the second read. The H100 profile of the v2
// forward (docs/ops/group_norm.md §7) found it at 38% of DRAM bandwidth with 86% occupancy, i.e.
// waiting on latency; our reading: each thread has one float4 load in flight, then a chain of
// dependent Welford updates, each with a division. v3 copies the group into shared memory once,
// with four independent float4 loads in flight per thread, and computes everything else there:
//   forward : mean = Σx / M, then variance = Σ(x − mean)² / M (exact two-pass statistics: no
//             per-element division, no cancellation), then y — x leaves DRAM once, y enters once.
//   backward: x̂ and dx̂ = γ·dz are computed while loading x and dy and kept in shared memory; the
//             per-(n, c) sums and the group means come from them, then dx — one read of x and dy.
// Every thread works on the same elements in every phase (the ones it loaded), so only the
// reductions need barriers. A group fits when its cache is at most kMaxCachedBytes; larger groups
// (and the few-large-groups case that v2 splits across blocks) take the v2 path.
constexpr std::size_t kMaxCachedBytes = kGroupNormMaxCacheBytes;  // kernels/group_norm.h
constexpr int kLoadsInFlight = 4;  // loads per thread issued together, before any is used

// Block-wide sum in a fixed order (warp shuffle tree, then warp 0 over the warp totals); every
// thread gets the total. Safe to call repeatedly: the trailing barrier frees the shared slots.
__device__ float block_reduce_sum(float value) {
  __shared__ float warp_sums[kWarps];
  __shared__ float total;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_down_sync(kFullMask, value, offset);
  if (lane == 0) warp_sums[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < kWarps ? warp_sums[lane] : 0.f;
    for (int offset = 16; offset > 0; offset /= 2)
      value += __shfl_down_sync(kFullMask, value, offset);
    if (lane == 0) total = value;
  }
  __syncthreads();
  const float result = total;
  __syncthreads();
  return result;
}

// Copies group_x[0, size) into cache (same layout) and returns this thread's share of the sum.
// Thread t owns float4s t, t + kThreads, t + 2·kThreads, … (or floats, in the scalar version). The
// loads go out in batches of kLoadsInFlight, all issued before the first is stored: a U-Net group
// gives each thread only 1–7 float4s, so one load at a time would mean one memory latency each.
template <typename T, bool kVectorized>
__device__ float load_group_into_cache(const T* __restrict__ group_x, float* cache, int size) {
  using Element = std::conditional_t<kVectorized, float4, float>;
  Element* destination = reinterpret_cast<Element*>(cache);
  const int count = kVectorized ? size / 4 : size;
  float sum = 0.f;
  for (int base = threadIdx.x; base < count; base += kLoadsInFlight * kThreads) {
    Element loaded[kLoadsInFlight];
#pragma unroll
    for (int u = 0; u < kLoadsInFlight; ++u)
      if (base + u * kThreads < count) loaded[u] = load_at<kVectorized>(group_x, base + u * kThreads);
#pragma unroll
    for (int u = 0; u < kLoadsInFlight; ++u)
      if (base + u * kThreads < count) {
        destination[base + u * kThreads] = loaded[u];
        if constexpr (kVectorized)
          sum += (loaded[u].x + loaded[u].y) + (loaded[u].z + loaded[u].w);
        else
          sum += loaded[u];
      }
  }
  return sum;
}

// Forward: grid = N·G blocks of kThreads; dynamic shared memory = the group (size rounded up to 4).
template <typename T, bool kVectorized, bool kApplySilu>
__global__ void __launch_bounds__(kThreads)
group_norm_forward_cached_kernel(const T* __restrict__ x, const float* __restrict__ gamma,
                                 const float* __restrict__ beta, T* __restrict__ y,
                                 float* __restrict__ mean_out, float* __restrict__ rstd_out, int C,
                                 int HW, int G, float eps) {
  extern __shared__ float4 cache_storage[];
  float* cache = reinterpret_cast<float*>(cache_storage);
  const int ng = blockIdx.x;
  const int channels_per_group = C / G, first_channel = (ng % G) * channels_per_group;
  const int group_size = channels_per_group * HW;
  const std::int64_t offset = std::int64_t(ng) * group_size;

  const float mean =
      block_reduce_sum(load_group_into_cache<T, kVectorized>(x + offset, cache, group_size)) /
      float(group_size);
  // Σ(x − mean)² over this thread's own cached elements (no barrier needed to read them).
  float squares = 0.f;
  if constexpr (kVectorized) {
    const float4* cache4 = reinterpret_cast<const float4*>(cache);
    for (int v = threadIdx.x; v < group_size / 4; v += kThreads) {
      const float4 a = cache4[v];
      const float d0 = a.x - mean, d1 = a.y - mean, d2 = a.z - mean, d3 = a.w - mean;
      squares += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3);
    }
  } else {
    for (int i = threadIdx.x; i < group_size; i += kThreads) {
      const float d = cache[i] - mean;
      squares += d * d;
    }
  }
  const float variance = block_reduce_sum(squares) / float(group_size);
  const float rstd = 1.f / sqrtf(variance + eps);  // as rstd_from: correctly rounded
  if (threadIdx.x == 0) {
    mean_out[ng] = mean;
    rstd_out[ng] = rstd;
  }
  // y from the cache; the same thread-to-element map as the load.
  normalize_range<kVectorized, kApplySilu>(cache, y + offset, gamma, beta, first_channel, HW, 0,
                                           group_size, mean, rstd);
}

// Backward: grid = N·G blocks; dynamic shared memory = two group-sized arrays, x̂ then dx̂ (each
// rounded up to a multiple of 4 floats). Warps take the group's channel rows round-robin (as v2's
// main path): while loading a row they cache x̂ and dx̂ = γ·dz and sum dz and dz·x̂ over it.
template <typename T, bool kVectorized, bool kApplySilu>
__global__ void __launch_bounds__(kThreads)
group_norm_backward_cached_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                  const float* __restrict__ mean, const float* __restrict__ rstd,
                                  const float* __restrict__ gamma, const float* __restrict__ beta,
                                  T* __restrict__ dx, float* channel_sum_dz,
                                  float* channel_sum_dz_xhat, int C, int HW, int G) {
  extern __shared__ float4 cache_storage[];
  __shared__ float means[2];
  const int ng = blockIdx.x, n = ng / G, g = ng % G;
  const int channels_per_group = C / G;
  const int group_size = channels_per_group * HW;
  const int padded_size = (group_size + 3) / 4 * 4;
  float* xhat_cache = reinterpret_cast<float*>(cache_storage);
  float* dxhat_cache = xhat_cache + padded_size;
  const std::int64_t offset = std::int64_t(ng) * group_size;
  const float group_mean = mean[ng], group_rstd = rstd[ng];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  // Phase 1: per channel row, cache x̂ and dx̂ and reduce Σ dz, Σ dz·x̂ (stored as v2 stores them).
  for (int cl = warp; cl < channels_per_group; cl += kWarps) {
    const int c = g * channels_per_group + cl;
    const float gamma_c = gamma[c], beta_c = kApplySilu ? beta[c] : 0.f;
    const int row = cl * HW;
    float a = 0.f, b = 0.f;
    auto visit = [&](float x_value, float dy_value, float& xhat, float& dxhat) {
      xhat = (x_value - group_mean) * group_rstd;
      const float dz = dz_of<kApplySilu>(dy_value, xhat, gamma_c, beta_c);
      dxhat = gamma_c * dz;
      a += dz;
      b += dz * xhat;
    };
    // Loads in batches of kLoadsInFlight per lane (x and dy), all issued before any is used.
    using Element = std::conditional_t<kVectorized, float4, float>;
    const T* x_row = x + offset + row;
    const T* dy_row = dy + offset + row;
    Element* xhat_row = reinterpret_cast<Element*>(xhat_cache + row);
    Element* dxhat_row = reinterpret_cast<Element*>(dxhat_cache + row);
    const int count = kVectorized ? HW / 4 : HW;
    for (int base = lane; base < count; base += kLoadsInFlight * 32) {
      Element xs[kLoadsInFlight], gs[kLoadsInFlight];
#pragma unroll
      for (int u = 0; u < kLoadsInFlight; ++u)
        if (base + u * 32 < count) {
          xs[u] = load_at<kVectorized>(x_row, base + u * 32);
          gs[u] = load_at<kVectorized>(dy_row, base + u * 32);
        }
#pragma unroll
      for (int u = 0; u < kLoadsInFlight; ++u)
        if (base + u * 32 < count) {
          Element h, d;
          if constexpr (kVectorized) {
            visit(xs[u].x, gs[u].x, h.x, d.x);
            visit(xs[u].y, gs[u].y, h.y, d.y);
            visit(xs[u].z, gs[u].z, h.z, d.z);
            visit(xs[u].w, gs[u].w, h.w, d.w);
          } else {
            visit(xs[u], gs[u], h, d);
          }
          xhat_row[base + u * 32] = h;
          dxhat_row[base + u * 32] = d;
        }
    }
    a = warp_sum(a);
    b = warp_sum(b);
    if (lane == 0) {
      channel_sum_dz[std::int64_t(n) * C + c] = a;
      channel_sum_dz_xhat[std::int64_t(n) * C + c] = b;
    }
  }
  __syncthreads();  // the channel sums (global writes of this block) are visible to warp 0
  group_gradient_means(channel_sum_dz, channel_sum_dz_xhat, gamma, n, g, C, G, HW, means);
  __syncthreads();
  const float mean_dxhat = means[0], mean_dxhat_xhat = means[1];

  // Phase 2: dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) from the cache, same rows and lanes.
  for (int cl = warp; cl < channels_per_group; cl += kWarps) {
    const int row = cl * HW;
    auto dx_of = [&](float xhat, float dxhat) {
      return group_rstd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
    };
    if constexpr (kVectorized) {
      const float4* xhat4 = reinterpret_cast<const float4*>(xhat_cache + row);
      const float4* dxhat4 = reinterpret_cast<const float4*>(dxhat_cache + row);
      for (int v = lane; v < HW / 4; v += 32) {
        const float4 h = xhat4[v], d = dxhat4[v];
        store_at<true>(dx + offset + row, v,
                       make_float4(dx_of(h.x, d.x), dx_of(h.y, d.y), dx_of(h.z, d.z), dx_of(h.w, d.w)));
      }
    } else {
      for (int i = lane; i < HW; i += 32)
        store_at<false>(dx + offset + row, i, dx_of(xhat_cache[row + i], dxhat_cache[row + i]));
    }
  }
}

// ---- host side --------------------------------------------------------------------------------
// How a launch covers the groups: splits == 1 is the one-block-per-group main path.
struct GroupSplit {
  int splits = 1;
  int chunk = 0;  // elements per split, a multiple of 4
};

GroupSplit plan_split(std::int64_t groups, std::int64_t group_size) {
  GroupSplit plan;
  plan.chunk = int(group_size);
  const std::int64_t sms = device_multiprocessor_count();
  if (groups >= sms || group_size < kSplitMinGroupSize) return plan;
  // About two blocks per SM in total, each with at least kSplitMinChunk elements.
  const std::int64_t wanted =
      std::max<std::int64_t>(1, std::min(ceil_div(2 * sms, groups), group_size / kSplitMinChunk));
  plan.chunk = int(ceil_div(ceil_div(group_size, wanted), 4) * 4);
  plan.splits = int(ceil_div(group_size, plan.chunk));  // no empty chunk
  return plan;
}

// v3 (cached) or v2 (streaming, maybe split)? Auto takes v3 when the group fits and v2 would not
// split it (few large groups need the split to fill the GPU).
bool use_cached_kernel(const char* op, GroupNormKernel kernel, const GroupSplit& plan,
                       std::size_t bytes) {
  if (kernel == GroupNormKernel::Streaming) return false;
  const bool fits = bytes <= kMaxCachedBytes;
  FM_CHECK(fits || kernel == GroupNormKernel::Auto, ValueError, op, ": the cached kernel needs ",
           bytes, " bytes of shared memory for this group; it holds at most ", kMaxCachedBytes);
  return fits && (kernel == GroupNormKernel::Cached || plan.splits == 1);
}

template <typename T, bool kVectorized, bool kApplySilu>
void launch_forward(const char* op, const T* x, const float* gamma, const float* beta, T* y,
                    float* mean, float* rstd, int N, int C, int HW, int G, float eps,
                    GroupNormKernel kernel) {
  cudaStream_t stream = cuda_stream();
  const std::int64_t groups = std::int64_t(N) * G;
  const std::int64_t group_size = std::int64_t(C / G) * HW;
  const GroupSplit plan = plan_split(groups, group_size);
  const std::size_t bytes = group_norm_cache_bytes(group_size, false);
  if (use_cached_kernel(op, kernel, plan, bytes)) {
    auto cached = group_norm_forward_cached_kernel<T, kVectorized, kApplySilu>;
    static const bool configured = (allow_dynamic_shared_memory(cached, kMaxCachedBytes), true);
    (void)configured;
    cached<<<unsigned(groups), kThreads, bytes, stream>>>(x, gamma, beta, y, mean, rstd, C, HW, G,
                                                          eps);
    FM_CUDA_CHECK_LAUNCH();
    return;
  }
  if (plan.splits == 1) {
    group_norm_forward_kernel<T, kVectorized, kApplySilu><<<unsigned(groups), kThreads, 0, stream>>>(
        x, gamma, beta, y, mean, rstd, C, HW, G, eps);
    FM_CUDA_CHECK_LAUNCH();
    return;
  }
  float* partial =
      static_cast<float*>(cuda_malloc(std::size_t(groups) * plan.splits * 3 * sizeof(float)));
  const dim3 grid{unsigned(plan.splits), unsigned(groups)};  // groups < #SMs here: fits grid.y
  group_norm_partial_stats_kernel<T, kVectorized><<<grid, kThreads, 0, stream>>>(x, partial, C, HW, G,
                                                                             plan.chunk);
  FM_CUDA_CHECK_LAUNCH();
  group_norm_normalize_split_kernel<T, kVectorized, kApplySilu><<<grid, kThreads, 0, stream>>>(
      x, gamma, beta, y, partial, mean, rstd, C, HW, G, plan.chunk, eps);
  FM_CUDA_CHECK_LAUNCH();
  cuda_free(partial);  // stream-ordered reuse by the caching allocator: no sync needed
}

template <bool kApplySilu, typename T>
void forward_cuda(const char* op, const T* x, const float* gamma, const float* beta, T* y,
                  float* mean, float* rstd, int N, int C, int HW, int G, float eps,
                  GroupNormKernel kernel) {
  check_group_norm_sizes(op, N, C, HW, G);
  check_group_norm_group_fits_int32(op, C, HW, G);
  if (N == 0) return;
  const bool vectorized = HW % 4 == 0 && is_vector_aligned(x) && is_vector_aligned(y);
  if (vectorized)
    launch_forward<T, true, kApplySilu>(op, x, gamma, beta, y, mean, rstd, N, C, HW, G, eps, kernel);
  else
    launch_forward<T, false, kApplySilu>(op, x, gamma, beta, y, mean, rstd, N, C, HW, G, eps, kernel);
}

template <typename T, bool kVectorized, bool kApplySilu>
void launch_backward(const char* op, const T* dy, const T* x, const float* mean,
                     const float* rstd, const float* gamma, const float* beta, T* dx,
                     float* dgamma, float* dbeta, int N, int C, int HW, int G,
                     GroupNormKernel kernel) {
  cudaStream_t stream = cuda_stream();
  const std::int64_t groups = std::int64_t(N) * G;
  const std::int64_t group_size = std::int64_t(C / G) * HW;
  // [2, N, C]: Σ_hw dz, then Σ_hw dz·x̂, per (n, c).
  float* channel_sums = static_cast<float*>(cuda_malloc(2 * std::size_t(N) * C * sizeof(float)));
  float* channel_sum_dz = channel_sums;
  float* channel_sum_dz_xhat = channel_sums + std::size_t(N) * C;
  const GroupSplit plan = plan_split(groups, group_size);
  const std::size_t bytes = group_norm_cache_bytes(group_size, true);
  if (use_cached_kernel(op, kernel, plan, bytes)) {
    auto cached = group_norm_backward_cached_kernel<T, kVectorized, kApplySilu>;
    static const bool configured = (allow_dynamic_shared_memory(cached, kMaxCachedBytes), true);
    (void)configured;
    cached<<<unsigned(groups), kThreads, bytes, stream>>>(dy, x, mean, rstd, gamma, beta, dx,
                                                          channel_sum_dz, channel_sum_dz_xhat, C,
                                                          HW, G);
    FM_CUDA_CHECK_LAUNCH();
  } else if (plan.splits == 1) {
    group_norm_backward_kernel<T, kVectorized, kApplySilu><<<unsigned(groups), kThreads, 0, stream>>>(
        dy, x, mean, rstd, gamma, beta, dx, channel_sum_dz, channel_sum_dz_xhat, C, HW, G);
    FM_CUDA_CHECK_LAUNCH();
  } else {
    const unsigned row_blocks = unsigned(ceil_div(std::int64_t(N) * C, kWarps));
    group_norm_channel_sums_kernel<T, kVectorized, kApplySilu><<<row_blocks, kThreads, 0, stream>>>(
        dy, x, mean, rstd, gamma, beta, channel_sum_dz, channel_sum_dz_xhat, N, C, HW, G);
    FM_CUDA_CHECK_LAUNCH();
    const dim3 grid{unsigned(plan.splits), unsigned(groups)};
    group_norm_dx_split_kernel<T, kVectorized, kApplySilu><<<grid, kThreads, 0, stream>>>(
        dy, x, mean, rstd, gamma, beta, dx, channel_sum_dz, channel_sum_dz_xhat, C, HW, G,
        plan.chunk);
    FM_CUDA_CHECK_LAUNCH();
  }
  sum_channel_sums_over_batch_kernel<<<unsigned(ceil_div(C, kSumChannels)),
                                       dim3(kSumChannels, kSumRows), 0, stream>>>(
      channel_sum_dz, channel_sum_dz_xhat, dgamma, dbeta, N, C);
  FM_CUDA_CHECK_LAUNCH();
  cuda_free(channel_sums);
}

template <bool kApplySilu, typename T>
void backward_cuda(const char* op, const T* dy, const T* x, const float* mean,
                   const float* rstd, const float* gamma, const float* beta, T* dx,
                   float* dgamma, float* dbeta, int N, int C, int HW, int G,
                   GroupNormKernel kernel) {
  check_group_norm_sizes(op, N, C, HW, G);
  check_group_norm_group_fits_int32(op, C, HW, G);
  if (N == 0) {
    cuda_memset_zero(dgamma, std::size_t(C) * sizeof(float));
    cuda_memset_zero(dbeta, std::size_t(C) * sizeof(float));
    return;
  }
  const bool vectorized =
      HW % 4 == 0 && is_vector_aligned(x) && is_vector_aligned(dy) && is_vector_aligned(dx);
  if (vectorized)
    launch_backward<T, true, kApplySilu>(op, dy, x, mean, rstd, gamma, beta, dx, dgamma, dbeta, N, C,
                                         HW, G, kernel);
  else
    launch_backward<T, false, kApplySilu>(op, dy, x, mean, rstd, gamma, beta, dx, dgamma, dbeta, N, C,
                                          HW, G, kernel);
}

}  // namespace

void group_norm_forward_cuda(const float* x, const float* gamma, const float* beta, float* y,
                             float* mean, float* rstd, int N, int C, int HW, int G, float eps,
                             GroupNormKernel kernel) {
  forward_cuda<false>("group_norm_forward_cuda", x, gamma, beta, y, mean, rstd, N, C, HW, G, eps,
                      kernel);
}

void group_norm_backward_cuda(const float* dy, const float* x, const float* mean, const float* rstd,
                              const float* gamma, float* dx, float* dgamma, float* dbeta, int N,
                              int C, int HW, int G, GroupNormKernel kernel) {
  // beta is only read by the fused SiLU version; gamma stands in as a valid pointer.
  backward_cuda<false>("group_norm_backward_cuda", dy, x, mean, rstd, gamma, gamma, dx, dgamma,
                       dbeta, N, C, HW, G, kernel);
}

void group_norm_silu_forward_cuda(const float* x, const float* gamma, const float* beta, float* y,
                                  float* mean, float* rstd, int N, int C, int HW, int G, float eps,
                                  GroupNormKernel kernel) {
  forward_cuda<true>("group_norm_silu_forward_cuda", x, gamma, beta, y, mean, rstd, N, C, HW, G,
                     eps, kernel);
}

void group_norm_silu_backward_cuda(const float* dy, const float* x, const float* mean,
                                   const float* rstd, const float* gamma, const float* beta,
                                   float* dx, float* dgamma, float* dbeta, int N, int C, int HW,
                                   int G, GroupNormKernel kernel) {
  backward_cuda<true>("group_norm_silu_backward_cuda", dy, x, mean, rstd, gamma, beta, dx, dgamma,
                      dbeta, N, C, HW, G, kernel);
}

// bfloat16 activations: the same kernels, instantiated for bf16.
void group_norm_forward_cuda(const bf16* x, const float* gamma, const float* beta, bf16* y, float* mean,
                             float* rstd, int N, int C, int HW, int G, float eps, GroupNormKernel kernel) {
  forward_cuda<false>("group_norm_forward_cuda", x, gamma, beta, y, mean, rstd, N, C, HW, G, eps,
                      kernel);
}

void group_norm_backward_cuda(const bf16* dy, const bf16* x, const float* mean, const float* rstd,
                              const float* gamma, bf16* dx, float* dgamma, float* dbeta, int N, int C,
                              int HW, int G, GroupNormKernel kernel) {
  backward_cuda<false>("group_norm_backward_cuda", dy, x, mean, rstd, gamma, gamma, dx, dgamma,
                       dbeta, N, C, HW, G, kernel);
}

void group_norm_silu_forward_cuda(const bf16* x, const float* gamma, const float* beta, bf16* y,
                                  float* mean, float* rstd, int N, int C, int HW, int G, float eps,
                                  GroupNormKernel kernel) {
  forward_cuda<true>("group_norm_silu_forward_cuda", x, gamma, beta, y, mean, rstd, N, C, HW, G,
                     eps, kernel);
}

void group_norm_silu_backward_cuda(const bf16* dy, const bf16* x, const float* mean, const float* rstd,
                                   const float* gamma, const float* beta, bf16* dx, float* dgamma,
                                   float* dbeta, int N, int C, int HW, int G, GroupNormKernel kernel) {
  backward_cuda<true>("group_norm_silu_backward_cuda", dy, x, mean, rstd, gamma, beta, dx, dgamma,
                      dbeta, N, C, HW, G, kernel);
}

}  // namespace fm::kernels
