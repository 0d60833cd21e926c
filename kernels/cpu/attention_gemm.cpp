// kernels/cpu/attention_gemm.cpp — scaled dot-product attention on the CPU as GEMM calls: the
// version the ops run (formulas in kernels/attention.h, readable loops in kernels/cpu/attention.cpp).
//
// Why: the reference takes one dot product at a time, so the L²·D multiply-adds of Q·Kᵀ, P·V and
// the backward's four products run at scalar speed. Here each (batch, head) materialises the L×L
// score matrix and hands the products to gemm_cpu, whose packed micro-kernel keeps its operands in
// vector registers. The price is O(L²) scratch per thread (two L×L matrices: 300 KB for 196 tokens
// in float), which the CPU's caches hold; the GPU's flash kernels avoid exactly this buffer.
//
// The exponentials use fast_exp (vectorised; float only, double keeps std::exp): with head dims of
// 4–32 the L² exponentials cost as much as the products.
//
// Heads run in parallel under OpenMP. Each (b, h) writes only its own slices and every GEMM sums in
// a fixed order, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/cpu/fast_exp.h"
#include "kernels/gemm.h"

namespace fm::kernels {
namespace {

// Heads are worth a thread each only when there is real work (gradchecks call these thousands of
// times on tiny sizes, where starting threads costs more than the math).
bool worth_threads(int B, int H, int L, int D) {
  return std::int64_t(B) * H * L * L * D > 65536;
}

// scores[L×L] = scale · Q·Kᵀ for one head.
template <typename T>
void scores(const T* qh, const T* kh, T* s, int L, int D, T scale) {
  gemm_cpu<T>(false, true, L, L, D, scale, qh, D, kh, D, T(0), s, L);
}

}  // namespace

template <typename T>
void attention_forward_cpu_gemm(const T* q, const T* k, const T* v, T* o, T* lse, int B, int H,
                                int L, int D, T scale) {
  check_attention_sizes("attention_forward_cpu_gemm", B, H, L, D);
  const std::int64_t head_size = std::int64_t(L) * D;
#pragma omp parallel if (worth_threads(B, H, L, D))
  {
    std::vector<T> p(std::size_t(L) * L);  // this thread's score / probability matrix
#pragma omp for schedule(static)
    for (int bh = 0; bh < B * H; ++bh) {
      const std::int64_t base = bh * head_size;
      scores(q + base, k + base, p.data(), L, D, scale);
      // Row softmax in place; subtracting the row maximum keeps every exp ≤ 1. The max and the
      // sum are `omp simd` reductions (vector partial sums, in an order fixed by the build), so
      // the whole row vectorises.
      for (int i = 0; i < L; ++i) {
        T* row = p.data() + std::int64_t(i) * L;
        T row_max = row[0];
#pragma omp simd reduction(max : row_max)
        for (int j = 0; j < L; ++j) row_max = row[j] > row_max ? row[j] : row_max;
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < L; ++j) {
          row[j] = fast_exp(row[j] - row_max);
          sum += row[j];
        }
        const T inv_sum = T(1) / sum;
#pragma omp simd
        for (int j = 0; j < L; ++j) row[j] *= inv_sum;
        lse[std::int64_t(bh) * L + i] = row_max + std::log(sum);
      }
      gemm_cpu<T>(false, false, L, D, L, T(1), p.data(), L, v + base, D, T(0), o + base, D);  // O = P·V
    }
  }
}

template <typename T>
void attention_backward_cpu_gemm(const T* q, const T* k, const T* v, const T* o, const T* dout,
                                 const T* lse, T* dq, T* dk, T* dv, int B, int H, int L, int D,
                                 T scale) {
  check_attention_sizes("attention_backward_cpu_gemm", B, H, L, D);
  const std::int64_t head_size = std::int64_t(L) * D;
#pragma omp parallel if (worth_threads(B, H, L, D))
  {
    std::vector<T> p(std::size_t(L) * L);   // P, recomputed from the saved log-sum-exp
    std::vector<T> ds(std::size_t(L) * L);  // dP, then dS in place
#pragma omp for schedule(static)
    for (int bh = 0; bh < B * H; ++bh) {
      const std::int64_t base = bh * head_size;
      const T* qh = q + base;
      const T* kh = k + base;
      const T* vh = v + base;
      const T* oh = o + base;
      const T* doh = dout + base;
      scores(qh, kh, p.data(), L, D, scale);
      for (int i = 0; i < L; ++i) {
        T* row = p.data() + std::int64_t(i) * L;
        const T row_lse = lse[std::int64_t(bh) * L + i];
        for (int j = 0; j < L; ++j) row[j] = fast_exp(row[j] - row_lse);
      }
      gemm_cpu<T>(true, false, L, D, L, T(1), p.data(), L, doh, D, T(0), dv + base, D);  // dV = Pᵀ·dO
      gemm_cpu<T>(false, true, L, L, D, T(1), doh, D, vh, D, T(0), ds.data(), L);        // dP = dO·Vᵀ
      for (int i = 0; i < L; ++i) {
        // D_i = Σ_d dO_id·O_id; then dS_ij = P_ij (dP_ij − D_i).
        T row_term = 0;
        for (int d = 0; d < D; ++d) row_term += doh[std::int64_t(i) * D + d] * oh[std::int64_t(i) * D + d];
        const T* p_row = p.data() + std::int64_t(i) * L;
        T* ds_row = ds.data() + std::int64_t(i) * L;
#pragma omp simd
        for (int j = 0; j < L; ++j) ds_row[j] = p_row[j] * (ds_row[j] - row_term);
      }
      gemm_cpu<T>(false, false, L, D, L, scale, ds.data(), L, kh, D, T(0), dq + base, D);  // dQ = scale·dS·K
      gemm_cpu<T>(true, false, L, D, L, scale, ds.data(), L, qh, D, T(0), dk + base, D);   // dK = scale·dSᵀ·Q
    }
  }
}

template void attention_forward_cpu_gemm<float>(const float*, const float*, const float*, float*,
                                                float*, int, int, int, int, float);
template void attention_forward_cpu_gemm<double>(const double*, const double*, const double*,
                                                 double*, double*, int, int, int, int, double);
template void attention_backward_cpu_gemm<float>(const float*, const float*, const float*,
                                                 const float*, const float*, const float*, float*,
                                                 float*, float*, int, int, int, int, float);
template void attention_backward_cpu_gemm<double>(const double*, const double*, const double*,
                                                  const double*, const double*, const double*,
                                                  double*, double*, double*, int, int, int, int,
                                                  double);

}  // namespace fm::kernels
