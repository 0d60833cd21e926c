// kernels/cuda/activation.cu — CUDA SiLU and bias + SiLU (float), forward and backward.
//
// Layer: kernels/cuda (hand-written kernels over device pointers, launched on cuda_stream()).
// Formulas and layouts: kernels/activation.h. References: kernels/cpu/activation.cpp.
//
// All of these are memory-bound: a handful of flops per element against 8 bytes (forward: read x,
// write y) or 12 bytes (backward: read x and dy, write dx) of unavoidable traffic. So the only
// things that matter are full-width coalesced accesses and enough bytes in flight:
//   v1 (…_naive): one thread per element, the CPU loop's body per thread;
//   v2: float4 loads/stores (16 bytes per thread per access: 4× fewer memory instructions) in a
//       grid-stride loop with a grid sized to the device, so each thread handles several vectors.
// The bias backward reduces dbias with per-block partial sums and a second fixed-order pass, never
// atomics, so it gives the same bits on every run.
#include <algorithm>
#include <cstdint>

#include "kernels/activation.h"
#include "kernels/cuda/common.cuh"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

constexpr int kThreadsPerBlock = 256;

// Grid for a grid-stride loop over `work` items: enough blocks to fill every SM several times
// over (8 resident blocks of 256 threads = 2048 threads, an H100 SM's maximum), no more.
unsigned grid_stride_blocks(std::int64_t work) {
  std::int64_t wanted = ceil_div(work, kThreadsPerBlock);
  std::int64_t cap = std::int64_t(device_multiprocessor_count()) * 8;
  return unsigned(std::max<std::int64_t>(1, std::min(wanted, cap)));
}

// expf (not __expf): the accurate version costs nothing visible in a memory-bound kernel and keeps
// the GPU within a couple of ulps of the CPU reference. 1/(1+inf) = 0 under IEEE division.
__device__ __forceinline__ float sigmoid_f(float x) { return 1.f / (1.f + expf(-x)); }
__device__ __forceinline__ float silu_f(float x) { return x * sigmoid_f(x); }
__device__ __forceinline__ float silu_derivative_f(float x) {
  float s = sigmoid_f(x);
  return s * (1.f + x * (1.f - s));
}

// ---- v1: one thread per element ---------------------------------------------------------------
__global__ void silu_forward_naive_kernel(const float* __restrict__ x, float* __restrict__ y,
                                          std::int64_t n) {
  std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = silu_f(x[i]);
}

__global__ void silu_backward_naive_kernel(const float* __restrict__ x, const float* __restrict__ dy,
                                           float* __restrict__ dx, std::int64_t n) {
  std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) dx[i] = dy[i] * silu_derivative_f(x[i]);
}

// ---- v2: float4, grid-stride ------------------------------------------------------------------
// Vector part over the first 4·⌊n/4⌋ elements, then the (at most 3) tail elements scalar.
__global__ void silu_forward_vec4_kernel(const float* __restrict__ x, float* __restrict__ y,
                                         std::int64_t n) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  const std::int64_t first = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t vectors = n / 4;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float4* y4 = reinterpret_cast<float4*>(y);
  for (std::int64_t v = first; v < vectors; v += stride) {
    float4 a = x4[v];
    y4[v] = make_float4(silu_f(a.x), silu_f(a.y), silu_f(a.z), silu_f(a.w));
  }
  for (std::int64_t i = vectors * 4 + first; i < n; i += stride) y[i] = silu_f(x[i]);
}

__global__ void silu_backward_vec4_kernel(const float* __restrict__ x, const float* __restrict__ dy,
                                          float* __restrict__ dx, std::int64_t n) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  const std::int64_t first = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t vectors = n / 4;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  const float4* dy4 = reinterpret_cast<const float4*>(dy);
  float4* dx4 = reinterpret_cast<float4*>(dx);
  for (std::int64_t v = first; v < vectors; v += stride) {
    float4 a = x4[v], g = dy4[v];
    dx4[v] = make_float4(g.x * silu_derivative_f(a.x), g.y * silu_derivative_f(a.y),
                         g.z * silu_derivative_f(a.z), g.w * silu_derivative_f(a.w));
  }
  for (std::int64_t i = vectors * 4 + first; i < n; i += stride)
    dx[i] = dy[i] * silu_derivative_f(x[i]);
}

// Scalar grid-stride fallback for pointers that are not 16-byte aligned (views into a buffer).
__global__ void silu_forward_scalar_kernel(const float* __restrict__ x, float* __restrict__ y,
                                           std::int64_t n) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = silu_f(x[i]);
}

__global__ void silu_backward_scalar_kernel(const float* __restrict__ x,
                                            const float* __restrict__ dy, float* __restrict__ dx,
                                            std::int64_t n) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dx[i] = dy[i] * silu_derivative_f(x[i]);
}

// ---- bias + SiLU ------------------------------------------------------------------------------
// Channel of flat element i in [outer, C, inner]. kChannelsLast means inner == 1 ([rows, C]),
// where the channel is simply i mod C and the division by inner disappears.
template <bool kChannelsLast>
__device__ __forceinline__ int channel_of(std::int64_t i, int C, std::int64_t inner) {
  if constexpr (kChannelsLast) return int(i % C);
  else return int((i / inner) % C);
}

// kVectorized: float4 over the flat array. Its 4 elements share one channel when inner % 4 == 0
// (channels-first), or are 4 consecutive channels when C % 4 == 0 (channels-last); the launcher
// only picks it in those cases, with total % 4 == 0 following from either.
template <bool kChannelsLast, bool kVectorized>
__global__ void bias_silu_forward_kernel(const float* __restrict__ x, const float* __restrict__ bias,
                                         float* __restrict__ y, std::int64_t total, int C,
                                         std::int64_t inner) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  const std::int64_t first = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if constexpr (kVectorized) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    float4* y4 = reinterpret_cast<float4*>(y);
    for (std::int64_t v = first; v < total / 4; v += stride) {
      const std::int64_t i = v * 4;
      const int c = channel_of<kChannelsLast>(i, C, inner);
      float4 a = x4[v];
      if constexpr (kChannelsLast) {
        y4[v] = make_float4(silu_f(a.x + bias[c]), silu_f(a.y + bias[c + 1]),
                            silu_f(a.z + bias[c + 2]), silu_f(a.w + bias[c + 3]));
      } else {
        const float b = bias[c];
        y4[v] = make_float4(silu_f(a.x + b), silu_f(a.y + b), silu_f(a.z + b), silu_f(a.w + b));
      }
    }
  } else {
    for (std::int64_t i = first; i < total; i += stride)
      y[i] = silu_f(x[i] + bias[channel_of<kChannelsLast>(i, C, inner)]);
  }
}

// Sum over a block of 256 threads in a fixed order (shuffle tree per warp, then warp 0 over the
// warp sums): the result's bits do not depend on scheduling. Valid in thread 0.
__device__ float block_sum_fixed_order(float value) {
  __shared__ float warp_sums[kThreadsPerBlock / 32];
  value = warp_sum(value);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = value;
  __syncthreads();
  float total = 0.f;
  if (warp == 0) {
    total = lane < kThreadsPerBlock / 32 ? warp_sums[lane] : 0.f;
    total = warp_sum(total);
  }
  return total;
}

// Backward, channels-first (inner > 1). Block (c, split) handles channel c for the outer indices
// [split·outer_per_split, …): the rows (o, c, :) it visits are flattened into one index range so a
// short inner (7×7 = 49) does not leave most of the block idle. It writes dx and one partial sum
// of dbias[c] into partial[split, c].
template <bool kVectorized>
__global__ void bias_silu_backward_channels_first_kernel(
    const float* __restrict__ x, const float* __restrict__ bias, const float* __restrict__ dy,
    float* __restrict__ dx, float* __restrict__ partial, std::int64_t outer, int C,
    std::int64_t inner, std::int64_t outer_per_split) {
  const int c = blockIdx.x;
  const int split = blockIdx.y;
  const std::int64_t outer_begin = std::int64_t(split) * outer_per_split;
  const std::int64_t outer_end = min(outer, outer_begin + outer_per_split);
  const float b = bias[c];
  float sum = 0.f;
  if (outer_begin < outer_end) {
    if constexpr (kVectorized) {
      const std::int64_t inner4 = inner / 4;  // inner % 4 == 0 here
      const std::int64_t count = (outer_end - outer_begin) * inner4;
      for (std::int64_t j = threadIdx.x; j < count; j += blockDim.x) {
        const std::int64_t o = outer_begin + j / inner4;
        const std::int64_t v = (o * C + c) * inner4 + j % inner4;  // float4 index
        float4 a = reinterpret_cast<const float4*>(x)[v];
        float4 g = reinterpret_cast<const float4*>(dy)[v];
        float4 r = make_float4(g.x * silu_derivative_f(a.x + b), g.y * silu_derivative_f(a.y + b),
                               g.z * silu_derivative_f(a.z + b), g.w * silu_derivative_f(a.w + b));
        reinterpret_cast<float4*>(dx)[v] = r;
        sum += (r.x + r.y) + (r.z + r.w);
      }
    } else {
      const std::int64_t count = (outer_end - outer_begin) * inner;
      for (std::int64_t j = threadIdx.x; j < count; j += blockDim.x) {
        const std::int64_t o = outer_begin + j / inner;
        const std::int64_t i = (o * C + c) * inner + j % inner;
        const float r = dy[i] * silu_derivative_f(x[i] + b);
        dx[i] = r;
        sum += r;
      }
    }
  }
  sum = block_sum_fixed_order(sum);
  if (threadIdx.x == 0) partial[std::int64_t(split) * C + c] = sum;
}

// Backward, channels-last (inner == 1, [rows, C]). A 32×8 block covers 32 consecutive channels
// (one coalesced 128-byte segment per warp) and walks its rows 8 at a time; the 8 row-partial sums
// of each channel are then added in a fixed order.
constexpr int kColumnsPerBlock = 32;
constexpr int kRowLanes = 8;
__global__ void bias_silu_backward_channels_last_kernel(
    const float* __restrict__ x, const float* __restrict__ bias, const float* __restrict__ dy,
    float* __restrict__ dx, float* __restrict__ partial, std::int64_t rows, int C,
    std::int64_t rows_per_split) {
  __shared__ float row_sums[kRowLanes][kColumnsPerBlock + 1];
  const int c = blockIdx.x * kColumnsPerBlock + threadIdx.x;
  const int split = blockIdx.y;
  const std::int64_t row_begin = std::int64_t(split) * rows_per_split;
  const std::int64_t row_end = min(rows, row_begin + rows_per_split);
  float sum = 0.f;
  if (c < C) {
    const float b = bias[c];
    for (std::int64_t r = row_begin + threadIdx.y; r < row_end; r += kRowLanes) {
      const std::int64_t i = r * C + c;
      const float g = dy[i] * silu_derivative_f(x[i] + b);
      dx[i] = g;
      sum += g;
    }
  }
  row_sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float total = 0.f;
    for (int k = 0; k < kRowLanes; ++k) total += row_sums[k][threadIdx.x];
    partial[std::int64_t(split) * C + c] = total;
  }
}

// out[c] = Σ_s partial[s, c], s ascending: the deterministic second half of every reduction above.
__global__ void sum_partials_over_splits_kernel(const float* __restrict__ partial,
                                                float* __restrict__ out, int splits, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float total = 0.f;
  for (int s = 0; s < splits; ++s) total += partial[std::int64_t(s) * C + c];
  out[c] = total;
}

}  // namespace

void silu_forward_cuda_naive(const float* x, float* y, std::int64_t n) {
  if (n <= 0) return;
  unsigned blocks = unsigned(ceil_div(n, kThreadsPerBlock));
  silu_forward_naive_kernel<<<blocks, kThreadsPerBlock, 0, cuda_stream()>>>(x, y, n);
  FM_CUDA_CHECK_LAUNCH();
}

void silu_backward_cuda_naive(const float* x, const float* dy, float* dx, std::int64_t n) {
  if (n <= 0) return;
  unsigned blocks = unsigned(ceil_div(n, kThreadsPerBlock));
  silu_backward_naive_kernel<<<blocks, kThreadsPerBlock, 0, cuda_stream()>>>(x, dy, dx, n);
  FM_CUDA_CHECK_LAUNCH();
}

void silu_forward_cuda(const float* x, float* y, std::int64_t n) {
  if (n <= 0) return;
  if (is_aligned_16(x) && is_aligned_16(y)) {
    silu_forward_vec4_kernel<<<grid_stride_blocks(std::max<std::int64_t>(n / 4, 1)),
                               kThreadsPerBlock, 0, cuda_stream()>>>(x, y, n);
  } else {
    silu_forward_scalar_kernel<<<grid_stride_blocks(n), kThreadsPerBlock, 0, cuda_stream()>>>(x, y, n);
  }
  FM_CUDA_CHECK_LAUNCH();
}

void silu_backward_cuda(const float* x, const float* dy, float* dx, std::int64_t n) {
  if (n <= 0) return;
  if (is_aligned_16(x) && is_aligned_16(dy) && is_aligned_16(dx)) {
    silu_backward_vec4_kernel<<<grid_stride_blocks(std::max<std::int64_t>(n / 4, 1)),
                                kThreadsPerBlock, 0, cuda_stream()>>>(x, dy, dx, n);
  } else {
    silu_backward_scalar_kernel<<<grid_stride_blocks(n), kThreadsPerBlock, 0, cuda_stream()>>>(
        x, dy, dx, n);
  }
  FM_CUDA_CHECK_LAUNCH();
}

void bias_silu_forward_cuda(const float* x, const float* bias, float* y, std::int64_t outer, int C,
                            std::int64_t inner) {
  check_bias_silu_sizes("bias_silu_forward_cuda", outer, C, inner);
  const std::int64_t total = outer * C * inner;
  if (total == 0) return;
  const bool channels_last = inner == 1;
  const bool aligned = is_aligned_16(x) && is_aligned_16(y);
  const bool vectorized = aligned && (channels_last ? C % 4 == 0 : inner % 4 == 0);
  const unsigned blocks = grid_stride_blocks(vectorized ? total / 4 : total);
  cudaStream_t stream = cuda_stream();
  if (channels_last && vectorized)
    bias_silu_forward_kernel<true, true><<<blocks, kThreadsPerBlock, 0, stream>>>(x, bias, y, total, C, inner);
  else if (channels_last)
    bias_silu_forward_kernel<true, false><<<blocks, kThreadsPerBlock, 0, stream>>>(x, bias, y, total, C, inner);
  else if (vectorized)
    bias_silu_forward_kernel<false, true><<<blocks, kThreadsPerBlock, 0, stream>>>(x, bias, y, total, C, inner);
  else
    bias_silu_forward_kernel<false, false><<<blocks, kThreadsPerBlock, 0, stream>>>(x, bias, y, total, C, inner);
  FM_CUDA_CHECK_LAUNCH();
}

void bias_silu_backward_cuda(const float* x, const float* bias, const float* dy, float* dx,
                             float* dbias, std::int64_t outer, int C, std::int64_t inner) {
  check_bias_silu_sizes("bias_silu_backward_cuda", outer, C, inner);
  if (outer == 0) {
    cuda_memset_zero(dbias, std::size_t(C) * sizeof(float));
    return;
  }
  cudaStream_t stream = cuda_stream();
  // Aim for ~4 blocks per SM in the first pass; each split adds C floats of scratch and one more
  // term to each fixed-order sum in the second pass.
  const std::int64_t target_blocks = std::int64_t(device_multiprocessor_count()) * 4;
  int splits = 1;
  float* partial = nullptr;
  if (inner == 1) {
    const std::int64_t column_blocks = ceil_div(C, kColumnsPerBlock);
    std::int64_t wanted = std::clamp<std::int64_t>(ceil_div(target_blocks, column_blocks), 1,
                                                   ceil_div(outer, kRowLanes));
    const std::int64_t rows_per_split = ceil_div(outer, wanted);
    splits = int(ceil_div(outer, rows_per_split));  // no empty splits
    partial = static_cast<float*>(cuda_malloc(std::size_t(splits) * C * sizeof(float)));
    dim3 grid{unsigned(column_blocks), unsigned(splits)};
    dim3 block{kColumnsPerBlock, kRowLanes};
    bias_silu_backward_channels_last_kernel<<<grid, block, 0, stream>>>(x, bias, dy, dx, partial,
                                                                        outer, C, rows_per_split);
    FM_CUDA_CHECK_LAUNCH();
  } else {
    std::int64_t wanted = std::clamp<std::int64_t>(ceil_div(target_blocks, C), 1, outer);
    const std::int64_t outer_per_split = ceil_div(outer, wanted);
    splits = int(ceil_div(outer, outer_per_split));
    partial = static_cast<float*>(cuda_malloc(std::size_t(splits) * C * sizeof(float)));
    const bool vectorized = inner % 4 == 0 && is_aligned_16(x) && is_aligned_16(dy) && is_aligned_16(dx);
    dim3 grid{unsigned(C), unsigned(splits)};
    if (vectorized)
      bias_silu_backward_channels_first_kernel<true><<<grid, kThreadsPerBlock, 0, stream>>>(
          x, bias, dy, dx, partial, outer, C, inner, outer_per_split);
    else
      bias_silu_backward_channels_first_kernel<false><<<grid, kThreadsPerBlock, 0, stream>>>(
          x, bias, dy, dx, partial, outer, C, inner, outer_per_split);
    FM_CUDA_CHECK_LAUNCH();
  }
  sum_partials_over_splits_kernel<<<unsigned(ceil_div(C, kThreadsPerBlock)), kThreadsPerBlock, 0,
                                    stream>>>(partial, dbias, splits, C);
  FM_CUDA_CHECK_LAUNCH();
  // Safe without a sync: the caching allocator hands this block out again only to work queued
  // later on the same stream.
  cuda_free(partial);
}

}  // namespace fm::kernels
