// nn/conv.cpp — Conv2d and ConvTranspose2d layers (see conv.h).
#include "nn/conv.h"

#include "core/ops_nn.h"
#include "nn/init.h"

namespace fm::nn {
namespace {

void check_conv_sizes(const char* layer, int in_channels, int out_channels, int kernel_size,
                      int stride, int padding) {
  FM_CHECK(in_channels > 0 && out_channels > 0, ValueError, layer,
           ": channel counts must be positive, got ", in_channels, " -> ", out_channels);
  FM_CHECK(kernel_size > 0 && stride > 0 && padding >= 0, ValueError, layer, ": kernel_size ",
           kernel_size, ", stride ", stride, ", padding ", padding,
           " (expected kernel_size >= 1, stride >= 1, padding >= 0)");
}

void check_input(const char* layer, const Tensor& x, int in_channels) {
  FM_CHECK(x.defined() && x.dim() == 4 && x.size(1) == in_channels, ShapeError, layer,
           ": input ", x.defined() ? shape_str(x.shape()) : "undefined", ", expected [N, ",
           in_channels, ", H, W]");
}

}  // namespace

Conv2d::Conv2d(int in_channels, int out_channels, int kernel_size, int stride, int padding,
               Generator& gen, bool with_bias)
    : Layer("Conv2d"),
      in_channels_(in_channels),
      out_channels_(out_channels),
      kernel_size_(kernel_size),
      stride_(stride),
      padding_(padding) {
  check_conv_sizes("Conv2d", in_channels, out_channels, kernel_size, stride, padding);
  Shape shape{out_channels, in_channels, kernel_size, kernel_size};
  weight = init::default_weight(shape, gen);
  register_parameter("weight", &weight);
  if (with_bias) {
    bias = init::default_bias(out_channels, init::fan_in(shape), gen);
    register_parameter("bias", &bias);
  }
}

Tensor Conv2d::forward(const Tensor& x) {
  check_input("Conv2d", x, in_channels_);
  return conv2d(x, weight, bias, stride_, padding_);
}

ConvTranspose2d::ConvTranspose2d(int in_channels, int out_channels, int kernel_size, int stride,
                                 int padding, Generator& gen, bool with_bias)
    : Layer("ConvTranspose2d"),
      in_channels_(in_channels),
      out_channels_(out_channels),
      kernel_size_(kernel_size),
      stride_(stride),
      padding_(padding) {
  check_conv_sizes("ConvTranspose2d", in_channels, out_channels, kernel_size, stride, padding);
  // [in, out, k, k]: PyTorch's fan_in is then out·k·k (init.h explains why).
  Shape shape{in_channels, out_channels, kernel_size, kernel_size};
  weight = init::default_weight(shape, gen);
  register_parameter("weight", &weight);
  if (with_bias) {
    bias = init::default_bias(out_channels, init::fan_in(shape), gen);
    register_parameter("bias", &bias);
  }
}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  check_input("ConvTranspose2d", x, in_channels_);
  return conv_transpose2d(x, weight, bias, stride_, padding_);
}

}  // namespace fm::nn
