// bench/cpu/attention_bench.cpp — microseconds of the CPU attention (attention_*_cpu_gemm<float>,
// kernels/cpu/attention_gemm.cpp) on the small U-Net's attention shapes (configs/fashion_mnist_cpu.json:
// 4 heads of dimension 8, at 14×14 = 196 tokens and in the middle block at 7×7 = 49 tokens), at the
// training batch (64) and the sampling batch of cpu_vs_pytorch.py (16).
//
//   build-cpu/bin/fm_cpu_attention_bench [rounds, default 15]   (prints each pass's fastest round)
//
// What bounds it: per head the forward does 2·L²·D multiply-adds in two products and L²
// exponentials; with D = 8 the exponentials cost as much as the products, so the table also shows
// nanoseconds per score (per head and query-key pair). The backward recomputes the L² exponentials
// and does four products. Inputs are the same every round (warm caches); the machine is shared and
// noisy, so compare versions alternately and take each one's best.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bench/cpu/kernel_bench_common.h"
#include "kernels/attention.h"

namespace {
struct Shape {
  int batch, heads, tokens, head_dim;
};
const Shape kShapes[] = {{64, 4, 196, 8}, {16, 4, 196, 8}, {64, 4, 49, 8}, {16, 4, 49, 8}};

}  // namespace

int main(int argc, char** argv) {
  const int rounds = fm::bench::rounds_argument(argc, argv, "fm_cpu_attention_bench");
  if (rounds == 0) return 2;
  std::mt19937 engine(1);
  std::normal_distribution<float> normal;
  std::printf("shape (B x H x L x D)     forward us  ns/score   backward us  ns/score\n");
  for (const Shape& s : kShapes) {
    const std::size_t n = std::size_t(s.batch) * s.heads * s.tokens * s.head_dim;
    std::vector<float> q(n), k(n), v(n), o(n), dout(n), dq(n), dk(n), dv(n);
    std::vector<float> lse(std::size_t(s.batch) * s.heads * s.tokens);
    for (auto* buffer : {&q, &k, &v, &dout})
      for (float& x : *buffer) x = normal(engine);
    const float scale = 1.0f / std::sqrt(float(s.head_dim));
    double best[2] = {1e30, 1e30};
    for (int round = 0; round < rounds; ++round) {
      auto start = std::chrono::steady_clock::now();
      fm::kernels::attention_forward_cpu_gemm<float>(q.data(), k.data(), v.data(), o.data(), lse.data(), s.batch,
                                                     s.heads, s.tokens, s.head_dim, scale);
      best[0] = std::min(best[0], fm::bench::seconds_since(start));
      start = std::chrono::steady_clock::now();
      fm::kernels::attention_backward_cpu_gemm<float>(q.data(), k.data(), v.data(), o.data(), dout.data(),
                                                      lse.data(), dq.data(), dk.data(), dv.data(), s.batch,
                                                      s.heads, s.tokens, s.head_dim, scale);
      best[1] = std::min(best[1], fm::bench::seconds_since(start));
    }
    const double scores = double(s.batch) * s.heads * s.tokens * s.tokens;
    std::printf("%3d x %d x %3d x %d       %10.0f  %8.3f   %11.0f  %8.3f\n", s.batch, s.heads, s.tokens, s.head_dim,
                best[0] * 1e6, best[0] * 1e9 / scores, best[1] * 1e6, best[1] * 1e9 / scores);
  }
  return 0;
}
