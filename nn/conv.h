// nn/conv.h — 2-D convolution and transposed convolution layers (torch.nn.Conv2d /
// torch.nn.ConvTranspose2d with square kernels, one stride and one padding for both axes).
//
// Layer: nn/ (uses core/ only). The arithmetic is fm::conv2d / fm::conv_transpose2d (core/ops_nn.h);
// these classes own the weights and their PyTorch default initialisation (nn/init.h).
//   Conv2d           weight [out, in, k, k];  H_out = (H + 2p − k)/s + 1
//   ConvTranspose2d  weight [in, out, k, k];  H_out = (H − 1)·s − 2p + k
// The U-Net halves with Conv2d(k=4, s=2, p=1) and doubles with ConvTranspose2d(k=4, s=2, p=1).
#pragma once
#include <cstdint>

#include "core/random.h"
#include "nn/module.h"

namespace fm::nn {

class Conv2d : public Layer {
 public:
  Conv2d(int in_channels, int out_channels, int kernel_size, int stride, int padding, Generator& gen,
         bool bias = true);
  Tensor forward(const Tensor& x) override;  // [N, in, H, W] → [N, out, H_out, W_out]

  int in_channels() const { return in_channels_; }
  int out_channels() const { return out_channels_; }
  Tensor weight, bias;

 private:
  int in_channels_, out_channels_, kernel_size_, stride_, padding_;
};

class ConvTranspose2d : public Layer {
 public:
  ConvTranspose2d(int in_channels, int out_channels, int kernel_size, int stride, int padding,
                  Generator& gen, bool bias = true);
  Tensor forward(const Tensor& x) override;

  int in_channels() const { return in_channels_; }
  int out_channels() const { return out_channels_; }
  Tensor weight, bias;

 private:
  int in_channels_, out_channels_, kernel_size_, stride_, padding_;
};

}  // namespace fm::nn
