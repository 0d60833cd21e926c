// kernels/cuda/elementwise.cu — CUDA twins of the elementwise maps (float32).
//
// One thread per output element over a grid-stride loop. The geometry travels by value as a kernel
// argument (it is small); the dense case skips the per-element index arithmetic.
#include "kernels/cuda/common.cuh"
#include "kernels/elementwise.h"
#include "kernels/elementwise_math.h"

namespace fm::kernels {
namespace {

int grid_for(std::int64_t n, int block) {
  std::int64_t blocks = ceil_div(n, block);
  return int(blocks < 65535 * 8 ? blocks : 65535 * 8);
}

__global__ void unary_dense_kernel(UnaryOp op, const float* x, float* y, std::int64_t n, float alpha,
                                   float beta) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    y[i] = apply_unary(op, x[i], alpha, beta);
}

__global__ void unary_strided_kernel(UnaryOp op, const float* x, float* y, ElementwiseGeometry g,
                                     std::int64_t n, float alpha, float beta) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    std::int64_t xo = strided_offset(i, g.ndim, g.sizes, g.a_strides);
    std::int64_t yo = strided_offset(i, g.ndim, g.sizes, g.out_strides);
    y[yo] = apply_unary(op, x[xo], alpha, beta);
  }
}

__global__ void binary_dense_kernel(BinaryOp op, const float* a, const float* b, float* y,
                                    std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    y[i] = apply_binary(op, a[i], b[i]);
}

__global__ void binary_strided_kernel(BinaryOp op, const float* a, const float* b, float* y,
                                      ElementwiseGeometry g, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    std::int64_t ao = strided_offset(i, g.ndim, g.sizes, g.a_strides);
    std::int64_t bo = strided_offset(i, g.ndim, g.sizes, g.b_strides);
    std::int64_t yo = strided_offset(i, g.ndim, g.sizes, g.out_strides);
    y[yo] = apply_binary(op, a[ao], b[bo]);
  }
}

__global__ void fill_kernel(float* y, ElementwiseGeometry g, std::int64_t n, float value) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    y[strided_offset(i, g.ndim, g.sizes, g.out_strides)] = value;
}

constexpr int kBlock = 256;

}  // namespace

void unary_cuda(UnaryOp op, const float* x, float* y, const ElementwiseGeometry& g, double alpha,
                double beta) {
  std::int64_t n = g.numel();
  if (n == 0) return;
  if (is_dense(g, g.a_strides) && is_dense(g, g.out_strides))
    unary_dense_kernel<<<grid_for(n, kBlock), kBlock, 0, cuda_stream()>>>(op, x, y, n, float(alpha),
                                                                          float(beta));
  else
    unary_strided_kernel<<<grid_for(n, kBlock), kBlock, 0, cuda_stream()>>>(
        op, x, y, g, n, float(alpha), float(beta));
  FM_CUDA_CHECK_LAUNCH();
}

void binary_cuda(BinaryOp op, const float* a, const float* b, float* y, const ElementwiseGeometry& g) {
  std::int64_t n = g.numel();
  if (n == 0) return;
  if (is_dense(g, g.a_strides) && is_dense(g, g.b_strides) && is_dense(g, g.out_strides))
    binary_dense_kernel<<<grid_for(n, kBlock), kBlock, 0, cuda_stream()>>>(op, a, b, y, n);
  else
    binary_strided_kernel<<<grid_for(n, kBlock), kBlock, 0, cuda_stream()>>>(op, a, b, y, g, n);
  FM_CUDA_CHECK_LAUNCH();
}

void fill_cuda(float* y, const ElementwiseGeometry& g, double value) {
  std::int64_t n = g.numel();
  if (n == 0) return;
  fill_kernel<<<grid_for(n, kBlock), kBlock, 0, cuda_stream()>>>(y, g, n, float(value));
  FM_CUDA_CHECK_LAUNCH();
}

}  // namespace fm::kernels
