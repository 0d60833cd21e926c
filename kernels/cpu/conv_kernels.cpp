// kernels/cpu/conv_kernels.cpp — the portable copies (32-byte vectors: AVX2 in the default
// x86-64-v3 build) of the convolution kernels that read padded images in place (stride-1 "same";
// stride 2 over phase planes): the forward pass (kernels/cpu/conv_forward_kernel.h: 6 output
// channels × 2 vectors of accumulators) and the weight gradient's dot products
// (kernels/cpu/conv_weight_grad_kernel.h: 2 output channels × 6 taps, 12 accumulators + 2 dy
// vectors + 1 x vector of the 16 registers; against 2 × 4 it measured 2–8% faster on six of the
// bench's seven shapes, 1% slower on one).
#include "kernels/cpu/conv_forward_kernel.h"
#include "kernels/cpu/conv_weight_grad_kernel.h"

namespace fm::kernels {

void forward_from_padded_portable(const ForwardFromPadded<float>& a) {
  forward_from_padded<float, 32, kForwardPanelRowsPortable>(a);
}
void forward_from_padded_portable(const ForwardFromPadded<double>& a) {
  forward_from_padded<double, 32, kForwardPanelRowsPortable>(a);
}

void weight_grad_dot_products_portable(const WeightGradDots<float>& a) {
  weight_grad_dot_products<float, 32, 2, 6>(a);
}
void weight_grad_dot_products_portable(const WeightGradDots<double>& a) {
  weight_grad_dot_products<double, 32, 2, 6>(a);
}

}  // namespace fm::kernels
