// kernels/cpu/attention_rows_avx512.cpp — the AVX-512 copies (64-byte vectors; -march=x86-64-v4 through
// CMakeLists.txt's kernels/cpu/*_avx512.cpp rule) of the CPU attention's row loops
// (kernels/cpu/attention_rows_kernel.h): 16 keys per vector, and with D = 8 the 8 accumulators, the
// running sum and the exponential's temporaries fit the 32 registers.
#include "kernels/cpu/attention_rows_kernel.h"

namespace fm::kernels {

void softmax_times_values_avx512(const AttentionRows& a) { softmax_times_values_for<64>(a); }

void probabilities_from_lse_avx512(float* p, int rows, int cols, const float* lse) {
  probabilities_from_lse<64>(p, rows, cols, lse);
}

}  // namespace fm::kernels
