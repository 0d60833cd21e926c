// bench/cpu/attention_lab.cpp — the kernel lab's attention rows (bench/cpu/kernel_lab.h): the CPU
// attention (attention_*_cpu_gemm<float>, kernels/cpu/attention_gemm.cpp) on the small U-Net's
// attention shapes (configs/fashion_mnist_cpu.json: 4 heads of dimension 8, at 14×14 = 196 tokens and
// in the middle block at 7×7 = 49 tokens), at the training batch (64) and the sampling batch of
// cpu_vs_pytorch.py (16).
//
// Operations counted as FlashAttention's papers count them: per head 4·L²·D forward (Q·Kᵀ and P·V)
// and 2.5 times that backward (the scores again, dV, dP, dQ, dK). What they leave out bounds these
// shapes: the L² exponentials, forward and again backward. With D = 8 an exponential costs as much
// as the 16 multiply-adds of its score, so attention's share of peak stays far below the
// convolutions'.
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/cpu/kernel_lab.h"
#include "core/error.h"
#include "kernels/attention.h"

namespace fm::bench {
namespace {

struct Shape {
  int batch, heads, tokens, head_dim;
};
const Shape kShapes[] = {{64, 4, 196, 8}, {16, 4, 196, 8}, {64, 4, 49, 8}, {16, 4, 49, 8}};

struct Buffers {
  std::vector<float> q, k, v, o, dout, dq, dk, dv, lse;
};

}  // namespace

void add_attention_lab_cases(std::vector<CpuLabCase>& cases) {
  std::mt19937 engine(1);
  std::normal_distribution<float> normal;
  for (const Shape& s : kShapes) {
    const std::size_t n = std::size_t(s.batch) * s.heads * s.tokens * s.head_dim;
    auto b = std::make_shared<Buffers>();
    for (auto* buffer : {&b->q, &b->k, &b->v, &b->o, &b->dout, &b->dq, &b->dk, &b->dv}) buffer->resize(n);
    b->lse.resize(std::size_t(s.batch) * s.heads * s.tokens);
    for (auto* buffer : {&b->q, &b->k, &b->v, &b->dout})
      for (float& x : *buffer) x = normal(engine);
    const float scale = 1.0f / std::sqrt(float(s.head_dim));
    const double forward_flops = 4.0 * s.batch * s.heads * s.tokens * s.tokens * s.head_dim;
    const std::string shape = cat(s.batch, "x", s.heads, "x", s.tokens, "x", s.head_dim);
    const std::string params =
        cat("batch=", s.batch, ";heads=", s.heads, ";tokens=", s.tokens, ";head_dim=", s.head_dim);
    // The backward reads o and lse: one forward fills them now, so a backward row alone (--filter) is
    // timed on what training would give it.
    kernels::attention_forward_cpu_gemm<float>(b->q.data(), b->k.data(), b->v.data(), b->o.data(), b->lse.data(),
                                               s.batch, s.heads, s.tokens, s.head_dim, scale);
    cases.push_back({"attention", shape, "forward", params, forward_flops, [b, s, scale] {
                       kernels::attention_forward_cpu_gemm<float>(b->q.data(), b->k.data(), b->v.data(), b->o.data(),
                                                                  b->lse.data(), s.batch, s.heads, s.tokens,
                                                                  s.head_dim, scale);
                     }});
    cases.push_back({"attention", shape, "backward", params, 2.5 * forward_flops, [b, s, scale] {
                       kernels::attention_backward_cpu_gemm<float>(
                           b->q.data(), b->k.data(), b->v.data(), b->o.data(), b->dout.data(), b->lse.data(),
                           b->dq.data(), b->dk.data(), b->dv.data(), s.batch, s.heads, s.tokens, s.head_dim, scale);
                     }});
  }
}

}  // namespace fm::bench
