// kernels/cuda/conv2d_naive.cu — v1 of the GPU convolution: one thread per output element, a
// straight port of the reference loops (kernels/cpu/conv2d_reference.cpp).
//
// Kept as the first step of the kernel lab's progression: it is easy to check by eye and it is
// slow for clear reasons — every thread re-reads its whole input window and weight slice from
// global memory (no reuse through shared memory or registers), and the weight-gradient threads each
// walk the entire batch alone. kernels/cuda/conv2d_implicit_gemm.cu is v2.
//
// Backward input is written as a gather (each dx element finds the outputs that read it: output
// row i = (h + pad − r) / stride when that divides exactly) so that no two threads write the same
// element and no atomics are needed. conv_transpose2d reuses the three kernels with roles swapped
// (see ConvTranspose2dParams::as_conv2d in kernels/conv2d.h).
#include <cstdint>

#include "kernels/conv2d.h"
#include "kernels/cuda/common.cuh"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

constexpr int kThreadsPerBlock = 256;

// The conv geometry as the kernels see it (output size computed once on the host).
struct NaiveGeometry {
  int batch, in_channels, in_height, in_width, out_channels, out_height, out_width;
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
};

NaiveGeometry geometry_of(const Conv2dParams& p) {
  FM_CHECK(p.batch >= 0 && p.in_channels > 0 && p.out_channels > 0 && p.kernel_h > 0 &&
               p.kernel_w > 0 && p.stride_h > 0 && p.stride_w > 0 && p.pad_h >= 0 && p.pad_w >= 0,
           ValueError,
           "conv2d_cuda_naive: bad parameters (channels, kernel and stride must be "
           "positive, padding non-negative)");
  FM_CHECK(p.out_height() > 0 && p.out_width() > 0, ValueError, "conv2d_cuda_naive: kernel ",
           p.kernel_h, "x", p.kernel_w, " does not fit the padded ", p.in_height, "x", p.in_width,
           " input");
  return {p.batch,        p.in_channels, p.in_height, p.in_width, p.out_channels,
          p.out_height(), p.out_width(), p.kernel_h,  p.kernel_w, p.stride_h,
          p.stride_w,     p.pad_h,       p.pad_w};
}

unsigned blocks_for(std::int64_t threads) {
  return unsigned(ceil_div(threads, kThreadsPerBlock));
}

// y[n,o,i,j] = bias[o] + Σ_{c,r,s} x[n, c, i·S−P+r, j·S−P+s] · w[o,c,r,s]
__global__ void conv2d_forward_naive_kernel(const float* __restrict__ x,
                                            const float* __restrict__ weight,
                                            const float* __restrict__ bias, float* __restrict__ y,
                                            NaiveGeometry g) {
  const std::int64_t index = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t total = std::int64_t(g.batch) * g.out_channels * g.out_height * g.out_width;
  if (index >= total) return;
  const int j = int(index % g.out_width);
  const int i = int(index / g.out_width % g.out_height);
  const int o = int(index / (std::int64_t(g.out_width) * g.out_height) % g.out_channels);
  const int n = int(index / (std::int64_t(g.out_width) * g.out_height * g.out_channels));
  float sum = bias ? bias[o] : 0.f;
  for (int c = 0; c < g.in_channels; ++c)
    for (int r = 0; r < g.kernel_h; ++r) {
      const int h = i * g.stride_h - g.pad_h + r;
      if (h < 0 || h >= g.in_height) continue;
      for (int s = 0; s < g.kernel_w; ++s) {
        const int v = j * g.stride_w - g.pad_w + s;
        if (v < 0 || v >= g.in_width) continue;
        sum += x[((std::int64_t(n) * g.in_channels + c) * g.in_height + h) * g.in_width + v] *
               weight[((std::int64_t(o) * g.in_channels + c) * g.kernel_h + r) * g.kernel_w + s];
      }
    }
  y[index] = sum;
}

// dx[n,c,h,v] = Σ_{o,r,s : (h+P−r)/S and (v+P−s)/S are exact, in range} dy[n,o,i,j] · w[o,c,r,s]
// (+ bias[c] when used as conv_transpose2d's forward).
__global__ void conv2d_backward_input_naive_kernel(const float* __restrict__ dy,
                                                   const float* __restrict__ weight,
                                                   const float* __restrict__ bias,
                                                   float* __restrict__ dx, NaiveGeometry g) {
  const std::int64_t index = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t total = std::int64_t(g.batch) * g.in_channels * g.in_height * g.in_width;
  if (index >= total) return;
  const int v = int(index % g.in_width);
  const int h = int(index / g.in_width % g.in_height);
  const int c = int(index / (std::int64_t(g.in_width) * g.in_height) % g.in_channels);
  const int n = int(index / (std::int64_t(g.in_width) * g.in_height * g.in_channels));
  float sum = bias ? bias[c] : 0.f;
  for (int r = 0; r < g.kernel_h; ++r) {
    const int row_offset = h + g.pad_h - r;  // = i·S for the output row i that reads h with tap r
    if (row_offset < 0 || row_offset % g.stride_h != 0) continue;
    const int i = row_offset / g.stride_h;
    if (i >= g.out_height) continue;
    for (int s = 0; s < g.kernel_w; ++s) {
      const int col_offset = v + g.pad_w - s;
      if (col_offset < 0 || col_offset % g.stride_w != 0) continue;
      const int j = col_offset / g.stride_w;
      if (j >= g.out_width) continue;
      for (int o = 0; o < g.out_channels; ++o)
        sum += dy[((std::int64_t(n) * g.out_channels + o) * g.out_height + i) * g.out_width + j] *
               weight[((std::int64_t(o) * g.in_channels + c) * g.kernel_h + r) * g.kernel_w + s];
    }
  }
  dx[index] = sum;
}

// dw[o,c,r,s] = Σ_{n,i,j} x[n, c, i·S−P+r, j·S−P+s] · dy[n,o,i,j]
__global__ void conv2d_backward_weight_naive_kernel(const float* __restrict__ x,
                                                    const float* __restrict__ dy,
                                                    float* __restrict__ dweight, NaiveGeometry g) {
  const std::int64_t index = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t total = std::int64_t(g.out_channels) * g.in_channels * g.kernel_h * g.kernel_w;
  if (index >= total) return;
  const int s = int(index % g.kernel_w);
  const int r = int(index / g.kernel_w % g.kernel_h);
  const int c = int(index / (g.kernel_w * g.kernel_h) % g.in_channels);
  const int o = int(index / (std::int64_t(g.kernel_w) * g.kernel_h * g.in_channels));
  float sum = 0.f;
  for (int n = 0; n < g.batch; ++n)
    for (int i = 0; i < g.out_height; ++i) {
      const int h = i * g.stride_h - g.pad_h + r;
      if (h < 0 || h >= g.in_height) continue;
      for (int j = 0; j < g.out_width; ++j) {
        const int v = j * g.stride_w - g.pad_w + s;
        if (v < 0 || v >= g.in_width) continue;
        sum += x[((std::int64_t(n) * g.in_channels + c) * g.in_height + h) * g.in_width + v] *
               dy[((std::int64_t(n) * g.out_channels + o) * g.out_height + i) * g.out_width + j];
      }
    }
  dweight[index] = sum;
}

// sums[c] = Σ_{n,pixel} a[n, c, pixel]: one thread per channel (the bias gradient).
__global__ void channel_sum_naive_kernel(const float* __restrict__ a, float* __restrict__ sums,
                                         int batch, int channels, int pixels) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  float sum = 0.f;
  for (int n = 0; n < batch; ++n)
    for (int p = 0; p < pixels; ++p) sum += a[(std::int64_t(n) * channels + c) * pixels + p];
  sums[c] = sum;
}

void launch_forward(const float* x, const float* weight, const float* bias, float* y,
                    const NaiveGeometry& g) {
  const std::int64_t total = std::int64_t(g.batch) * g.out_channels * g.out_height * g.out_width;
  if (total == 0) return;
  conv2d_forward_naive_kernel<<<blocks_for(total), kThreadsPerBlock, 0, cuda_stream()>>>(
      x, weight, bias, y, g);
  FM_CUDA_CHECK_LAUNCH();
}

void launch_backward_input(const float* dy, const float* weight, const float* bias, float* dx,
                           const NaiveGeometry& g) {
  const std::int64_t total = std::int64_t(g.batch) * g.in_channels * g.in_height * g.in_width;
  if (total == 0) return;
  conv2d_backward_input_naive_kernel<<<blocks_for(total), kThreadsPerBlock, 0, cuda_stream()>>>(
      dy, weight, bias, dx, g);
  FM_CUDA_CHECK_LAUNCH();
}

void launch_backward_weight(const float* x, const float* dy, float* dweight,
                            const NaiveGeometry& g) {
  const std::int64_t total = std::int64_t(g.out_channels) * g.in_channels * g.kernel_h * g.kernel_w;
  conv2d_backward_weight_naive_kernel<<<blocks_for(total), kThreadsPerBlock, 0, cuda_stream()>>>(
      x, dy, dweight, g);
  FM_CUDA_CHECK_LAUNCH();
}

void launch_channel_sum(const float* a, float* sums, int batch, int channels, int pixels) {
  channel_sum_naive_kernel<<<blocks_for(channels), kThreadsPerBlock, 0, cuda_stream()>>>(
      a, sums, batch, channels, pixels);
  FM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void conv2d_forward_cuda_naive(const float* x, const float* weight, const float* bias, float* y,
                               const Conv2dParams& p) {
  launch_forward(x, weight, bias, y, geometry_of(p));
}

void conv2d_backward_input_cuda_naive(const float* dy, const float* weight, float* dx,
                                      const Conv2dParams& p) {
  launch_backward_input(dy, weight, nullptr, dx, geometry_of(p));
}

void conv2d_backward_weight_cuda_naive(const float* x, const float* dy, float* dweight,
                                       float* dbias, const Conv2dParams& p) {
  const NaiveGeometry g = geometry_of(p);
  launch_backward_weight(x, dy, dweight, g);
  if (dbias) launch_channel_sum(dy, dbias, g.batch, g.out_channels, g.out_height * g.out_width);
}

void conv_transpose2d_forward_cuda_naive(const float* x, const float* weight, const float* bias,
                                         float* y, const ConvTranspose2dParams& p) {
  // conv_transpose2d forward = backward input of the equivalent conv2d, plus the bias.
  launch_backward_input(x, weight, bias, y, geometry_of(p.as_conv2d()));
}

void conv_transpose2d_backward_input_cuda_naive(const float* dy, const float* weight, float* dx,
                                                const ConvTranspose2dParams& p) {
  launch_forward(dy, weight, nullptr, dx, geometry_of(p.as_conv2d()));
}

void conv_transpose2d_backward_weight_cuda_naive(const float* x, const float* dy, float* dweight,
                                                 float* dbias, const ConvTranspose2dParams& p) {
  // The equivalent conv2d reads dy as its input and x as its output gradient.
  const NaiveGeometry g = geometry_of(p.as_conv2d());
  launch_backward_weight(dy, x, dweight, g);
  if (dbias) launch_channel_sum(dy, dbias, p.batch, p.out_channels, p.out_height() * p.out_width());
}

}  // namespace fm::kernels
