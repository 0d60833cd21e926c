// kernels/cpu/conv_kernels_avx512.cpp — the AVX-512 copies (64-byte vectors; -march=x86-64-v4
// through CMakeLists.txt's kernels/cpu/*_avx512.cpp rule) of the convolution kernels that read
// padded images in place (stride-1 "same"; stride 2 over phase planes): the forward pass
// (kernels/cpu/conv_forward_kernel.h: 8 output channels × 2 vectors of accumulators) and the
// weight gradient's dot products (kernels/cpu/conv_weight_grad_kernel.h: 4 output channels × 6
// taps, 24 accumulators + 4 dy vectors + 1 x vector of the 32 registers; against 4 × 4 it measured
// 4–47% faster on six of the bench's seven shapes and 6–29% slower on the 14×14 stride-2 one).
#include "kernels/cpu/conv_forward_kernel.h"
#include "kernels/cpu/conv_weight_grad_kernel.h"

namespace fm::kernels {

void forward_from_padded_avx512(const ForwardFromPadded<float>& a) {
  forward_from_padded<float, 64, kForwardPanelRowsAvx512>(a);
}
void forward_from_padded_avx512(const ForwardFromPadded<double>& a) {
  forward_from_padded<double, 64, kForwardPanelRowsAvx512>(a);
}

void weight_grad_dot_products_avx512(const WeightGradDots<float>& a) {
  weight_grad_dot_products<float, 64, 4, 6>(a);
}
void weight_grad_dot_products_avx512(const WeightGradDots<double>& a) {
  weight_grad_dot_products<double, 64, 4, 6>(a);
}

}  // namespace fm::kernels
