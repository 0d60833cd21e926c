// bench/cpu/conv_lab.cpp — the kernel lab's convolution rows (bench/cpu/kernel_lab.h): the CPU
// convolution's three passes (conv2d_*_im2col<float>, kernels/cpu/conv2d_im2col.cpp) on the
// convolutions of the small U-Net (configs/fashion_mnist_cpu.json) at batch 64: the 3×3 padding-1 ones
// and the 4×4 stride-2 padding-1 downsampling ones.
//
// Each pass does 2·N·C_out·Ho·Wo·C_in·kh·kw floating-point operations. The same inputs every round, so
// the data is as warm as the caches allow: a kernel's own speed, not the training step's (there the
// activations come from memory).
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/cpu/kernel_lab.h"
#include "core/error.h"
#include "kernels/conv2d.h"

namespace fm::bench {
namespace {

struct Shape {
  int batch, in_channels, size, out_channels, kernel, stride, pad;
};
// The U-Net's 3×3 convolutions: 28×28 at 16 and 32 channels, 14×14, 7×7, and the up path's conv
// after a skip concatenation (64 channels in); then its two 4×4 stride-2 downsampling convolutions.
const Shape kShapes[] = {{64, 32, 28, 32, 3, 1, 1}, {64, 16, 28, 32, 3, 1, 1}, {64, 32, 14, 32, 3, 1, 1},
                         {64, 32, 7, 32, 3, 1, 1},  {64, 64, 14, 16, 3, 1, 1}, {64, 32, 28, 32, 4, 2, 1},
                         {64, 32, 14, 32, 4, 2, 1}};

struct Buffers {
  std::vector<float> x, dx, w, dw, y;  // y stands in for dy in the two backward passes
};

}  // namespace

void add_conv_lab_cases(std::vector<CpuLabCase>& cases) {
  std::mt19937 engine(1);
  std::normal_distribution<float> normal;
  for (const Shape& s : kShapes) {
    const kernels::Conv2dParams p{s.batch,  s.in_channels, s.size,   s.size, s.out_channels,
                                  s.kernel, s.kernel,      s.stride, s.stride, s.pad, s.pad};
    const int out = p.out_height();
    auto b = std::make_shared<Buffers>();
    b->x.resize(std::size_t(s.batch) * s.in_channels * s.size * s.size);
    b->dx.resize(b->x.size());
    b->w.resize(std::size_t(s.out_channels) * s.in_channels * s.kernel * s.kernel);
    b->dw.resize(b->w.size());
    b->y.resize(std::size_t(s.batch) * s.out_channels * out * out);
    for (auto* buffer : {&b->x, &b->w, &b->y})
      for (float& v : *buffer) v = normal(engine);
    const double flops = 2.0 * s.batch * s.out_channels * out * out * s.in_channels * s.kernel * s.kernel;
    const std::string shape = cat(s.batch, "x", s.in_channels, "x", s.size, "x", s.size, ">", s.out_channels, " k",
                                  s.kernel, "s", s.stride);
    const std::string params = cat("batch=", s.batch, ";in_channels=", s.in_channels, ";size=", s.size,
                                   ";out_channels=", s.out_channels, ";kernel=", s.kernel, ";stride=", s.stride,
                                   ";pad=", s.pad);
    cases.push_back({"conv2d", shape, "forward", params, flops, [b, p] {
                       kernels::conv2d_forward_im2col<float>(b->x.data(), b->w.data(), nullptr, b->y.data(), p);
                     }});
    cases.push_back({"conv2d", shape, "input-grad", params, flops, [b, p] {
                       kernels::conv2d_backward_input_im2col<float>(b->y.data(), b->w.data(), b->dx.data(), p);
                     }});
    cases.push_back({"conv2d", shape, "weight-grad", params, flops, [b, p] {
                       kernels::conv2d_backward_weight_im2col<float>(b->x.data(), b->y.data(), b->dw.data(),
                                                                     nullptr, p);
                     }});
  }
}

}  // namespace fm::bench
