// bench/bench_conv2d.cu — 2-D convolution (NCHW, cross-correlation, PyTorch's conventions) over every
// convolution layer of the seed U-Net at batch 256: forward, backward w.r.t. the input (bwd-data) and
// backward w.r.t. weight and bias (bwd-weight). Formulas: kernels/conv2d.h.
//   y[n,o,i,j] = b[o] + Σ_{c,r,s} x[n, c, i·S − P + r, j·S − P + s] · w[o,c,r,s]
//
// Run:  fmbench conv2d [--shapes small] [--repeats N] [--csv FILE]
//
// Versions (kernels/conv2d.h):
//   v1 naive:          one thread per output element, the reference loops per thread; every thread
//                      re-reads its window and weights from global memory, and in bwd-weight each
//                      thread walks the whole batch alone (kernels/cuda/conv2d_naive.cu)
//   v2 implicit GEMM:  each pass as a tiled GEMM read straight out of NCHW (no im2col buffer),
//                      double-buffered shared memory, register blocking; stride parity classes for
//                      the strided bwd-data, split-K for bwd-weight (kernels/cuda/conv2d_implicit_gemm.cu)
//   cudnn:             cuDNN's heuristically best FP32 algorithm without TF32 (CUDNN_FMA_MATH),
//                      deterministic where possible — the baseline (kernels/cuda/conv2d_cudnn.cpp)
//
// Work and traffic, with Ho·Wo the output size:
//   FLOPs (each pass)   = 2 · N · Ho · Wo · C_out · C_in · kh · kw   (one multiply-add = 2 FLOPs)
//   fewest bytes fwd    = 4 · (|x| + |w| + |b| + |y|)
//   fewest bytes dgrad  = 4 · (|dy| + |w| + |dx|)
//   fewest bytes wgrad  = 4 · (|x| + |dy| + |dw| + |db|)
//   e.g. 64→64, 3×3 at 28×28: 14.8 GFLOP against ~103 MB, ~140 FLOP per byte: compute-bound, so
//   "% peak" is against the measured FP32 SGEMM rate. (bwd-data of a stride-2 conv skips the taps that
//   land between input pixels, but the useful multiply-adds are the same count: FLOPs as above.)
//
// CPU reference: conv2d_{forward,backward_input,backward_weight}_cpu<double> (the tests' reference
// loops) at the full batch, sample slices on all host threads (see conv_bench_common.h).
#include <cstdio>
#include <string>
#include <vector>

#include "bench/conv_bench_common.h"
#include "bench/harness.h"
#include "kernels/conv2d.h"

namespace fm::bench {
namespace {

namespace fk = fm::kernels;

// ---- the layers ----------------------------------------------------------------------------------
struct ConvLayer {
  const char* where;
  int in_channels, out_channels, size, kernel, stride, pad;  // square maps and kernels
};

// Every conv2d of nn/unet.cpp with the default UNetConfig (down 32-64-128, mid 128-64, 16 final),
// in forward order; identical shapes appear once, with every place they occur.
std::vector<ConvLayer> unet_conv_layers(const Options& options) {
  if (options.small_shapes)
    return {{"downs.0 conv_first (small batch)", 32, 64, 28, 3, 1, 1},
            {"downs.0 down_sample (small batch)", 64, 64, 28, 4, 2, 1},
            {"mids.0 resnet_convs.0 (small batch)", 128, 64, 7, 3, 1, 1},
            {"ups.1 residual_input_conv (small batch)", 64, 16, 28, 1, 1, 0}};
  return {
      {"conv_in", 1, 32, 28, 3, 1, 1},
      {"downs.0 resnet_conv_first", 32, 64, 28, 3, 1, 1},
      {"downs.0 resnet_conv_second", 64, 64, 28, 3, 1, 1},
      {"downs.0 residual_input_conv (1x1)", 32, 64, 28, 1, 1, 0},
      {"downs.0 down_sample_conv (4x4 s2)", 64, 64, 28, 4, 2, 1},
      {"downs.1 resnet_conv_first", 64, 128, 14, 3, 1, 1},
      {"downs.1 resnet_conv_second", 128, 128, 14, 3, 1, 1},
      {"downs.1 residual_input_conv (1x1)", 64, 128, 14, 1, 1, 0},
      {"downs.1 down_sample_conv (4x4 s2)", 128, 128, 14, 4, 2, 1},
      {"mids.0 resnet_convs.0", 128, 64, 7, 3, 1, 1},
      {"mids.0 resnet_convs.1-3 (3 layers)", 64, 64, 7, 3, 1, 1},
      {"mids.0 residual_input_conv.0 (1x1)", 128, 64, 7, 1, 1, 0},
      {"mids.0 residual_input_conv.1 (1x1)", 64, 64, 7, 1, 1, 0},
      {"ups.0 resnet_conv_first (after concat)", 128, 32, 14, 3, 1, 1},
      {"ups.0 resnet_conv_second", 32, 32, 14, 3, 1, 1},
      {"ups.0 residual_input_conv (1x1)", 128, 32, 14, 1, 1, 0},
      {"ups.1 resnet_conv_first (after concat)", 64, 16, 28, 3, 1, 1},
      {"ups.1 resnet_conv_second", 16, 16, 28, 3, 1, 1},
      {"ups.1 residual_input_conv (1x1)", 64, 16, 28, 1, 1, 0},
      {"conv_out", 16, 1, 28, 3, 1, 1},
  };
}

// ---- the versions ------------------------------------------------------------------------------
const std::vector<conv::ConvImplementation<fk::Conv2dParams>>& conv2d_implementations() {
  static const std::vector<conv::ConvImplementation<fk::Conv2dParams>> list = {
      {"v1 naive", fk::conv2d_forward_cuda_naive, fk::conv2d_backward_input_cuda_naive,
       fk::conv2d_backward_weight_cuda_naive},
      {"v2 implicit GEMM", fk::conv2d_forward_cuda, fk::conv2d_backward_input_cuda, fk::conv2d_backward_weight_cuda},
      {"cudnn", fk::conv2d_forward_cudnn, fk::conv2d_backward_input_cudnn, fk::conv2d_backward_weight_cudnn},
  };
  return list;
}

const conv::ConvReference<fk::Conv2dParams> kConv2dReference = {
    fk::conv2d_forward_cpu<double>, fk::conv2d_backward_input_cpu<double>, fk::conv2d_backward_weight_cpu<double>};

// 2 · N · Ho · Wo · C_out · C_in · kh · kw
double conv2d_flops(const fk::Conv2dParams& p) {
  return 2.0 * p.batch * p.out_height() * p.out_width() * double(p.out_channels) * p.in_channels * p.kernel_h *
         p.kernel_w;
}

}  // namespace

void run_conv2d(const Options& options) {
  measured_peaks(options);
  print_table_header("conv2d: the U-Net's convolutions, FP32 (compute-bound: % of SGEMM FP32 peak)",
                     "x base = cudnn median / version median; TFLOP/s = 2*N*Ho*Wo*Cout*Cin*kh*kw / median, all passes");
  const int batch = options.small_shapes ? 8 : 256;
  for (const ConvLayer& layer : unet_conv_layers(options)) {
    fk::Conv2dParams p;
    p.batch = batch;
    p.in_channels = layer.in_channels;
    p.in_height = p.in_width = layer.size;
    p.out_channels = layer.out_channels;
    p.kernel_h = p.kernel_w = layer.kernel;
    p.stride_h = p.stride_w = layer.stride;
    p.pad_h = p.pad_w = layer.pad;
    const std::string shape = dims_string({p.batch, p.in_channels, p.in_height, p.in_width}) + ">" +
                              std::to_string(p.out_channels) + " k" + std::to_string(layer.kernel) + "s" +
                              std::to_string(layer.stride) + "p" + std::to_string(layer.pad);
    if (!options.selects(shape)) continue;
    // kernels/cuda/conv2d_implicit_gemm.cu: GEMMs of at most two columns run on the direct kernel.
    if (p.out_channels <= 2)
      std::printf("   # %s: v2's forward GEMM has %d column(s): v2 runs the direct (v1) kernel there\n",
                  shape.c_str(), p.out_channels);
    if (p.in_channels <= 2)
      std::printf("   # %s: v2's bwd-data GEMM has %d column(s): v2 runs the direct (v1) kernel there\n",
                  shape.c_str(), p.in_channels);
    conv::bench_layer("conv2d", shape, layer.where, p, conv2d_flops(p), conv2d_implementations(), kConv2dReference,
                      "cudnn", options);
  }
}

}  // namespace fm::bench
