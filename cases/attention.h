// cases/attention.h — the case table of the attention core, O = softmax(Q·Kᵀ·scale)·V per (batch,
// head) with the row log-sum-exp saved, and its backward (dQ, dK, dV) (formulas and the [B, H, L, D]
// layout: kernels/attention.h): the shapes, the tolerances against the float64 reference, the FLOPs
// and fewest bytes of each pass, and the implementations.
//
// Read by tests/test_kernel_attention.cpp (every implementation × every kTest case, forward and
// backward; the float64 gradcheck on the kGradcheck cases) and bench/bench_attention.cu (the GPU
// implementations × the kBench or kBenchSmall cases); `fmbench --list attention` prints it.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "cases/case_table.h"
#include "kernels/gemm.h"

namespace fm::cases {

// ---- the cases ------------------------------------------------------------------------------------
struct AttentionCase {
  int B, H, L, D;      // batch, heads, tokens, head dim
  unsigned uses;       // CaseUse bits
  const char* where;   // the U-Net layer, or what the shape exercises
  double scale = 0;    // the softmax scale; 0: 1/sqrt(D), as the U-Net uses (the gradchecks vary it)

  std::size_t elements() const { return std::size_t(B) * H * L * D; }  // of q, k, v, o and each gradient
  std::size_t rows() const { return std::size_t(B) * H * L; }           // of lse
};
const std::vector<AttentionCase>& attention_cases();
// As the lab prints it (and --filter matches it): "B256 H4 L196 D32".
std::string shape_name(const AttentionCase& c);
// The scale the float implementations get (1/sqrt(D) rounded to float unless the case sets one);
// the float64 reference gets the same value.
float attention_scale(const AttentionCase& c);

// The random inputs: q and k uniform in [-kAttentionQkRange, kAttentionQkRange] (v and dO in [-1, 1]):
// scores spread over several units, so the softmax is far from uniform and a wrong online rescale or
// a missing key tile shows.
constexpr float kAttentionQkRange = 2.f;

// ---- work and traffic -------------------------------------------------------------------------------
// Per head L×L scores; the "useful" FLOPs of the standard algorithm, two GEMMs forward and four
// backward (the flash backward's recomputation of Q·Kᵀ is extra work it chooses and is not counted,
// nor are the exponentials); n = B·H·L·D:
//   forward:  FLOPs = 4·B·H·L²·D;  fewest bytes = 4·(4·n + B·H·L)   (read q, k, v; write o, lse)
//   backward: FLOPs = 8·B·H·L²·D;  fewest bytes = 4·(8·n + B·H·L)   (read q, k, v, o, dO, lse;
//                                                                    write dq, dk, dv)
// L = 196, D = 32: forward 5.0 GFLOP against 103 MB — L/4 ≈ 49 FLOP per byte, so compute-bound on
// paper (the lab's "% peak" is against the FP32 SGEMM rate), though with D this small much of the
// time goes to the softmax's exponentials and the tiles' bookkeeping, not the multiply-adds.
double attention_forward_flops(const AttentionCase& c);
double attention_backward_flops(const AttentionCase& c);
double attention_forward_bytes(const AttentionCase& c);
double attention_backward_bytes(const AttentionCase& c);

// ---- tolerances (float result vs the float64 reference) ------------------------------------------
// Scores are D-term dot products, P goes through exp, and the backward's dS = P∘(dP − D_i) subtracts
// two O(1) numbers before summing L of them: errors of a few 1e-5 at L = 196. 2e-4 (forward) and
// 5e-4 (backward) of the output's scale still catch a missing tile, a wrong mask or a stale rescale.
constexpr double kAttentionForwardRel = 2e-4;
constexpr double kAttentionBackwardRel = 5e-4;
// O: scaled_tolerance(ref, kAttentionForwardRel, kAttentionForwardRel).
Tolerance attention_output_tolerance(const std::vector<double>& reference);
// lse ≈ log L + the largest score: an absolute quantity; a few ulps of its scale,
// scaled_tolerance(ref, 1e-5, 0).
Tolerance attention_lse_tolerance(const std::vector<double>& reference);
// dQ, dK, dV: scaled_tolerance(ref, kAttentionBackwardRel, kAttentionBackwardRel); entries that
// cancel to ~0 (L = 1 has dQ = dK = 0) are judged by the size of the whole output.
Tolerance attention_gradient_tolerance(const std::vector<double>& reference);
// A tensor-core version's outputs and gradients in the lab: scaled_tolerance(ref, 64·u, 64·u), the tests'
// smoke bound for the backward (u: the entry's input_rounding); the forward's derived elementwise bound
// is checked by tests/test_kernel_attention.cpp, not by the lab.
Tolerance attention_tensor_core_tolerance(const std::vector<double>& reference, double u);

// ---- the implementations ------------------------------------------------------------------------------
// Exactly the kernels/ signatures (host pointers for the CPU entries, device pointers for the GPU
// ones). The backward reads the forward's saved o and lse.
using AttentionForwardFn = void (*)(const float* q, const float* k, const float* v, float* o, float* lse, int B,
                                    int H, int L, int D, float scale);
using AttentionBackwardFn = void (*)(const float* q, const float* k, const float* v, const float* o,
                                     const float* dout, const float* lse, float* dq, float* dk, float* dv, int B,
                                     int H, int L, int D, float scale);

struct AttentionImpl {
  const char* name;  // the lab's version name: "flash", "unfused cuBLAS"
  ImplKind kind;
  AttentionForwardFn forward;
  AttentionBackwardFn backward;
  bool lab_baseline = false;  // the lab's "x base" version
  // What the engine runs on this kind of device by default (`kernels: "custom"`). The lab feeds
  // every backward the o and lse of the GPU one's forward, as in training.
  bool engine = false;
  // Fp32: validated against the table's tolerances below. Tf32 or Bf16: the products run on the tensor
  // cores with inputs rounded by input_rounding (u: 2^-11 / 2^-8 for ours, which rounds to nearest;
  // 2^-10 / 2^-7 for cuBLAS, whose mode is not documented), validated in the lab against
  // attention_tensor_core_tolerance; tests/test_kernel_attention.cpp checks the derived bound.
  kernels::GemmMath math = kernels::GemmMath::Fp32;
  double input_rounding = 0;
};
// CPU entries first, then (CUDA or emulator builds) the GPU ones in the lab's row order:
//   cpu float:       the reference loops at float
//   cpu gemm:        the same math as packed-GEMM calls (what the engine runs on the CPU)
//   flash:           fused, FlashAttention-style (Dao et al. 2022): one block per (b, h, query tile),
//                    K/V tiles stream through shared memory with an online softmax, so the L×L scores
//                    never reach memory; the backward recomputes P from lse in a key-tile pass (dK,
//                    dV) and a query-tile pass (dQ), without atomics
//   flash TF32, flash bf16: the fused kernels with their products on the tensor cores (what the engine
//                    runs under precision tf32 / bf16)
//   unfused cuBLAS:  batched cuBLAS GEMMs (FP32, no TF32) with the L×L score matrices in scratch
//                    memory plus our row-softmax kernels — the baseline the fused version must beat.
//                    Kind Library: it is what the engine runs under `kernels: "library"`
//                    (core/kernel_choice.h). Unlike cuDNN it also runs in the CUDA emulator (whose
//                    cuBLAS is a reference GEMM), so the tests check it there too.
//   unfused cuBLAS TF32, unfused cuBLAS bf16: the same with cuBLAS's tensor-core math
// The CUDA versions need D <= 128 (they throw ValueError before touching the device otherwise).
const std::vector<AttentionImpl>& attention_implementations();

OpListing attention_listing();  // fmbench --list attention

}  // namespace fm::cases
