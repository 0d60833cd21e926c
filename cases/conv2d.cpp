// cases/conv2d.cpp — conv2d's case table (see cases/conv2d.h), and the parts conv_transpose2d's
// table shares: the shape name, the sum lengths and the awkward shapes.
#include "cases/conv2d.h"

#include "kernels/runtime.h"

namespace fm::cases {

namespace fk = fm::kernels;

// ---- shared with conv_transpose2d ----------------------------------------------------------------
namespace conv {

namespace {
// "3" when both directions agree, else "3x5" (height x width).
std::string pair_text(int height, int width) {
  return height == width ? std::to_string(height) : std::to_string(height) + "x" + std::to_string(width);
}

template <typename Params>
std::string shape_text(const Params& p) {
  return std::to_string(p.batch) + "x" + std::to_string(p.in_channels) + "x" + std::to_string(p.in_height) + "x" +
         std::to_string(p.in_width) + ">" + std::to_string(p.out_channels) + " k" + pair_text(p.kernel_h, p.kernel_w) +
         "s" + pair_text(p.stride_h, p.stride_w) + "p" + pair_text(p.pad_h, p.pad_w);
}
}  // namespace

std::string shape_name(const fk::Conv2dParams& p) { return shape_text(p); }
std::string shape_name(const fk::ConvTranspose2dParams& p) { return shape_text(p); }

ConvSumLengths sum_lengths(const fk::Conv2dParams& p) {
  const long output_pixels = long(p.batch) * p.out_height() * p.out_width();
  return {long(p.in_channels) * p.kernel_h * p.kernel_w, long(p.out_channels) * p.kernel_h * p.kernel_w,
          output_pixels, output_pixels};
}
ConvSumLengths sum_lengths(const fk::ConvTranspose2dParams& p) {
  return {long(p.in_channels) * p.kernel_h * p.kernel_w, long(p.out_channels) * p.kernel_h * p.kernel_w,
          long(p.batch) * p.in_height * p.in_width, long(p.batch) * p.out_height() * p.out_width()};
}

const std::vector<AwkwardShape>& awkward_shapes() {
  // {batch, C_in, H, W, C_out, kh, kw, stride_h, stride_w, pad_h, pad_w, why}
  // clang-format off
  static const std::vector<AwkwardShape> shapes = {
      {1, 1, 5, 5, 1, 3, 3, 1, 1, 1, 1,    "batch 1, one channel"},
      {2, 3, 13, 11, 5, 3, 3, 1, 1, 1, 1,  "odd channels, sizes off any tile"},
      {3, 7, 8, 8, 4, 4, 4, 2, 2, 1, 1,    "the U-Net's 4x4 stride-2 kernel, odd channels"},
      {2, 5, 7, 9, 3, 1, 1, 1, 1, 0, 0,    "pointwise (im2col skipped)"},
      {1, 4, 6, 10, 6, 1, 1, 2, 2, 0, 0,   "strided 1x1: some input pixels are never read"},
      // stride 2 both ways runs on the CPU through phase planes (kernels/cpu/conv2d_im2col.cpp, PaddedLayout)
      {2, 3, 11, 9, 5, 3, 3, 2, 2, 0, 0,   "3x3 stride 2 unpadded, odd map: phase planes of unequal use"},
      {1, 2, 9, 12, 3, 5, 5, 2, 2, 2, 2,   "5x5 stride 2 padding 2: three taps per phase row"},
      {2, 3, 9, 7, 2, 3, 5, 2, 1, 2, 0,    "non-square kernel, mixed stride and padding"},
      {2, 2, 4, 4, 3, 5, 5, 1, 1, 2, 2,    "kernel larger than the image"},
      {2, 3, 5, 6, 2, 3, 2, 3, 2, 0, 1,    "stride 3: trailing rows unread"},
      {3, 2, 1, 1, 4, 1, 1, 1, 1, 0, 0,    "1x1 images"},
      {1, 6, 14, 14, 9, 3, 3, 1, 1, 1, 1,  "channels 6 -> 9 on a 14x14 map"},
      {2, 3, 10, 8, 4, 5, 3, 3, 3, 1, 2,   "stride 3 with padding 1 and 2: (pad mod stride) != 0"},
      {2, 3, 6, 7, 4, 3, 5, 1, 1, 0, 2,    "stride 1, width kept and height not: CPU im2col's one-copy path"},
      {5, 3, 23, 21, 7, 3, 3, 1, 1, 1, 1,  "batch x pixels large enough for split-K on the GPU"},
      // Channel counts just past a GPU tile (130, 33), maps not a multiple of anything. Small
      // outputs make v2 split the reduction of its forward and bwd-data GEMMs (fewer 128-row tiles
      // than the 132 SMs of the lab's GPU); the last shape has 147 tiles, so those run unsplit.
      {2, 7, 9, 10, 130, 3, 3, 1, 1, 1, 1, "130 output channels: just past a GPU tile"},
      {3, 5, 17, 19, 33, 4, 4, 2, 2, 1, 1, "33 output channels, 4x4 stride 2, odd map"},
      {1, 129, 5, 3, 65, 3, 3, 1, 1, 1, 1, "129 -> 65 channels on a 5x3 map"},
      {24, 16, 28, 28, 8, 3, 3, 1, 1, 1, 1, "147 GPU tiles: v2's GEMMs unsplit with a multi-step K"},
      // v2 takes its wide 128-column tiles for an output of more than 64 channels only when they
      // make at least one tile per SM (132): at batch 11 on 28x28, 68 row tiles x 2 column tiles.
      // The forward's in the first (and the transpose's forward, a conv bwd-data underneath), the
      // bwd-data's in the second (and the transpose's bwd-data, a conv forward); 1x1 kernels keep
      // every K short, and so the CUDA emulator's time.
      {11, 3, 28, 28, 130, 1, 1, 1, 1, 0, 0, "130 output channels in 132 tiles: v2's wide tiles"},
      {11, 130, 28, 28, 3, 1, 1, 1, 1, 0, 0, "130 input channels in 132 tiles: v2's wide bwd-data tiles"},
  };
  // clang-format on
  return shapes;
}

}  // namespace conv

// ---- conv2d ----------------------------------------------------------------------------------------

namespace {

fk::Conv2dParams square(int batch, int in_channels, int size, int out_channels, int kernel, int stride, int pad) {
  return fk::Conv2dParams{batch, in_channels, size, size, out_channels, kernel, kernel, stride, stride, pad, pad};
}

std::vector<Conv2dCase> build_conv2d_cases() {
  std::vector<Conv2dCase> cases = {
      // The U-Net's layers (28x28 / 14x14 / 7x7 maps; channels 1, 32, 64, 128, 192, 256) at batch 2-4.
      {square(4, 1, 28, 32, 3, 1, 1), "U-Net stem, small batch", kTest},
      {square(2, 32, 28, 64, 3, 1, 1), "U-Net 3x3 conv at 28x28, small batch", kTest},
      {square(2, 64, 14, 128, 3, 1, 1), "U-Net 3x3 conv at 14x14, small batch", kTest},
      {square(2, 192, 14, 64, 3, 1, 1), "U-Net conv after a skip concatenation, small batch", kTest},
      {square(2, 128, 7, 256, 3, 1, 1), "U-Net 3x3 conv at 7x7, small batch", kTest},
      {square(2, 256, 7, 256, 3, 1, 1), "U-Net 3x3 conv at 7x7, 256 channels, small batch", kTest},
      {square(2, 32, 28, 32, 4, 2, 1), "U-Net downsample 28 -> 14, small batch", kTest},
      {square(2, 64, 14, 128, 4, 2, 1), "U-Net downsample 14 -> 7, small batch", kTest},
      {square(2, 256, 7, 128, 1, 1, 0), "U-Net 1x1 channel change, small batch", kTest},
      {square(3, 32, 28, 1, 1, 1, 0), "U-Net output head, one channel, small batch", kTest},
      // The float64 gradcheck of the reference backward: stride 2 in one direction, padding in
      // one direction, so both index paths are exercised.
      {fk::Conv2dParams{2, 3, 5, 4, 2, 3, 3, 2, 1, 1, 0}, "stride and padding in one direction each",
       kTest | kGradcheck},
  };
  for (const conv::AwkwardShape& s : conv::awkward_shapes())
    cases.push_back({fk::Conv2dParams{s.batch, s.in_channels, s.in_height, s.in_width, s.out_channels, s.kernel_h,
                                      s.kernel_w, s.stride_h, s.stride_w, s.pad_h, s.pad_w},
                     s.why, kTest});

  // Every conv2d of nn/unet.cpp with the default UNetConfig (down 32-64-128, mid 128-64, 16 final),
  // in forward order, at batch 256; identical shapes appear once, with every place they occur.
  const int batch = 256;
  const std::vector<Conv2dCase> unet_layers = {
      {square(batch, 1, 28, 32, 3, 1, 1), "conv_in", kBench},
      {square(batch, 32, 28, 64, 3, 1, 1), "downs.0 resnet_conv_first", kBench},
      {square(batch, 64, 28, 64, 3, 1, 1), "downs.0 resnet_conv_second", kBench},
      {square(batch, 32, 28, 64, 1, 1, 0), "downs.0 residual_input_conv (1x1)", kBench},
      {square(batch, 64, 28, 64, 4, 2, 1), "downs.0 down_sample_conv (4x4 s2)", kBench},
      {square(batch, 64, 14, 128, 3, 1, 1), "downs.1 resnet_conv_first", kBench},
      {square(batch, 128, 14, 128, 3, 1, 1), "downs.1 resnet_conv_second", kBench},
      {square(batch, 64, 14, 128, 1, 1, 0), "downs.1 residual_input_conv (1x1)", kBench},
      {square(batch, 128, 14, 128, 4, 2, 1), "downs.1 down_sample_conv (4x4 s2)", kBench},
      {square(batch, 128, 7, 64, 3, 1, 1), "mids.0 resnet_convs.0", kBench},
      {square(batch, 64, 7, 64, 3, 1, 1), "mids.0 resnet_convs.1-3 (3 layers)", kBench},
      {square(batch, 128, 7, 64, 1, 1, 0), "mids.0 residual_input_conv.0 (1x1)", kBench},
      {square(batch, 64, 7, 64, 1, 1, 0), "mids.0 residual_input_conv.1 (1x1)", kBench},
      {square(batch, 128, 14, 32, 3, 1, 1), "ups.0 resnet_conv_first (after concat)", kBench},
      {square(batch, 32, 14, 32, 3, 1, 1), "ups.0 resnet_conv_second", kBench},
      {square(batch, 128, 14, 32, 1, 1, 0), "ups.0 residual_input_conv (1x1)", kBench},
      {square(batch, 64, 28, 16, 3, 1, 1), "ups.1 resnet_conv_first (after concat)", kBench},
      {square(batch, 16, 28, 16, 3, 1, 1), "ups.1 resnet_conv_second", kBench},
      {square(batch, 64, 28, 16, 1, 1, 0), "ups.1 residual_input_conv (1x1)", kBench},
      {square(batch, 16, 28, 1, 3, 1, 1), "conv_out", kBench},
  };
  cases.insert(cases.end(), unet_layers.begin(), unet_layers.end());

  // --shapes small: a quick run, four kinds of layer at batch 8.
  const int small = 8;
  const std::vector<Conv2dCase> small_layers = {
      {square(small, 32, 28, 64, 3, 1, 1), "downs.0 conv_first (small batch)", kBenchSmall},
      {square(small, 64, 28, 64, 4, 2, 1), "downs.0 down_sample (small batch)", kBenchSmall},
      {square(small, 128, 7, 64, 3, 1, 1), "mids.0 resnet_convs.0 (small batch)", kBenchSmall},
      {square(small, 64, 28, 16, 1, 1, 0), "ups.1 residual_input_conv (small batch)", kBenchSmall},
  };
  cases.insert(cases.end(), small_layers.begin(), small_layers.end());
  return cases;
}

// Every entry compiled into this build, in the lab's order (the listing shows them all).
std::vector<Conv2dImplementation> compiled_conv2d_implementations() {
  std::vector<Conv2dImplementation> list = {
      {"cpu float", ImplKind::CpuReference, fk::conv2d_forward_cpu<float>, fk::conv2d_backward_input_cpu<float>,
       fk::conv2d_backward_weight_cpu<float>},
      {"im2col", ImplKind::CpuFast, fk::conv2d_forward_im2col<float>, fk::conv2d_backward_input_im2col<float>,
       fk::conv2d_backward_weight_im2col<float>},
  };
#ifdef FM_WITH_CUDA
  // v1 naive:          one thread per output element, the reference loops per thread; every thread
  //                    re-reads its window and weights from global memory, and in bwd-weight each
  //                    thread walks the whole batch alone (kernels/cuda/conv2d_naive.cu)
  // v2 implicit GEMM:  each pass as a tiled GEMM read straight out of NCHW (no im2col buffer),
  //                    double-buffered shared memory, register blocking; stride parity classes for
  //                    the strided bwd-data, split-K for bwd-weight (kernels/cuda/conv2d_implicit_gemm.cu)
  // v2 TF32:           v2 with its multiply on the TF32 tensor cores (WMMA m16n16k8), the same
  //                    loaders and epilogues (docs/ops/tensor_cores.md)
  // v2 bf16:           the same on the bfloat16 tensor cores (bfloat16 shared tiles, WMMA m16n16k16)
  // cudnn:             cuDNN's heuristically best FP32 algorithm without TF32 (CUDNN_FMA_MATH),
  //                    spatial-domain, deterministic where possible — the baseline
  //                    (kernels/cuda/conv2d_cudnn.cpp, CudnnAlgorithms::SpatialFp32)
  // cudnn TF32:        the same with TF32 tensor-core math allowed (SpatialTf32)
  // cudnn benchmark:   every algorithm, FFT and Winograd too, the fastest cudnnFind measures, in FP32
  //                    and with TF32 allowed: what PyTorch picks with cudnn.benchmark = True
  //                    (FastestFp32, FastestTf32); the lab says where they miss the tolerance
  list.push_back({"v1 naive", ImplKind::CudaNaive, fk::conv2d_forward_cuda_naive,
                  fk::conv2d_backward_input_cuda_naive, fk::conv2d_backward_weight_cuda_naive});
  list.push_back({"v2 implicit GEMM", ImplKind::CudaCustom, fk::conv2d_forward_cuda, fk::conv2d_backward_input_cuda,
                  fk::conv2d_backward_weight_cuda});
  list.push_back({"v2 TF32 (WMMA)", ImplKind::CudaCustom, fk::conv2d_forward_cuda_tf32,
                  fk::conv2d_backward_input_cuda_tf32, fk::conv2d_backward_weight_cuda_tf32, /*baseline=*/false,
                  /*input_rounding=*/0x1p-11});
  list.push_back({"v2 bf16 (WMMA)", ImplKind::CudaCustom, fk::conv2d_forward_cuda_bf16,
                  fk::conv2d_backward_input_cuda_bf16, fk::conv2d_backward_weight_cuda_bf16, /*baseline=*/false,
                  /*input_rounding=*/0x1p-8});
  list.push_back({"cudnn", ImplKind::Library, fk::conv2d_forward_cudnn, fk::conv2d_backward_input_cudnn,
                  fk::conv2d_backward_weight_cudnn, /*baseline=*/true});
  using fk::CudnnAlgorithms;
  list.push_back({"cudnn TF32", ImplKind::Library, fk::conv2d_forward_cudnn_as<CudnnAlgorithms::SpatialTf32>,
                  fk::conv2d_backward_input_cudnn_as<CudnnAlgorithms::SpatialTf32>,
                  fk::conv2d_backward_weight_cudnn_as<CudnnAlgorithms::SpatialTf32>, /*baseline=*/false,
                  /*input_rounding=*/0x1p-10});  // cuDNN's rounding to TF32 is not documented: truncation
  list.push_back({"cudnn benchmark", ImplKind::Library, fk::conv2d_forward_cudnn_as<CudnnAlgorithms::FastestFp32>,
                  fk::conv2d_backward_input_cudnn_as<CudnnAlgorithms::FastestFp32>,
                  fk::conv2d_backward_weight_cudnn_as<CudnnAlgorithms::FastestFp32>, /*baseline=*/false,
                  /*input_rounding=*/0, /*no_error_bound=*/true});
  list.push_back({"cudnn benchmark TF32", ImplKind::Library,
                  fk::conv2d_forward_cudnn_as<CudnnAlgorithms::FastestTf32>,
                  fk::conv2d_backward_input_cudnn_as<CudnnAlgorithms::FastestTf32>,
                  fk::conv2d_backward_weight_cudnn_as<CudnnAlgorithms::FastestTf32>, /*baseline=*/false,
                  /*input_rounding=*/0x1p-10, /*no_error_bound=*/true});
#endif
  return list;
}

}  // namespace

const std::vector<Conv2dCase>& conv2d_cases() {
  static const std::vector<Conv2dCase> cases = build_conv2d_cases();
  return cases;
}

double conv2d_flops(const fk::Conv2dParams& p) {
  return 2.0 * p.batch * p.out_height() * p.out_width() * double(p.out_channels) * p.in_channels * p.kernel_h *
         p.kernel_w;
}

const std::vector<Conv2dImplementation>& conv2d_implementations() {
  static const std::vector<Conv2dImplementation> list = [] {
    std::vector<Conv2dImplementation> runnable;
    for (const Conv2dImplementation& impl : compiled_conv2d_implementations())
      if (impl.kind != ImplKind::Library || fk::cudnn_available()) runnable.push_back(impl);
    return runnable;
  }();
  return list;
}

const conv::ConvReference<fk::Conv2dParams>& conv2d_reference() {
  static const conv::ConvReference<fk::Conv2dParams> reference = {
      fk::conv2d_forward_cpu<double>, fk::conv2d_backward_input_cpu<double>, fk::conv2d_backward_weight_cpu<double>};
  return reference;
}

OpListing conv2d_listing() {
  OpListing listing;
  listing.op = "conv2d";
  for (const Conv2dCase& c : conv2d_cases())
    listing.cases.push_back(
        {conv::shape_name(c.params), c.where, c.uses, conv2d_flops(c.params), conv::forward_bytes(c.params)});
  const std::string passes = "fwd, bwd-data, bwd-weight";
  for (const Conv2dImplementation& impl : compiled_conv2d_implementations())
    listing.implementations.push_back(
        {std::string(impl.name) + (impl.baseline ? " (x base)" : ""), impl.kind, passes});
  // Each output element is a float sum of products of values in [-1, 1]: float_sum_tolerance of
  // that sum's length (cases/conv2d.h, sum_lengths).
  listing.tolerances = {
      "reference: conv2d_{forward,backward_input,backward_weight}_cpu<double> on the same float inputs",
      "fwd:        float_sum_tolerance(C_in*kh*kw)   (taps per output element)",
      "bwd-data:   float_sum_tolerance(C_out*kh*kw)  (taps per input element)",
      "bwd-weight: dW float_sum_tolerance(N*Ho*Wo), db float_sum_tolerance(N*Ho*Wo)  (output pixels)",
  };
  return listing;
}

}  // namespace fm::cases
