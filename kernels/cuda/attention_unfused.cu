// kernels/cuda/attention_unfused.cu — the textbook attention as library GEMMs plus row-softmax
// kernels (float): the baseline the fused kernels in attention_flash.cu are measured against.
// Formulas: kernels/attention.h. Reference: kernels/cpu/attention.cpp.
//
// Layer: kernels/cuda. GEMMs through fm::kernels::gemm_batched_cublas_in (FP32 by default; TF32 or
// bfloat16 tensor-core math when asked, the softmax kernels stay FP32), batched over
// the B·H heads with strides; the L×L score matrices live in scratch from cuda_malloc.
//
// Cost, B=256, H=4 (B·H = 1024 heads; one L×L×D product is 2·L²·D flops per head), at the U-Net's
// three attention layers:
//                      flops                        minimum bytes        L×L scratch traffic
//   L=196, D=32  fwd   2 GEMMs   = 5.04 GFLOP       103.6 MB             S: 157 MB per pass;
//                bwd   5 GEMMs   = 12.6 GFLOP       206.3 MB             fwd ≈ 4 passes (630 MB),
//                                                                        bwd ≈ 9 passes (1.4 GB)
//   L=49,  D=16  fwd   0.157 GFLOP                  13.0 MB              S: 9.8 MB per pass
//                bwd   0.393 GFLOP                  25.9 MB
//   L=196, D=8   fwd   1.26 GFLOP                   26.5 MB              S: 157 MB per pass
//                bwd   3.15 GFLOP                   52.2 MB
// (minimum bytes: forward reads Q, K, V and writes O, LSE; backward reads Q, K, V, O, dO, LSE and
// writes dQ, dK, dV.) At L=196 the score traffic, not the flops, sets the time: ~0.2 ms per
// forward at ~3.3 TB/s, which is what fusing removes.
//
// Forward:  S = scale·Q·Kᵀ (GEMM) → row softmax in place, P and lse (kernel) → O = P·V (GEMM).
// Backward: S = scale·Q·Kᵀ, dP = dO·Vᵀ (GEMMs) → P = exp(S − lse) and dS = P∘(dP − D_i), with
//           D_i = Σ_d dO·O (one kernel, in place) → dV = Pᵀ·dO, dQ = scale·dS·K, dK = scale·dSᵀ·Q.
#include <cmath>
#include <cstdint>

#include "kernels/attention.h"
#include "kernels/cuda/common.cuh"
#include "kernels/gemm.h"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;  // one warp per row

// Row softmax in place over [rows, L] (one warp per row, three sweeps that after the first hit L1):
// P_ij = exp(S_ij − max_i) / Σ_j exp(S_ij − max_i), lse_i = max_i + log Σ_j exp(S_ij − max_i).
__global__ void softmax_rows_inplace_kernel(float* __restrict__ scores, float* __restrict__ lse,
                                            std::int64_t rows, int L) {
  const std::int64_t row = std::int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;  // whole warps leave together
  const int lane = threadIdx.x % 32;
  float* s = scores + row * L;
  float row_max = -INFINITY;
  for (int j = lane; j < L; j += 32) row_max = fmaxf(row_max, s[j]);
  row_max = warp_max(row_max);
  float sum = 0.f;
  for (int j = lane; j < L; j += 32) sum += expf(s[j] - row_max);
  sum = warp_sum(sum);
  const float inv_sum = 1.f / sum;
  for (int j = lane; j < L; j += 32) s[j] = expf(s[j] - row_max) * inv_sum;
  if (lane == 0) lse[row] = row_max + logf(sum);
}

// Backward row kernel, in place: scores_to_probs holds S and becomes P = exp(S − lse);
// dprobs_to_dscores holds dP and becomes dS = P∘(dP − D_i), with D_i = Σ_d dO_id·O_id.
__global__ void softmax_backward_rows_inplace_kernel(float* __restrict__ scores_to_probs,
                                                     float* __restrict__ dprobs_to_dscores,
                                                     const float* __restrict__ lse,
                                                     const float* __restrict__ dout,
                                                     const float* __restrict__ o, std::int64_t rows,
                                                     int L, int D) {
  const std::int64_t row = std::int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  float row_term = 0.f;
  for (int d = lane; d < D; d += 32) row_term += dout[row * D + d] * o[row * D + d];
  row_term = warp_sum(row_term);
  const float row_lse = lse[row];
  float* s = scores_to_probs + row * L;
  float* g = dprobs_to_dscores + row * L;
  for (int j = lane; j < L; j += 32) {
    const float p = expf(s[j] - row_lse);
    s[j] = p;
    g[j] = p * (g[j] - row_term);
  }
}

void check_unfused_sizes(const char* op, int B, int H, int L, int D) {
  check_attention_sizes(op, B, H, L, D);
  FM_CHECK(D <= 128, ValueError, op, ": head dim D=", D, " is above the supported maximum 128");
}

unsigned row_blocks(std::int64_t rows) {
  return unsigned(ceil_div(rows, kRowsPerBlock));
}

}  // namespace

void attention_forward_cuda_unfused(const float* q, const float* k, const float* v, float* o,
                                    float* lse, int B, int H, int L, int D, float scale, GemmMath math) {
  check_unfused_sizes("attention_forward_cuda_unfused", B, H, L, D);
  const int heads = B * H;
  if (heads == 0) return;
  const std::int64_t head_stride = std::int64_t(L) * D;
  const std::int64_t score_stride = std::int64_t(L) * L;
  float* scores = static_cast<float*>(cuda_malloc(std::size_t(heads) * score_stride * sizeof(float)));
  // S[L, L] = scale · Q[L, D] · K[L, D]ᵀ
  gemm_batched_cublas_in(math, heads, false, true, L, L, D, scale, q, D, head_stride, k, D, head_stride, 0.f,
                         scores, L, score_stride);
  const std::int64_t rows = std::int64_t(heads) * L;
  softmax_rows_inplace_kernel<<<row_blocks(rows), kThreads, 0, cuda_stream()>>>(scores, lse, rows, L);
  FM_CUDA_CHECK_LAUNCH();
  // O[L, D] = P[L, L] · V[L, D]
  gemm_batched_cublas_in(math, heads, false, false, L, D, L, 1.f, scores, L, score_stride, v, D, head_stride,
                         0.f, o, D, head_stride);
  cuda_free(scores);  // stream-ordered reuse by the caching allocator: no sync needed
}

void attention_backward_cuda_unfused(const float* q, const float* k, const float* v, const float* o,
                                     const float* dout, const float* lse, float* dq, float* dk,
                                     float* dv, int B, int H, int L, int D, float scale, GemmMath math) {
  check_unfused_sizes("attention_backward_cuda_unfused", B, H, L, D);
  const int heads = B * H;
  if (heads == 0) return;
  const std::int64_t head_stride = std::int64_t(L) * D;
  const std::int64_t score_stride = std::int64_t(L) * L;
  float* scratch =
      static_cast<float*>(cuda_malloc(2 * std::size_t(heads) * score_stride * sizeof(float)));
  float* probs = scratch;                                           // S, then P
  float* dscores = scratch + std::size_t(heads) * score_stride;     // dP, then dS
  // S = scale · Q · Kᵀ;  dP[L, L] = dO[L, D] · V[L, D]ᵀ
  gemm_batched_cublas_in(math, heads, false, true, L, L, D, scale, q, D, head_stride, k, D, head_stride, 0.f,
                         probs, L, score_stride);
  gemm_batched_cublas_in(math, heads, false, true, L, L, D, 1.f, dout, D, head_stride, v, D, head_stride,
                         0.f, dscores, L, score_stride);
  const std::int64_t rows = std::int64_t(heads) * L;
  softmax_backward_rows_inplace_kernel<<<row_blocks(rows), kThreads, 0, cuda_stream()>>>(
      probs, dscores, lse, dout, o, rows, L, D);
  FM_CUDA_CHECK_LAUNCH();
  // dV[L, D] = Pᵀ · dO;  dQ = scale · dS · K;  dK = scale · dSᵀ · Q
  gemm_batched_cublas_in(math, heads, true, false, L, D, L, 1.f, probs, L, score_stride, dout, D, head_stride,
                         0.f, dv, D, head_stride);
  gemm_batched_cublas_in(math, heads, false, false, L, D, L, scale, dscores, L, score_stride, k, D,
                         head_stride, 0.f, dq, D, head_stride);
  gemm_batched_cublas_in(math, heads, true, false, L, D, L, scale, dscores, L, score_stride, q, D,
                         head_stride, 0.f, dk, D, head_stride);
  cuda_free(scratch);
}

}  // namespace fm::kernels
