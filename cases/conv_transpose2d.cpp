// cases/conv_transpose2d.cpp — conv_transpose2d's case table (see cases/conv_transpose2d.h).
#include "cases/conv_transpose2d.h"

#include <string>

#include "kernels/runtime.h"

namespace fm::cases {

namespace fk = fm::kernels;

namespace {

// ConvTranspose2d(C_in, C_out, 4, 2, 1) on size×size maps: the U-Net's upsampler (size → 2·size).
fk::ConvTranspose2dParams upsample(int batch, int in_channels, int size, int out_channels) {
  return fk::ConvTranspose2dParams{batch, in_channels, size, size, out_channels, 4, 4, 2, 2, 1, 1};
}

std::vector<ConvTranspose2dCase> build_conv_transpose2d_cases() {
  std::vector<ConvTranspose2dCase> cases = {
      // The U-Net's upsamplers (and wider ones) at batch 2.
      {upsample(2, 256, 7, 128), "U-Net-like upsample 7 -> 14, 256 -> 128 channels, small batch", kTest},
      {upsample(2, 128, 7, 64), "U-Net-like upsample 7 -> 14, 128 -> 64 channels, small batch", kTest},
      {upsample(2, 64, 14, 32), "U-Net-like upsample 14 -> 28, small batch", kTest},
      // The float64 gradcheck of the reference backward: the U-Net's upsample, small.
      {fk::ConvTranspose2dParams{2, 3, 3, 4, 2, 4, 4, 2, 2, 1, 1}, "the U-Net's upsample, small",
       kTest | kGradcheck},
  };
  for (const conv::AwkwardShape& s : conv::awkward_shapes())
    cases.push_back({fk::ConvTranspose2dParams{s.batch, s.in_channels, s.in_height, s.in_width, s.out_channels,
                                               s.kernel_h, s.kernel_w, s.stride_h, s.stride_w, s.pad_h, s.pad_w},
                     s.why, kTest});
  // The U-Net's two upsamplers (nn/unet.cpp, default UNetConfig) at batch 256, and at batch 8 for
  // --shapes small.
  for (auto [batch, use] : {std::pair{256, kBench}, std::pair{8, kBenchSmall}}) {
    cases.push_back({upsample(batch, 64, 7, 64), "ups.0 up_sample_conv (mids.0 output -> 14x14)", unsigned(use)});
    cases.push_back({upsample(batch, 32, 14, 32), "ups.1 up_sample_conv (ups.0 output -> 28x28)", unsigned(use)});
  }
  return cases;
}

// Every entry compiled into this build, in the lab's order (the listing shows them all).
std::vector<ConvTranspose2dImplementation> compiled_conv_transpose2d_implementations() {
  std::vector<ConvTranspose2dImplementation> list = {
      {"cpu float", ImplKind::CpuReference, fk::conv_transpose2d_forward_cpu<float>,
       fk::conv_transpose2d_backward_input_cpu<float>, fk::conv_transpose2d_backward_weight_cpu<float>},
      {"im2col", ImplKind::CpuFast, fk::conv_transpose2d_forward_im2col<float>,
       fk::conv_transpose2d_backward_input_im2col<float>, fk::conv_transpose2d_backward_weight_im2col<float>},
  };
#ifdef FM_WITH_CUDA
  // v1 naive:          the naive conv2d kernels with roles swapped: one thread per output element,
  //                    the forward as a gather over the taps that reach each output pixel
  // v2 implicit GEMM:  the tiled implicit GEMM with roles swapped; the forward (a strided dgrad)
  //                    is split into stride_h·stride_w parity classes, each a dense GEMM over only
  //                    the taps that reach it (otherwise 3 multiplies in 4 would be by zero)
  // v2 TF32:           v2 with its multiply on the TF32 tensor cores (WMMA)
  // v2 bf16:           the same on the bfloat16 tensor cores
  // cudnn:             cuDNN FP32 without TF32 (cudnnConvolutionBackwardData for the forward) — the
  //                    baseline
  // cudnn TF32, cudnn benchmark, cudnn benchmark TF32: as in conv2d_implementations
  list.push_back({"v1 naive", ImplKind::CudaNaive, fk::conv_transpose2d_forward_cuda_naive,
                  fk::conv_transpose2d_backward_input_cuda_naive, fk::conv_transpose2d_backward_weight_cuda_naive});
  list.push_back({"v2 implicit GEMM", ImplKind::CudaCustom, fk::conv_transpose2d_forward_cuda,
                  fk::conv_transpose2d_backward_input_cuda, fk::conv_transpose2d_backward_weight_cuda});
  list.push_back({"v2 TF32 (WMMA)", ImplKind::CudaCustom, fk::conv_transpose2d_forward_cuda_tf32,
                  fk::conv_transpose2d_backward_input_cuda_tf32, fk::conv_transpose2d_backward_weight_cuda_tf32,
                  /*baseline=*/false, /*input_rounding=*/0x1p-11});
  list.push_back({"v2 bf16 (WMMA)", ImplKind::CudaCustom, fk::conv_transpose2d_forward_cuda_bf16,
                  fk::conv_transpose2d_backward_input_cuda_bf16, fk::conv_transpose2d_backward_weight_cuda_bf16,
                  /*baseline=*/false, /*input_rounding=*/0x1p-8});
  list.push_back({"cudnn", ImplKind::Library, fk::conv_transpose2d_forward_cudnn,
                  fk::conv_transpose2d_backward_input_cudnn, fk::conv_transpose2d_backward_weight_cudnn,
                  /*baseline=*/true});
  using fk::CudnnAlgorithms;
  list.push_back({"cudnn TF32", ImplKind::Library, fk::conv_transpose2d_forward_cudnn_as<CudnnAlgorithms::SpatialTf32>,
                  fk::conv_transpose2d_backward_input_cudnn_as<CudnnAlgorithms::SpatialTf32>,
                  fk::conv_transpose2d_backward_weight_cudnn_as<CudnnAlgorithms::SpatialTf32>, /*baseline=*/false,
                  /*input_rounding=*/0x1p-10});
  list.push_back({"cudnn benchmark", ImplKind::Library,
                  fk::conv_transpose2d_forward_cudnn_as<CudnnAlgorithms::FastestFp32>,
                  fk::conv_transpose2d_backward_input_cudnn_as<CudnnAlgorithms::FastestFp32>,
                  fk::conv_transpose2d_backward_weight_cudnn_as<CudnnAlgorithms::FastestFp32>, /*baseline=*/false,
                  /*input_rounding=*/0, /*no_error_bound=*/true});
  list.push_back({"cudnn benchmark TF32", ImplKind::Library,
                  fk::conv_transpose2d_forward_cudnn_as<CudnnAlgorithms::FastestTf32>,
                  fk::conv_transpose2d_backward_input_cudnn_as<CudnnAlgorithms::FastestTf32>,
                  fk::conv_transpose2d_backward_weight_cudnn_as<CudnnAlgorithms::FastestTf32>, /*baseline=*/false,
                  /*input_rounding=*/0x1p-10, /*no_error_bound=*/true});
#endif
  return list;
}

}  // namespace

const std::vector<ConvTranspose2dCase>& conv_transpose2d_cases() {
  static const std::vector<ConvTranspose2dCase> cases = build_conv_transpose2d_cases();
  return cases;
}

double conv_transpose2d_flops(const fk::ConvTranspose2dParams& p) {
  return 2.0 * p.batch * p.in_height * p.in_width * double(p.in_channels) * p.out_channels * p.kernel_h * p.kernel_w;
}

const std::vector<ConvTranspose2dImplementation>& conv_transpose2d_implementations() {
  static const std::vector<ConvTranspose2dImplementation> list = [] {
    std::vector<ConvTranspose2dImplementation> runnable;
    for (const ConvTranspose2dImplementation& impl : compiled_conv_transpose2d_implementations())
      if (impl.kind != ImplKind::Library || fk::cudnn_available()) runnable.push_back(impl);
    return runnable;
  }();
  return list;
}

const conv::ConvReference<fk::ConvTranspose2dParams>& conv_transpose2d_reference() {
  static const conv::ConvReference<fk::ConvTranspose2dParams> reference = {
      fk::conv_transpose2d_forward_cpu<double>, fk::conv_transpose2d_backward_input_cpu<double>,
      fk::conv_transpose2d_backward_weight_cpu<double>};
  return reference;
}

OpListing conv_transpose2d_listing() {
  OpListing listing;
  listing.op = "conv_transpose2d";
  for (const ConvTranspose2dCase& c : conv_transpose2d_cases())
    listing.cases.push_back({conv::shape_name(c.params), c.where, c.uses, conv_transpose2d_flops(c.params),
                             conv::forward_bytes(c.params)});
  const std::string passes = "fwd, bwd-data, bwd-weight";
  for (const ConvTranspose2dImplementation& impl : compiled_conv_transpose2d_implementations())
    listing.implementations.push_back(
        {std::string(impl.name) + (impl.baseline ? " (x base)" : ""), impl.kind, passes});
  // As for conv2d (cases/conv2d.h, sum_lengths): float_sum_tolerance of each output's sum length.
  listing.tolerances = {
      "reference: conv_transpose2d_{forward,backward_input,backward_weight}_cpu<double> on the same float inputs",
      "fwd:        float_sum_tolerance(C_in*kh*kw)   (taps that can reach an output element)",
      "bwd-data:   float_sum_tolerance(C_out*kh*kw)  (taps per input element)",
      "bwd-weight: dW float_sum_tolerance(N*H*W) (input pixels), db float_sum_tolerance(N*Ho*Wo) (output pixels)",
  };
  return listing;
}

}  // namespace fm::cases
