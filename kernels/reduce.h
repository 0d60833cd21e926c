// kernels/reduce.h — row sums: y[r] = Σ_c x[r·cols + c] over a contiguous [rows, cols] block.
//
// Every reduction over arbitrary dims is built from this one primitive: the op layer moves the
// reduced dims to the end (a permuted copy) and sums rows. Accumulation is in double on the CPU and
// in float with a fixed tree order on the GPU, so results are deterministic run to run.
#pragma once
#include <cstdint>

#include "kernels/runtime.h"

namespace fm::kernels {

template <typename T>
void sum_rows_cpu(const T* x, T* y, std::int64_t rows, std::int64_t cols);

void sum_rows_cuda(const float* x, float* y, std::int64_t rows, std::int64_t cols);

}  // namespace fm::kernels
