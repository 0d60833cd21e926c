// kernels/cpu/attention_rows_kernel.h — the per-row loops of the CPU attention (kernels/cpu/attention_gemm.cpp)
// written once and compiled twice like the convolution kernels: portable (kernels/cpu/attention_rows.cpp, 32-byte
// vectors) and AVX-512 (kernels/cpu/attention_rows_avx512.cpp, 64-byte vectors). Float only: the float64 path
// exists for gradchecks and keeps the plain loops of attention_gemm.cpp.
//
// Why a fused row kernel: with the small U-Net's head dim (D = 8) a head does 2·D = 16 multiply-adds per
// query-key pair and one exponential, so the exponentials cost as much as both products, and the unfused
// version also walked the L×L probability matrix four times (max, exp + sum, normalise, and the P·V GEMM's
// packing, an 8×8 transpose per block). Here a block of queries has its scores in memory transposed,
// Sᵀ = scale·K·Qᵀ (a GEMM; one key per row, the block's queries along it), and the vector lanes are
// queries: kLanes rows of the attention at once, with no sums across lanes at all.
//   1. m = max over keys j of Sᵀ[j, lanes]: vertical maxima;
//   2. for each key j: e = exp(Sᵀ[j, lanes] − m) in registers, sum += e, and acc_d += e · V[j, d] for
//      each d (V's scalar broadcast): D vector accumulators, so P is never stored;
// then O[i, d] = acc_d[i] / sum[i] and lse[i] = m[i] + log(sum[i]). Every output is a sum over keys in
// ascending order, one lane's own, so the portable and AVX-512 copies give the same bits (where the
// compiler contracts the same FMAs), whatever the thread count.
//
// The head dim is a template argument (the accumulators must be registers): 4, 8 and 16 have copies,
// other sizes take the GEMM path.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/fast_exp.h"
#include "kernels/cpu/gemm_micro_kernel.h"

namespace fm::kernels {

// One block of queries of one head.
struct AttentionRows {
  const float* scores_t;              // [keys][queries_stride]: Sᵀ = scale·K·Qᵀ; finite past `queries`
  int queries_stride;                 // a whole number of 64-byte vectors
  int queries, keys, head_dim;
  const float* values;                // [keys][head_dim]: V as stored
  float* out;                         // [queries][head_dim]
  float* lse;                         // [queries]
};

template <int kVecBytes, int kHeadDim>
void softmax_times_values(const AttentionRows& a) {
  using Vec = typename GemmVector<float, kVecBytes>::type;
  constexpr int kLanes = GemmVector<float, kVecBytes>::kLanes;
  const std::int64_t stride = a.queries_stride;
  for (int i0 = 0; i0 < a.queries; i0 += kLanes) {
    const float* st = a.scores_t + i0;
    Vec row_max;
    std::memcpy(&row_max, st, sizeof(Vec));
    for (int j = 1; j < a.keys; ++j) {
      Vec s;
      std::memcpy(&s, st + j * stride, sizeof(Vec));
      row_max = s > row_max ? s : row_max;
    }
    float max_lanes[kLanes];
    std::memcpy(max_lanes, &row_max, sizeof(Vec));
    Vec sum{}, acc[kHeadDim];
    for (int d = 0; d < kHeadDim; ++d) acc[d] = Vec{};
    for (int j = 0; j < a.keys; ++j) {
      const float* s = st + j * stride;
      float e_lanes[kLanes];
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) e_lanes[l] = fast_exp_at_most_88(s[l] - max_lanes[l]);  // ≤ 0
      Vec e;
      std::memcpy(&e, e_lanes, sizeof(Vec));
      sum += e;
      const float* v = a.values + std::int64_t(j) * kHeadDim;
#pragma GCC unroll 16
      for (int d = 0; d < kHeadDim; ++d) acc[d] += e * v[d];
    }
    // Back to row-major O: lane l is query i0 + l.
    const int valid = a.queries - i0 < kLanes ? a.queries - i0 : kLanes;
    float sum_lanes[kLanes], acc_lanes[kLanes];
    std::memcpy(sum_lanes, &sum, sizeof(Vec));
    for (int l = 0; l < valid; ++l) a.lse[i0 + l] = max_lanes[l] + std::log(sum_lanes[l]);
    for (int d = 0; d < kHeadDim; ++d) {
      std::memcpy(acc_lanes, &acc[d], sizeof(Vec));
      for (int l = 0; l < valid; ++l) a.out[std::int64_t(i0 + l) * kHeadDim + d] = acc_lanes[l] / sum_lanes[l];
    }
  }
}

// The backward's P_ij = exp(S_ij − lse_i), in place over a rows × cols score block.
template <int kVecBytes>
void probabilities_from_lse(float* p, int rows, int cols, const float* lse) {
  static_assert(kVecBytes > 0);  // (the width only names the copy: the loop is vectorised by the flags)
  for (int i = 0; i < rows; ++i) {
    float* row = p + std::int64_t(i) * cols;
    const float row_lse = lse[i];
    // fast_exp with both clamps: the backward recomputes S as (scale·Q)·Kᵀ, while the fused
    // forward, whose lse this is, computed (scale·K)·Qᵀ; rounded differently, S − lse can come out
    // above 0, and for a diverging run's huge scores above 88.
#pragma omp simd
    for (int j = 0; j < cols; ++j) row[j] = fast_exp(row[j] - row_lse);
  }
}

// The head dims with a fused copy (else the caller takes the GEMM path).
constexpr bool softmax_times_values_fused(int head_dim) { return head_dim == 4 || head_dim == 8 || head_dim == 16; }

template <int kVecBytes>
void softmax_times_values_for(const AttentionRows& a) {
  switch (a.head_dim) {
    case 4: return softmax_times_values<kVecBytes, 4>(a);
    case 8: return softmax_times_values<kVecBytes, 8>(a);
    case 16: return softmax_times_values<kVecBytes, 16>(a);
    default: throw ValueError(cat("softmax_times_values: no fused copy for head dim ", a.head_dim));
  }
}

void softmax_times_values_portable(const AttentionRows& a);
void softmax_times_values_avx512(const AttentionRows& a);
void probabilities_from_lse_portable(float* p, int rows, int cols, const float* lse);
void probabilities_from_lse_avx512(float* p, int rows, int cols, const float* lse);

}  // namespace fm::kernels
