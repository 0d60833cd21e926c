// kernels/cpu/attention_rows.cpp — the portable copies (32-byte vectors: AVX2 in the default x86-64-v3
// build) of the CPU attention's row loops (kernels/cpu/attention_rows_kernel.h): the forward's fused
// softmax · V and the backward's probabilities from the saved log-sum-exp.
#include "kernels/cpu/attention_rows_kernel.h"

namespace fm::kernels {

void softmax_times_values_portable(const AttentionRows& a) { softmax_times_values_for<32>(a); }

void probabilities_from_lse_portable(float* p, int rows, int cols, const float* lse) {
  probabilities_from_lse<32>(p, rows, cols, lse);
}

}  // namespace fm::kernels
