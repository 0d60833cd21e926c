// kernels/cuda/embedding.cu — the lookup table on the GPU (see kernels/embedding.h).
//
// Forward: one thread per output element, a copy. Backward: one thread per table element (r, d),
// which walks all `count` indices in order and sums the dout rows that name r. That reads the
// index list rows·dim times, but tables here are small (a class count by an embedding width) and
// it needs no atomics, so the result is reproducible and equals the CPU loop bit for bit.
#include "kernels/cuda/common.cuh"
#include "kernels/embedding.h"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

constexpr int kThreads = 256;

__global__ void embedding_forward_kernel(const float* table, const std::int32_t* index, float* out,
                                         std::int64_t total, int dim, int rows, const std::int64_t* index_offset,
                                         std::int64_t index_size) {
  const std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (k >= total) return;
  const std::int64_t i = k / dim, d = k % dim;
  const std::int64_t position = index_offset ? *index_offset + i : i;
  FM_DEVICE_CHECK(!index_offset || (position >= 0 && position < index_size));
  const std::int32_t row = index[position];
  FM_DEVICE_CHECK(row >= 0 && row < rows);
  out[k] = table[std::int64_t(row) * dim + d];
}

__global__ void embedding_backward_kernel(const float* dout, const std::int32_t* index, float* dtable,
                                          int count, std::int64_t table_size, int dim) {
  const std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (k >= table_size) return;
  const int r = int(k / dim), d = int(k % dim);
  float sum = 0.f;
  for (int i = 0; i < count; ++i)
    if (index[i] == r) sum += dout[std::int64_t(i) * dim + d];
  dtable[k] = sum;
}

}  // namespace

void embedding_forward_cuda(const float* table, const std::int32_t* index, float* out, int count, int rows,
                            int dim, const std::int64_t* index_offset, std::int64_t index_size) {
  const std::int64_t total = std::int64_t(count) * dim;
  if (total == 0) return;
  const unsigned blocks = unsigned(ceil_div(total, kThreads));
  embedding_forward_kernel<<<blocks, kThreads, 0, cuda_stream()>>>(table, index, out, total, dim, rows, index_offset,
                                                                   index_size);
  FM_CUDA_CHECK_LAUNCH();
}

void embedding_backward_cuda(const float* dout, const std::int32_t* index, float* dtable, int count, int rows,
                             int dim) {
  const std::int64_t table_size = std::int64_t(rows) * dim;
  if (table_size == 0) return;
  const unsigned blocks = unsigned(ceil_div(table_size, kThreads));
  embedding_backward_kernel<<<blocks, kThreads, 0, cuda_stream()>>>(dout, index, dtable, count, table_size, dim);
  FM_CUDA_CHECK_LAUNCH();
}

}  // namespace fm::kernels
