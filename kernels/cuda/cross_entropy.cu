// kernels/cuda/cross_entropy.cu — softmax cross-entropy on the GPU: one warp per row (class counts
// are small: 10 for Fashion-MNIST), warp shuffles for the row max and sum.
#include "kernels/cross_entropy.h"
#include "kernels/cuda/common.cuh"

namespace fm::kernels {
namespace {

__global__ void cross_entropy_forward_kernel(const float* logits, const std::int32_t* labels,
                                             float* row_loss, float* probs, int N, int C) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* z = logits + std::int64_t(row) * C;
  float m = -INFINITY;
  for (int c = lane; c < C; c += 32) m = fmaxf(m, z[c]);
  m = warp_max(m);
  float total = 0.f;
  for (int c = lane; c < C; c += 32) total += expf(z[c] - m);
  total = warp_sum(total);
  float log_total = logf(total);
  for (int c = lane; c < C; c += 32) probs[std::int64_t(row) * C + c] = expf(z[c] - m - log_total);
  if (lane == 0) row_loss[row] = log_total + m - z[labels[row]];
}

__global__ void cross_entropy_backward_kernel(const float* probs, const std::int32_t* labels,
                                              const float* row_scale, float* grad, int N, int C) {
  std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (i >= std::int64_t(N) * C) return;
  int r = int(i / C), c = int(i % C);
  grad[i] = row_scale[r] * (probs[i] - (c == labels[r] ? 1.f : 0.f));
}

}  // namespace

void cross_entropy_forward_cuda(const float* logits, const std::int32_t* labels, float* row_loss,
                                float* probs, int N, int C) {
  if (N == 0) return;
  const int rows_per_block = 8;
  cross_entropy_forward_kernel<<<unsigned(ceil_div(N, rows_per_block)), 32 * rows_per_block, 0,
                                 cuda_stream()>>>(logits, labels, row_loss, probs, N, C);
  FM_CUDA_CHECK_LAUNCH();
}

void cross_entropy_backward_cuda(const float* probs, const std::int32_t* labels,
                                 const float* row_scale, float* grad_logits, int N, int C) {
  std::int64_t n = std::int64_t(N) * C;
  if (n == 0) return;
  cross_entropy_backward_kernel<<<unsigned(ceil_div(n, 256)), 256, 0, cuda_stream()>>>(
      probs, labels, row_scale, grad_logits, N, C);
  FM_CUDA_CHECK_LAUNCH();
}

}  // namespace fm::kernels
