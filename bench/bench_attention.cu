// bench/bench_attention.cu — the core of the U-Net's multi-head self-attention, per (batch, head):
// O = softmax(Q·Kᵀ·scale)·V with the row log-sum-exp saved, and its backward (dQ, dK, dV).
// Formulas and layout ([B, H, L, D] contiguous): kernels/attention.h.
//
// Run:  fmbench attention [--shapes small] [--repeats N] [--csv FILE]
//
// Versions (kernels/attention.h):
//   flash:           fused, FlashAttention-style (Dao et al. 2022): one block per (b, h, query
//                    tile), K/V tiles stream through shared memory with an online softmax, so the
//                    L×L scores never reach memory; the backward recomputes P from lse in a key-tile
//                    pass (dK, dV) and a query-tile pass (dQ), without atomics
//   unfused cuBLAS:  batched cuBLAS GEMMs (FP32, no TF32) with the L×L score matrices in scratch
//                    memory plus row-softmax kernels — the baseline the fused version must beat
//
// The shapes are the default U-Net's three attention layers at batch 256, 4 heads (head dim =
// channels / 4): downs.1 at 14×14 tokens with 128 channels, mids.0 at 7×7 with 64, ups.0 at 14×14
// with 32.
//
// Work and traffic (per head L×L scores; "useful" FLOPs of the standard algorithm, two GEMMs forward
// and four backward; the flash backward's recomputation of Q·Kᵀ is extra work it chooses and is not
// counted, nor are the exponentials):
//   forward:  FLOPs = 4·B·H·L²·D;  fewest bytes = 4·(4·B·H·L·D + B·H·L)   (read q, k, v; write o, lse)
//   backward: FLOPs = 8·B·H·L²·D;  fewest bytes = 4·(8·B·H·L·D + B·H·L)   (read q, k, v, o, dO, lse;
//                                                                          write dq, dk, dv)
//   L = 196, D = 32: forward 5.0 GFLOP against 103 MB — L/4 ≈ 49 FLOP per byte, so compute-bound on
//   paper ("% peak" is against the FP32 SGEMM rate), though with D this small much of the time goes
//   to the softmax's exponentials and the tiles' bookkeeping, not the multiply-adds.
//
// CPU reference: attention_{forward,backward}_cpu<double> (the tests' reference); the backward
// reference takes the float O and lse the GPU forward saved, as the GPU backward does.
#include <cmath>
#include <string>
#include <vector>

#include "bench/harness.h"
#include "kernels/attention.h"
#include "kernels/runtime.h"

namespace fm::bench {
namespace {

namespace fk = fm::kernels;

// Tolerances of tests/test_kernel_norm_act_attn.cpp: scores are D-term dot products, P goes through
// exp, and the backward's dS = P∘(dP − D_i) subtracts two O(1) numbers before summing L of them.
constexpr double kForwardRel = 2e-4;
constexpr double kBackwardRel = 5e-4;

struct AttentionShape {
  int B, H, L, D;
  const char* where;
};

std::vector<AttentionShape> attention_shapes(const Options& options) {
  if (options.small_shapes)
    return {{8, 4, 196, 32, "downs.1 attentions (small batch)"}, {8, 4, 49, 16, "mids.0 attentions (small batch)"}};
  return {
      {256, 4, 196, 32, "downs.1 attentions: 128 channels, 14x14 tokens"},
      {256, 4, 49, 16, "mids.0 attentions: 64 channels, 7x7 tokens"},
      {256, 4, 196, 8, "ups.0 attentions: 32 channels, 14x14 tokens"},
  };
}

void bench_shape(const AttentionShape& s, const Options& options) {
  const int B = s.B, H = s.H, L = s.L, D = s.D;
  const std::size_t n = std::size_t(B) * H * L * D, rows = std::size_t(B) * H * L;
  const float scale = 1.f / std::sqrt(float(D));
  const std::string shape = "B" + std::to_string(B) + " H" + std::to_string(H) + " L" + std::to_string(L) + " D" +
                            std::to_string(D);
  if (!options.selects(shape)) return;
  std::printf("   # %s: %s\n", shape.c_str(), s.where);
  const double heads_l2d = double(B) * H * double(L) * L * D;

  // |q|, |k| up to 2: scores spread over several units, so the softmax is far from uniform and a
  // wrong online rescale or a missing key tile shows (tests' choice).
  DeviceArray q = random_array(n, options, -2.f, 2.f), k = random_array(n, options, -2.f, 2.f),
              v = random_array(n, options), dout = random_array(n, options);
  DeviceArray o(n), lse(rows), dq(n), dk(n), dv(n);
  const std::vector<double> q_host = to_double(q.to_host()), k_host = to_double(k.to_host()),
                            v_host = to_double(v.to_host());

  // ---- forward
  {
    std::vector<double> o_ref(n), lse_ref(rows);
    fk::attention_forward_cpu<double>(q_host.data(), k_host.data(), v_host.data(), o_ref.data(), lse_ref.data(), B, H,
                                      L, D, double(scale));
    BenchCase c;
    c.op = "attention";
    c.shape = shape;
    c.pass = "fwd";
    c.bound = Bound::Compute;
    c.flops = 4.0 * heads_l2d;
    c.bytes = 4.0 * (4.0 * double(n) + double(rows));
    c.baseline = "unfused cuBLAS";
    c.versions = {
        {"flash", [&] { fk::attention_forward_cuda_flash(q.get(), k.get(), v.get(), o.get(), lse.get(), B, H, L, D, scale); }},
        {"unfused cuBLAS",
         [&] { fk::attention_forward_cuda_unfused(q.get(), k.get(), v.get(), o.get(), lse.get(), B, H, L, D, scale); }},
    };
    c.poison_outputs = [&] {
      o.poison();
      lse.poison();
    };
    c.check_outputs = [&] {
      Check check;
      check.compare("O", o.to_host(), o_ref, scaled_tolerance(o_ref, kForwardRel, kForwardRel));
      // lse ≈ log L + the largest score: an absolute quantity; a few ulps of its scale.
      check.compare("lse", lse.to_host(), lse_ref, scaled_tolerance(lse_ref, 1e-5, 0.0));
      return check;
    };
    run_case(c, options);
  }

  // ---- backward: O and lse saved by the flash forward (as in training), on both sides
  fk::attention_forward_cuda_flash(q.get(), k.get(), v.get(), o.get(), lse.get(), B, H, L, D, scale);
  kernels::cuda_synchronize();
  {
    const std::vector<double> o_saved = to_double(o.to_host()), lse_saved = to_double(lse.to_host()),
                              dout_host = to_double(dout.to_host());
    std::vector<double> dq_ref(n), dk_ref(n), dv_ref(n);
    fk::attention_backward_cpu<double>(q_host.data(), k_host.data(), v_host.data(), o_saved.data(), dout_host.data(),
                                       lse_saved.data(), dq_ref.data(), dk_ref.data(), dv_ref.data(), B, H, L, D,
                                       double(scale));
    BenchCase c;
    c.op = "attention";
    c.shape = shape;
    c.pass = "bwd";
    c.bound = Bound::Compute;
    c.flops = 8.0 * heads_l2d;
    c.bytes = 4.0 * (8.0 * double(n) + double(rows));
    c.baseline = "unfused cuBLAS";
    c.versions = {
        {"flash",
         [&] {
           fk::attention_backward_cuda_flash(q.get(), k.get(), v.get(), o.get(), dout.get(), lse.get(), dq.get(), dk.get(),
                                             dv.get(), B, H, L, D, scale);
         }},
        {"unfused cuBLAS",
         [&] {
           fk::attention_backward_cuda_unfused(q.get(), k.get(), v.get(), o.get(), dout.get(), lse.get(), dq.get(),
                                               dk.get(), dv.get(), B, H, L, D, scale);
         }},
    };
    c.poison_outputs = [&] {
      dq.poison();
      dk.poison();
      dv.poison();
    };
    c.check_outputs = [&] {
      Check check;
      check.compare("dQ", dq.to_host(), dq_ref, scaled_tolerance(dq_ref, kBackwardRel, kBackwardRel));
      check.compare("dK", dk.to_host(), dk_ref, scaled_tolerance(dk_ref, kBackwardRel, kBackwardRel));
      check.compare("dV", dv.to_host(), dv_ref, scaled_tolerance(dv_ref, kBackwardRel, kBackwardRel));
      return check;
    };
    run_case(c, options);
  }
}

}  // namespace

void run_attention(const Options& options) {
  measured_peaks(options);
  print_table_header("attention: softmax(Q K^T / sqrt(D)) V per head, FP32 (compute-bound: % of SGEMM FP32 peak)",
                     "x base = unfused cuBLAS median / version median; FLOPs 4*B*H*L^2*D fwd, 8*B*H*L^2*D bwd");
  for (const AttentionShape& s : attention_shapes(options)) bench_shape(s, options);
}

}  // namespace fm::bench
