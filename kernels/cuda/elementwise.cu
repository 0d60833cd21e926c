// kernels/cuda/elementwise.cu — CUDA twins of the elementwise maps (float32 and bfloat16).
//
// One thread per output element over a grid-stride loop. The geometry travels by value as a kernel
// argument (it is small); the dense case skips the per-element index arithmetic.
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/elementwise.h"
#include "kernels/elementwise_math.h"

namespace fm::kernels {
namespace {

int grid_for(std::int64_t n, int block) {
  std::int64_t blocks = ceil_div(n, block);
  return int(blocks < 65535 * 8 ? blocks : 65535 * 8);
}

// Each element is loaded in T, computed in C = compute_t<T> (float for bf16) and stored in T: the
// formulas of kernels/elementwise_math.h and the rounding of kernels/bfloat16.h, as on the CPU.
template <typename T, typename C = compute_t<T>>
__global__ void unary_dense_kernel(UnaryOp op, const T* x, T* y, std::int64_t n, C alpha, C beta) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    y[i] = op == UnaryOp::Identity ? x[i] : T(apply_unary(op, C(x[i]), alpha, beta));  // a copy keeps every bit
}

template <typename T, typename C = compute_t<T>>
__global__ void unary_strided_kernel(UnaryOp op, const T* x, T* y, ElementwiseGeometry g, std::int64_t n,
                                     C alpha, C beta) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    std::int64_t xo = strided_offset(i, g.ndim, g.sizes, g.a_strides);
    std::int64_t yo = strided_offset(i, g.ndim, g.sizes, g.out_strides);
    y[yo] = op == UnaryOp::Identity ? x[xo] : T(apply_unary(op, C(x[xo]), alpha, beta));
  }
}

template <typename T, typename C = compute_t<T>>
__global__ void binary_dense_kernel(BinaryOp op, const T* a, const T* b, T* y, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    y[i] = T(apply_binary(op, C(a[i]), C(b[i])));
}

template <typename T, typename C = compute_t<T>>
__global__ void binary_strided_kernel(BinaryOp op, const T* a, const T* b, T* y, ElementwiseGeometry g,
                                      std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    std::int64_t ao = strided_offset(i, g.ndim, g.sizes, g.a_strides);
    std::int64_t bo = strided_offset(i, g.ndim, g.sizes, g.b_strides);
    std::int64_t yo = strided_offset(i, g.ndim, g.sizes, g.out_strides);
    y[yo] = T(apply_binary(op, C(a[ao]), C(b[bo])));
  }
}

// float -> bf16 rounds (kernels/bfloat16.h); bf16 -> float is exact.
template <typename From, typename To>
__global__ void convert_kernel(const From* x, To* y, ElementwiseGeometry g, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    std::int64_t xo = strided_offset(i, g.ndim, g.sizes, g.a_strides);
    std::int64_t yo = strided_offset(i, g.ndim, g.sizes, g.out_strides);
    if constexpr (std::is_same_v<From, To>)
      y[yo] = x[xo];  // a copy keeps every bit
    else
      y[yo] = To(float(x[xo]));
  }
}

template <typename T>
__global__ void fill_kernel(T* y, ElementwiseGeometry g, std::int64_t n, T value) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    y[strided_offset(i, g.ndim, g.sizes, g.out_strides)] = value;
}

constexpr int kBlock = 256;

}  // namespace

template <typename T>
void unary_cuda(UnaryOp op, const T* x, T* y, const ElementwiseGeometry& g, double alpha, double beta) {
  using C = compute_t<T>;
  std::int64_t n = g.numel();
  if (n == 0) return;
  if (is_dense(g, g.a_strides) && is_dense(g, g.out_strides))
    unary_dense_kernel<T><<<grid_for(n, kBlock), kBlock, 0, cuda_stream()>>>(op, x, y, n, C(alpha), C(beta));
  else
    unary_strided_kernel<T><<<grid_for(n, kBlock), kBlock, 0, cuda_stream()>>>(op, x, y, g, n, C(alpha),
                                                                               C(beta));
  FM_CUDA_CHECK_LAUNCH();
}

template <typename T>
void binary_cuda(BinaryOp op, const T* a, const T* b, T* y, const ElementwiseGeometry& g) {
  std::int64_t n = g.numel();
  if (n == 0) return;
  if (is_dense(g, g.a_strides) && is_dense(g, g.b_strides) && is_dense(g, g.out_strides))
    binary_dense_kernel<T><<<grid_for(n, kBlock), kBlock, 0, cuda_stream()>>>(op, a, b, y, n);
  else
    binary_strided_kernel<T><<<grid_for(n, kBlock), kBlock, 0, cuda_stream()>>>(op, a, b, y, g, n);
  FM_CUDA_CHECK_LAUNCH();
}

template <typename From, typename To>
void convert_cuda(const From* x, To* y, const ElementwiseGeometry& g) {
  std::int64_t n = g.numel();
  if (n == 0) return;
  convert_kernel<From, To><<<grid_for(n, kBlock), kBlock, 0, cuda_stream()>>>(x, y, g, n);
  FM_CUDA_CHECK_LAUNCH();
}

template <typename T>
void fill_cuda(T* y, const ElementwiseGeometry& g, double value) {
  std::int64_t n = g.numel();
  if (n == 0) return;
  fill_kernel<T><<<grid_for(n, kBlock), kBlock, 0, cuda_stream()>>>(y, g, n, T(value));
  FM_CUDA_CHECK_LAUNCH();
}

template void unary_cuda<float>(UnaryOp, const float*, float*, const ElementwiseGeometry&, double, double);
template void unary_cuda<bf16>(UnaryOp, const bf16*, bf16*, const ElementwiseGeometry&, double, double);
template void binary_cuda<float>(BinaryOp, const float*, const float*, float*, const ElementwiseGeometry&);
template void binary_cuda<bf16>(BinaryOp, const bf16*, const bf16*, bf16*, const ElementwiseGeometry&);
template void convert_cuda<float, bf16>(const float*, bf16*, const ElementwiseGeometry&);
template void convert_cuda<bf16, float>(const bf16*, float*, const ElementwiseGeometry&);
template void fill_cuda<float>(float*, const ElementwiseGeometry&, double);
template void fill_cuda<bf16>(bf16*, const ElementwiseGeometry&, double);

}  // namespace fm::kernels
