// kernels/cpu/reduce.cpp — row sums, and sums over leading dims, on the CPU (see kernels/reduce.h).
#include "kernels/reduce.h"

#include <vector>

#include "kernels/cpu/parallel_for.h"

namespace fm::kernels {

template <typename T>
void sum_rows_cpu(const T* x, T* y, std::int64_t rows, std::int64_t cols) {
  // Accumulate in double: a float sum over 10^6 elements would otherwise lose digits.
  parallel_for(rows, rows * cols > (1 << 17) && rows > 1, [&](std::int64_t r) {
    const T* row = x + r * cols;
    double total = 0;
    for (std::int64_t c = 0; c < cols; ++c) total += double(row[c]);
    y[r] = T(total);
  });
}

template <typename T>
void sum_leading_cpu(const T* x, T* y, std::int64_t outer, std::int64_t inner) {
  // One double accumulator per output, filled row by row: the inner loop is contiguous and
  // vectorises, and each output sees its terms in the same order as sum_rows_cpu would.
  std::vector<double> totals(std::size_t(inner), 0.0);
  for (std::int64_t i = 0; i < outer; ++i) {
    const T* row = x + i * inner;
    for (std::int64_t j = 0; j < inner; ++j) totals[std::size_t(j)] += double(row[j]);
  }
  for (std::int64_t j = 0; j < inner; ++j) y[j] = T(totals[std::size_t(j)]);
}

template void sum_rows_cpu<float>(const float*, float*, std::int64_t, std::int64_t);
template void sum_rows_cpu<double>(const double*, double*, std::int64_t, std::int64_t);
template void sum_leading_cpu<float>(const float*, float*, std::int64_t, std::int64_t);
template void sum_leading_cpu<double>(const double*, double*, std::int64_t, std::int64_t);
template void sum_rows_cpu<bf16>(const bf16*, bf16*, std::int64_t, std::int64_t);
template void sum_leading_cpu<bf16>(const bf16*, bf16*, std::int64_t, std::int64_t);

}  // namespace fm::kernels
