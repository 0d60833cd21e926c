// bench/cpu/gemm_bench.cpp — GFLOP/s of gemm_cpu<float> on the GEMM shapes the small U-Net
// (configs/fashion_mnist_cpu.json, batch 64) runs in one training step, measured one shape at a time.
//
//   build-cpu/bin/fm_cpu_gemm_bench [seconds per shape, default 0.3]   (prints the fastest call's rate)
//
// Most of these GEMMs run inside an image-parallel region (kernels/cpu/conv2d_im2col.cpp,
// kernels/cpu/attention*.cpp), i.e. on one core each: run with OMP_NUM_THREADS=1 to see those, with
// more threads to see how a single big GEMM splits. FM_CPU_ISA=avx2 forces the AVX2 micro-kernel
// (kernels/cpu/gemm_isa.h). Shapes are M×N×K with op(A), op(B) as in the conv's three GEMMs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <omp.h>

#include "kernels/gemm.h"

namespace {
struct Shape {
  const char* what;
  bool trans_a, trans_b;
  int M, N, K;
};

// From a logged training step: the conv im2col GEMMs (forward nn, input-gradient tn, weight-gradient
// nt) at 28×28, 14×14 and 7×7, attention's per-head products and the 1×1 projections. (Since
// 2026-12-06 the 3×3 convolutions no longer run as these GEMMs but read a padded image in place,
// kernels/cpu/conv_forward_kernel.h and conv_weight_grad_kernel.h; their shapes stay here as GEMMs
// of that size, and the 4×4 stride-2 and 1×1 convolutions still are GEMMs.)
const Shape kShapes[] = {
    {"conv 32->32 28x28 fwd", false, false, 32, 784, 288},
    {"conv 32->32 28x28 dx", true, false, 288, 784, 32},
    {"conv 32->32 28x28 dW", false, true, 32, 288, 784},
    {"conv 16->32 28x28 fwd", false, false, 32, 784, 144},
    {"conv 32->16 28x28 fwd", false, false, 16, 784, 288},
    {"conv 32->32 14x14 fwd", false, false, 32, 196, 288},
    {"conv 32->32 14x14 dx", true, false, 288, 196, 32},
    {"conv 32->32 14x14 dW", false, true, 32, 288, 196},
    {"conv 64->32 14x14 fwd", false, false, 32, 196, 512},
    {"conv 32->32 7x7 fwd", false, false, 32, 49, 288},
    {"conv 32->32 7x7 dx", true, false, 288, 49, 32},
    {"conv 32->32 7x7 dW", false, true, 32, 288, 49},
    {"attn scores 14x14", false, true, 196, 196, 8},
    {"attn P.V 14x14", false, false, 196, 8, 196},
    {"attn dP^T.dO 14x14", true, false, 196, 8, 196},
    {"1x1 proj 14x14 (batch)", false, false, 12544, 32, 96},
    {"1x1 proj dW (batch)", true, false, 32, 96, 12544},
};
}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 0.3;
  std::printf("%-26s %5s %6s %6s %6s  %8s\n", "shape", "op", "M", "N", "K", "GFLOP/s");
  std::printf("  threads: %d\n", omp_get_max_threads());
  double total_flops = 0, total_time = 0;
  for (const Shape& s : kShapes) {
    std::vector<float> A(std::size_t(s.M) * s.K), B(std::size_t(s.K) * s.N), C(std::size_t(s.M) * s.N);
    for (std::size_t i = 0; i < A.size(); ++i) A[i] = float(i % 7) * 0.25f - 0.75f;
    for (std::size_t i = 0; i < B.size(); ++i) B[i] = float(i % 5) * 0.5f - 1.0f;
    const int lda = s.trans_a ? s.M : s.K, ldb = s.trans_b ? s.K : s.N;
    const auto once = [&] {
      fm::kernels::gemm_cpu<float>(s.trans_a, s.trans_b, s.M, s.N, s.K, 1.f, A.data(), lda,
                                   B.data(), ldb, 0.f, C.data(), s.N);
    };
    once();  // warm the caches and the thread team
    // The fastest of many calls: on a shared, noisy machine it is the one least disturbed by
    // other work (the mean would measure the neighbours).
    double best_seconds = 1e30, elapsed = 0;
    const auto start = std::chrono::steady_clock::now();
    do {
      const auto call_start = std::chrono::steady_clock::now();
      once();
      const auto call_end = std::chrono::steady_clock::now();
      best_seconds = std::min(best_seconds, std::chrono::duration<double>(call_end - call_start).count());
      elapsed = std::chrono::duration<double>(call_end - start).count();
    } while (elapsed < seconds);
    const double best_rate = 2.0 * s.M * s.N * s.K / best_seconds;
    // Summary: the time all shapes take once each at their best rates.
    total_flops += 2.0 * s.M * s.N * s.K, total_time += 2.0 * s.M * s.N * s.K / best_rate;
    std::printf("%-26s %c%c    %6d %6d %6d  %8.1f\n", s.what, s.trans_a ? 't' : 'n',
                s.trans_b ? 't' : 'n', s.M, s.N, s.K, best_rate * 1e-9);
  }
  std::printf("%-26s %34s  %8.1f\n", "all shapes together", "", total_flops / total_time * 1e-9);
}
