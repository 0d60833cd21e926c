// bench/bench_conv_transpose2d.cu — transposed 2-D convolution, the U-Net's 4×4 stride-2 upsampler
// (ConvTranspose2d(C, C, 4, 2, 1): 7×7 → 14×14 and 14×14 → 28×28), forward, bwd-data, bwd-weight.
//   y[n,o,:,:] = b[o] + Σ_c Σ_{i,j} x[n,c,i,j] · w[c,o,:,:] placed at (i·S − P, j·S − P)
// It is the adjoint of the conv2d with the same weight, stride and padding (kernels/conv2d.h,
// ConvTranspose2dParams::as_conv2d): its forward is that conv's bwd-data, its bwd-data is that
// conv's forward, its bwd-weight is that conv's bwd-weight with x and dy exchanged.
//
// Run:  fmbench conv_transpose2d [--shapes small] [--repeats N] [--csv FILE]
//
// Versions (kernels/conv2d.h):
//   v1 naive:          the naive conv2d kernels with roles swapped: one thread per output element,
//                      the forward as a gather over the taps that reach each output pixel
//   v2 implicit GEMM:  the tiled implicit GEMM with roles swapped; the forward (a strided dgrad)
//                      is split into stride_h·stride_w parity classes, each a dense GEMM over only
//                      the taps that reach it (otherwise 3 multiplies in 4 would be by zero)
//   cudnn:             cuDNN FP32 without TF32 (cudnnConvolutionBackwardData for the forward) — the
//                      baseline
//
// Work and traffic, H×W the input size:
//   FLOPs (each pass)   = 2 · N · H · W · C_in · C_out · kh · kw   (every input pixel meets the whole kernel)
//   fewest bytes        = 4 · (sum of the pass's inputs and outputs), as for conv2d
//   e.g. 64→64 at 7×7→14×14: 2·256·49·64·64·16 = 1.64 GFLOP against ~17 MB: compute-bound.
//
// CPU reference: conv_transpose2d_{forward,backward_input,backward_weight}_cpu<double> at the full
// batch, sample slices on all host threads (conv_bench_common.h).
#include <string>
#include <vector>

#include "bench/conv_bench_common.h"
#include "bench/harness.h"
#include "kernels/conv2d.h"

namespace fm::bench {
namespace {

namespace fk = fm::kernels;

struct UpsampleLayer {
  const char* where;
  int channels, size;  // ConvTranspose2d(channels, channels, 4, 2, 1) on size×size maps
};

std::vector<UpsampleLayer> unet_upsample_layers() {
  return {{"ups.0 up_sample_conv (mids.0 output -> 14x14)", 64, 7},
          {"ups.1 up_sample_conv (ups.0 output -> 28x28)", 32, 14}};
}

const std::vector<conv::ConvImplementation<fk::ConvTranspose2dParams>>& conv_transpose2d_implementations() {
  static const std::vector<conv::ConvImplementation<fk::ConvTranspose2dParams>> list = {
      {"v1 naive", fk::conv_transpose2d_forward_cuda_naive, fk::conv_transpose2d_backward_input_cuda_naive,
       fk::conv_transpose2d_backward_weight_cuda_naive},
      {"v2 implicit GEMM", fk::conv_transpose2d_forward_cuda, fk::conv_transpose2d_backward_input_cuda,
       fk::conv_transpose2d_backward_weight_cuda},
      {"cudnn", fk::conv_transpose2d_forward_cudnn, fk::conv_transpose2d_backward_input_cudnn,
       fk::conv_transpose2d_backward_weight_cudnn},
  };
  return list;
}

const conv::ConvReference<fk::ConvTranspose2dParams> kConvTranspose2dReference = {
    fk::conv_transpose2d_forward_cpu<double>, fk::conv_transpose2d_backward_input_cpu<double>,
    fk::conv_transpose2d_backward_weight_cpu<double>};

// 2 · N · H · W · C_in · C_out · kh · kw (H, W: the input's size)
double conv_transpose2d_flops(const fk::ConvTranspose2dParams& p) {
  return 2.0 * p.batch * p.in_height * p.in_width * double(p.in_channels) * p.out_channels * p.kernel_h * p.kernel_w;
}

}  // namespace

void run_conv_transpose2d(const Options& options) {
  measured_peaks(options);
  print_table_header("conv_transpose2d: the U-Net's 4x4 stride-2 upsamplers, FP32 (compute-bound: % of SGEMM FP32 peak)",
                     "x base = cudnn median / version median; TFLOP/s = 2*N*H*W*Cin*Cout*kh*kw / median, all passes");
  const int batch = options.small_shapes ? 8 : 256;
  for (const UpsampleLayer& layer : unet_upsample_layers()) {
    fk::ConvTranspose2dParams p;
    p.batch = batch;
    p.in_channels = p.out_channels = layer.channels;
    p.in_height = p.in_width = layer.size;
    p.kernel_h = p.kernel_w = 4;
    p.stride_h = p.stride_w = 2;
    p.pad_h = p.pad_w = 1;
    const std::string shape = dims_string({p.batch, p.in_channels, p.in_height, p.in_width}) + ">" +
                              std::to_string(p.out_channels) + " k4s2p1";
    if (!options.selects(shape)) continue;
    conv::bench_layer("conv_transpose2d", shape, layer.where, p, conv_transpose2d_flops(p),
                      conv_transpose2d_implementations(), kConvTranspose2dReference, "cudnn", options);
  }
}

}  // namespace fm::bench
