// kernels/attention.h — the core of multi-head self-attention: O = softmax(Q·Kᵀ·scale)·V per
// (batch, head), forward and backward. The engine does the input/output projections with matmuls;
// these functions only see the per-head tensors.
//
// Layer: kernels/ (plain functions over pointers, no Tensor). CPU reference loops (float, double) in
// kernels/cpu/attention.cpp, the same math as GEMM calls (what the ops run on the CPU) in
// kernels/cpu/attention_gemm.cpp; CUDA (float, and bfloat16 activations on the tensor cores) in
// kernels/cuda/attention_flash.cu and attention_flash_tensor_cores.cu (fused, FlashAttention style)
// and kernels/cuda/attention_unfused.cu (cuBLAS baseline), all on cuda_stream().
//
// Layout: q, k, v, o and their gradients are contiguous [B, H, L, D] (B batch, H heads, L tokens,
// D head dim); lse is [B, H, L]. With S = scale·Q·Kᵀ (L×L per head; scale is usually 1/sqrt(D)):
//   lse_i = log Σ_j exp(S_ij)          (log-sum-exp of row i, saved by the forward)
//   P_ij  = exp(S_ij − lse_i)          (softmax, recomputable from S and lse alone)
//   O     = P·V
// Backward (Dao et al., "FlashAttention", 2022, Alg. 4; dO = gradient at O):
//   dV   = Pᵀ·dO
//   dP   = dO·Vᵀ
//   D_i  = Σ_d dO_id·O_id              (= Σ_j P_ij·dP_ij, the softmax Jacobian's row term)
//   dS   = P ∘ (dP − D_i)
//   dQ   = scale · dS·K
//   dK   = scale · dSᵀ·Q
// Outputs are overwritten, not accumulated into.
//
// Sizes: B, H >= 0, L >= 1, 1 <= D; the CUDA versions need D <= 128.
#pragma once

#include "core/error.h"
#include "kernels/bfloat16.h"
#include "kernels/gemm.h"

namespace fm::kernels {

// The size check every implementation below starts with (op names the caller in the message);
// the CUDA versions add their own limits on D and L.
inline void check_attention_sizes(const char* op, int B, int H, int L, int D) {
  FM_CHECK(B >= 0 && H >= 0 && L >= 1 && D >= 1, ValueError, op,
           ": sizes must be B, H >= 0 and L, D >= 1; got B=", B, " H=", H, " L=", L, " D=", D);
}

// ---- CPU references (T = float or double) -------------------------------------------------------
template <typename T>
void attention_forward_cpu(const T* q, const T* k, const T* v, T* o, T* lse, int B, int H, int L,
                           int D, T scale);
template <typename T>
void attention_backward_cpu(const T* q, const T* k, const T* v, const T* o, const T* dout,
                            const T* lse, T* dq, T* dk, T* dv, int B, int H, int L, int D, T scale);

// ---- CPU through GEMM (T = float or double): per (b, h) the L×L score matrix is formed with
// gemm_cpu, softmaxed row by row, and multiplied back by GEMM; the backward likewise. Same
// results as the reference up to rounding (different summation order), several times faster
// because the dot products run in the packed GEMM micro-kernel. Scratch: two L×L matrices per
// thread.
template <typename T>
void attention_forward_cpu_gemm(const T* q, const T* k, const T* v, T* o, T* lse, int B, int H,
                                int L, int D, T scale);
template <typename T>
void attention_backward_cpu_gemm(const T* q, const T* k, const T* v, const T* o, const T* dout,
                                 const T* lse, T* dq, T* dk, T* dv, int B, int H, int L, int D,
                                 T scale);

// ---- CPU on bfloat16 activations: q, k, v, o, their gradients bfloat16, lse and scale float. Each
// input is widened (exactly), the float GEMM version runs, and each output is rounded once: the
// reference the CUDA bfloat16 kernels are held to, not a fast path.
void attention_forward_cpu_gemm(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse, int B, int H,
                                int L, int D, float scale);
void attention_backward_cpu_gemm(const bf16* q, const bf16* k, const bf16* v, const bf16* o, const bf16* dout,
                                 const float* lse, bf16* dq, bf16* dk, bf16* dv, int B, int H, int L, int D,
                                 float scale);

// ---- CUDA, fused (float, device pointers) -------------------------------------------------------
// Forward: one block per (b, h, tile of query rows); K/V tiles stream through shared memory with
// an online softmax, so the L×L matrix never reaches memory. Backward: a key-tile pass for dK, dV
// and a query-tile pass for dQ, both recomputing P from lse; deterministic (no atomics).
void attention_forward_cuda_flash(const float* q, const float* k, const float* v, float* o,
                                  float* lse, int B, int H, int L, int D, float scale);
void attention_backward_cuda_flash(const float* q, const float* k, const float* v, const float* o,
                                   const float* dout, const float* lse, float* dq, float* dk,
                                   float* dv, int B, int H, int L, int D, float scale);

// The same algorithm with its matrix products on the tensor cores (attention_flash_tensor_cores.cu):
// `math` = Tf32 or Bf16 rounds each product's inputs to TF32 or bfloat16 as they are staged (P and dS
// included), with FP32 accumulation, softmax and sums; Fp32 runs the kernels above. sm_80 or newer.
// Sequences of more than 8 key tiles (L > 512 for D <= 64, L > 256 for D > 64) run the FP32 backward:
// attention_tensor_core_backward_runs says which.
void attention_forward_cuda_flash(const float* q, const float* k, const float* v, float* o, float* lse, int B,
                                  int H, int L, int D, float scale, GemmMath math);
void attention_backward_cuda_flash(const float* q, const float* k, const float* v, const float* o,
                                   const float* dout, const float* lse, float* dq, float* dk, float* dv, int B,
                                   int H, int L, int D, float scale, GemmMath math);

// The same on bfloat16 activations (q, k, v, o and their gradients bfloat16; lse float), always on the
// bfloat16 tensor cores (sm_80 or newer): tiles are loaded without a conversion, O, dQ, dK and dV are
// rounded once as they are stored, dQ's key-tile shares are summed in float. Sequences too long for the
// tensor-core backward (attention_tensor_core_backward_runs) widen the inputs into float buffers, run
// the FP32 backward and round its results: scratch of 7 float tensors of q's size (14× one bfloat16
// tensor; O is not widened) for the call, on the one path where L is large.
void attention_forward_cuda_flash(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse, int B, int H,
                                  int L, int D, float scale);
void attention_backward_cuda_flash(const bf16* q, const bf16* k, const bf16* v, const bf16* o, const bf16* dout,
                                   const float* lse, bf16* dq, bf16* dk, bf16* dv, int B, int H, int L, int D,
                                   float scale);

// The fused backward sums dQ from per-key-tile shares up to this many key tiles (more: a dQ pass
// whose memory does not grow with L; kernels/cuda/attention_flash_parts.cuh).
constexpr int kAttentionMaxDqPartialTiles = 8;
// The keys per block of the tensor-core backward at head dim D, and whether that backward runs for
// sequence length L (else attention_backward_cuda_flash with Tf32/Bf16 runs the FP32 kernels).
constexpr int attention_tensor_core_backward_keys(int D) { return D <= 64 ? 64 : 32; }
constexpr bool attention_tensor_core_backward_runs(int L, int D) {
  return (L + attention_tensor_core_backward_keys(D) - 1) / attention_tensor_core_backward_keys(D) <=
         kAttentionMaxDqPartialTiles;
}

// ---- CUDA, unfused baseline (float): batched cuBLAS GEMMs plus row-softmax kernels, with the
// L×L score matrices in scratch memory. The speed baseline the flash version must beat. `math`: the
// GEMMs' arithmetic (FP32, or cuBLAS's TF32 or bfloat16 tensor-core math; the softmax stays FP32).
void attention_forward_cuda_unfused(const float* q, const float* k, const float* v, float* o,
                                    float* lse, int B, int H, int L, int D, float scale, GemmMath math);
void attention_backward_cuda_unfused(const float* q, const float* k, const float* v, const float* o,
                                     const float* dout, const float* lse, float* dq, float* dk,
                                     float* dv, int B, int H, int L, int D, float scale, GemmMath math);
// The same in FP32, with the signature of the other versions (the kernel lab's tables).
inline void attention_forward_cuda_unfused(const float* q, const float* k, const float* v, float* o, float* lse,
                                           int B, int H, int L, int D, float scale) {
  attention_forward_cuda_unfused(q, k, v, o, lse, B, H, L, D, scale, GemmMath::Fp32);
}
inline void attention_backward_cuda_unfused(const float* q, const float* k, const float* v, const float* o,
                                            const float* dout, const float* lse, float* dq, float* dk, float* dv,
                                            int B, int H, int L, int D, float scale) {
  attention_backward_cuda_unfused(q, k, v, o, dout, lse, dq, dk, dv, B, H, L, D, scale, GemmMath::Fp32);
}

}  // namespace fm::kernels
