// kernels/cuda/reduce.cu — row sums on the GPU: one block per row, each thread strides over the
// row, then a shared-memory tree reduces the block. The order is fixed, so results are repeatable.
// A bf16 row is added up in float and its total rounded once.
#include "kernels/cuda/cuda_check.h"
#include "kernels/reduce.h"

namespace fm::kernels {
namespace {

constexpr int kBlock = 256;

template <typename T>
__global__ void sum_rows_kernel(const T* x, T* y, std::int64_t rows, std::int64_t cols) {
  __shared__ float partial[kBlock];
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = x + r * cols;
    float acc = 0.f;
    for (std::int64_t c = threadIdx.x; c < cols; c += kBlock) acc += float(row[c]);
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int width = kBlock / 2; width > 0; width /= 2) {
      if (int(threadIdx.x) < width) partial[threadIdx.x] += partial[threadIdx.x + width];
      __syncthreads();
    }
    if (threadIdx.x == 0) y[r] = T(partial[0]);
    __syncthreads();
  }
}

}  // namespace

template <typename T>
void sum_rows_cuda(const T* x, T* y, std::int64_t rows, std::int64_t cols) {
  if (rows == 0) return;
  int grid = int(rows < 65535 ? rows : 65535);
  sum_rows_kernel<T><<<grid, kBlock, 0, cuda_stream()>>>(x, y, rows, cols);
  FM_CUDA_CHECK_LAUNCH();
}

template void sum_rows_cuda<float>(const float*, float*, std::int64_t, std::int64_t);
template void sum_rows_cuda<bf16>(const bf16*, bf16*, std::int64_t, std::int64_t);

}  // namespace fm::kernels
