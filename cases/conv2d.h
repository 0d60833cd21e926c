// cases/conv2d.h — the case table of conv2d (kernels/conv2d.h): its shapes, the tolerance of each
// pass against the float64 reference, FLOPs and fewest bytes, and its implementations. Also what
// conv_transpose2d's table (cases/conv_transpose2d.h) shares with it: both ops take parameters
// with the same field names (batch, in_channels, ..., out_height()), so the case struct, the
// array sizes, the tolerances, the byte counts and the implementation struct are templates over
// kernels::Conv2dParams / kernels::ConvTranspose2dParams.
//
// Passes: forward (y = conv(x, w) + b), bwd-data (dx from dy), bwd-weight (dW and db from x, dy).
// Reference: conv2d_*_cpu<double> (kernels/cpu/conv2d_reference.cpp), the readable loops.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "cases/case_table.h"
#include "kernels/conv2d.h"

namespace fm::cases {

// ---- what conv2d and conv_transpose2d share (namespace conv, so that the generic names below
// cannot meet another op's) -----------------------------------------------------------------------
namespace conv {

// One problem of either op: its parameters, which U-Net layer it is (or why it is awkward), and
// where it is used (CaseUse bits).
template <typename Params>
struct ConvCase {
  Params params;
  const char* where;
  unsigned uses;
};

// The shape as the kernel lab prints it (fmbench --filter matches it): "256x64x28x28>64 k3s1p1";
// a non-square kernel, stride or padding is written "k3x5s2x1p2x0".
std::string shape_name(const kernels::Conv2dParams& p);
std::string shape_name(const kernels::ConvTranspose2dParams& p);

// Element counts of the arrays of one problem. conv2d's weight [C_out, C_in, kh, kw] and
// conv_transpose2d's [C_in, C_out, kh, kw] hold the same count; the bias has C_out.
template <typename Params>
std::size_t input_count(const Params& p) {
  return std::size_t(p.batch) * p.in_channels * p.in_height * p.in_width;
}
template <typename Params>
std::size_t output_count(const Params& p) {
  return std::size_t(p.batch) * p.out_channels * p.out_height() * p.out_width();
}
template <typename Params>
std::size_t weight_count(const Params& p) {
  return std::size_t(p.out_channels) * p.in_channels * p.kernel_h * p.kernel_w;
}
template <typename Params>
std::size_t bias_count(const Params& p) {
  return std::size_t(p.out_channels);
}

// The longest sum behind one element of each pass's result: it sets the float tolerance.
//   forward:       C_in·kh·kw taps per output element (both ops)
//   bwd-data:      C_out·kh·kw taps per input element (both ops)
//   bwd-weight:    one product per (sample, pixel) of the image the weight slides over: conv2d's
//                  output N·Ho·Wo, conv_transpose2d's input N·H·W
//   bwd-bias:      dy summed over N·Ho·Wo (the output image, for both ops)
struct ConvSumLengths {
  long forward, backward_input, backward_weight, backward_bias;
};
ConvSumLengths sum_lengths(const kernels::Conv2dParams& p);
ConvSumLengths sum_lengths(const kernels::ConvTranspose2dParams& p);

// The tolerance of each float result against the float64 reference: every output element is a sum
// of products of values in [-1, 1], so float_sum_tolerance (cases/case_table.h) of that sum's
// length (above). The tests and the lab use these, nothing else.
template <typename Params>
Tolerance forward_tolerance(const Params& p) {
  return float_sum_tolerance(sum_lengths(p).forward);
}
template <typename Params>
Tolerance backward_input_tolerance(const Params& p) {
  return float_sum_tolerance(sum_lengths(p).backward_input);
}
template <typename Params>
Tolerance backward_weight_tolerance(const Params& p) {
  return float_sum_tolerance(sum_lengths(p).backward_weight);
}
template <typename Params>
Tolerance backward_bias_tolerance(const Params& p) {
  return float_sum_tolerance(sum_lengths(p).backward_bias);
}

// The fewest bytes each pass must move through device memory (float32): read its inputs once,
// write its outputs once.
//   fwd:        x, w, b in; y out
//   bwd-data:   dy, w in; dx out
//   bwd-weight: x, dy in; dW, db out
template <typename Params>
double forward_bytes(const Params& p) {
  return 4.0 * double(input_count(p) + weight_count(p) + bias_count(p) + output_count(p));
}
template <typename Params>
double backward_input_bytes(const Params& p) {
  return 4.0 * double(output_count(p) + weight_count(p) + input_count(p));
}
template <typename Params>
double backward_weight_bytes(const Params& p) {
  return 4.0 * double(input_count(p) + output_count(p) + weight_count(p) + bias_count(p));
}

// One implementation of an op: its three passes as float functions (host pointers for the CPU
// kinds, device pointers for the GPU kinds). `name` is the lab's "version" column and the tests'
// INFO line; `baseline` marks the version the lab's "× base" column compares with.
template <typename Params>
struct ConvImplementation {
  const char* name;
  ImplKind kind;
  void (*forward)(const float* x, const float* weight, const float* bias, float* y, const Params& p);
  void (*backward_input)(const float* dy, const float* weight, float* dx, const Params& p);
  void (*backward_weight)(const float* x, const float* dy, float* dweight, float* dbias, const Params& p);
  bool baseline = false;
  // 0: computes in FP32, validated against the table's tolerances. Otherwise it computes on the
  // tensor cores, and this is u, the relative rounding of its inputs (2^-11 for TF32, 2^-8 for
  // bfloat16, both to nearest): validated against the tensor-core error bound instead
  // (tests/conv_test_util.h check_tensor_core_within_bound; the lab's tensor_core_tolerance).
  double input_rounding = 0;
  // May pick transform algorithms (FFT, Winograd: cuDNN's Fastest* choices), for which no error
  // bound exists: the lab still checks it against the tolerance above and marks a miss NOT OK; the
  // tests skip it.
  bool no_error_bound = false;
};

// The float64 reference of an op: its three passes on double.
template <typename Params>
struct ConvReference {
  void (*forward)(const double* x, const double* weight, const double* bias, double* y, const Params& p);
  void (*backward_input)(const double* dy, const double* weight, double* dx, const Params& p);
  void (*backward_weight)(const double* x, const double* dy, double* dweight, double* dbias, const Params& p);
};

// The awkward shapes both ops are tested on, CPU and GPU: batch 1, one channel, sizes off any tile,
// pointwise and strided kernels, kernels larger than the image, stride 3 with padding, channel
// counts just past a GPU tile, and GEMM sizes that do and do not split the reduction on the GPU.
// (Each op's table adds its U-Net shapes and gradcheck shape to these; the reasons given in `why`
// are conv2d's: the same sizes stress conv_transpose2d's index paths and GEMMs in the adjoint way.)
struct AwkwardShape {
  int batch, in_channels, in_height, in_width, out_channels, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  const char* why;
};
const std::vector<AwkwardShape>& awkward_shapes();

}  // namespace conv

// ---- conv2d --------------------------------------------------------------------------------------
using Conv2dCase = conv::ConvCase<kernels::Conv2dParams>;
using Conv2dImplementation = conv::ConvImplementation<kernels::Conv2dParams>;

// Every conv2d case: the U-Net's layers at a small batch and the awkward shapes (tests), the
// gradcheck shape, and every conv2d of the seed U-Net at batch 256 (the lab's default run) and a
// few at batch 8 (--shapes small).
const std::vector<Conv2dCase>& conv2d_cases();

// FLOPs of each pass (the three do the same multiply-adds; one multiply-add = 2 FLOPs):
//   2 · N · Ho · Wo · C_out · C_in · kh · kw
// (bwd-data of a stride-2 conv skips the taps that land between input pixels, but the useful
// multiply-adds are the same count.)
double conv2d_flops(const kernels::Conv2dParams& p);

// The implementations this process can run: on the CPU the reference loops on float ("cpu float")
// and im2col (the CPU fast path, what training runs); on CUDA builds, in the lab's order, v1 naive,
// v2 implicit GEMM and cuDNN (the baseline; only where cudnn_available(): the CUDA emulator has no
// cuDNN). The lab times the GPU entries; the tests check every entry.
const std::vector<Conv2dImplementation>& conv2d_implementations();
// conv2d_{forward,backward_input,backward_weight}_cpu<double>
const conv::ConvReference<kernels::Conv2dParams>& conv2d_reference();

OpListing conv2d_listing();

}  // namespace fm::cases
