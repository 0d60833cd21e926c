// kernels/conv2d.h — 2-D convolution and transposed convolution kernels (NCHW, float32/float64, and
// bfloat16 activations with float32 weights).
//
// Plain functions over pointers, no Tensor: core/ checks shapes and calls these. Conventions follow
// PyTorch so weights and numbers can be compared one to one:
//
//   conv2d            x [N, C_in, H, W],  weight [C_out, C_in, kh, kw], bias [C_out]
//                     y [N, C_out, Ho, Wo],  Ho = (H + 2·pad_h − kh) / stride_h + 1
//                     y[n,o,i,j] = bias[o] + Σ_{c,r,s} x[n, c, i·stride_h − pad_h + r,
//                                                        j·stride_w − pad_w + s] · w[o,c,r,s]
//                     (cross-correlation; taps that fall in the zero padding contribute nothing)
//   conv_transpose2d  x [N, C_in, H, W],  weight [C_in, C_out, kh, kw], bias [C_out]
//                     y [N, C_out, Ho, Wo], Ho = (H − 1)·stride_h − 2·pad_h + kh
//                     It is the adjoint (gradient w.r.t. input) of the conv2d that maps y's shape
//                     back to x's shape with the same weight, stride and padding: every input
//                     pixel scatters x[n,c,i,j] · w[c,o,:,:] into the output window whose corner
//                     is (i·stride − pad, j·stride − pad).
//
// Every function overwrites its outputs (y, dx, dweight, dbias); nothing accumulates. Bias pointers
// may be null (no bias; for dbias: not wanted).
//
// Five implementations with the same meaning:
//   *_cpu<T>       cpu/conv2d_reference.cpp      readable loops, the definition tests trust
//   *_im2col<T>    cpu/conv2d_im2col.cpp         im2col + blocked GEMM, the CPU training path
//   *_cuda_naive   cuda/conv2d_naive.cu          one thread per output element (kernel lab v1)
//   *_cuda         cuda/conv2d_implicit_gemm.cu  tiled implicit GEMM, the GPU training path (v2)
//   *_cudnn        cuda/conv2d_cudnn.cpp         the cuDNN baseline
// CUDA versions take device pointers and run on fm::kernels::cuda_stream(); only v2 (implicit GEMM)
// has bfloat16-activation overloads.
#pragma once
#include "kernels/bfloat16.h"

namespace fm::kernels {

struct Conv2dParams {
  int batch = 1, in_channels = 1, in_height = 1, in_width = 1, out_channels = 1;
  int kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;

  int out_height() const { return (in_height + 2 * pad_h - kernel_h) / stride_h + 1; }
  int out_width() const { return (in_width + 2 * pad_w - kernel_w) / stride_w + 1; }
};

struct ConvTranspose2dParams {
  int batch = 1, in_channels = 1, in_height = 1, in_width = 1, out_channels = 1;
  int kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;

  int out_height() const { return (in_height - 1) * stride_h - 2 * pad_h + kernel_h; }
  int out_width() const { return (in_width - 1) * stride_w - 2 * pad_w + kernel_w; }

  // The conv2d whose backward-input pass this transposed convolution is: it reads an image of this
  // op's output size with C_out channels and produces this op's input size with C_in channels. Its
  // weight [C_in, C_out, kh, kw] is read as conv2d's [out = C_in, in = C_out, kh, kw]: same memory.
  // (Its out_height() gives back in_height exactly: ((H−1)s − 2p + k + 2p − k)/s + 1 = H.)
  Conv2dParams as_conv2d() const {
    Conv2dParams c;
    c.batch = batch;
    c.in_channels = out_channels;
    c.in_height = out_height();
    c.in_width = out_width();
    c.out_channels = in_channels;
    c.kernel_h = kernel_h;
    c.kernel_w = kernel_w;
    c.stride_h = stride_h;
    c.stride_w = stride_w;
    c.pad_h = pad_h;
    c.pad_w = pad_w;
    return c;
  }
};

// ---- reference loops (kernels/cpu/conv2d_reference.cpp), T = float or double --------------------
template <typename T>
void conv2d_forward_cpu(const T* x, const T* weight, const T* bias, T* y, const Conv2dParams& p);
template <typename T>
void conv2d_backward_input_cpu(const T* dy, const T* weight, T* dx, const Conv2dParams& p);
template <typename T>
void conv2d_backward_weight_cpu(const T* x, const T* dy, T* dweight, T* dbias,
                                const Conv2dParams& p);

template <typename T>
void conv_transpose2d_forward_cpu(const T* x, const T* weight, const T* bias, T* y,
                                  const ConvTranspose2dParams& p);
template <typename T>
void conv_transpose2d_backward_input_cpu(const T* dy, const T* weight, T* dx,
                                         const ConvTranspose2dParams& p);
template <typename T>
void conv_transpose2d_backward_weight_cpu(const T* x, const T* dy, T* dweight, T* dbias,
                                          const ConvTranspose2dParams& p);

// ---- im2col + GEMM (kernels/cpu/conv2d_im2col.cpp), T = float or double -------------------------
template <typename T>
void conv2d_forward_im2col(const T* x, const T* weight, const T* bias, T* y, const Conv2dParams& p);
template <typename T>
void conv2d_backward_input_im2col(const T* dy, const T* weight, T* dx, const Conv2dParams& p);
template <typename T>
void conv2d_backward_weight_im2col(const T* x, const T* dy, T* dweight, T* dbias,
                                   const Conv2dParams& p);

template <typename T>
void conv_transpose2d_forward_im2col(const T* x, const T* weight, const T* bias, T* y,
                                     const ConvTranspose2dParams& p);
template <typename T>
void conv_transpose2d_backward_input_im2col(const T* dy, const T* weight, T* dx,
                                            const ConvTranspose2dParams& p);
template <typename T>
void conv_transpose2d_backward_weight_im2col(const T* x, const T* dy, T* dweight, T* dbias,
                                             const ConvTranspose2dParams& p);

// bfloat16 activations (x, y, dy, dx), float32 weight, bias and their gradients: the float im2col
// path on the widened inputs, each output rounded once (the reference of the CUDA bf16 overloads).
void conv2d_forward_im2col(const bf16* x, const float* weight, const float* bias, bf16* y, const Conv2dParams& p);
void conv2d_backward_input_im2col(const bf16* dy, const float* weight, bf16* dx, const Conv2dParams& p);
void conv2d_backward_weight_im2col(const bf16* x, const bf16* dy, float* dweight, float* dbias,
                                   const Conv2dParams& p);
void conv_transpose2d_forward_im2col(const bf16* x, const float* weight, const float* bias, bf16* y,
                                     const ConvTranspose2dParams& p);
void conv_transpose2d_backward_input_im2col(const bf16* dy, const float* weight, bf16* dx,
                                            const ConvTranspose2dParams& p);
void conv_transpose2d_backward_weight_im2col(const bf16* x, const bf16* dy, float* dweight, float* dbias,
                                             const ConvTranspose2dParams& p);

// ---- CUDA v1: one thread per output element (kernels/cuda/conv2d_naive.cu) ---------------------
void conv2d_forward_cuda_naive(const float* x, const float* weight, const float* bias, float* y,
                               const Conv2dParams& p);
void conv2d_backward_input_cuda_naive(const float* dy, const float* weight, float* dx,
                                      const Conv2dParams& p);
void conv2d_backward_weight_cuda_naive(const float* x, const float* dy, float* dweight,
                                       float* dbias, const Conv2dParams& p);
void conv_transpose2d_forward_cuda_naive(const float* x, const float* weight, const float* bias,
                                         float* y, const ConvTranspose2dParams& p);
void conv_transpose2d_backward_input_cuda_naive(const float* dy, const float* weight, float* dx,
                                                const ConvTranspose2dParams& p);
void conv_transpose2d_backward_weight_cuda_naive(const float* x, const float* dy, float* dweight,
                                                 float* dbias, const ConvTranspose2dParams& p);

// ---- CUDA v2: tiled implicit GEMM (kernels/cuda/conv2d_implicit_gemm.cu) ------------------------
void conv2d_forward_cuda(const float* x, const float* weight, const float* bias, float* y,
                         const Conv2dParams& p);
void conv2d_backward_input_cuda(const float* dy, const float* weight, float* dx,
                                const Conv2dParams& p);
void conv2d_backward_weight_cuda(const float* x, const float* dy, float* dweight, float* dbias,
                                 const Conv2dParams& p);
void conv_transpose2d_forward_cuda(const float* x, const float* weight, const float* bias, float* y,
                                   const ConvTranspose2dParams& p);
void conv_transpose2d_backward_input_cuda(const float* dy, const float* weight, float* dx,
                                          const ConvTranspose2dParams& p);
void conv_transpose2d_backward_weight_cuda(const float* x, const float* dy, float* dweight,
                                           float* dbias, const ConvTranspose2dParams& p);

// bfloat16 activations (x, y, dy, dx in bfloat16; weight, bias and their gradients float32): the same
// implicit GEMM reading and writing bfloat16, always multiplying on the bfloat16 tensor cores (the
// weights rounded to bfloat16 as they are staged), at every channel count. sm_80+ (refused by name
// before). The outputs (y, dx) must be aligned to four elements (8 bytes), as fresh allocations are:
// runs of four pixels are stored as one 8-byte write.
void conv2d_forward_cuda(const bf16* x, const float* weight, const float* bias, bf16* y, const Conv2dParams& p);
void conv2d_backward_input_cuda(const bf16* dy, const float* weight, bf16* dx, const Conv2dParams& p);
void conv2d_backward_weight_cuda(const bf16* x, const bf16* dy, float* dweight, float* dbias,
                                 const Conv2dParams& p);
void conv_transpose2d_forward_cuda(const bf16* x, const float* weight, const float* bias, bf16* y,
                                   const ConvTranspose2dParams& p);
void conv_transpose2d_backward_input_cuda(const bf16* dy, const float* weight, bf16* dx,
                                          const ConvTranspose2dParams& p);
void conv_transpose2d_backward_weight_cuda(const bf16* x, const bf16* dy, float* dweight, float* dbias,
                                           const ConvTranspose2dParams& p);
// ---- CUDA v2 on the TF32 tensor cores: the same implicit GEMM with its multiply done by WMMA
// m16n16k8 fragments (inputs rounded to TF32, FP32 accumulation; docs/ops/tensor_cores.md). sm_80+.
// The one- and two-column layers still take the direct FP32 kernels.
void conv2d_forward_cuda_tf32(const float* x, const float* weight, const float* bias, float* y,
                              const Conv2dParams& p);
void conv2d_backward_input_cuda_tf32(const float* dy, const float* weight, float* dx, const Conv2dParams& p);
void conv2d_backward_weight_cuda_tf32(const float* x, const float* dy, float* dweight, float* dbias,
                                      const Conv2dParams& p);
void conv_transpose2d_forward_cuda_tf32(const float* x, const float* weight, const float* bias, float* y,
                                        const ConvTranspose2dParams& p);
void conv_transpose2d_backward_input_cuda_tf32(const float* dy, const float* weight, float* dx,
                                               const ConvTranspose2dParams& p);
void conv_transpose2d_backward_weight_cuda_tf32(const float* x, const float* dy, float* dweight, float* dbias,
                                                const ConvTranspose2dParams& p);

// ---- the same on the bfloat16 tensor cores: shared tiles of bfloat16 (inputs rounded to nearest
// even as they are staged), WMMA m16n16k16, FP32 accumulation and FP32 tensors in memory. sm_80+.
void conv2d_forward_cuda_bf16(const float* x, const float* weight, const float* bias, float* y,
                              const Conv2dParams& p);
void conv2d_backward_input_cuda_bf16(const float* dy, const float* weight, float* dx, const Conv2dParams& p);
void conv2d_backward_weight_cuda_bf16(const float* x, const float* dy, float* dweight, float* dbias,
                                      const Conv2dParams& p);
void conv_transpose2d_forward_cuda_bf16(const float* x, const float* weight, const float* bias, float* y,
                                        const ConvTranspose2dParams& p);
void conv_transpose2d_backward_input_cuda_bf16(const float* dy, const float* weight, float* dx,
                                               const ConvTranspose2dParams& p);
void conv_transpose2d_backward_weight_cuda_bf16(const float* x, const float* dy, float* dweight, float* dbias,
                                                const ConvTranspose2dParams& p);

// ---- cuDNN (kernels/cuda/conv2d_cudnn.cpp): the library baseline, in four ways of choosing its
// algorithm and arithmetic.
enum class CudnnAlgorithms {
  // The heuristics' best algorithm that sums in the spatial domain (GEMM-based or direct, no FFT or
  // Winograd), FMA math (no TF32), deterministic where one is: the lab's baseline, and the engine's
  // library path under precision fp32. Within the FP32 tolerance of the tests.
  SpatialFp32,
  // The same with TF32 tensor-core math allowed: the engine's library path under tf32 and bf16
  // (cuDNN has no bfloat16 arithmetic for FP32 tensors). Within the TF32 bound.
  SpatialTf32,
  // Every algorithm, FFT and Winograd too, the fastest as cudnnFind times them, FMA math: PyTorch
  // with cudnn.benchmark = True and allow_tf32 off. No error bound (transforms): the lab reports it.
  FastestFp32,
  // The same with TF32 allowed: PyTorch's default with cudnn.benchmark = True.
  FastestTf32,
};
void conv2d_forward_cudnn_with(CudnnAlgorithms algorithms, const float* x, const float* weight, const float* bias,
                               float* y, const Conv2dParams& p);
void conv2d_backward_input_cudnn_with(CudnnAlgorithms algorithms, const float* dy, const float* weight, float* dx,
                                      const Conv2dParams& p);
void conv2d_backward_weight_cudnn_with(CudnnAlgorithms algorithms, const float* x, const float* dy, float* dweight,
                                       float* dbias, const Conv2dParams& p);
void conv_transpose2d_forward_cudnn_with(CudnnAlgorithms algorithms, const float* x, const float* weight,
                                         const float* bias, float* y, const ConvTranspose2dParams& p);
void conv_transpose2d_backward_input_cudnn_with(CudnnAlgorithms algorithms, const float* dy, const float* weight,
                                                float* dx, const ConvTranspose2dParams& p);
void conv_transpose2d_backward_weight_cudnn_with(CudnnAlgorithms algorithms, const float* x, const float* dy,
                                                 float* dweight, float* dbias, const ConvTranspose2dParams& p);

// The passes with one way fixed, as plain functions (the kernel lab's and the tests' tables hold
// function pointers). *_cudnn: SpatialFp32, the baseline.
template <CudnnAlgorithms kAlgorithms>
void conv2d_forward_cudnn_as(const float* x, const float* weight, const float* bias, float* y, const Conv2dParams& p) {
  conv2d_forward_cudnn_with(kAlgorithms, x, weight, bias, y, p);
}
template <CudnnAlgorithms kAlgorithms>
void conv2d_backward_input_cudnn_as(const float* dy, const float* weight, float* dx, const Conv2dParams& p) {
  conv2d_backward_input_cudnn_with(kAlgorithms, dy, weight, dx, p);
}
template <CudnnAlgorithms kAlgorithms>
void conv2d_backward_weight_cudnn_as(const float* x, const float* dy, float* dweight, float* dbias,
                                     const Conv2dParams& p) {
  conv2d_backward_weight_cudnn_with(kAlgorithms, x, dy, dweight, dbias, p);
}
template <CudnnAlgorithms kAlgorithms>
void conv_transpose2d_forward_cudnn_as(const float* x, const float* weight, const float* bias, float* y,
                                       const ConvTranspose2dParams& p) {
  conv_transpose2d_forward_cudnn_with(kAlgorithms, x, weight, bias, y, p);
}
template <CudnnAlgorithms kAlgorithms>
void conv_transpose2d_backward_input_cudnn_as(const float* dy, const float* weight, float* dx,
                                              const ConvTranspose2dParams& p) {
  conv_transpose2d_backward_input_cudnn_with(kAlgorithms, dy, weight, dx, p);
}
template <CudnnAlgorithms kAlgorithms>
void conv_transpose2d_backward_weight_cudnn_as(const float* x, const float* dy, float* dweight, float* dbias,
                                               const ConvTranspose2dParams& p) {
  conv_transpose2d_backward_weight_cudnn_with(kAlgorithms, x, dy, dweight, dbias, p);
}
inline constexpr auto conv2d_forward_cudnn = conv2d_forward_cudnn_as<CudnnAlgorithms::SpatialFp32>;
inline constexpr auto conv2d_backward_input_cudnn = conv2d_backward_input_cudnn_as<CudnnAlgorithms::SpatialFp32>;
inline constexpr auto conv2d_backward_weight_cudnn = conv2d_backward_weight_cudnn_as<CudnnAlgorithms::SpatialFp32>;
inline constexpr auto conv_transpose2d_forward_cudnn = conv_transpose2d_forward_cudnn_as<CudnnAlgorithms::SpatialFp32>;
inline constexpr auto conv_transpose2d_backward_input_cudnn =
    conv_transpose2d_backward_input_cudnn_as<CudnnAlgorithms::SpatialFp32>;
inline constexpr auto conv_transpose2d_backward_weight_cudnn =
    conv_transpose2d_backward_weight_cudnn_as<CudnnAlgorithms::SpatialFp32>;

}  // namespace fm::kernels
