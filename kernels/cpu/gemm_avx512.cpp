// kernels/cpu/gemm_avx512.cpp — the CPU GEMM's micro-kernel compiled for AVX-512 (-march=x86-64-v4
// through CMakeLists.txt's kernels/cpu/*_avx512.cpp rule): the source of
// kernels/cpu/gemm_micro_kernel.h with 64-byte vectors and an 8×(2 vectors) block. Only this small
// loop is built for AVX-512; packing, blocking and threads stay in the portable gemm.cpp.
#include "kernels/cpu/gemm_micro_kernel.h"

namespace fm::kernels {

void gemm_micro_kernel_avx512(int kc, const float* a_panel, const float* b_panel, float* C, int ldc,
                              int rows, int cols, bool overwrite) {
  gemm_micro_kernel<float, 64, kAvx512GemmRows, avx512_gemm_cols<float>()>(kc, a_panel, b_panel, C,
                                                                          ldc, rows, cols, overwrite);
}

void gemm_micro_kernel_avx512(int kc, const double* a_panel, const double* b_panel, double* C,
                              int ldc, int rows, int cols, bool overwrite) {
  gemm_micro_kernel<double, 64, kAvx512GemmRows, avx512_gemm_cols<double>()>(
      kc, a_panel, b_panel, C, ldc, rows, cols, overwrite);
}

}  // namespace fm::kernels
