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
// 4–32 the L² exponentials cost as much as the products. So for float and head dims 4, 8 and 16 the
// forward does not materialise P: after a GEMM for the transposed scores of kQueryBlock queries (25 KB,
// in L1), kernels/cpu/attention_rows_kernel.h exponentiates them in registers, one query per vector
// lane, and multiplies them into V on the spot (portable and AVX-512 copies). The backward's row exponentials
// use the same two copies.
//
// Heads run in parallel under OpenMP. Each (b, h) writes only its own slices and every GEMM sums in
// a fixed order, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/cpu/attention_rows_kernel.h"
#include "kernels/cpu/bfloat16_buffers.h"
#include "kernels/cpu/cpu_isa.h"
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

// Outputs at most this wide are computed transposed (see gemm_narrow).
constexpr int kNarrowOutput = 16;

// C[M×N] = op(A)·op(B) for the head-sized products (N = D, K = L): O = P·V, dV = Pᵀ·dO,
// dQ = dS·K, dK = dSᵀ·Q. With a small head dim (D = 8 in the small U-Net) the GEMM's 8×32
// micro-kernel would run half empty on an 8-wide C, and pack all L² values of the big operand
// 8×8-transposed. So compute Cᵀ[N×M] = op(B)ᵀ·op(A)ᵀ into scratch (N·M values) instead — full
// vectors, the big operand as the GEMM's B — and transpose it into C. Bitwise the same C: each
// element is the same products summed over k in the same order (the micro-kernel's a·b + acc is
// symmetric in a and b). alpha is 1: the caller pre-scales, as the GEMM would have scaled A.
template <typename T>
void gemm_narrow(bool trans_a, bool trans_b, int M, int N, int K, const T* A, int lda, const T* B,
                 int ldb, T* C, int ldc, T* scratch) {
  if (N > kNarrowOutput) {
    gemm_cpu<T>(trans_a, trans_b, M, N, K, T(1), A, lda, B, ldb, T(0), C, ldc);
    return;
  }
  gemm_cpu<T>(!trans_b, !trans_a, N, M, K, T(1), B, ldb, A, lda, T(0), scratch, M);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) C[std::int64_t(i) * ldc + j] = scratch[std::int64_t(j) * M + i];
}

// Queries per block of the fused forward: Sᵀ for 32 queries and 196 keys is 25 KB, in L1.
constexpr int kQueryBlock = 32;

// O = softmax(scale·Q·Kᵀ)·V without storing P (float, head dims with a fused row kernel).
void attention_forward_fused(const float* q, const float* k, const float* v, float* o, float* lse, int B, int H,
                             int L, int D, float scale) {
  const std::int64_t head_size = std::int64_t(L) * D;
  const bool avx512 = use_avx512_kernels();
#pragma omp parallel if (worth_threads(B, H, L, D))
  {
    // One block's Sᵀ. Zero-filled once: in the last, partial block of a head the columns past its
    // queries keep earlier values, finite numbers whose lanes are computed and dropped.
    std::vector<float> scores_t(std::size_t(L) * kQueryBlock, 0.0f);
#pragma omp for schedule(static)
    for (int bh = 0; bh < B * H; ++bh) {
      const std::int64_t base = bh * head_size;
      for (int i0 = 0; i0 < L; i0 += kQueryBlock) {
        const int queries = std::min(kQueryBlock, L - i0);
        gemm_cpu<float>(false, true, L, queries, D, scale, k + base, D, q + base + std::int64_t(i0) * D, D, 0.0f,
                        scores_t.data(), kQueryBlock);
        const AttentionRows block{scores_t.data(), kQueryBlock, queries, L, D, v + base,
                                  o + base + std::int64_t(i0) * D, lse + std::int64_t(bh) * L + i0};
        if (avx512)
          softmax_times_values_avx512(block);
        else
          softmax_times_values_portable(block);
      }
    }
  }
}

}  // namespace

template <typename T>
void attention_forward_cpu_gemm(const T* q, const T* k, const T* v, T* o, T* lse, int B, int H,
                                int L, int D, T scale) {
  check_attention_sizes("attention_forward_cpu_gemm", B, H, L, D);
  if constexpr (std::is_same_v<T, float>) {
    if (softmax_times_values_fused(D)) return attention_forward_fused(q, k, v, o, lse, B, H, L, D, scale);
  }
  const std::int64_t head_size = std::int64_t(L) * D;
#pragma omp parallel if (worth_threads(B, H, L, D))
  {
    std::vector<T> p(std::size_t(L) * L);  // this thread's score / probability matrix
    std::vector<T> transposed(std::size_t(L) * D);  // gemm_narrow's scratch
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
          row[j] = fast_exp_at_most_88(row[j] - row_max);  // ≤ 0: no upper clamp
          sum += row[j];
        }
        const T inv_sum = T(1) / sum;
#pragma omp simd
        for (int j = 0; j < L; ++j) row[j] *= inv_sum;
        lse[std::int64_t(bh) * L + i] = row_max + std::log(sum);
      }
      gemm_narrow<T>(false, false, L, D, L, p.data(), L, v + base, D, o + base, D, transposed.data());  // O = P·V
    }
  }
}

template <typename T>
void attention_backward_cpu_gemm(const T* q, const T* k, const T* v, const T* o, const T* dout,
                                 const T* lse, T* dq, T* dk, T* dv, int B, int H, int L, int D,
                                 T scale) {
  check_attention_sizes("attention_backward_cpu_gemm", B, H, L, D);
  const std::int64_t head_size = std::int64_t(L) * D;
  [[maybe_unused]] const bool avx512 = use_avx512_kernels();
#pragma omp parallel if (worth_threads(B, H, L, D))
  {
    std::vector<T> p(std::size_t(L) * L);   // P, recomputed from the saved log-sum-exp
    std::vector<T> ds(std::size_t(L) * L);  // dP, then scale·dS in place
    std::vector<T> transposed(std::size_t(L) * D);  // gemm_narrow's scratch
#pragma omp for schedule(static)
    for (int bh = 0; bh < B * H; ++bh) {
      const std::int64_t base = bh * head_size;
      const T* qh = q + base;
      const T* kh = k + base;
      const T* vh = v + base;
      const T* oh = o + base;
      const T* doh = dout + base;
      scores(qh, kh, p.data(), L, D, scale);
      const T* head_lse = lse + std::int64_t(bh) * L;
      if constexpr (std::is_same_v<T, float>) {
        if (avx512)
          probabilities_from_lse_avx512(p.data(), L, L, head_lse);
        else
          probabilities_from_lse_portable(p.data(), L, L, head_lse);
      } else {
        for (int i = 0; i < L; ++i) {
          T* row = p.data() + std::int64_t(i) * L;
          for (int j = 0; j < L; ++j) row[j] = std::exp(row[j] - head_lse[i]);
        }
      }
      gemm_narrow<T>(true, false, L, D, L, p.data(), L, doh, D, dv + base, D, transposed.data());  // dV = Pᵀ·dO
      gemm_cpu<T>(false, true, L, L, D, T(1), doh, D, vh, D, T(0), ds.data(), L);        // dP = dO·Vᵀ
      for (int i = 0; i < L; ++i) {
        // D_i = Σ_d dO_id·O_id; then dS_ij = P_ij (dP_ij − D_i), stored times scale (the GEMM
        // would scale it as alpha when packing: the same product, so the same bits).
        T row_term = 0;
        for (int d = 0; d < D; ++d) row_term += doh[std::int64_t(i) * D + d] * oh[std::int64_t(i) * D + d];
        const T* p_row = p.data() + std::int64_t(i) * L;
        T* ds_row = ds.data() + std::int64_t(i) * L;
#pragma omp simd
        for (int j = 0; j < L; ++j) {
          const T ds_ij = p_row[j] * (ds_row[j] - row_term);
          ds_row[j] = scale * ds_ij;
        }
      }
      gemm_narrow<T>(false, false, L, D, L, ds.data(), L, kh, D, dq + base, D, transposed.data());  // dQ = scale·dS·K
      gemm_narrow<T>(true, false, L, D, L, ds.data(), L, qh, D, dk + base, D, transposed.data());   // dK = scale·dSᵀ·Q
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

// bfloat16 activations: widen, run the float version, round each output once (bfloat16_buffers.h).
void attention_forward_cpu_gemm(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse, int B, int H,
                                int L, int D, float scale) {
  check_attention_sizes("attention_forward_cpu_gemm", B, H, L, D);
  const std::size_t n = std::size_t(B) * H * L * D;
  const std::vector<float> q32 = widened(q, n), k32 = widened(k, n), v32 = widened(v, n);
  std::vector<float> o32(n);
  attention_forward_cpu_gemm<float>(q32.data(), k32.data(), v32.data(), o32.data(), lse, B, H, L, D, scale);
  round_into(o32, o);
}

void attention_backward_cpu_gemm(const bf16* q, const bf16* k, const bf16* v, const bf16* o, const bf16* dout,
                                 const float* lse, bf16* dq, bf16* dk, bf16* dv, int B, int H, int L, int D,
                                 float scale) {
  check_attention_sizes("attention_backward_cpu_gemm", B, H, L, D);
  const std::size_t n = std::size_t(B) * H * L * D;
  const std::vector<float> q32 = widened(q, n), k32 = widened(k, n), v32 = widened(v, n), o32 = widened(o, n),
                           dout32 = widened(dout, n);
  std::vector<float> dq32(n), dk32(n), dv32(n);
  attention_backward_cpu_gemm<float>(q32.data(), k32.data(), v32.data(), o32.data(), dout32.data(), lse,
                                     dq32.data(), dk32.data(), dv32.data(), B, H, L, D, scale);
  round_into(dq32, dq);
  round_into(dk32, dk);
  round_into(dv32, dv);
}

}  // namespace fm::kernels
