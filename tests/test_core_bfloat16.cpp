// tests/test_core_bfloat16.cpp — bfloat16 tensors: the rounding of kernels/bfloat16.h against hand-
// worked bit patterns, conversions between the three dtypes, the elementwise, reduction, GroupNorm,
// convolution and Linear ops in bfloat16 against the same ops in float32 rounded once, gradients through bfloat16, the file
// formats, and (on a GPU or the emulator) CUDA against the CPU to the bit or to one bfloat16 step.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>

#include "core/autograd.h"
#include "core/kernel_choice.h"
#include "core/io/tensor_io.h"
#include "core/ops.h"
#include "core/ops_nn.h"
#include "core/random.h"
#include "kernels/bfloat16.h"
#include "bfloat16_test_util.h"
#include "kernels/group_norm.h"
#include "test_util.h"

using namespace fm;
using fm::test::bits_of_tensor;
using fm::test::random_bf16;
using fm::test::require_close_to_scale;

namespace {

std::uint32_t bits_of(float value) {
  std::uint32_t u;
  std::memcpy(&u, &value, 4);
  return u;
}
float float_of(std::uint32_t u) {
  float value;
  std::memcpy(&value, &u, 4);
  return value;
}
std::uint16_t bf16_bits_of_float_bits(std::uint32_t u) { return bf16(float_of(u)).bits; }

// Distance in bfloat16 steps between two finite values of one sign (their bit patterns, ordered).
int steps_apart(std::uint16_t a, std::uint16_t b) {
  auto ordered = [](std::uint16_t x) { return (x & 0x8000u) ? -int(x & 0x7fffu) : int(x); };
  return std::abs(ordered(a) - ordered(b));
}

using UnaryFn = std::function<Tensor(const Tensor&)>;
using BinaryFn = std::function<Tensor(const Tensor&, const Tensor&)>;

}  // namespace

TEST_CASE("bfloat16 rounds float to nearest with ties to even, keeps NaN and infinity", "[bfloat16]") {
  // exact values keep their bits
  CHECK(bf16(1.0f).bits == 0x3f80);
  CHECK(bf16(-2.0f).bits == 0xc000);
  CHECK(bf16(-0.0f).bits == 0x8000);
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: to the even one, 1
  CHECK(bf16_bits_of_float_bits(0x3f808000u) == 0x3f80);
  // 1 + 3·2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up
  CHECK(bf16_bits_of_float_bits(0x3f818000u) == 0x3f82);
  // just above and just below a tie
  CHECK(bf16_bits_of_float_bits(0x3f808001u) == 0x3f81);
  CHECK(bf16_bits_of_float_bits(0x3f807fffu) == 0x3f80);
  // rounding up out of the mantissa carries into the exponent: 2 - 2^-8 becomes 2
  CHECK(bf16_bits_of_float_bits(0x3fff8000u) == 0x4000);
  // the largest bfloat16 stays; float's largest rounds past it to infinity
  CHECK(bf16_bits_of_float_bits(0x7f7f0000u) == 0x7f7f);
  CHECK(bf16(std::numeric_limits<float>::max()).bits == 0x7f80);
  CHECK(bf16(-std::numeric_limits<float>::max()).bits == 0xff80);
  CHECK(bf16(std::numeric_limits<float>::infinity()).bits == 0x7f80);
  // NaN stays NaN (quiet, sign kept), even a signalling NaN whose payload is in the dropped bits
  CHECK(bf16_bits_of_float_bits(0x7f800001u) == 0x7fc0);
  CHECK(bf16_bits_of_float_bits(0xff800001u) == 0xffc0);
  CHECK(std::isnan(float(bf16(std::numeric_limits<float>::quiet_NaN()))));
  // subnormals round like everything else
  CHECK(bf16_bits_of_float_bits(0x00008000u) == 0x0000);
  CHECK(bf16_bits_of_float_bits(0x00018000u) == 0x0002);
  // widening is exact: every one of the 65,536 patterns except NaNs comes back to the same bits
  int mismatches = 0;
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    const float widened = float(bf16::from_bits(std::uint16_t(b)));
    if (bits_of(widened) != b << 16) ++mismatches;
    if (!std::isnan(widened) && bf16(widened).bits != b) ++mismatches;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("bfloat16 from a double rounds once, not through float", "[bfloat16]") {
  const double tie = 1.0 + std::ldexp(1.0, -8);  // halfway between 1 and 1 + 2^-7
  // Just above the tie: float rounds it onto the tie, and a second rounding would go to even (1).
  REQUIRE(double(float(tie + std::ldexp(1.0, -40))) == tie);
  CHECK(bf16(tie + std::ldexp(1.0, -40)).bits == 0x3f81);
  CHECK(bf16(tie - std::ldexp(1.0, -40)).bits == 0x3f80);
  CHECK(bf16(tie).bits == 0x3f80);
  const double odd_tie = 1.0 + 3 * std::ldexp(1.0, -8);  // halfway between 1 + 2^-7 and 1 + 2^-6
  CHECK(bf16(odd_tie - std::ldexp(1.0, -40)).bits == 0x3f81);
  CHECK(bf16(odd_tie).bits == 0x3f82);
  CHECK(bf16(-(tie + std::ldexp(1.0, -40))).bits == 0xbf81);
  // past float's range: infinity; below float's smallest subnormal: a signed zero
  CHECK(bf16(1e39).bits == 0x7f80);
  CHECK(bf16(-1e39).bits == 0xff80);
  CHECK(bf16(1e-50).bits == 0x0000);
  CHECK(bf16(-1e-50).bits == 0x8000);
  CHECK(std::isnan(float(bf16(std::numeric_limits<double>::quiet_NaN()))));
  // a double that float holds exactly rounds as the float does
  Generator gen(11);
  int mismatches = 0;
  for (int i = 0; i < 100000; ++i) {
    const float f = float_of(std::uint32_t(gen.next_u64()));
    if (std::isnan(f)) continue;
    if (bf16(double(f)).bits != bf16(f).bits) ++mismatches;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("bfloat16 tensors convert to and from float32 and float64", "[bfloat16]") {
  CHECK(dtype_size(DType::BFloat16) == 2);
  CHECK(std::string(dtype_name(DType::BFloat16)) == "bfloat16");
  const std::vector<double> values = {1.0, 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40), -3.14159, 1e-3, 65504.0,
                                      0.0};
  Tensor b = Tensor::from_vector(values, {2, 3}, DType::BFloat16);
  CHECK(b.dtype() == DType::BFloat16);
  const std::vector<double> back = b.to_vector();
  for (std::size_t i = 0; i < values.size(); ++i) CHECK(back[i] == double(float(bf16(values[i]))));
  CHECK(bits_of_tensor(b)[1] == 0x3f81);  // from_vector rounds the double once
  // float64 -> bfloat16 rounds once too; bfloat16 -> float32/float64 is exact
  Tensor d = Tensor::from_vector(values, {2, 3}, DType::Float64);
  CHECK(bits_of_tensor(d.to(DType::BFloat16)) == bits_of_tensor(b));
  CHECK(b.to(DType::Float32).to_vector() == back);
  CHECK(b.to(DType::Float64).to_vector() == back);
  // float32 -> bfloat16 of a transposed view converts element by element
  Tensor f = Tensor::from_vector(values, {2, 3}, DType::Float32).transpose(0, 1);
  Tensor fb = f.to(DType::BFloat16);
  CHECK(fb.shape() == Shape{3, 2});
  const std::vector<double> fv = f.to_vector(), fbv = fb.to_vector();
  for (std::size_t i = 0; i < fv.size(); ++i) CHECK(fbv[i] == double(float(bf16(float(fv[i])))));
  // copy_ converts into a bfloat16 destination, with broadcasting
  Tensor dst = Tensor::zeros({2, 3}, DType::BFloat16);
  dst.copy_(Tensor::from_vector({0.1, 0.2, 0.3}, {3}, DType::Float32));
  const std::vector<double> dv = dst.to_vector();
  CHECK(dv[4] == double(float(bf16(0.2f))));
  // fill_ and full round the value once
  CHECK(Tensor::full({2}, 1.0 / 3.0, DType::BFloat16).to_vector()[1] == double(float(bf16(1.0 / 3.0))));
  // copies keep every bit, a signalling NaN's included (a trip through float would make it quiet)
  Tensor nan = Tensor::zeros({2, 2}, DType::BFloat16);
  nan.data<bf16>()[1] = bf16::from_bits(0x7f81);
  CHECK(bits_of_tensor(nan.transpose(0, 1).contiguous())[2] == 0x7f81);
  CHECK(bits_of_tensor(nan.clone())[1] == 0x7f81);
  CHECK(bits_of_tensor(nan.to(DType::BFloat16))[1] == 0x7f81);
}

TEST_CASE("bfloat16 elementwise ops equal the float32 ops on the same values rounded once", "[bfloat16]") {
  // Add, subtract, multiply and divide are exactly rounded in float, so float then bfloat16 is one
  // well-defined answer and the bfloat16 kernels must give it to the bit. The functions with an
  // exponential or erf may be computed by other float formulas on the two paths (the float32 CPU
  // path can run the AVX-512 copy, contracted into FMAs), so their float results can differ by a
  // few float ulps, which moves a bfloat16 rounding by at most one step near a tie.
  const std::vector<std::pair<const char*, BinaryFn>> exact_binary = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
  };
  for (auto shapes : {std::vector<Shape>{{5, 7}, {5, 7}}, std::vector<Shape>{{4, 1, 3}, {5, 3}}}) {
    Tensor a = random_bf16(shapes[0], 1), b = random_bf16(shapes[1], 2, 0.5, 2.0);
    for (auto& [name, f] : exact_binary) {
      INFO(name << " on " << shape_str(shapes[0]) << " and " << shape_str(shapes[1]));
      Tensor y = f(a, b);
      CHECK(y.dtype() == DType::BFloat16);
      CHECK(bits_of_tensor(y) == bits_of_tensor(f(a.to(DType::Float32), b.to(DType::Float32)).to(DType::BFloat16)));
    }
  }
  const std::vector<std::pair<const char*, UnaryFn>> exact_unary = {
      {"neg", [](const Tensor& x) { return neg(x); }},
      {"relu", [](const Tensor& x) { return relu(x); }},
      {"square", [](const Tensor& x) { return square(x); }},
      {"sqrt", [](const Tensor& x) { return sqrt(square(x)); }},
  };
  const std::vector<std::pair<const char*, UnaryFn>> within_a_step = {
      {"affine", [](const Tensor& x) { return affine(x, -1.5, 0.25); }},
      {"exp", [](const Tensor& x) { return exp(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
      {"silu", [](const Tensor& x) { return silu(x); }},
      {"gelu", [](const Tensor& x) { return gelu(x); }},
      {"sin", [](const Tensor& x) { return sin(x); }},
  };
  Tensor x = random_bf16({9, 13}, 3);
  Tensor view = x.transpose(0, 1);  // strided input
  for (const Tensor& input : {x, view}) {
    for (auto& [name, f] : exact_unary) {
      INFO(name);
      CHECK(bits_of_tensor(f(input)) == bits_of_tensor(f(input.to(DType::Float32)).to(DType::BFloat16)));
    }
    for (auto& [name, f] : within_a_step) {
      INFO(name);
      const auto got = bits_of_tensor(f(input)), want = bits_of_tensor(f(input.to(DType::Float32)).to(DType::BFloat16));
      int worst = 0, differing = 0;
      for (std::size_t i = 0; i < got.size(); ++i) {
        worst = std::max(worst, steps_apart(got[i], want[i]));
        differing += got[i] != want[i];
      }
      CHECK(worst <= 1);
      CHECK(differing <= int(got.size()) / 20);  // near a tie only
    }
  }
}

TEST_CASE("bfloat16 sums add up in double and round once", "[bfloat16]") {
  Tensor x = random_bf16({6, 40, 5}, 4);
  const std::vector<double> v = x.to_vector();
  for (std::vector<int> dims : {std::vector<int>{1}, std::vector<int>{0}, std::vector<int>{0, 2}}) {
    Tensor s = sum(x, dims, false);
    CHECK(s.dtype() == DType::BFloat16);
    // the same sum in float64 over the same values, rounded once
    CHECK(bits_of_tensor(s) == bits_of_tensor(sum(x.to(DType::Float64), dims, false).to(DType::BFloat16)));
  }
  CHECK(sum(x).to_vector()[0] == double(float(bf16(std::accumulate(v.begin(), v.end(), 0.0)))));
}

TEST_CASE("gradients flow through bfloat16 ops and conversions", "[bfloat16]") {
  // loss = Σ w·silu(x) computed in bfloat16 from a float32 leaf x; dloss/dx = w·silu'(x). Along the
  // way back the gradient reaching SiLU is 1·w (exact) and the SiLU backward rounds once to
  // bfloat16 (at most 2^-8 relative: 8 significant bits), so the result is within 2^-8 of the
  // float64 answer (plus the float formula's own error, absolute, where silu' crosses zero).
  Generator gen(5);
  Tensor x = rand_uniform({4, 8}, gen, -3.0, 3.0, DType::Float32).set_requires_grad(true);
  Tensor w = rand_uniform({8}, gen, 0.5, 2.0, DType::BFloat16);
  Tensor xb = x.to(DType::BFloat16);
  Tensor loss = sum(mul(silu(xb), w)).to(DType::Float32);
  loss.backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().dtype() == DType::Float32);  // the conversion's backward converts back
  const std::vector<double> xv = xb.to_vector(), wv = w.to_vector(), gv = x.grad().to_vector();
  std::vector<double> expected(gv.size());
  for (std::size_t i = 0; i < gv.size(); ++i) {
    const double s = 1.0 / (1.0 + std::exp(-xv[i]));
    expected[i] = wv[i % 8] * s * (1.0 + xv[i] * (1.0 - s));
  }
  FM_REQUIRE_CLOSE(gv.data(), expected.data(), gv.size(), 1e-6, std::ldexp(1.0, -8));
  // the conversion's own backward is the conversion of the gradient, to the bit
  Tensor y = Tensor::from_vector({1.0, 2.0}, {2}, DType::Float64).set_requires_grad(true);
  sum(mul(y.to(DType::BFloat16), Tensor::from_vector({1.0 / 3.0, 3.0}, {2}, DType::BFloat16))).backward();
  CHECK(y.grad().dtype() == DType::Float64);
  CHECK(y.grad().to_vector() == std::vector<double>{double(float(bf16(1.0 / 3.0))), 3.0});
}

TEST_CASE("ops without bfloat16 kernels refuse bfloat16 by name", "[bfloat16]") {
  Tensor logits = random_bf16({3, 4}, 6);
  CHECK_THROWS_WITH(cross_entropy(logits, {0, 1, 2}), Catch::Contains("cross_entropy has no bfloat16 kernel on cpu") &&
                                                         Catch::Contains("float32, float64"));
}

TEST_CASE("bfloat16 tensors are saved as BF16 in safetensors and refused by npy", "[bfloat16]") {
  fm::test::TempDir dir("fm_test_bf16");
  Tensor b = random_bf16({3, 5}, 8);
  io::save_safetensors(dir.file("b.safetensors"), {{"b", b}});
  Tensor loaded = io::load_safetensors(dir.file("b.safetensors")).tensors.at("b");
  CHECK(loaded.dtype() == DType::BFloat16);
  CHECK(loaded.shape() == b.shape());
  CHECK(bits_of_tensor(loaded) == bits_of_tensor(b));
  CHECK_THROWS_WITH(io::save_npy(dir.file("b.npy"), b), Catch::Contains(".npy has no bfloat16 type"));
  CHECK(dir.entries() == std::vector<std::string>{"b.safetensors"});
}

TEST_CASE("cuda: bfloat16 conversions, maps and sums match the CPU", "[cuda][gpu][bfloat16]") {
  FM_REQUIRE_GPU();
  // Conversions, fill and the exactly rounded ops are one float operation and one rounding on both
  // devices: the same bits. The transcendental maps use CUDA's expf/erff/tanhf on the device and
  // the vectorisable formulas on the CPU (a few float ulps apart): within one bfloat16 step. Sums
  // add up in float in a tree on the device, in double on the CPU: within one step too.
  Tensor f = Tensor::from_vector({0.1, -2.5, 1.0 + std::ldexp(1.0, -8), 3e38, 1e-40, -0.0}, {6}, DType::Float32);
  CHECK(bits_of_tensor(f.to(Device::CUDA).to(DType::BFloat16)) == bits_of_tensor(f.to(DType::BFloat16)));
  Tensor bc = f.to(DType::BFloat16).to(Device::CUDA);
  CHECK(bc.dtype() == DType::BFloat16);
  CHECK(bc.to(DType::Float32).to_vector() == f.to(DType::BFloat16).to(DType::Float32).to_vector());
  CHECK_THROWS_WITH(bc.to(DType::Float64), Catch::Contains("no float64 tensors"));
  CHECK(bits_of_tensor(Tensor::full({5}, 1.0 / 3.0, DType::BFloat16, Device::CUDA)) ==
        bits_of_tensor(Tensor::full({5}, 1.0 / 3.0, DType::BFloat16)));

  Tensor a = random_bf16({4, 1, 33}, 9), b = random_bf16({7, 33}, 10, 0.5, 2.0);
  Tensor ac = a.to(Device::CUDA), bcu = b.to(Device::CUDA);
  CHECK(bits_of_tensor(add(ac, bcu)) == bits_of_tensor(add(a, b)));
  CHECK(bits_of_tensor(mul(ac, bcu)) == bits_of_tensor(mul(a, b)));
  CHECK(bits_of_tensor(div(ac, bcu)) == bits_of_tensor(div(a, b)));
  CHECK(bits_of_tensor(ac.transpose(0, 2).contiguous()) == bits_of_tensor(a.transpose(0, 2).contiguous()));
  auto within_a_step = [](const Tensor& got_t, const Tensor& want_t) {
    const auto got = bits_of_tensor(got_t), want = bits_of_tensor(want_t);
    REQUIRE(got.size() == want.size());
    int worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, steps_apart(got[i], want[i]));
    return worst;
  };
  for (const UnaryFn& f1 : std::vector<UnaryFn>{[](const Tensor& x) { return silu(x); },
                                                [](const Tensor& x) { return gelu(x); },
                                                [](const Tensor& x) { return tanh(x); },
                                                [](const Tensor& x) { return affine(x, 0.7, -0.1); }})
    CHECK(within_a_step(f1(ac), f1(a)) <= 1);
  Tensor big = random_bf16({3, 1000}, 12);
  CHECK(within_a_step(sum(big.to(Device::CUDA), {1}, false), sum(big, {1}, false)) <= 1);
  // gradients through bfloat16 on the device
  Tensor x = random_bf16({2, 33}, 13).to(DType::Float32);
  Tensor xc = x.to(Device::CUDA).set_requires_grad(true);
  Tensor xh = x.clone().set_requires_grad(true);
  sum(mul(silu(xc.to(DType::BFloat16)), bcu.narrow(0, 0, 2))).to(DType::Float32).backward();
  sum(mul(silu(xh.to(DType::BFloat16)), b.narrow(0, 0, 2))).to(DType::Float32).backward();
  CHECK(within_a_step(xc.grad().to(DType::BFloat16), xh.grad().to(DType::BFloat16)) <= 2);
}

TEST_CASE("GroupNorm and GroupNorm + SiLU on bfloat16 activations equal the float32 ops rounded once", "[bfloat16]") {
  // The CPU's bfloat16 kernels widen x (and dy) exactly, run the float32 path and round each output
  // once: so y and dx are the float32 op's rounded to the bit, and dγ, dβ (float32) are equal.
  Generator gen(14);
  for (bool fused : {false, true}) {
    INFO("fused " << fused);
    for (Shape shape : {Shape{2, 8, 5, 5}, Shape{3, 6, 4, 4}}) {
      const int groups = 2;
      Tensor xb = random_bf16(shape, 15).set_requires_grad(true);
      Tensor dy = random_bf16(shape, 16);
      Tensor w = rand_uniform({shape[1]}, gen, 0.5, 1.5).set_requires_grad(true);
      Tensor b = rand_uniform({shape[1]}, gen, -0.5, 0.5).set_requires_grad(true);
      Tensor xf = xb.detach().to(DType::Float32).set_requires_grad(true);
      Tensor wf = w.detach().clone().set_requires_grad(true), bf = b.detach().clone().set_requires_grad(true);
      auto op = [&](const Tensor& x, const Tensor& weight, const Tensor& bias) {
        return fused ? group_norm_silu(x, groups, weight, bias, 1e-5) : group_norm(x, groups, weight, bias, 1e-5);
      };
      Tensor y = op(xb, w, b);
      Tensor y_ref = op(xf, wf, bf);
      CHECK(y.dtype() == DType::BFloat16);
      CHECK(bits_of_tensor(y) == bits_of_tensor(y_ref.to(DType::BFloat16)));
      sum(mul(y, dy)).backward();
      sum(mul(y_ref, dy.to(DType::Float32))).backward();
      CHECK(xb.grad().dtype() == DType::BFloat16);
      CHECK(w.grad().dtype() == DType::Float32);
      CHECK(bits_of_tensor(xb.grad()) == bits_of_tensor(xf.grad().to(DType::BFloat16)));
      CHECK(w.grad().to_vector() == wf.grad().to_vector());
      CHECK(b.grad().to_vector() == bf.grad().to_vector());
    }
  }
  Tensor x = random_bf16({2, 4, 3, 3}, 17);
  CHECK_THROWS_WITH(group_norm(x, 2, Tensor::ones({4}, DType::BFloat16), Tensor::zeros({4}, DType::BFloat16), 1e-5),
                    Catch::Contains("a bfloat16 input takes float32 weight and bias, got bfloat16"));
  CHECK_THROWS_WITH(group_norm(x.to(DType::Float32), 2, Tensor::ones({4}, DType::Float64),
                               Tensor::zeros({4}, DType::Float64), 1e-5),
                    Catch::Contains("a float32 input takes float32 weight and bias, got float64"));
}

TEST_CASE("cuda: GroupNorm on bfloat16 activations matches the CPU on every kernel path", "[cuda][gpu][bfloat16]") {
  FM_REQUIRE_GPU();
  // Shapes for each path of kernels/cuda/group_norm.cu (Auto's choice, with the emulator's 132 SMs):
  // the cached kernels with scalar (HW = 25) and vector accesses (HW = 64; 8 bytes of bfloat16 each);
  // one group of 14,400 (HW = 3,600) or 14,884 (HW = 3,721, scalar) elements: cached forward, but a
  // backward cache too large, so the streaming kernels, one block a group; and one group of 36,864
  // (vector) or 36,100 (scalar) elements, split across blocks by the streaming kernels both ways.
  // The device adds up in float in another order than the CPU: y and dx agree with the CPU's
  // bfloat16 within a bfloat16 step or two of their scale, dγ and dβ (float32) to float rounding.
  Generator gen(18);
  for (bool fused : {false, true})
    for (auto [shape, groups] :
         {std::pair<Shape, int>{{2, 8, 5, 5}, 2}, std::pair<Shape, int>{{2, 8, 8, 8}, 4},
          std::pair<Shape, int>{{1, 4, 60, 60}, 1}, std::pair<Shape, int>{{1, 4, 61, 61}, 1},
          std::pair<Shape, int>{{1, 4, 96, 96}, 1}, std::pair<Shape, int>{{1, 4, 95, 95}, 1}}) {
      INFO("fused " << fused << ", shape " << shape_str(shape));
      Tensor x = random_bf16(shape, 19), dy = random_bf16(shape, 20);
      Tensor w = rand_uniform({shape[1]}, gen, 0.5, 1.5), b = rand_uniform({shape[1]}, gen, -0.5, 0.5);
      auto run = [&](Device device) {
        Tensor xd = x.to(device).set_requires_grad(true);
        Tensor wd = w.to(device).set_requires_grad(true), bd = b.to(device).set_requires_grad(true);
        Tensor y = fused ? group_norm_silu(xd, groups, wd, bd, 1e-5) : group_norm(xd, groups, wd, bd, 1e-5);
        sum(mul(y, dy.to(device))).backward();
        return std::vector<Tensor>{y.detach(), xd.grad(), wd.grad(), bd.grad()};
      };
      const std::vector<Tensor> gpu = run(Device::CUDA), cpu = run(Device::CPU);
      for (int k : {0, 1}) require_close_to_scale(gpu[k], cpu[k], std::ldexp(1.0, -8), std::ldexp(1.0, -7));
      for (int k : {2, 3}) {
        const std::vector<double> got = gpu[k].to_vector(), want = cpu[k].to_vector();
        FM_REQUIRE_CLOSE(got.data(), want.data(), got.size(), 1e-3, 1e-4);
      }
    }
  // The streaming forward's main path (one block a group), which Auto gives only to groups too large
  // to cache: named directly on small shapes, it agrees with the cached one within a step, with and
  // without the SiLU, with vector (HW = 64) and scalar (HW = 25) accesses. (A direct kernel call: a
  // build without CUDA has no such function to link.)
#ifdef FM_WITH_CUDA
  for (const int side : {8, 5})
    for (const bool fused : {true, false}) {
      INFO("streaming forward, HW " << side * side << (fused ? ", with SiLU" : ""));
      Tensor x = random_bf16({2, 8, side, side}, 37).to(Device::CUDA);
      Tensor w = rand_uniform({8}, gen, 0.5, 1.5).to(Device::CUDA), b = rand_uniform({8}, gen, -0.5, 0.5).to(Device::CUDA);
      Tensor y_streaming = Tensor::empty(x.shape(), DType::BFloat16, Device::CUDA), y_cached = y_streaming.clone();
      Tensor mean = Tensor::empty({2, 4}, DType::Float32, Device::CUDA), rstd = mean.clone();
      for (auto [kernel, y] : {std::pair{kernels::GroupNormKernel::Streaming, y_streaming},
                               std::pair{kernels::GroupNormKernel::Cached, y_cached}}) {
        auto* forward = fused ? static_cast<void (*)(const bf16*, const float*, const float*, bf16*, float*, float*,
                                                     int, int, int, int, float, kernels::GroupNormKernel)>(
                                    kernels::group_norm_silu_forward_cuda)
                              : static_cast<void (*)(const bf16*, const float*, const float*, bf16*, float*, float*,
                                                     int, int, int, int, float, kernels::GroupNormKernel)>(
                                    kernels::group_norm_forward_cuda);
        forward(x.data<bf16>(), w.data<float>(), b.data<float>(), y.data<bf16>(), mean.data<float>(),
                rstd.data<float>(), 2, 8, side * side, 4, 1e-5f, kernel);
      }
      const std::vector<double> streaming = y_streaming.to_vector(), cached = y_cached.to_vector();
      FM_REQUIRE_CLOSE(streaming.data(), cached.data(), streaming.size(), 1e-6, std::ldexp(1.0, -7));
    }
#endif
}

namespace {

// One convolution (conv2d or conv_transpose2d) with its gradients, for the bfloat16 cases below.
struct ConvCase {
  const char* name;
  bool transposed;
  Shape x_shape;
  int out_channels, kernel, stride, padding;
  bool bias = true;
};

const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {"3x3 conv 8->16 on 6x6", false, {2, 8, 6, 6}, 16, 3, 1, 1},
      {"4x4 stride-2 conv 6->8 on 9x9 (odd plane)", false, {2, 6, 9, 9}, 8, 4, 2, 1},
      {"3x3 conv 1->32 (a one-channel stem)", false, {2, 1, 8, 8}, 32, 3, 1, 1},
      {"3x3 conv 16->1 (a one-channel head)", false, {2, 16, 5, 5}, 1, 3, 1, 1},
      {"3x3 conv 64->8 on 3x3 (a short output: split over K)", false, {2, 64, 3, 3}, 8, 3, 1, 1},
      {"4x4 stride-2 transposed conv 8->6 on 5x5", true, {2, 8, 5, 5}, 6, 4, 2, 1},
      {"4x4 stride-2 transposed conv 2->1 (one channel out)", true, {2, 2, 5, 5}, 1, 4, 2, 1},
      {"3x3 conv 4->8 without a bias", false, {2, 4, 6, 6}, 8, 3, 1, 1, false},
      // The GPU's other tile widths (kernels/cuda/conv2d_implicit_gemm.cu): 64 columns for 33..64
      // channels; 128 for more, where they make a tile per SM (132), hence batch 11 on 28x28.
      {"3x3 conv 8->40 (64-column tiles)", false, {2, 8, 6, 6}, 40, 3, 1, 1},
      {"1x1 conv 3->130, batch 11 on 28x28 (128-column forward and weight-gradient tiles)", false, {11, 3, 28, 28}, 130, 1, 1, 0},
      {"1x1 conv 130->3, batch 11 on 28x28 (128-column input-gradient tiles)", false, {11, 130, 28, 28}, 3, 1, 1, 0},
  };
  return cases;
}

struct ConvResult {
  Tensor y, dx, dw, db;
};

// y = conv(x, w, b) and the gradients of Σ y·dy, on x's device; w and b float32.
ConvResult run_conv(const ConvCase& c, const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, const Tensor& dy) {
  Tensor x = x_in.detach().set_requires_grad(true), w = w_in.detach().set_requires_grad(true);
  Tensor b = c.bias ? b_in.detach().set_requires_grad(true) : Tensor();
  Tensor y = c.transposed ? conv_transpose2d(x, w, b, c.stride, c.padding) : conv2d(x, w, b, c.stride, c.padding);
  sum(mul(y, dy.to(y.device()).to(y.dtype()))).backward();
  // Without a bias, db stands in as zeros of its size (so the comparisons below stay uniform).
  return {y.detach(), x.grad(), w.grad(), c.bias ? b.grad() : Tensor::zeros({c.out_channels})};
}

Shape conv_weight_shape(const ConvCase& c) {
  return c.transposed ? Shape{c.x_shape[1], c.out_channels, c.kernel, c.kernel}
                      : Shape{c.out_channels, c.x_shape[1], c.kernel, c.kernel};
}

Shape conv_output_shape(const ConvCase& c) {
  const std::int64_t h = c.x_shape[2];
  const std::int64_t out = c.transposed ? (h - 1) * c.stride - 2 * c.padding + c.kernel
                                        : (h + 2 * c.padding - c.kernel) / c.stride + 1;
  return {c.x_shape[0], c.out_channels, out, out};
}

}  // namespace

TEST_CASE("convolutions on bfloat16 activations equal the float32 convolutions rounded once", "[bfloat16]") {
  // The CPU's bfloat16 convolutions widen x and dy exactly, run the float32 path and round y and dx
  // once; the weight and bias gradients (float32) come from the same float path.
  Generator gen(21);
  for (const ConvCase& c : conv_cases()) {
    INFO(c.name);
    Tensor x = random_bf16(c.x_shape, 22), dy = random_bf16(conv_output_shape(c), 23);
    Tensor w = rand_uniform(conv_weight_shape(c), gen, -0.3, 0.3), b = rand_uniform({c.out_channels}, gen, -0.5, 0.5);
    const ConvResult got = run_conv(c, x, w, b, dy);
    const ConvResult want = run_conv(c, x.to(DType::Float32), w, b, dy.to(DType::Float32));
    CHECK(got.y.dtype() == DType::BFloat16);
    CHECK(got.dx.dtype() == DType::BFloat16);
    CHECK(got.dw.dtype() == DType::Float32);
    CHECK(bits_of_tensor(got.y) == bits_of_tensor(want.y.to(DType::BFloat16)));
    CHECK(bits_of_tensor(got.dx) == bits_of_tensor(want.dx.to(DType::BFloat16)));
    CHECK(got.dw.to_vector() == want.dw.to_vector());
    CHECK(got.db.to_vector() == want.db.to_vector());
  }
  Tensor x = random_bf16({1, 2, 4, 4}, 24);
  CHECK_THROWS_WITH(conv2d(x, Tensor::zeros({3, 2, 3, 3}, DType::BFloat16), Tensor(), 1, 1),
                    Catch::Contains("a bfloat16 input takes a float32 weight, got bfloat16"));
}

TEST_CASE("cuda: convolutions on bfloat16 activations match the CPU on the bfloat16 tensor cores",
          "[cuda][gpu][bfloat16]") {
  FM_REQUIRE_GPU();
  // On CUDA, bfloat16 activations multiply on the bfloat16 tensor cores: the weights are rounded to
  // bfloat16 as they are staged. So the reference is the CPU's bfloat16 convolution with the weights
  // rounded the same way: what is left is the order of float additions (and, for y and dx, the one
  // rounding to bfloat16 it can move by a step) — within 2^-7 of each element and 2^-12 of the
  // output's scale for y and dx, and within float rounding for the weight and bias gradients (their
  // inputs, x and dy, are bfloat16 already, so the tensor cores multiply them exactly).
  Generator gen(25);
  for (const ConvCase& c : conv_cases()) {
    INFO(c.name);
    Tensor x = random_bf16(c.x_shape, 26), dy = random_bf16(conv_output_shape(c), 27);
    Tensor w = rand_uniform(conv_weight_shape(c), gen, -0.3, 0.3), b = rand_uniform({c.out_channels}, gen, -0.5, 0.5);
    const Tensor w_rounded = w.to(DType::BFloat16).to(DType::Float32);
    const ConvResult gpu = run_conv(c, x.to(Device::CUDA), w.to(Device::CUDA), b.to(Device::CUDA), dy);
    const ConvResult cpu = run_conv(c, x, w_rounded, b, dy);
    CHECK(gpu.y.dtype() == DType::BFloat16);
    // atol: the float-order noise of K-term sums, far below one bfloat16 step of the output's scale;
    // rtol: the one rounding of each element (at most 2^-8), which the noise can move by a step.
    require_close_to_scale(gpu.y, cpu.y, std::ldexp(1.0, -12), std::ldexp(1.0, -7));
    require_close_to_scale(gpu.dx, cpu.dx, std::ldexp(1.0, -12), std::ldexp(1.0, -7));
    require_close_to_scale(gpu.dw, cpu.dw, 1e-5, 1e-4);
    require_close_to_scale(gpu.db, cpu.db, 1e-5, 1e-4);
  }
  // The library kernels (cuDNN) take float32 tensors here: bfloat16 is refused by name.
  const KernelImpl before = kernel_impl();
  set_kernel_impl(KernelImpl::Library);
  Tensor x = random_bf16({1, 2, 4, 4}, 38).to(Device::CUDA), w = Tensor::zeros({3, 2, 3, 3}, DType::Float32, Device::CUDA);
  CHECK_THROWS_WITH(conv2d(x, w, Tensor(), 1, 1), Catch::Contains("conv2d: the library kernels (cuDNN) take float32 tensors"));
  set_kernel_impl(before);
}

TEST_CASE("Linear layers and products on bfloat16 activations equal the float32 ones rounded once", "[bfloat16]") {
  // bfloat16 x · float32 weights -> bfloat16 y; the bias enters as y's first value, so rounded to
  // bfloat16 first. The CPU widens every operand, runs the float GEMM and rounds once: so y and dx are
  // the float32 layer's (with that bias) rounded, and dweight, dbias (float32) are the float32 layer's.
  Generator gen(28);
  for (Shape x_shape : {Shape{5, 7}, Shape{2, 3, 7}}) {
    INFO("x " << shape_str(x_shape));
    Tensor x = random_bf16(x_shape, 29).set_requires_grad(true);
    Tensor w = rand_uniform({6, 7}, gen, -0.5, 0.5).set_requires_grad(true);
    Tensor b = rand_uniform({6}, gen, -0.5, 0.5).set_requires_grad(true);
    Shape y_shape = x_shape;
    y_shape.back() = 6;
    Tensor dy = random_bf16(y_shape, 30);
    Tensor y = linear(x, w, b);
    CHECK(y.dtype() == DType::BFloat16);
    sum(mul(y, dy)).backward();
    Tensor xf = x.detach().to(DType::Float32).set_requires_grad(true);
    Tensor wf = w.detach().clone().set_requires_grad(true);
    Tensor bf = b.detach().to(DType::BFloat16).to(DType::Float32).set_requires_grad(true);
    Tensor yf = linear(xf, wf, bf);
    sum(mul(yf, dy.to(DType::Float32))).backward();
    CHECK(bits_of_tensor(y) == bits_of_tensor(yf.to(DType::BFloat16)));
    CHECK(x.grad().dtype() == DType::BFloat16);
    CHECK(bits_of_tensor(x.grad()) == bits_of_tensor(xf.grad().to(DType::BFloat16)));
    CHECK(w.grad().dtype() == DType::Float32);
    CHECK(w.grad().to_vector() == wf.grad().to_vector());
    CHECK(b.grad().dtype() == DType::Float32);
    CHECK(b.grad().to_vector() == bf.grad().to_vector());
  }
  // a product of two bfloat16 tensors is bfloat16, its gradients too
  Tensor p = random_bf16({4, 5}, 31).set_requires_grad(true), q = random_bf16({5, 3}, 32).set_requires_grad(true);
  Tensor pq = matmul(p, q);
  CHECK(pq.dtype() == DType::BFloat16);
  CHECK(bits_of_tensor(pq) == bits_of_tensor(matmul(p.to(DType::Float32), q.to(DType::Float32)).to(DType::BFloat16)));
  sum(pq).backward();
  CHECK(p.grad().dtype() == DType::BFloat16);
  CHECK(q.grad().dtype() == DType::BFloat16);
  // the combinations without a kernel say which ones exist
  CHECK_THROWS_WITH(matmul(Tensor::ones({2, 2}), random_bf16({2, 2}, 33)),
                    Catch::Contains("float32 · bfloat16 -> float32 has no kernel"));
}

TEST_CASE("cuda: Linear layers on bfloat16 activations match the CPU on the bfloat16 tensor cores",
          "[cuda][gpu][bfloat16]") {
  FM_REQUIRE_GPU();
  // On CUDA the product runs on the bfloat16 tensor cores: the float32 weight is rounded to bfloat16
  // as it is staged. The reference is the CPU's layer with the weight rounded the same way; what is
  // left is the order of float additions (and the one rounding of y and dx it can move by a step).
  Generator gen(34);
  Tensor x = random_bf16({70, 40}, 35), dy = random_bf16({70, 24}, 36);  // more than one 64x64 tile
  Tensor w = rand_uniform({24, 40}, gen, -0.5, 0.5), b = rand_uniform({24}, gen, -0.5, 0.5);
  auto run = [&](Device device, const Tensor& weight) {
    Tensor xd = x.to(device).set_requires_grad(true), wd = weight.to(device).set_requires_grad(true),
           bd = b.to(device).set_requires_grad(true);
    Tensor y = linear(xd, wd, bd);
    sum(mul(y, dy.to(device))).backward();
    return std::vector<Tensor>{y.detach(), xd.grad(), wd.grad(), bd.grad()};
  };
  const std::vector<Tensor> gpu = run(Device::CUDA, w), cpu = run(Device::CPU, w.to(DType::BFloat16).to(DType::Float32));
  // y, dx: 2^-12 of the scale (float-order noise) and 2^-7 of each element (its one rounding, moved by a
  // step at most); the gradients of the float32 weight and bias: float rounding.
  const double tolerances[4][2] = {{std::ldexp(1.0, -12), std::ldexp(1.0, -7)},
                                   {std::ldexp(1.0, -12), std::ldexp(1.0, -7)},
                                   {1e-5, 1e-4},
                                   {1e-5, 1e-4}};
  for (int k = 0; k < 4; ++k) {
    INFO("output " << k << " (y, dx, dweight, dbias)");
    CHECK(gpu[std::size_t(k)].dtype() == cpu[std::size_t(k)].dtype());
    require_close_to_scale(gpu[std::size_t(k)], cpu[std::size_t(k)], tolerances[k][0], tolerances[k][1]);
  }
  {
    // A product of two bfloat16 tensors (both operands bfloat16 already, the result bfloat16): the
    // tensor cores multiply exactly, so only the order of float additions and y's rounding differ.
    INFO("bfloat16 · bfloat16 product");
    Tensor p = random_bf16({70, 40}, 41), q = random_bf16({40, 24}, 42);
    const Tensor on_gpu = matmul(p.to(Device::CUDA), q.to(Device::CUDA)), on_cpu = matmul(p, q);
    CHECK(on_gpu.dtype() == DType::BFloat16);
    require_close_to_scale(on_gpu, on_cpu, std::ldexp(1.0, -12), std::ldexp(1.0, -7));
  }
  // The library products (cuBLAS) take float32 tensors here: bfloat16 is refused by name.
  const KernelImpl before = kernel_impl();
  set_kernel_impl(KernelImpl::Library);
  CHECK_THROWS_WITH(linear(x.to(Device::CUDA), w.to(Device::CUDA), b.to(Device::CUDA)),
                    Catch::Contains("matmul: the library kernels (cuBLAS) take float32 tensors"));
  set_kernel_impl(before);
}
