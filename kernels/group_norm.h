// kernels/group_norm.h — GroupNorm (Wu & He 2018) and the fused GroupNorm + SiLU used by every
// U-Net residual block, forward and backward.
//
// Layer: kernels/ (plain functions over pointers, no Tensor). CPU reference loops (float, double) in
// kernels/cpu/group_norm.cpp; CUDA kernels (float or bfloat16 activations) in
// kernels/cuda/group_norm.cu (v2, v3) and kernels/cuda/group_norm_naive.cu (v1, float only), on
// cuda_stream().
//
// Layout: x, y, dy, dx are NCHW with H·W flattened to HW; the C channels are split into G groups of
// C/G consecutive channels (C % G == 0). For each sample n and group g the M = (C/G)·HW values form
// one contiguous span of memory. With mean μ[n,g] and biased variance σ²[n,g] over that span:
//   rstd     = 1 / sqrt(σ² + eps)
//   x̂        = (x − μ) · rstd
//   y        = γ[c] · x̂ + β[c]                    (GroupNorm)
//   y        = silu(γ[c] · x̂ + β[c])              (GroupNorm + SiLU, fused)
// mean and rstd ([N·G], index n·G + g) are outputs of the forward, saved for the backward.
//
// Backward (dxhat = γ[c]·dz, where dz = dy for GroupNorm and dz = dy·silu'(γ[c]·x̂ + β[c]) for
// the fused version; means over the M elements of the group):
//   dx       = rstd · (dxhat − mean(dxhat) − x̂ · mean(dxhat · x̂))
//   dγ[c]    = Σ_{n,hw} dz · x̂
//   dβ[c]    = Σ_{n,hw} dz
// The fused backward recomputes the pre-activation γ·x̂ + β from x, mean and rstd, so the forward
// stores nothing beyond mean and rstd. All outputs are overwritten (not accumulated into).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "kernels/bfloat16.h"

namespace fm::kernels {

// ---- argument checks shared by every implementation below ---------------------------------------
// op names the caller in the message. N may be 0 (an empty batch); the other sizes must be positive.
inline void check_group_norm_sizes(const char* op, int N, int C, int HW, int G) {
  FM_CHECK(N >= 0 && C > 0 && HW > 0 && G > 0, ValueError, op,
           ": sizes must be N >= 0 and C, HW, G > 0; got N=", N, " C=", C, " HW=", HW, " G=", G);
  FM_CHECK(C % G == 0, ShapeError, op, ": channels C=", C, " are not divisible by groups G=", G);
}
// The CUDA kernels index within a group in 32 bits (cheaper index arithmetic); 2^31 elements = 8 GB
// per group is far beyond any model here. Call after check_group_norm_sizes.
inline void check_group_norm_group_fits_int32(const char* op, int C, int HW, int G) {
  FM_CHECK(std::int64_t(C / G) * HW <= INT32_MAX, ValueError, op, ": a group of ", C / G,
           " channels x ", HW, " positions exceeds 2^31 - 1 elements");
}

// ---- CPU references (T = float or double) -------------------------------------------------------
template <typename T>
void group_norm_forward_cpu(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                            int N, int C, int HW, int G, T eps);
template <typename T>
void group_norm_backward_cpu(const T* dy, const T* x, const T* mean, const T* rstd, const T* gamma,
                             T* dx, T* dgamma, T* dbeta, int N, int C, int HW, int G);

template <typename T>
void group_norm_silu_forward_cpu(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                                 int N, int C, int HW, int G, T eps);
// Needs beta as well as gamma: the SiLU derivative is taken at γ·x̂ + β.
template <typename T>
void group_norm_silu_backward_cpu(const T* dy, const T* x, const T* mean, const T* rstd,
                                  const T* gamma, const T* beta, T* dx, T* dgamma, T* dbeta, int N,
                                  int C, int HW, int G);

// bfloat16 activations (x, y, dy, dx) with float32 γ, β, statistics and dγ, dβ: computed in float,
// each output element rounded once (the float path on x widened exactly).
void group_norm_forward_cpu(const bf16* x, const float* gamma, const float* beta, bf16* y, float* mean,
                            float* rstd, int N, int C, int HW, int G, float eps);
void group_norm_backward_cpu(const bf16* dy, const bf16* x, const float* mean, const float* rstd,
                             const float* gamma, bf16* dx, float* dgamma, float* dbeta, int N, int C, int HW,
                             int G);
void group_norm_silu_forward_cpu(const bf16* x, const float* gamma, const float* beta, bf16* y,
                                 float* mean, float* rstd, int N, int C, int HW, int G, float eps);
void group_norm_silu_backward_cpu(const bf16* dy, const bf16* x, const float* mean, const float* rstd,
                                  const float* gamma, const float* beta, bf16* dx, float* dgamma,
                                  float* dbeta, int N, int C, int HW, int G);

// ---- CUDA (device pointers, on cuda_stream()) -----------------------------------------------------
// Activations float32 or bfloat16 (the overloads after the float ones), γ, β, mean, rstd, dγ, dβ
// float32; every kernel below is written once for both (kernels/cuda/element_access.cuh).
// Two kernel families (kernels/cuda/group_norm.cu explains both):
//   Cached    (v3): one block per (n, g) copies its group into shared memory, so x (and dy) leave
//                   DRAM once; exact two-pass statistics. Groups whose cache fits in 64 KiB: the
//                   forward caches M floats, the backward 2·M (M = (C/G)·HW).
//   Streaming (v2): one block per (n, g) with Welford statistics, the second read of the group
//                   served by L2; when there are fewer groups than SMs and the groups are large, the
//                   group is split across blocks. Any group size.
//   Auto           : Cached when the group fits and Streaming would not split it, else Streaming.
// The kernel lab and the tests name a family; the engine uses Auto. Naming Cached for a group too
// large for it throws ValueError. float4 accesses when HW % 4 == 0 and the pointers are 16-byte
// aligned. Minimum traffic: forward reads x and writes y (8 bytes/element), backward reads x and dy
// and writes dx (12 bytes/element); gamma, beta, mean, rstd and the [N, C] partial sums are
// negligible.
enum class GroupNormKernel { Auto, Cached, Streaming };
// The cached kernel's shared memory limit (bytes): 3 blocks per H100 SM even at the limit.
constexpr std::size_t kGroupNormMaxCacheBytes = 64 * 1024;
// Shared memory the cached kernel needs for a group of group_size elements: the forward caches
// the group, the backward x̂ and dx̂; each array rounded up to a multiple of 4 floats (float4).
inline std::size_t group_norm_cache_bytes(std::int64_t group_size, bool backward) {
  return std::size_t(backward ? 2 : 1) * std::size_t((group_size + 3) / 4 * 4) * sizeof(float);
}

void group_norm_forward_cuda(const float* x, const float* gamma, const float* beta, float* y,
                             float* mean, float* rstd, int N, int C, int HW, int G, float eps,
                             GroupNormKernel kernel = GroupNormKernel::Auto);
// Backward: dγ and dβ are reduced without atomics (per-(n, c) partial sums, then a fixed-order sum
// over n), so results are bitwise reproducible.
void group_norm_backward_cuda(const float* dy, const float* x, const float* mean, const float* rstd,
                              const float* gamma, float* dx, float* dgamma, float* dbeta, int N,
                              int C, int HW, int G, GroupNormKernel kernel = GroupNormKernel::Auto);

void group_norm_silu_forward_cuda(const float* x, const float* gamma, const float* beta, float* y,
                                  float* mean, float* rstd, int N, int C, int HW, int G, float eps,
                                  GroupNormKernel kernel = GroupNormKernel::Auto);
void group_norm_silu_backward_cuda(const float* dy, const float* x, const float* mean,
                                   const float* rstd, const float* gamma, const float* beta,
                                   float* dx, float* dgamma, float* dbeta, int N, int C, int HW,
                                   int G, GroupNormKernel kernel = GroupNormKernel::Auto);

void group_norm_forward_cuda(const bf16* x, const float* gamma, const float* beta, bf16* y, float* mean,
                             float* rstd, int N, int C, int HW, int G, float eps,
                             GroupNormKernel kernel = GroupNormKernel::Auto);
void group_norm_backward_cuda(const bf16* dy, const bf16* x, const float* mean, const float* rstd,
                              const float* gamma, bf16* dx, float* dgamma, float* dbeta, int N, int C,
                              int HW, int G, GroupNormKernel kernel = GroupNormKernel::Auto);
void group_norm_silu_forward_cuda(const bf16* x, const float* gamma, const float* beta, bf16* y,
                                  float* mean, float* rstd, int N, int C, int HW, int G, float eps,
                                  GroupNormKernel kernel = GroupNormKernel::Auto);
void group_norm_silu_backward_cuda(const bf16* dy, const bf16* x, const float* mean, const float* rstd,
                                   const float* gamma, const float* beta, bf16* dx, float* dgamma,
                                   float* dbeta, int N, int C, int HW, int G,
                                   GroupNormKernel kernel = GroupNormKernel::Auto);

// ---- CUDA v1 "naive" (kernels/cuda/group_norm_naive.cu; the kernel lab's starting point) ------
// Forward: one block per (n, g), three passes over the group (mean, variance, normalise), scalar
// loads. Backward: one block per (n, g) for dx plus one block per channel for dγ, dβ. Same
// arguments and results as the functions above (to float rounding); no fused SiLU version.
void group_norm_forward_cuda_naive(const float* x, const float* gamma, const float* beta, float* y,
                                   float* mean, float* rstd, int N, int C, int HW, int G, float eps);
void group_norm_backward_cuda_naive(const float* dy, const float* x, const float* mean,
                                    const float* rstd, const float* gamma, float* dx, float* dgamma,
                                    float* dbeta, int N, int C, int HW, int G);

}  // namespace fm::kernels
