// kernels/cpu/conv_weight_grad_avx512.cpp — the AVX-512 copy of the convolution weight gradient's
// dot products (kernels/cpu/conv_weight_grad_kernel.h; -march=x86-64-v4 through CMakeLists.txt's
// kernels/cpu/*_avx512.cpp rule): 64-byte vectors, blocks of 4 output channels × 4 taps (16
// accumulators + 4 dy vectors + 1 x vector of the 32 registers).
#include "kernels/cpu/conv_weight_grad_kernel.h"

namespace fm::kernels {

void weight_grad_dot_products_avx512(const WeightGradDots<float>& a) {
  weight_grad_dot_products<float, 64, 4, 4>(a);
}

void weight_grad_dot_products_avx512(const WeightGradDots<double>& a) {
  weight_grad_dot_products<double, 64, 4, 4>(a);
}

}  // namespace fm::kernels
