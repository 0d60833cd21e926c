// kernels/reduce.h — row sums: y[r] = Σ_c x[r·cols + c] over a contiguous [rows, cols] block, and
// on the CPU the same sums taken down columns.
//
// Every reduction over arbitrary dims is built from the row sum: the op layer moves the reduced dims
// to the end (a permuted copy) and sums rows. Accumulation is in double on the CPU and in float with a
// fixed tree order on the GPU, so results are deterministic run to run. T is float, double or bf16
// on the CPU; a bf16 total is rounded once from the double.
//
// sum_leading_cpu covers the most common reduction without the copy: the leading dims of a
// contiguous tensor (a bias gradient, Σ over the batch). y[j] = Σ_i x[i·inner + j], i < outer, in
// double, i in increasing order: exactly the arithmetic sum_rows_cpu does on the transposed copy, so
// the bits are the same; but the loop runs along memory and the transpose is never written.
#pragma once
#include <cstdint>

#include "kernels/bfloat16.h"
#include "kernels/runtime.h"

namespace fm::kernels {

template <typename T>
void sum_rows_cpu(const T* x, T* y, std::int64_t rows, std::int64_t cols);

template <typename T>
void sum_leading_cpu(const T* x, T* y, std::int64_t outer, std::int64_t inner);

// T is float or bf16 (added up in float, the total rounded once).
template <typename T>
void sum_rows_cuda(const T* x, T* y, std::int64_t rows, std::int64_t cols);

}  // namespace fm::kernels
