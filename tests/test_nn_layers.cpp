// tests/test_nn_layers.cpp — the image and sequence layers: Conv2d, ConvTranspose2d, GroupNorm and
// MultiheadSelfAttention (PyTorch initialisation, parameter names, output shapes, and the numbers
// against loops written out here).
#include <catch2/catch.hpp>

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops_nn.h"
#include "core/random.h"
#include "nn/activation.h"
#include "nn/attention.h"
#include "nn/conv.h"
#include "nn/group_norm.h"

using namespace fm;
using namespace fm::nn;

namespace {

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector()) m = std::max(m, std::abs(v));
  return m;
}

std::vector<std::string> names_of(const Module& module) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : module.named_parameters()) names.push_back(name);
  return names;
}

}  // namespace

TEST_CASE("Conv2d: PyTorch init bounds, shapes for the U-Net's 3x3, 1x1 and 4x4/2 convolutions", "[nn][conv]") {
  Generator gen(1);
  Conv2d conv(16, 32, 3, 1, 1, gen);
  REQUIRE(conv.weight.shape() == Shape{32, 16, 3, 3});
  const double bound = 1.0 / std::sqrt(16.0 * 9);  // fan_in = in·k·k
  REQUIRE(max_abs(conv.weight) <= bound);
  REQUIRE(max_abs(conv.weight) > 0.95 * bound);
  REQUIRE(max_abs(conv.bias) <= bound);
  REQUIRE(names_of(conv) == std::vector<std::string>{"weight", "bias"});

  Tensor x = randn({2, 16, 28, 28}, gen);
  REQUIRE(conv.forward(x).shape() == Shape{2, 32, 28, 28});
  Conv2d pointwise(16, 8, 1, 1, 0, gen);
  REQUIRE(pointwise.forward(x).shape() == Shape{2, 8, 28, 28});
  Conv2d halve(16, 16, 4, 2, 1, gen);
  REQUIRE(halve.forward(x).shape() == Shape{2, 16, 14, 14});
  REQUIRE(halve.forward(randn({1, 16, 14, 14}, gen)).shape() == Shape{1, 16, 7, 7});
  // The layer is fm::conv2d with its own weights.
  REQUIRE(conv.forward(x).to_vector() == conv2d(x, conv.weight, conv.bias, 1, 1).to_vector());
  REQUIRE_THROWS_WITH(conv.forward(randn({2, 3, 8, 8}, gen)), Catch::Contains("Conv2d: input [2, 3, 8, 8], expected [N, 16, H, W]"));
  REQUIRE_THROWS_AS(Conv2d(0, 4, 3, 1, 1, gen), ValueError);
}

TEST_CASE("ConvTranspose2d: weight [in, out, k, k], fan_in = out·k·k as in PyTorch, doubles H and W", "[nn][conv]") {
  Generator gen(2);
  ConvTranspose2d up(2, 50, 2, 2, 0, gen);
  REQUIRE(up.weight.shape() == Shape{2, 50, 2, 2});
  REQUIRE(up.bias.shape() == Shape{50});
  // PyTorch reads fan_in from size(1) of the weight: 50·2·2 = 200, not in·k·k = 8.
  const double bound = 1.0 / std::sqrt(200.0);
  REQUIRE(max_abs(up.weight) <= bound);
  REQUIRE(max_abs(up.weight) > 0.9 * bound);
  REQUIRE(max_abs(up.bias) <= bound);

  ConvTranspose2d seed_up(64, 64, 4, 2, 1, gen);  // the U-Net's up-sampler
  REQUIRE(seed_up.forward(randn({2, 64, 7, 7}, gen)).shape() == Shape{2, 64, 14, 14});
  REQUIRE(seed_up.forward(randn({1, 64, 14, 14}, gen)).shape() == Shape{1, 64, 28, 28});
}

TEST_CASE("GroupNorm: weight 1, bias 0, normalises each group, fused SiLU gives the same numbers", "[nn][norm]") {
  GroupNorm norm(2, 6);
  REQUIRE(norm.weight.to_vector() == std::vector<double>(6, 1.0));
  REQUIRE(norm.bias.to_vector() == std::vector<double>(6, 0.0));
  REQUIRE(names_of(norm) == std::vector<std::string>{"weight", "bias"});
  norm.to(DType::Float64);
  Generator gen(3);
  Tensor x = randn({2, 6, 4, 5}, gen, DType::Float64) * 3.0 + 1.0;
  std::vector<double> y = norm.forward(x).to_vector();
  // Each (sample, group) span of 3 channels · 20 pixels has mean 0 and variance 1/(1 + eps/σ²) ≈ 1.
  for (int n = 0; n < 2; ++n)
    for (int g = 0; g < 2; ++g) {
      double mean = 0, square = 0;
      for (int k = 0; k < 60; ++k) {
        double v = y[std::size_t(n * 120 + g * 60 + k)];
        mean += v / 60;
        square += v * v / 60;
      }
      REQUIRE(std::abs(mean) < 1e-12);
      REQUIRE(square == Approx(1.0).epsilon(1e-4));
    }
  std::vector<double> fused = norm.forward_with_silu(x).to_vector();
  std::vector<double> separate = silu(norm.forward(x)).to_vector();
  for (std::size_t i = 0; i < fused.size(); ++i) REQUIRE(fused[i] == Approx(separate[i]).margin(1e-14));
  // [N, C, L] works too (the attention block normalises a [B, C, H·W] view).
  REQUIRE(norm.forward(x.reshape({2, 6, 20})).shape() == Shape{2, 6, 20});
  REQUIRE_THROWS_WITH(GroupNorm(8, 12), Catch::Contains("12 channels cannot be split into 8 groups"));
  REQUIRE_THROWS_WITH(norm.forward(randn({2, 4, 3}, gen, DType::Float64)), Catch::Contains("expected [N, 6, ...]"));
}

TEST_CASE("MultiheadSelfAttention: PyTorch names and init, numbers equal to written-out attention", "[nn][attention]") {
  Generator gen(4);
  const int E = 4, H = 2, D = 2, B = 2, L = 3;
  MultiheadSelfAttention attention(E, H, gen);
  REQUIRE(names_of(attention) ==
          std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"});
  REQUIRE(attention.in_proj_weight.shape() == Shape{3 * E, E});
  REQUIRE(attention.in_proj_bias.to_vector() == std::vector<double>(3 * E, 0.0));
  REQUIRE(attention.out_proj->bias.to_vector() == std::vector<double>(E, 0.0));
  REQUIRE(max_abs(attention.in_proj_weight) <= std::sqrt(6.0 / (E + 3 * E)));  // Xavier-uniform
  REQUIRE(max_abs(attention.out_proj->weight) <= 1.0 / std::sqrt(double(E)));  // Linear default
  REQUIRE(attention.parameter_count() == 4 * E * E + 4 * E);

  attention.to(DType::Float64);
  // Non-zero biases so the test sees them used.
  attention.in_proj_bias.copy_(randn({3 * E}, gen, DType::Float64));
  attention.out_proj->bias.copy_(randn({E}, gen, DType::Float64));
  Tensor x = randn({B, L, E}, gen, DType::Float64);
  std::vector<double> y = attention.forward(x).to_vector();

  std::vector<double> xs = x.to_vector(), w_in = attention.in_proj_weight.to_vector(),
                      b_in = attention.in_proj_bias.to_vector(), w_out = attention.out_proj->weight.to_vector(),
                      b_out = attention.out_proj->bias.to_vector();
  for (int b = 0; b < B; ++b) {
    // qkv[l][r] = Σ_e x[b,l,e]·W_in[r,e] + b_in[r]; rows 0..E-1 are q, E..2E-1 k, 2E..3E-1 v.
    std::vector<std::vector<double>> qkv(L, std::vector<double>(3 * E));
    for (int l = 0; l < L; ++l)
      for (int r = 0; r < 3 * E; ++r) {
        double s = b_in[r];
        for (int e = 0; e < E; ++e) s += xs[(b * L + l) * E + e] * w_in[r * E + e];
        qkv[l][r] = s;
      }
    std::vector<std::vector<double>> merged(L, std::vector<double>(E));
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < L; ++i) {
        std::vector<double> scores(L);
        double top = -1e300, total = 0;
        for (int j = 0; j < L; ++j) {
          double s = 0;
          for (int d = 0; d < D; ++d) s += qkv[i][h * D + d] * qkv[j][E + h * D + d];
          scores[j] = s / std::sqrt(double(D));
          top = std::max(top, scores[j]);
        }
        for (int j = 0; j < L; ++j) total += std::exp(scores[j] - top);
        for (int d = 0; d < D; ++d) {
          double o = 0;
          for (int j = 0; j < L; ++j) o += std::exp(scores[j] - top) / total * qkv[j][2 * E + h * D + d];
          merged[i][h * D + d] = o;
        }
      }
    for (int l = 0; l < L; ++l)
      for (int o = 0; o < E; ++o) {
        double s = b_out[o];
        for (int e = 0; e < E; ++e) s += merged[l][e] * w_out[o * E + e];
        REQUIRE(y[(b * L + l) * E + o] == Approx(s).margin(1e-12));
      }
  }
  REQUIRE_THROWS_WITH(MultiheadSelfAttention(6, 4, gen), Catch::Contains("embed_dim 6 is not divisible by num_heads 4"));
  REQUIRE_THROWS_WITH(attention.forward(randn({2, 3, 5}, gen, DType::Float64)), Catch::Contains("expected [batch, tokens, 4]"));
}

TEST_CASE("linear: x·Wᵀ + b in one GEMM is bitwise matmul then add, gradients too, and leaves the bias alone",
          "[nn][linear]") {
  Generator gen(21);
  for (DType dtype : {DType::Float32, DType::Float64}) {
    // One row (where an expanded bias is already "contiguous"), many rows, a batch of rows, and a
    // longer product. Bitwise because every K here fits in one slice of the CPU GEMM
    // (kernels/cpu/gemm.cpp), so each output is bias + its whole dot product, rounded once.
    for (const Shape& x_shape : {Shape{1, 5}, Shape{7, 5}, Shape{2, 3, 5}, Shape{33, 100}}) {
      const std::int64_t in = x_shape.back(), out = 6;
      Tensor x = randn(x_shape, gen, dtype).set_requires_grad(true);
      Tensor weight = randn({out, in}, gen, dtype).set_requires_grad(true);
      Tensor bias = randn({out}, gen, dtype).set_requires_grad(true);
      const std::vector<double> bias_before = bias.to_vector();
      Tensor fused = linear(x, weight, bias);
      Tensor separate = add(matmul(x, weight.transpose(0, 1)), bias);
      REQUIRE(fused.shape() == separate.shape());
      REQUIRE(fused.to_vector() == separate.to_vector());
      REQUIRE(bias.to_vector() == bias_before);

      Tensor upstream = randn(fused.shape(), gen, dtype);
      fused.backward(upstream);
      const std::vector<double> gx = x.grad().to_vector(), gw = weight.grad().to_vector(), gb = bias.grad().to_vector();
      x.zero_grad();
      weight.zero_grad();
      bias.zero_grad();
      separate.backward(upstream);
      REQUIRE(gx == x.grad().to_vector());
      REQUIRE(gw == weight.grad().to_vector());
      REQUIRE(gb == bias.grad().to_vector());
    }
  }
  Tensor x = randn({2, 4}, gen);
  REQUIRE_THROWS_WITH(linear(x, randn({3, 5}, gen), Tensor()), Catch::Contains("does not end in 5 features"));
  REQUIRE_THROWS_WITH(linear(x, randn({3, 4}, gen), randn({4}, gen)), Catch::Contains("bias has shape [4], expected [3]"));
}
