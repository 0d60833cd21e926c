// kernels/cpu/path_law.cpp — an affine path's coefficients at each time, on the CPU (see
// kernels/path_law.h): the formulas of path_at, one time per iteration.
#include "kernels/path_law.h"

namespace fm::kernels {

template <typename T>
void path_coefficients_cpu(const T* t, T* out, std::int64_t n, const PathLaw& law) {
  for (std::int64_t i = 0; i < n; ++i) {
    const PathCoefficients c = path_at(law, double(t[i]));
    out[i] = T(c.alpha), out[n + i] = T(c.sigma), out[2 * n + i] = T(c.d_alpha), out[3 * n + i] = T(c.d_sigma);
  }
}

template void path_coefficients_cpu<float>(const float*, float*, std::int64_t, const PathLaw&);
template void path_coefficients_cpu<double>(const double*, double*, std::int64_t, const PathLaw&);

}  // namespace fm::kernels
