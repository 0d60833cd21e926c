// bench/cpu/conv_bench.cpp — GFLOP/s of the CPU convolution's three passes (forward, input
// gradient, weight gradient: conv2d_*_im2col<float>, kernels/cpu/conv2d_im2col.cpp) on the
// convolutions of the small U-Net (configs/fashion_mnist_cpu.json) at batch 64: the 3×3 padding-1
// ones and the 4×4 stride-2 padding-1 downsampling ones.
//
//   build-cpu/bin/fm_cpu_conv_bench [rounds, default 15]   (prints each pass's fastest round)
//
// Each pass does 2·N·C_out·Ho·Wo·C_in·kh·kw floating-point operations. The same inputs every round, so
// the data is as warm as the caches allow: a kernel's own speed, not the training step's (there the
// activations come from memory). The machine is shared and noisy: compare versions by running them
// alternately several times and taking each one's best.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bench/cpu/kernel_bench_common.h"
#include "kernels/conv2d.h"

namespace {
struct Shape {
  int batch, in_channels, size, out_channels, kernel, stride, pad;
};
// The U-Net's 3×3 convolutions: 28×28 at 16 and 32 channels, 14×14, 7×7, and the up path's conv
// after a skip concatenation (64 channels in); then its two 4×4 stride-2 downsampling convolutions.
const Shape kShapes[] = {{64, 32, 28, 32, 3, 1, 1}, {64, 16, 28, 32, 3, 1, 1}, {64, 32, 14, 32, 3, 1, 1},
                         {64, 32, 7, 32, 3, 1, 1},  {64, 64, 14, 16, 3, 1, 1}, {64, 32, 28, 32, 4, 2, 1},
                         {64, 32, 14, 32, 4, 2, 1}};

}  // namespace

int main(int argc, char** argv) {
  const int rounds = fm::bench::rounds_argument(argc, argv, "fm_cpu_conv_bench");
  if (rounds == 0) return 2;
  std::mt19937 engine(1);
  std::normal_distribution<float> normal;
  std::printf("shape (N x C_in x HxW > C_out, kernel/stride)   fwd  input-grad  weight-grad   GFLOP/s\n");
  for (const Shape& s : kShapes) {
    const fm::kernels::Conv2dParams p{s.batch,  s.in_channels, s.size,   s.size, s.out_channels,
                                      s.kernel, s.kernel,      s.stride, s.stride, s.pad, s.pad};
    const int out = p.out_height();
    std::vector<float> x(std::size_t(s.batch) * s.in_channels * s.size * s.size), dx(x.size());
    std::vector<float> w(std::size_t(s.out_channels) * s.in_channels * s.kernel * s.kernel), dw(w.size());
    std::vector<float> y(std::size_t(s.batch) * s.out_channels * out * out);
    for (float& v : x) v = normal(engine);
    for (float& v : w) v = normal(engine);
    for (float& v : y) v = normal(engine);  // stands in for dy in the two backward passes
    double best[3] = {1e30, 1e30, 1e30};
    for (int round = 0; round < rounds; ++round) {
      auto start = std::chrono::steady_clock::now();
      fm::kernels::conv2d_forward_im2col<float>(x.data(), w.data(), nullptr, y.data(), p);
      best[0] = std::min(best[0], fm::bench::seconds_since(start));
      start = std::chrono::steady_clock::now();
      fm::kernels::conv2d_backward_input_im2col<float>(y.data(), w.data(), dx.data(), p);
      best[1] = std::min(best[1], fm::bench::seconds_since(start));
      start = std::chrono::steady_clock::now();
      fm::kernels::conv2d_backward_weight_im2col<float>(x.data(), y.data(), dw.data(), nullptr, p);
      best[2] = std::min(best[2], fm::bench::seconds_since(start));
    }
    const double gflop = 2.0 * s.batch * s.out_channels * out * out * s.in_channels * s.kernel * s.kernel / 1e9;
    std::printf("%3d x %2d x %2dx%-2d > %2d, %dx%d/%d                  %6.1f  %10.1f  %11.1f\n", s.batch,
                s.in_channels, s.size, s.size, s.out_channels, s.kernel, s.kernel, s.stride, gflop / best[0],
                gflop / best[1], gflop / best[2]);
  }
  return 0;
}
