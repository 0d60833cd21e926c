// kernels/cpu/group_norm.cpp — CPU reference loops for GroupNorm and GroupNorm + SiLU (formulas in
// kernels/group_norm.h). The fused versions share the plain ones' code through a flag, so the two
// cannot drift apart. Statistics use two passes (mean, then Σ(x − μ)²), which is exact enough in
// double to serve as the reference for the GPU's single-pass Welford.
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/fast_exp.h"
#include "kernels/group_norm.h"

namespace fm::kernels {
namespace {

template <typename T>
void forward(const char* op, bool apply_silu, const T* x, const T* gamma, const T* beta, T* y,
             T* mean, T* rstd, int N, int C, int HW, int G, T eps) {
  check_group_norm_sizes(op, N, C, HW, G);
  const int channels_per_group = C / G;
  const std::int64_t group_size = std::int64_t(channels_per_group) * HW;
  // Threads only pay off above a few tens of thousands of elements (gradchecks call this
  // thousands of times on tiny tensors).
  const bool parallel = std::int64_t(N) * C * HW > 32768;
#pragma omp parallel for schedule(static) if (parallel)
  for (int ng = 0; ng < N * G; ++ng) {
    const int g = ng % G;
    // The group is one contiguous span: channels g·C/G … (g+1)·C/G − 1 of sample n.
    const std::int64_t offset = std::int64_t(ng) * group_size;
    const T* xg = x + offset;
    T* yg = y + offset;
    T sum = 0;
    for (std::int64_t i = 0; i < group_size; ++i) sum += xg[i];
    const T mu = sum / T(group_size);
    T squared = 0;
    for (std::int64_t i = 0; i < group_size; ++i) squared += (xg[i] - mu) * (xg[i] - mu);
    const T variance = squared / T(group_size);  // biased, as in the GroupNorm paper
    const T inv_std = T(1) / std::sqrt(variance + eps);
    mean[ng] = mu;
    rstd[ng] = inv_std;
    for (int cl = 0; cl < channels_per_group; ++cl) {
      const int c = g * channels_per_group + cl;
      for (int hw = 0; hw < HW; ++hw) {
        const std::int64_t i = std::int64_t(cl) * HW + hw;
        T z = gamma[c] * (xg[i] - mu) * inv_std + beta[c];
        yg[i] = apply_silu ? z * sigmoid(z) : z;
      }
    }
  }
}

template <typename T>
void backward(const char* op, bool apply_silu, const T* dy, const T* x, const T* mean,
              const T* rstd, const T* gamma, const T* beta, T* dx, T* dgamma, T* dbeta, int N,
              int C, int HW, int G) {
  check_group_norm_sizes(op, N, C, HW, G);
  const int channels_per_group = C / G;
  const std::int64_t group_size = std::int64_t(channels_per_group) * HW;

  // dz: the gradient at the GroupNorm output z = γ·x̂ + β. For the fused version it is dy·silu'(z),
  // with z recomputed from x, mean and rstd.
  auto dz_at = [&](std::int64_t flat, int c, T xhat) {
    if (!apply_silu) return dy[flat];
    const T z = gamma[c] * xhat + beta[c];
    const T s = sigmoid(z);
    return dy[flat] * s * (T(1) + z * (T(1) - s));
  };

  // Per-(n, c) sums Σ_hw dz and Σ_hw dz·x̂. They give dβ and dγ (summed over n below) and the two
  // group means dx needs: Σ dxhat = Σ_c γ[c]·Σ_hw dz, Σ dxhat·x̂ = Σ_c γ[c]·Σ_hw dz·x̂.
  std::vector<T> sum_dz(std::size_t(N) * C), sum_dz_xhat(std::size_t(N) * C);
  const bool parallel = std::int64_t(N) * C * HW > 32768;
#pragma omp parallel for schedule(static) if (parallel)
  for (int nc = 0; nc < N * C; ++nc) {
    const int c = nc % C;
    const int ng = (nc / C) * G + c / channels_per_group;
    T a = 0, b = 0;
    for (int hw = 0; hw < HW; ++hw) {
      const std::int64_t flat = std::int64_t(nc) * HW + hw;
      const T xhat = (x[flat] - mean[ng]) * rstd[ng];
      const T dz = dz_at(flat, c, xhat);
      a += dz;
      b += dz * xhat;
    }
    sum_dz[nc] = a;
    sum_dz_xhat[nc] = b;
  }

  for (int c = 0; c < C; ++c) {
    T a = 0, b = 0;
    for (int n = 0; n < N; ++n) {
      a += sum_dz[std::size_t(n) * C + c];
      b += sum_dz_xhat[std::size_t(n) * C + c];
    }
    dbeta[c] = a;
    dgamma[c] = b;
  }

#pragma omp parallel for schedule(static) if (parallel)
  for (int ng = 0; ng < N * G; ++ng) {
    const int n = ng / G, g = ng % G;
    T sum_dxhat = 0, sum_dxhat_xhat = 0;
    for (int cl = 0; cl < channels_per_group; ++cl) {
      const int c = g * channels_per_group + cl;
      sum_dxhat += gamma[c] * sum_dz[std::size_t(n) * C + c];
      sum_dxhat_xhat += gamma[c] * sum_dz_xhat[std::size_t(n) * C + c];
    }
    const T mean_dxhat = sum_dxhat / T(group_size);
    const T mean_dxhat_xhat = sum_dxhat_xhat / T(group_size);
    for (int cl = 0; cl < channels_per_group; ++cl) {
      const int c = g * channels_per_group + cl;
      for (int hw = 0; hw < HW; ++hw) {
        const std::int64_t flat = std::int64_t(ng) * group_size + std::int64_t(cl) * HW + hw;
        const T xhat = (x[flat] - mean[ng]) * rstd[ng];
        const T dxhat = gamma[c] * dz_at(flat, c, xhat);
        dx[flat] = rstd[ng] * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
      }
    }
  }
}

}  // namespace

template <typename T>
void group_norm_forward_cpu(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                            int N, int C, int HW, int G, T eps) {
  forward("group_norm_forward_cpu", false, x, gamma, beta, y, mean, rstd, N, C, HW, G, eps);
}

template <typename T>
void group_norm_backward_cpu(const T* dy, const T* x, const T* mean, const T* rstd, const T* gamma,
                             T* dx, T* dgamma, T* dbeta, int N, int C, int HW, int G) {
  backward<T>("group_norm_backward_cpu", false, dy, x, mean, rstd, gamma, nullptr, dx, dgamma,
              dbeta, N, C, HW, G);
}

template <typename T>
void group_norm_silu_forward_cpu(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                                 int N, int C, int HW, int G, T eps) {
  forward("group_norm_silu_forward_cpu", true, x, gamma, beta, y, mean, rstd, N, C, HW, G, eps);
}

template <typename T>
void group_norm_silu_backward_cpu(const T* dy, const T* x, const T* mean, const T* rstd,
                                  const T* gamma, const T* beta, T* dx, T* dgamma, T* dbeta, int N,
                                  int C, int HW, int G) {
  backward("group_norm_silu_backward_cpu", true, dy, x, mean, rstd, gamma, beta, dx, dgamma, dbeta,
           N, C, HW, G);
}

#define FM_INSTANTIATE_GROUP_NORM(T)                                                              \
  template void group_norm_forward_cpu<T>(const T*, const T*, const T*, T*, T*, T*, int, int, int, \
                                          int, T);                                                \
  template void group_norm_backward_cpu<T>(const T*, const T*, const T*, const T*, const T*, T*,   \
                                           T*, T*, int, int, int, int);                           \
  template void group_norm_silu_forward_cpu<T>(const T*, const T*, const T*, T*, T*, T*, int, int, \
                                               int, int, T);                                      \
  template void group_norm_silu_backward_cpu<T>(const T*, const T*, const T*, const T*, const T*,  \
                                                const T*, T*, T*, T*, int, int, int, int);
FM_INSTANTIATE_GROUP_NORM(float)
FM_INSTANTIATE_GROUP_NORM(double)
#undef FM_INSTANTIATE_GROUP_NORM

}  // namespace fm::kernels
