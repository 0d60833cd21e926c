// cases/attention.cpp — the attention case table (cases/attention.h): the shapes, the tolerances,
// the FLOPs and bytes, and the implementations as kernels/ entry points.
#include "cases/attention.h"

#include <cmath>
#include <cstdio>

#include "kernels/attention.h"

namespace fm::cases {

namespace fk = fm::kernels;

const std::vector<AttentionCase>& attention_cases() {
  static const std::vector<AttentionCase> cases = {
      // ---- the lab's default run: the default U-Net's three attention layers at batch 256, 4 heads
      // (head dim = channels / 4)
      {256, 4, 196, 32, kBench, "downs.1 attentions: 128 channels, 14x14 tokens"},
      {256, 4, 49, 16, kBench, "mids.0 attentions: 64 channels, 7x7 tokens"},
      {256, 4, 196, 8, kBench, "ups.0 attentions: 32 channels, 14x14 tokens"},
      // ---- the lab's --shapes small
      {8, 4, 196, 32, kBenchSmall, "downs.1 attentions (small batch)"},
      {8, 4, 49, 16, kBenchSmall, "mids.0 attentions (small batch)"},
      // ---- the tests: the same three layers at batch 2 (and one at batch 1)
      {2, 4, 196, 32, kTest, "downs.1 at batch 2: 14x14 tokens, head dim 32"},
      {2, 4, 49, 16, kTest, "mids.0 at batch 2: 7x7 tokens, head dim 16"},
      {2, 4, 196, 8, kTest, "ups.0 at batch 2: 14x14 tokens, head dim 8"},
      {1, 4, 196, 32, kTest, "downs.1 at batch 1"},
      // awkward for the CUDA tiles: the flash backward sums dQ from per-key-tile partials up to 8 key
      // tiles and otherwise runs its dQ kernel; its forward runs a last key tile of at most 16 keys as
      // a 16-key step
      {1, 1, 7, 1, kTest, "D = 1, one head"},
      {1, 2, 130, 128, kTest, "D = 128 (the largest) with L past a tile boundary"},
      {2, 1, 1, 8, kTest, "L = 1: dQ = dK = 0"},
      {1, 1, 64, 64, kTest, "an exact tile"},
      {1, 3, 33, 48, kTest, "odd D, padded to 64"},
      {2, 2, 100, 100, kTest, "odd D, padded to 128"},
      {1, 1, 129, 20, kTest, "L just past two tiles"},
      {1, 1, 300, 100, kTest, "10 key tiles of 32 (D = 100): the flash backward's dQ kernel"},
      {1, 1, 520, 32, kTest, "9 key tiles of 64 (D = 32): the dQ kernel for D padded to 32"},
      {1, 1, 520, 40, kTest, "9 key tiles of 64 (D = 40): the dQ kernel for D padded to 64"},
      {1, 2, 80, 16, kTest, "L = 64 + 16: the largest tail the flash forward runs as a 16-key step"},
      {1, 1, 81, 24, kTest, "L = 64 + 17: the smallest tail that is not"},
      // awkward for the CPU GEMM: L = 1 and D = 1, sizes off its 6x16 register tile, D = 128
      {1, 1, 1, 1, kTest, "L = 1, D = 1"},
      {3, 1, 7, 1, kTest, "D = 1, three batches"},
      {1, 5, 23, 13, kTest, "sizes off the CPU GEMM's 6x16 register tile"},
      {2, 3, 50, 128, kTest, "D = 128, six heads"},
      // the CPU's fused forward (kernels/cpu/attention_rows_kernel.h: copies for D = 4, 8, 16; blocks of 32
      // queries, 8 or 16 per vector): D = 4, and one query past a block
      {3, 2, 33, 4, kTest, "D = 4, L = 32 + 1"},
      // ---- the float64 gradcheck of the CPU reference (tiny: two forwards per input element), with
      // scales other than 1/sqrt(D)
      {1, 2, 5, 3, kTest | kGradcheck, "gradcheck", 0.7},
      {2, 1, 4, 2, kTest | kGradcheck, "gradcheck", 1.3},
      {1, 1, 1, 2, kTest | kGradcheck, "gradcheck: L = 1", 0.5},
  };
  return cases;
}

std::string shape_name(const AttentionCase& c) {
  std::string name = "B";
  name += std::to_string(c.B) + " H" + std::to_string(c.H) + " L" + std::to_string(c.L) + " D" + std::to_string(c.D);
  return name;
}

float attention_scale(const AttentionCase& c) {
  return c.scale != 0 ? float(c.scale) : 1.f / std::sqrt(float(c.D));
}

namespace {
// B·H·L²·D: the multiply-adds of one L×L×D product over every head.
double heads_l2d(const AttentionCase& c) { return double(c.B) * c.H * double(c.L) * c.L * c.D; }
}  // namespace
double attention_forward_flops(const AttentionCase& c) { return 4.0 * heads_l2d(c); }
double attention_backward_flops(const AttentionCase& c) { return 8.0 * heads_l2d(c); }
double attention_forward_bytes(const AttentionCase& c) {
  return 4.0 * (4.0 * double(c.elements()) + double(c.rows()));
}
double attention_backward_bytes(const AttentionCase& c) {
  return 4.0 * (8.0 * double(c.elements()) + double(c.rows()));
}

Tolerance attention_output_tolerance(const std::vector<double>& reference) {
  return scaled_tolerance(reference, kAttentionForwardRel, kAttentionForwardRel);
}
Tolerance attention_lse_tolerance(const std::vector<double>& reference) {
  return scaled_tolerance(reference, 1e-5, 0.0);
}
Tolerance attention_gradient_tolerance(const std::vector<double>& reference) {
  return scaled_tolerance(reference, kAttentionBackwardRel, kAttentionBackwardRel);
}
Tolerance attention_tensor_core_tolerance(const std::vector<double>& reference, double u) {
  return scaled_tolerance(reference, 64 * u, 64 * u);
}

#ifdef FM_WITH_CUDA
namespace {
// A GPU version with a product arithmetic (its last argument), in the table's signature.
using ForwardIn = void (*)(const float*, const float*, const float*, float*, float*, int, int, int, int, float,
                           fk::GemmMath);
using BackwardIn = void (*)(const float*, const float*, const float*, const float*, const float*, const float*,
                            float*, float*, float*, int, int, int, int, float, fk::GemmMath);
template <ForwardIn kForward, fk::GemmMath kMath>
void forward_in(const float* q, const float* k, const float* v, float* o, float* lse, int B, int H, int L, int D,
                float scale) {
  kForward(q, k, v, o, lse, B, H, L, D, scale, kMath);
}
template <BackwardIn kBackward, fk::GemmMath kMath>
void backward_in(const float* q, const float* k, const float* v, const float* o, const float* dout, const float* lse,
                 float* dq, float* dk, float* dv, int B, int H, int L, int D, float scale) {
  kBackward(q, k, v, o, dout, lse, dq, dk, dv, B, H, L, D, scale, kMath);
}
}  // namespace
#endif

const std::vector<AttentionImpl>& attention_implementations() {
  static const std::vector<AttentionImpl> list = [] {
    std::vector<AttentionImpl> impls = {
        {"cpu float", ImplKind::CpuReference, fk::attention_forward_cpu<float>, fk::attention_backward_cpu<float>},
        {"cpu gemm", ImplKind::CpuFast, fk::attention_forward_cpu_gemm<float>,
         fk::attention_backward_cpu_gemm<float>, false, true},
    };
#ifdef FM_WITH_CUDA
    impls.push_back({"flash", ImplKind::CudaCustom, fk::attention_forward_cuda_flash,
                     fk::attention_backward_cuda_flash, false, true});
    using fk::GemmMath;
    constexpr ForwardIn flash_forward = fk::attention_forward_cuda_flash,
                        unfused_forward = fk::attention_forward_cuda_unfused;
    constexpr BackwardIn flash_backward = fk::attention_backward_cuda_flash,
                         unfused_backward = fk::attention_backward_cuda_unfused;
    impls.push_back({"flash TF32", ImplKind::CudaCustom, forward_in<flash_forward, GemmMath::Tf32>,
                     backward_in<flash_backward, GemmMath::Tf32>, false, false, GemmMath::Tf32, 0x1p-11});
    impls.push_back({"flash bf16", ImplKind::CudaCustom, forward_in<flash_forward, GemmMath::Bf16>,
                     backward_in<flash_backward, GemmMath::Bf16>, false, false, GemmMath::Bf16, 0x1p-8});
    impls.push_back({"unfused cuBLAS", ImplKind::Library, fk::attention_forward_cuda_unfused,
                     fk::attention_backward_cuda_unfused, true, false});
    impls.push_back({"unfused cuBLAS TF32", ImplKind::Library, forward_in<unfused_forward, GemmMath::Tf32>,
                     backward_in<unfused_backward, GemmMath::Tf32>, false, false, GemmMath::Tf32, 0x1p-10});
    impls.push_back({"unfused cuBLAS bf16", ImplKind::Library, forward_in<unfused_forward, GemmMath::Bf16>,
                     backward_in<unfused_backward, GemmMath::Bf16>, false, false, GemmMath::Bf16, 0x1p-7});
#endif
    return impls;
  }();
  return list;
}

OpListing attention_listing() {
  OpListing listing;
  listing.op = "attention";
  for (const AttentionCase& c : attention_cases()) {
    std::string shape = shape_name(c);
    if (c.scale != 0) {
      char text[32];
      std::snprintf(text, sizeof text, " scale %g", c.scale);
      shape += text;
    }
    listing.cases.push_back({shape, c.where, c.uses, attention_forward_flops(c), attention_forward_bytes(c)});
  }
  for (const AttentionImpl& impl : attention_implementations()) {
    std::string name = impl.name;
    if (impl.lab_baseline) name += " (x base)";
    if (impl.engine) name += " (engine)";
    listing.implementations.push_back({name, impl.kind, "fwd, bwd (dq, dk, dv)"});
  }
  listing.tolerances = {
      "reference: attention_{forward,backward}_cpu<double> on the same float inputs; the backward gets the "
      "float o and lse of a forward",
      "O: scaled_tolerance(ref, 2e-4, 2e-4) (kAttentionForwardRel: D-term scores through exp)",
      "lse: scaled_tolerance(ref, 1e-5, 0) (log L + the largest score: a few ulps of its scale)",
      "dQ, dK, dV: scaled_tolerance(ref, 5e-4, 5e-4) (kAttentionBackwardRel: dS = P*(dP - D_i) cancels "
      "before summing L terms)",
      "TF32 / bf16 versions: scaled_tolerance(ref, 64u, 64u) for every output (u: their input rounding, "
      "2^-11 / 2^-8 ours, 2^-10 / 2^-7 cuBLAS; the forward's derived bound is checked by the tests)",
      "FLOPs: fwd 4*B*H*L^2*D, bwd 8*B*H*L^2*D; CUDA versions need D <= 128",
  };
  return listing;
}

}  // namespace fm::cases
