// kernels/cpu/attention.cpp — CPU reference loops for scaled dot-product attention (formulas in
// kernels/attention.h). One query row at a time, so memory stays O(L) per thread; heads run in
// parallel under OpenMP (each (b, h) writes only its own slices, so no races and no dependence of
// the results on the thread count).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/error.h"
#include "kernels/attention.h"

namespace fm::kernels {
namespace {

template <typename T>
T dot(const T* a, const T* b, int n) {
  T sum = 0;
  for (int i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace

template <typename T>
void attention_forward_cpu(const T* q, const T* k, const T* v, T* o, T* lse, int B, int H, int L,
                           int D, T scale) {
  check_attention_sizes("attention_forward_cpu", B, H, L, D);
  const std::int64_t head_size = std::int64_t(L) * D;
  // Threads only pay off for real sizes (gradchecks call this thousands of times on tiny ones).
  const bool parallel = std::int64_t(B) * H * L * L * D > 65536;
#pragma omp parallel for schedule(static) if (parallel)
  for (int bh = 0; bh < B * H; ++bh) {
    const T* qh = q + bh * head_size;
    const T* kh = k + bh * head_size;
    const T* vh = v + bh * head_size;
    T* oh = o + bh * head_size;
    std::vector<T> weights(L);
    for (int i = 0; i < L; ++i) {
      // Subtract the row maximum before exponentiating so no exp overflows (the softmax is
      // unchanged: the factor exp(−max) cancels between numerator and denominator).
      T row_max = -std::numeric_limits<T>::infinity();
      for (int j = 0; j < L; ++j) {
        weights[j] = scale * dot(qh + std::int64_t(i) * D, kh + std::int64_t(j) * D, D);
        row_max = std::max(row_max, weights[j]);
      }
      T sum = 0;
      for (int j = 0; j < L; ++j) {
        weights[j] = std::exp(weights[j] - row_max);
        sum += weights[j];
      }
      for (int d = 0; d < D; ++d) {
        T acc = 0;
        for (int j = 0; j < L; ++j) acc += weights[j] * vh[std::int64_t(j) * D + d];
        oh[std::int64_t(i) * D + d] = acc / sum;
      }
      lse[std::int64_t(bh) * L + i] = row_max + std::log(sum);
    }
  }
}

template <typename T>
void attention_backward_cpu(const T* q, const T* k, const T* v, const T* o, const T* dout,
                            const T* lse, T* dq, T* dk, T* dv, int B, int H, int L, int D,
                            T scale) {
  check_attention_sizes("attention_backward_cpu", B, H, L, D);
  const std::int64_t head_size = std::int64_t(L) * D;
  // Threads only pay off for real sizes (gradchecks call this thousands of times on tiny ones).
  const bool parallel = std::int64_t(B) * H * L * L * D > 65536;
#pragma omp parallel for schedule(static) if (parallel)
  for (int bh = 0; bh < B * H; ++bh) {
    const std::int64_t base = bh * head_size;
    std::fill(dk + base, dk + base + head_size, T(0));
    std::fill(dv + base, dv + base + head_size, T(0));
    for (int i = 0; i < L; ++i) {
      const T* qi = q + base + std::int64_t(i) * D;
      const T* doi = dout + base + std::int64_t(i) * D;
      T* dqi = dq + base + std::int64_t(i) * D;
      std::fill(dqi, dqi + D, T(0));
      const T row_term = dot(doi, o + base + std::int64_t(i) * D, D);  // D_i = Σ_d dO_id·O_id
      const T row_lse = lse[std::int64_t(bh) * L + i];
      for (int j = 0; j < L; ++j) {
        const T* kj = k + base + std::int64_t(j) * D;
        const T* vj = v + base + std::int64_t(j) * D;
        const T p = std::exp(scale * dot(qi, kj, D) - row_lse);  // P_ij recomputed from lse
        const T dp = dot(doi, vj, D);                            // dP_ij = dO_i · V_j
        const T ds = p * (dp - row_term);                        // dS_ij = P_ij (dP_ij − D_i)
        T* dkj = dk + base + std::int64_t(j) * D;
        T* dvj = dv + base + std::int64_t(j) * D;
        for (int d = 0; d < D; ++d) {
          dqi[d] += scale * ds * kj[d];
          dkj[d] += scale * ds * qi[d];
          dvj[d] += p * doi[d];
        }
      }
    }
  }
}

template void attention_forward_cpu<float>(const float*, const float*, const float*, float*, float*,
                                           int, int, int, int, float);
template void attention_forward_cpu<double>(const double*, const double*, const double*, double*,
                                            double*, int, int, int, int, double);
template void attention_backward_cpu<float>(const float*, const float*, const float*, const float*,
                                            const float*, const float*, float*, float*, float*, int,
                                            int, int, int, float);
template void attention_backward_cpu<double>(const double*, const double*, const double*,
                                             const double*, const double*, const double*, double*,
                                             double*, double*, int, int, int, int, double);

}  // namespace fm::kernels
