// kernels/cpu/activation.cpp — CPU reference loops for SiLU and bias + SiLU (see
// kernels/activation.h for the formulas). These are the definitions the CUDA kernels are tested
// against, so they favour clarity over speed.
#include <cmath>

#include "core/error.h"
#include "kernels/cpu/fast_exp.h"
#include "kernels/activation.h"

namespace fm::kernels {
namespace {

template <typename T>
T silu(T x) {
  return x * sigmoid(x);
}

// d/dx [x·σ(x)] = σ(x) + x·σ(x)(1 − σ(x)) = σ(x)·(1 + x·(1 − σ(x))).
template <typename T>
T silu_derivative(T x) {
  T s = sigmoid(x);
  return s * (T(1) + x * (T(1) - s));
}

}  // namespace

template <typename T>
void silu_forward_cpu(const T* x, T* y, std::int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (std::int64_t i = 0; i < n; ++i) y[i] = silu(x[i]);
}

template <typename T>
void silu_backward_cpu(const T* x, const T* dy, T* dx, std::int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (std::int64_t i = 0; i < n; ++i) dx[i] = dy[i] * silu_derivative(x[i]);
}

template <typename T>
void bias_silu_forward_cpu(const T* x, const T* bias, T* y, std::int64_t outer, int C,
                           std::int64_t inner) {
  check_bias_silu_sizes("bias_silu_forward_cpu", outer, C, inner);
  for (std::int64_t o = 0; o < outer; ++o)
    for (int c = 0; c < C; ++c) {
      std::int64_t row = (o * C + c) * inner;
      for (std::int64_t i = 0; i < inner; ++i) y[row + i] = silu(x[row + i] + bias[c]);
    }
}

template <typename T>
void bias_silu_backward_cpu(const T* x, const T* bias, const T* dy, T* dx, T* dbias,
                            std::int64_t outer, int C, std::int64_t inner) {
  check_bias_silu_sizes("bias_silu_backward_cpu", outer, C, inner);
  for (int c = 0; c < C; ++c) dbias[c] = T(0);
  for (std::int64_t o = 0; o < outer; ++o)
    for (int c = 0; c < C; ++c) {
      std::int64_t row = (o * C + c) * inner;
      for (std::int64_t i = 0; i < inner; ++i) {
        T grad = dy[row + i] * silu_derivative(x[row + i] + bias[c]);
        dx[row + i] = grad;
        dbias[c] += grad;  // ∂(x + bias[c])/∂bias[c] = 1, summed over every use of bias[c]
      }
    }
}

template void silu_forward_cpu<float>(const float*, float*, std::int64_t);
template void silu_forward_cpu<double>(const double*, double*, std::int64_t);
template void silu_backward_cpu<float>(const float*, const float*, float*, std::int64_t);
template void silu_backward_cpu<double>(const double*, const double*, double*, std::int64_t);
template void bias_silu_forward_cpu<float>(const float*, const float*, float*, std::int64_t, int,
                                           std::int64_t);
template void bias_silu_forward_cpu<double>(const double*, const double*, double*, std::int64_t,
                                            int, std::int64_t);
template void bias_silu_backward_cpu<float>(const float*, const float*, const float*, float*,
                                            float*, std::int64_t, int, std::int64_t);
template void bias_silu_backward_cpu<double>(const double*, const double*, const double*, double*,
                                             double*, std::int64_t, int, std::int64_t);

}  // namespace fm::kernels
