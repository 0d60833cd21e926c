// kernels/cpu/conv_weight_grad.cpp — the portable copy of the convolution weight gradient's dot
// products (kernels/cpu/conv_weight_grad_kernel.h): 32-byte vectors (AVX2 in the default x86-64-v3
// build), blocks of 2 output channels × 4 taps (8 accumulators + 2 dy vectors + 1 x vector of the
// 16 registers).
#include "kernels/cpu/conv_weight_grad_kernel.h"

namespace fm::kernels {

void weight_grad_dot_products_portable(const WeightGradDots<float>& a) {
  weight_grad_dot_products<float, 32, 2, 4>(a);
}

void weight_grad_dot_products_portable(const WeightGradDots<double>& a) {
  weight_grad_dot_products<double, 32, 2, 4>(a);
}

}  // namespace fm::kernels
