// kernels/cuda/group_norm_naive.cu — v1 of the GPU GroupNorm: the kernel lab's starting point
// (formulas: kernels/group_norm.h; reference: kernels/cpu/group_norm.cpp). The engine uses v2/v3
// in kernels/cuda/group_norm.cu.
//
// Forward: one block per group (n, g), three passes over the group (mean, then the variance around
// it, then normalise), scalar loads. Backward: one block per (n, g) for dx (two group sums, then
// dx) and one block per channel for dγ, dβ (it walks every sample and pixel of the channel) — two
// launches, x and dy read twice. Easy to check by eye and slow for clear reasons: three (forward)
// or four (backward) reads of the tensor where one suffices, and C blocks for dγ, dβ — too few to
// fill the GPU when C is small.
#include <cstddef>

#include "kernels/cuda/cuda_check.h"
#include "kernels/group_norm.h"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

constexpr int kNaiveThreads = 256;

// Sum over the block; every thread gets the result. Warp shuffles, then one value per warp in
// shared memory.
__device__ float block_sum(float value) {
  __shared__ float warp_sums[kNaiveThreads / 32];
  __shared__ float total;
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_down_sync(0xffffffffu, value, offset);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = value;
  __syncthreads();
  if (threadIdx.x == 0) {
    float sum = 0.f;
    for (int w = 0; w < kNaiveThreads / 32; ++w) sum += warp_sums[w];
    total = sum;
  }
  __syncthreads();
  const float result = total;
  __syncthreads();  // `total` and `warp_sums` are reused by the next call
  return result;
}

// One block per group (n, g); its (C/G)·HW values are contiguous.
__global__ void group_norm_forward_naive_kernel(const float* x, const float* gamma,
                                                const float* beta, float* y, float* mean_out,
                                                float* rstd_out, int C, int HW, int G, float eps) {
  const int group = blockIdx.x, g = group % G, channels_per_group = C / G;
  const int span = channels_per_group * HW;
  const float* xg = x + std::size_t(group) * span;
  float* yg = y + std::size_t(group) * span;

  float sum = 0.f;
  for (int i = threadIdx.x; i < span; i += blockDim.x) sum += xg[i];
  const float mean = block_sum(sum) / float(span);
  float squares = 0.f;  // two-pass variance: no cancellation, at the price of a second read
  for (int i = threadIdx.x; i < span; i += blockDim.x) squares += (xg[i] - mean) * (xg[i] - mean);
  // Correctly rounded sqrt and division, as in group_norm.cu (rsqrtf is off by up to 2 ulp).
  const float rstd = 1.f / sqrtf(block_sum(squares) / float(span) + eps);
  for (int i = threadIdx.x; i < span; i += blockDim.x) {
    const int c = g * channels_per_group + i / HW;
    yg[i] = (xg[i] - mean) * rstd * gamma[c] + beta[c];
  }
  if (threadIdx.x == 0) {
    mean_out[group] = mean;
    rstd_out[group] = rstd;
  }
}

// dx for one group: with dx̂ = γ·dy, dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)).
__global__ void group_norm_backward_input_naive_kernel(const float* dy, const float* x,
                                                       const float* mean, const float* rstd,
                                                       const float* gamma, float* dx, int C, int HW,
                                                       int G) {
  const int group = blockIdx.x, g = group % G, channels_per_group = C / G;
  const int span = channels_per_group * HW;
  const std::size_t base = std::size_t(group) * span;
  const float mu = mean[group], r = rstd[group];
  float sum_dxhat = 0.f, sum_dxhat_xhat = 0.f;
  for (int i = threadIdx.x; i < span; i += blockDim.x) {
    const float dxhat = gamma[g * channels_per_group + i / HW] * dy[base + i];
    sum_dxhat += dxhat;
    sum_dxhat_xhat += dxhat * (x[base + i] - mu) * r;
  }
  const float mean_dxhat = block_sum(sum_dxhat) / float(span);
  const float mean_dxhat_xhat = block_sum(sum_dxhat_xhat) / float(span);
  for (int i = threadIdx.x; i < span; i += blockDim.x) {
    const float dxhat = gamma[g * channels_per_group + i / HW] * dy[base + i];
    const float xhat = (x[base + i] - mu) * r;
    dx[base + i] = r * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
  }
}

// dγ[c] = Σ_{n,hw} dy·x̂ and dβ[c] = Σ_{n,hw} dy: one block per channel walks all N samples.
__global__ void group_norm_backward_affine_naive_kernel(const float* dy, const float* x,
                                                        const float* mean, const float* rstd,
                                                        float* dgamma, float* dbeta, int N, int C,
                                                        int HW, int G) {
  const int c = blockIdx.x, g = c / (C / G);
  float sum_dy_xhat = 0.f, sum_dy = 0.f;
  for (int n = 0; n < N; ++n) {
    const std::size_t base = (std::size_t(n) * C + c) * HW;
    const float mu = mean[n * G + g], r = rstd[n * G + g];
    for (int i = threadIdx.x; i < HW; i += blockDim.x) {
      sum_dy_xhat += dy[base + i] * (x[base + i] - mu) * r;
      sum_dy += dy[base + i];
    }
  }
  const float total_dy_xhat = block_sum(sum_dy_xhat);
  const float total_dy = block_sum(sum_dy);
  if (threadIdx.x == 0) {
    dgamma[c] = total_dy_xhat;
    dbeta[c] = total_dy;
  }
}

}  // namespace

void group_norm_forward_cuda_naive(const float* x, const float* gamma, const float* beta, float* y,
                                   float* mean, float* rstd, int N, int C, int HW, int G,
                                   float eps) {
  const char* op = "group_norm_forward_cuda_naive";
  check_group_norm_sizes(op, N, C, HW, G);
  check_group_norm_group_fits_int32(op, C, HW, G);
  if (N == 0) return;  // an empty launch is an error in CUDA
  group_norm_forward_naive_kernel<<<N * G, kNaiveThreads, 0, cuda_stream()>>>(
      x, gamma, beta, y, mean, rstd, C, HW, G, eps);
  FM_CUDA_CHECK_LAUNCH();
}

void group_norm_backward_cuda_naive(const float* dy, const float* x, const float* mean,
                                    const float* rstd, const float* gamma, float* dx, float* dgamma,
                                    float* dbeta, int N, int C, int HW, int G) {
  const char* op = "group_norm_backward_cuda_naive";
  check_group_norm_sizes(op, N, C, HW, G);
  check_group_norm_group_fits_int32(op, C, HW, G);
  // With N == 0 there is no dx to compute; the per-channel kernel still writes dγ = dβ = 0.
  if (N > 0) {
    group_norm_backward_input_naive_kernel<<<N * G, kNaiveThreads, 0, cuda_stream()>>>(
        dy, x, mean, rstd, gamma, dx, C, HW, G);
    FM_CUDA_CHECK_LAUNCH();
  }
  group_norm_backward_affine_naive_kernel<<<C, kNaiveThreads, 0, cuda_stream()>>>(
      dy, x, mean, rstd, dgamma, dbeta, N, C, HW, G);
  FM_CUDA_CHECK_LAUNCH();
}

}  // namespace fm::kernels
