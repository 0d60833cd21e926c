// kernels/cpu/reduce.cpp — row sums on the CPU (see kernels/reduce.h).
#include "kernels/reduce.h"

namespace fm::kernels {

template <typename T>
void sum_rows_cpu(const T* x, T* y, std::int64_t rows, std::int64_t cols) {
  // Accumulate in double: a float sum over 10^6 elements would otherwise lose digits.
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 17) && rows > 1)
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * cols;
    double total = 0;
    for (std::int64_t c = 0; c < cols; ++c) total += double(row[c]);
    y[r] = T(total);
  }
}

template void sum_rows_cpu<float>(const float*, float*, std::int64_t, std::int64_t);
template void sum_rows_cpu<double>(const double*, double*, std::int64_t, std::int64_t);

}  // namespace fm::kernels
