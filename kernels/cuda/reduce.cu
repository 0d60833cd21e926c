// kernels/cuda/reduce.cu — row sums on the GPU: one block per row, each thread strides over the
// row, then a shared-memory tree reduces the block. The order is fixed, so results are repeatable.
#include "kernels/cuda/cuda_check.h"
#include "kernels/reduce.h"

namespace fm::kernels {
namespace {

constexpr int kBlock = 256;

__global__ void sum_rows_kernel(const float* x, float* y, std::int64_t rows, std::int64_t cols) {
  __shared__ float partial[kBlock];
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* row = x + r * cols;
    float acc = 0.f;
    for (std::int64_t c = threadIdx.x; c < cols; c += kBlock) acc += row[c];
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int width = kBlock / 2; width > 0; width /= 2) {
      if (int(threadIdx.x) < width) partial[threadIdx.x] += partial[threadIdx.x + width];
      __syncthreads();
    }
    if (threadIdx.x == 0) y[r] = partial[0];
    __syncthreads();
  }
}

}  // namespace

void sum_rows_cuda(const float* x, float* y, std::int64_t rows, std::int64_t cols) {
  if (rows == 0) return;
  int grid = int(rows < 65535 ? rows : 65535);
  sum_rows_kernel<<<grid, kBlock, 0, cuda_stream()>>>(x, y, rows, cols);
  FM_CUDA_CHECK_LAUNCH();
}

}  // namespace fm::kernels
