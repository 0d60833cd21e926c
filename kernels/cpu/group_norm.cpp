// kernels/cpu/group_norm.cpp — GroupNorm and GroupNorm + SiLU on the CPU (formulas in
// kernels/group_norm.h), in two versions:
//   - the reference loops (`forward`, `backward`): what the double entry points run, the reference
//     for every other implementation (cases/group_norm.cpp) and for the GPU's single-pass Welford;
//   - the float path the engine trains with (`forward_fast`, `backward_fast`): the same formulas
//     with the sums vectorised (`omp simd` reductions: 8 or 16 partial sums instead of one chain,
//     so GCC may reorder them) and the backward done in one pass over each group while it sits in
//     L1 (dz, with its sigmoid, computed once and kept instead of recomputed).
// The fused versions share the plain ones' code through a flag, so the two cannot drift apart.
// Statistics use two passes (mean, then Σ(x − μ)²), which is exact enough in double to serve as the
// reference. Both versions give every thread whole groups and sum in an order fixed by the shape, so
// results do not depend on the thread count. bfloat16 activations go through the float path (end
// of the file).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/bfloat16_buffers.h"
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

// The fast path's SiLU takes e^(−z) in a loop of its own, into a scratch row, and only then
// sigmoid(z) = 1 / (1 + e). In one loop, GCC compiles fast_exp's clamp (kernels/cpu/fast_exp.h) as
// branches with constant results, e.g. sigmoid(z) = 6e-39 for z < −88, if-converts them, and so
// computes z · 6e-39 (a denormal) in every lane; each denormal costs a microcode assist (~100
// cycles): GroupNorm + SiLU ran ~10x slower (12 ns per element instead of ~1.3 on the dev
// machine's Xeon, 2026-12-02). Apart, the clamp only selects constants and no lane multiplies one.
void exp_of_negated(const float* z, float* e, int n) {
#pragma omp simd
  for (int i = 0; i < n; ++i) e[i] = fast_exp(-z[i]);
}

// Threads only pay off above a few tens of thousands of elements (gradchecks call these thousands
// of times on tiny tensors).
bool worth_threads(int N, int C, int HW) { return std::int64_t(N) * C * HW > 32768; }

void forward_fast(const char* op, bool apply_silu, const float* x, const float* gamma,
                  const float* beta, float* y, float* mean, float* rstd, int N, int C, int HW, int G,
                  float eps) {
  check_group_norm_sizes(op, N, C, HW, G);
  const int channels_per_group = C / G;
  const std::int64_t group_size = std::int64_t(channels_per_group) * HW;
#pragma omp parallel if (worth_threads(N, C, HW))
  {
    std::vector<float> exp_row(apply_silu ? HW : 0);  // e^(−z) for one channel: exp_of_negated
#pragma omp for schedule(static)
    for (int ng = 0; ng < N * G; ++ng) {
      const int g = ng % G;
      const std::int64_t offset = std::int64_t(ng) * group_size;  // one contiguous span
      const float* xg = x + offset;
      float* yg = y + offset;
      float sum = 0;
#pragma omp simd reduction(+ : sum)
      for (std::int64_t i = 0; i < group_size; ++i) sum += xg[i];
      const float mu = sum / float(group_size);
      float squared = 0;
#pragma omp simd reduction(+ : squared)
      for (std::int64_t i = 0; i < group_size; ++i) squared += (xg[i] - mu) * (xg[i] - mu);
      const float inv_std = 1.0f / std::sqrt(squared / float(group_size) + eps);
      mean[ng] = mu;
      rstd[ng] = inv_std;
      for (int cl = 0; cl < channels_per_group; ++cl) {
        const int c = g * channels_per_group + cl;
        const float scale = gamma[c] * inv_std;  // z = γ·(x − μ)·rstd + β
        const float* xc = xg + std::int64_t(cl) * HW;
        float* yc = yg + std::int64_t(cl) * HW;
#pragma omp simd
        for (int hw = 0; hw < HW; ++hw) yc[hw] = (xc[hw] - mu) * scale + beta[c];
        if (apply_silu) {  // y = z · sigmoid(z) = z / (1 + e^(−z))
          exp_of_negated(yc, exp_row.data(), HW);
#pragma omp simd
          for (int hw = 0; hw < HW; ++hw) yc[hw] = yc[hw] / (1.0f + exp_row[hw]);
        }
      }
    }
  }
}

void backward_fast(const char* op, bool apply_silu, const float* dy, const float* x,
                   const float* mean, const float* rstd, const float* gamma, const float* beta,
                   float* dx, float* dgamma, float* dbeta, int N, int C, int HW, int G) {
  check_group_norm_sizes(op, N, C, HW, G);
  const int channels_per_group = C / G;
  const std::int64_t group_size = std::int64_t(channels_per_group) * HW;
  // Per-(n, c) sums Σ_hw dz and Σ_hw dz·x̂, as in `backward`.
  std::vector<float> sum_dz(std::size_t(N) * C), sum_dz_xhat(std::size_t(N) * C);
#pragma omp parallel if (worth_threads(N, C, HW))
  {
    // dz of the fused version (dy·silu'(z)) for the group at hand, computed once for both passes.
    std::vector<float> dz_group(apply_silu ? group_size : 0);
    std::vector<float> exp_row(apply_silu ? HW : 0);  // e^(−z) for one channel
#pragma omp for schedule(static)
    for (int ng = 0; ng < N * G; ++ng) {
      const int n = ng / G, g = ng % G;
      const std::int64_t offset = std::int64_t(ng) * group_size;
      const float mu = mean[ng], rs = rstd[ng];
      for (int cl = 0; cl < channels_per_group; ++cl) {
        const int c = g * channels_per_group + cl;
        const float* xc = x + offset + std::int64_t(cl) * HW;
        const float* dyc = dy + offset + std::int64_t(cl) * HW;
        float a = 0, b = 0;
        if (apply_silu) {
          // z into dzc, then e^(−z) into exp_row (see exp_of_negated), then dz into dzc.
          float* dzc = dz_group.data() + std::int64_t(cl) * HW;
#pragma omp simd
          for (int hw = 0; hw < HW; ++hw) dzc[hw] = gamma[c] * ((xc[hw] - mu) * rs) + beta[c];
          exp_of_negated(dzc, exp_row.data(), HW);
#pragma omp simd reduction(+ : a, b)
          for (int hw = 0; hw < HW; ++hw) {
            const float xhat = (xc[hw] - mu) * rs;
            const float z = dzc[hw];
            const float s = 1.0f / (1.0f + exp_row[hw]);
            const float dz = dyc[hw] * s * (1.0f + z * (1.0f - s));
            dzc[hw] = dz;
            a += dz;
            b += dz * xhat;
          }
        } else {
#pragma omp simd reduction(+ : a, b)
          for (int hw = 0; hw < HW; ++hw) {
            a += dyc[hw];
            b += dyc[hw] * ((xc[hw] - mu) * rs);
          }
        }
        sum_dz[std::size_t(n) * C + c] = a;
        sum_dz_xhat[std::size_t(n) * C + c] = b;
      }
      float sum_dxhat = 0, sum_dxhat_xhat = 0;
      for (int cl = 0; cl < channels_per_group; ++cl) {
        const int c = g * channels_per_group + cl;
        sum_dxhat += gamma[c] * sum_dz[std::size_t(n) * C + c];
        sum_dxhat_xhat += gamma[c] * sum_dz_xhat[std::size_t(n) * C + c];
      }
      const float mean_dxhat = sum_dxhat / float(group_size);
      const float mean_dxhat_xhat = sum_dxhat_xhat / float(group_size);
      for (int cl = 0; cl < channels_per_group; ++cl) {
        const int c = g * channels_per_group + cl;
        const std::int64_t start = offset + std::int64_t(cl) * HW;
        const float* dzc = apply_silu ? dz_group.data() + std::int64_t(cl) * HW : dy + start;
        const float* xc = x + start;
        float* dxc = dx + start;
#pragma omp simd
        for (int hw = 0; hw < HW; ++hw) {
          const float xhat = (xc[hw] - mu) * rs;
          dxc[hw] = rs * (gamma[c] * dzc[hw] - mean_dxhat - xhat * mean_dxhat_xhat);
        }
      }
    }
  }
  for (int c = 0; c < C; ++c) {  // over n in order: the same sums whatever the thread count
    float a = 0, b = 0;
    for (int n = 0; n < N; ++n) {
      a += sum_dz[std::size_t(n) * C + c];
      b += sum_dz_xhat[std::size_t(n) * C + c];
    }
    dbeta[c] = a;
    dgamma[c] = b;
  }
}

}  // namespace

template <typename T>
void group_norm_forward_cpu(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                            int N, int C, int HW, int G, T eps) {
  if constexpr (std::is_same_v<T, float>)
    forward_fast("group_norm_forward_cpu", false, x, gamma, beta, y, mean, rstd, N, C, HW, G, eps);
  else
    forward("group_norm_forward_cpu", false, x, gamma, beta, y, mean, rstd, N, C, HW, G, eps);
}

template <typename T>
void group_norm_backward_cpu(const T* dy, const T* x, const T* mean, const T* rstd, const T* gamma,
                             T* dx, T* dgamma, T* dbeta, int N, int C, int HW, int G) {
  if constexpr (std::is_same_v<T, float>)
    backward_fast("group_norm_backward_cpu", false, dy, x, mean, rstd, gamma, nullptr, dx, dgamma,
                  dbeta, N, C, HW, G);
  else
    backward<T>("group_norm_backward_cpu", false, dy, x, mean, rstd, gamma, nullptr, dx, dgamma,
                dbeta, N, C, HW, G);
}

template <typename T>
void group_norm_silu_forward_cpu(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                                 int N, int C, int HW, int G, T eps) {
  if constexpr (std::is_same_v<T, float>)
    forward_fast("group_norm_silu_forward_cpu", true, x, gamma, beta, y, mean, rstd, N, C, HW, G,
                 eps);
  else
    forward("group_norm_silu_forward_cpu", true, x, gamma, beta, y, mean, rstd, N, C, HW, G, eps);
}

template <typename T>
void group_norm_silu_backward_cpu(const T* dy, const T* x, const T* mean, const T* rstd,
                                  const T* gamma, const T* beta, T* dx, T* dgamma, T* dbeta, int N,
                                  int C, int HW, int G) {
  if constexpr (std::is_same_v<T, float>)
    backward_fast("group_norm_silu_backward_cpu", true, dy, x, mean, rstd, gamma, beta, dx, dgamma,
                  dbeta, N, C, HW, G);
  else
    backward("group_norm_silu_backward_cpu", true, dy, x, mean, rstd, gamma, beta, dx, dgamma,
             dbeta, N, C, HW, G);
}

// ---- bfloat16 activations ----------------------------------------------------------------------
// The reference for the bfloat16 kernels: x (and dy) widened to float exactly, the float path above,
// each output element rounded once to bfloat16. That is what the CUDA kernels compute (in float,
// rounding on store), so the two differ only by float rounding order, moved across a bfloat16
// rounding now and then. γ, β, the statistics and dγ, dβ are float32.
namespace {
std::size_t element_count(int N, int C, int HW) { return std::size_t(N) * std::size_t(C) * std::size_t(HW); }
}  // namespace

void group_norm_forward_cpu(const bf16* x, const float* gamma, const float* beta, bf16* y, float* mean,
                            float* rstd, int N, int C, int HW, int G, float eps) {
  check_group_norm_sizes("group_norm_forward_cpu", N, C, HW, G);
  const std::vector<float> xf = widened(x, element_count(N, C, HW));
  std::vector<float> yf(xf.size());
  group_norm_forward_cpu<float>(xf.data(), gamma, beta, yf.data(), mean, rstd, N, C, HW, G, eps);
  round_into(yf, y);
}

void group_norm_backward_cpu(const bf16* dy, const bf16* x, const float* mean, const float* rstd,
                             const float* gamma, bf16* dx, float* dgamma, float* dbeta, int N, int C, int HW,
                             int G) {
  check_group_norm_sizes("group_norm_backward_cpu", N, C, HW, G);
  const std::vector<float> dyf = widened(dy, element_count(N, C, HW)), xf = widened(x, dyf.size());
  std::vector<float> dxf(dyf.size());
  group_norm_backward_cpu<float>(dyf.data(), xf.data(), mean, rstd, gamma, dxf.data(), dgamma, dbeta, N, C, HW,
                                 G);
  round_into(dxf, dx);
}

void group_norm_silu_forward_cpu(const bf16* x, const float* gamma, const float* beta, bf16* y,
                                 float* mean, float* rstd, int N, int C, int HW, int G, float eps) {
  check_group_norm_sizes("group_norm_silu_forward_cpu", N, C, HW, G);
  const std::vector<float> xf = widened(x, element_count(N, C, HW));
  std::vector<float> yf(xf.size());
  group_norm_silu_forward_cpu<float>(xf.data(), gamma, beta, yf.data(), mean, rstd, N, C, HW, G, eps);
  round_into(yf, y);
}

void group_norm_silu_backward_cpu(const bf16* dy, const bf16* x, const float* mean, const float* rstd,
                                  const float* gamma, const float* beta, bf16* dx, float* dgamma,
                                  float* dbeta, int N, int C, int HW, int G) {
  check_group_norm_sizes("group_norm_silu_backward_cpu", N, C, HW, G);
  const std::vector<float> dyf = widened(dy, element_count(N, C, HW)), xf = widened(x, dyf.size());
  std::vector<float> dxf(dyf.size());
  group_norm_silu_backward_cpu<float>(dyf.data(), xf.data(), mean, rstd, gamma, beta, dxf.data(), dgamma,
                                      dbeta, N, C, HW, G);
  round_into(dxf, dx);
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
