// bench/cpu/norm_lab.cpp — the kernel lab's GroupNorm + SiLU rows (bench/cpu/kernel_lab.h): the fused
// GroupNorm + SiLU of every U-Net residual block (group_norm_silu_*_cpu<float>,
// kernels/cpu/group_norm.cpp; 8 groups) at the small U-Net's activation sizes, batch 64.
//
// These do a few operations per value, so a row gives bytes per second against a copy of as many bytes
// (bench/cpu/kernel_lab.cpp), as the GPU lab measures GroupNorm; on the CPU both this engine and PyTorch
// reach only 10–20% of that copy (the exponential and the passes over each group bound them, not the
// memory: docs/results.md, "The CPU kernel lab against PyTorch"). The fewest bytes a
// pass can move are the forward's read of x and write of y (2 values per element) and the backward's
// reads of dy and x and write of dx (3 per element); γ, β, the statistics and dγ, dβ are per
// channel or group, too few to count.
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/cpu/kernel_lab.h"
#include "core/error.h"
#include "kernels/group_norm.h"

namespace fm::bench {
namespace {

struct Shape {
  int batch, channels, size;
};
// 28×28 at 16 and 32 channels, 14×14 and 7×7 at 32: the residual blocks' activations.
const Shape kShapes[] = {{64, 16, 28}, {64, 32, 28}, {64, 32, 14}, {64, 32, 7}};
constexpr int kGroups = 8;

struct Buffers {
  std::vector<float> x, y, dy, dx, gamma, beta, dgamma, dbeta, mean, rstd;
};

}  // namespace

void add_group_norm_lab_cases(std::vector<CpuLabCase>& cases) {
  std::mt19937 engine(1);
  std::normal_distribution<float> normal;
  for (const Shape& s : kShapes) {
    const int HW = s.size * s.size;
    const std::size_t n = std::size_t(s.batch) * s.channels * HW;
    auto b = std::make_shared<Buffers>();
    for (auto* buffer : {&b->x, &b->y, &b->dy, &b->dx}) buffer->resize(n);
    for (auto* buffer : {&b->gamma, &b->beta, &b->dgamma, &b->dbeta}) buffer->resize(std::size_t(s.channels));
    for (auto* buffer : {&b->mean, &b->rstd}) buffer->resize(std::size_t(s.batch) * kGroups);
    for (auto* buffer : {&b->x, &b->dy, &b->gamma, &b->beta})
      for (float& v : *buffer) v = normal(engine);
    // The backward reads the forward's statistics: one forward fills them now (as in attention_lab.cpp).
    kernels::group_norm_silu_forward_cpu<float>(b->x.data(), b->gamma.data(), b->beta.data(), b->y.data(),
                                                b->mean.data(), b->rstd.data(), s.batch, s.channels, HW, kGroups,
                                                1e-5f);
    const std::string shape = cat(s.batch, "x", s.channels, "x", s.size, "x", s.size, " g", kGroups);
    const std::string params =
        cat("batch=", s.batch, ";channels=", s.channels, ";size=", s.size, ";groups=", kGroups);
    const double value_bytes = double(n) * sizeof(float);
    CpuLabCase forward{"groupnorm_silu", shape, "forward", params, 0, [b, s, HW] {
                         kernels::group_norm_silu_forward_cpu<float>(b->x.data(), b->gamma.data(), b->beta.data(),
                                                                     b->y.data(), b->mean.data(), b->rstd.data(),
                                                                     s.batch, s.channels, HW, kGroups, 1e-5f);
                       }};
    forward.bytes = 2 * value_bytes;
    cases.push_back(forward);
    CpuLabCase backward{"groupnorm_silu", shape, "backward", params, 0, [b, s, HW] {
                          kernels::group_norm_silu_backward_cpu<float>(
                              b->dy.data(), b->x.data(), b->mean.data(), b->rstd.data(), b->gamma.data(),
                              b->beta.data(), b->dx.data(), b->dgamma.data(), b->dbeta.data(), s.batch, s.channels,
                              HW, kGroups);
                        }};
    backward.bytes = 3 * value_bytes;
    cases.push_back(backward);
  }
}

}  // namespace fm::bench
