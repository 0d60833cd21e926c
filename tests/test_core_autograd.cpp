// tests/test_core_autograd.cpp — the autograd engine: gradients accumulate, shared subexpressions
// sum their paths, no-grad and detach cut the graph, misuse is refused; and every differentiable
// core op passes a float64 central-difference gradcheck.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops_nn.h"
#include "gradcheck.h"
#include "test_util.h"

using namespace fm;
using fm::test::random_tensor;
using Inputs = std::vector<Tensor>;

TEST_CASE("backward of x*x + x gives 2x + 1 and accumulates across calls", "[autograd]") {
  Tensor x = Tensor::from_vector({1.5, -2.0}, {2}, DType::Float64).set_requires_grad();
  sum(x * x + x).backward();
  REQUIRE(x.grad().to_vector() == std::vector<double>{4.0, -3.0});
  sum(x * x + x).backward();  // gradients add up until zero_grad
  REQUIRE(x.grad().to_vector() == std::vector<double>{8.0, -6.0});
  x.zero_grad();
  REQUIRE_FALSE(x.grad().defined());
}

TEST_CASE("anomaly mode names the first op whose output or gradient is not finite", "[autograd][anomaly]") {
  Tensor x = Tensor::from_vector({1.0, 0.0, 4.0}, {3}, DType::Float64).set_requires_grad();
  Tensor zero = Tensor::from_vector({0.0, 0.0, 0.0}, {3}, DType::Float64);
  SECTION("off: NaN/Inf pass through silently, as before") {
    Tensor y = div(x, zero);
    REQUIRE(std::isinf(y.to_vector()[0]));
  }
  SECTION("a forward output: the op is named with its shapes") {
    AnomalyModeGuard anomaly;
    Tensor y = mul(x, x);  // finite: no complaint
    REQUIRE_THROWS_WITH(div(y, zero), Catch::Contains("anomaly: forward of div produced 3 NaN/Inf values") &&
                                          Catch::Contains("[3]"));
  }
  SECTION("a bad value coming from outside the graph is blamed on its way in, not on the op") {
    AnomalyModeGuard anomaly;
    Tensor outside = Tensor::from_vector({1.0, std::nan(""), 1.0}, {3}, DType::Float64);
    REQUIRE_THROWS_WITH(mul(x, outside), Catch::Contains("received 1 NaN/Inf values in input 1"));
  }
  SECTION("a backward gradient: sqrt at 0 is finite forward, infinite backward") {
    AnomalyModeGuard anomaly;
    Tensor loss = sum(sqrt(x));
    REQUIRE_THROWS_AS(loss.backward(), NumericError);
    REQUIRE_THROWS_WITH(sum(sqrt(x)).backward(),
                        Catch::Contains("anomaly: backward of sqrt produced 1 NaN/Inf values in the gradient of input 0") &&
                            Catch::Contains("from a finite incoming gradient"));
  }
  SECTION("the guard restores the previous mode") {
    { AnomalyModeGuard anomaly; REQUIRE(anomaly_mode_enabled()); }
    REQUIRE_FALSE(anomaly_mode_enabled());
  }
}

TEST_CASE("a tensor used along several paths receives the sum of their gradients", "[autograd]") {
  Tensor x = Tensor::from_vector({2.0}, {1}, DType::Float64).set_requires_grad();
  Tensor y = exp(x);
  Tensor z = y * y + sin(y);  // dz/dx = (2y + cos y)·y
  sum(z).backward();
  double yv = std::exp(2.0);
  REQUIRE(x.grad().item() == Approx((2 * yv + std::cos(yv)) * yv).epsilon(1e-12));
}

TEST_CASE("no-grad scope and detach record nothing", "[autograd]") {
  Tensor x = Tensor::ones({3}, DType::Float64).set_requires_grad();
  {
    NoGradGuard guard;
    Tensor y = x * 2.0;
    REQUIRE_FALSE(y.requires_grad());
  }
  Tensor d = (x * 2.0).detach();
  REQUIRE_FALSE(d.requires_grad());
  REQUIRE_THROWS_WITH(sum(d).backward(), Catch::Contains("does not require grad"));
}

TEST_CASE("backward needs a scalar and non-leaves cannot toggle requires_grad", "[autograd]") {
  Tensor x = Tensor::ones({3}, DType::Float64).set_requires_grad();
  Tensor y = x * 3.0;
  REQUIRE_THROWS_WITH(y.backward(), Catch::Contains("needs a one-element (scalar) output"));
  REQUIRE_THROWS_WITH(y.set_requires_grad(false), Catch::Contains("only leaf tensors"));
  y.backward(Tensor::ones({3}, DType::Float64));  // an explicit output gradient works
  REQUIRE(x.grad().to_vector() == std::vector<double>{3, 3, 3});
}

TEST_CASE("deep chains do not overflow the stack", "[autograd]") {
  Tensor x = Tensor::from_vector({1.0}, {1}, DType::Float64).set_requires_grad();
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = y * 1.0001;
  sum(y).backward();
  REQUIRE(x.grad().item() == Approx(std::pow(1.0001, 20000)).epsilon(1e-9));
}

TEST_CASE("gradcheck: broadcasting arithmetic", "[gradcheck]") {
  Inputs in = {random_tensor({3, 4}, 1), random_tensor({4}, 2)};
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return add(x[0], x[1]); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return sub(x[0], x[1]); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return mul(x[0], x[1]); }, in);
  Inputs pos = {random_tensor({3, 1}, 3), random_tensor({2, 1, 4}, 4, 0.5, 2.0)};
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return div(x[0], x[1]); }, pos);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return affine(neg(x[0]), 2.5, -1.0); }, Inputs{in[0]});
}

TEST_CASE("gradcheck: pointwise functions", "[gradcheck]") {
  Inputs in = {random_tensor({2, 3, 5}, 5, -2.0, 2.0)};
  Inputs pos = {random_tensor({2, 3, 5}, 6, 0.2, 3.0)};
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return exp(x[0]); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return log(x[0]); }, pos);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return sqrt(x[0]); }, pos);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return pow_scalar(x[0], 1.7); }, pos);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return square(x[0]); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return tanh(x[0]); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return sin(x[0]); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return cos(x[0]); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return sigmoid(x[0]); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return silu(x[0]); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return gelu(x[0]); }, in);
  // ReLU is not differentiable at 0: nudge every input away from it (|x| >= 0.05 > eps).
  Tensor r = random_tensor({4, 4}, 9, -1.0, 1.0);
  std::vector<double> v = r.to_vector();
  for (double& e : v) e = e < 0 ? e - 0.05 : e + 0.05;
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return relu(x[0]); },
                       Inputs{Tensor::from_vector(v, {4, 4}, DType::Float64)});
}

TEST_CASE("gradcheck: reductions", "[gradcheck]") {
  Inputs in = {random_tensor({2, 3, 4}, 10)};
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return sum(x[0]); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return sum(x[0], {1}); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return sum(x[0], {0, 2}, true); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return mean(x[0], {-1}); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return mean(x[0]); }, in);
}

TEST_CASE("sum over leading dims (summed in place) equals the transposed copy's row sums bitwise",
          "[reduce]") {
  // The CPU sums the leading dims of a contiguous tensor down its columns (kernels/reduce.h,
  // sum_leading_cpu) instead of transposing first; same double accumulation, same order, same bits.
  Generator gen(33);
  Tensor x = rand_uniform({37, 5, 6}, gen, -1.0, 1.0);  // float32
  const std::vector<float> in_place = sum(x, {0, 1}).to_float_vector();
  const std::vector<float> transposed = sum(x.reshape({185, 6}).transpose(0, 1).contiguous(), {1}).to_float_vector();
  REQUIRE(in_place.size() == 6);
  FM_REQUIRE_CLOSE(in_place.data(), transposed.data(), 6, 0.0, 0.0);
  // Not leading (dims 0 and 2) and keepdim go the general way and agree with it too.
  REQUIRE(sum(x, {0}, true).shape() == Shape{1, 5, 6});
  const std::vector<float> middle_kept = sum(x, {0, 2}).to_float_vector();
  const std::vector<float> by_hand = sum(sum(x, {2}), {0}).to_float_vector();
  FM_REQUIRE_CLOSE(middle_kept.data(), by_hand.data(), 5, 1e-5, 1e-5);
}

TEST_CASE("gradcheck: matmul (2-D, batched, shared weight, transposed views)", "[gradcheck]") {
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return matmul(x[0], x[1]); },
                       Inputs{random_tensor({3, 4}, 11), random_tensor({4, 5}, 12)});
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return matmul(x[0], x[1]); },
                       Inputs{random_tensor({2, 3, 4}, 13), random_tensor({2, 4, 2}, 14)});
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return matmul(x[0], x[1]); },
                       Inputs{random_tensor({2, 3, 4}, 15), random_tensor({4, 2}, 16)});
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return matmul(x[0], x[1].transpose(0, 1)); },
                       Inputs{random_tensor({3, 4}, 17), random_tensor({5, 4}, 18)});
  FM_REQUIRE_GRADCHECK(
      [](const Inputs& x) { return matmul(x[0].transpose(-1, -2), x[1]); },
      Inputs{random_tensor({2, 4, 3}, 19), random_tensor({2, 4, 5}, 20)});
}

TEST_CASE("gradcheck: views, concat, copies, losses", "[gradcheck]") {
  Inputs in = {random_tensor({2, 3, 4}, 21)};
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return x[0].permute({2, 0, 1}) * 1.0; }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return x[0].narrow(2, 1, 2).reshape({12}); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return x[0].narrow(1, 1, 1).expand({2, 5, 4}); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return x[0].transpose(0, 2).contiguous(); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return x[0].unsqueeze(1).squeeze(1).flatten(); }, in);
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return concat({x[0], x[1], x[0]}, 1); },
                       Inputs{random_tensor({2, 3}, 22), random_tensor({2, 1}, 23)});
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return mse_loss(x[0], x[1]); },
                       Inputs{random_tensor({4, 2}, 24), random_tensor({4, 2}, 25)});
  FM_REQUIRE_GRADCHECK([](const Inputs& x) { return x[0].to(DType::Float32).to(DType::Float64); },
                       in, fm::test::GradcheckOptions{1e-3, 1e-4, 1e-3});  // float32 round trip: larger eps
}

TEST_CASE("cross_entropy: value by hand and gradcheck", "[gradcheck]") {
  // Row [0, ln 3]: softmax = [1/4, 3/4]; label 1 → loss −ln(3/4).
  Tensor z = Tensor::from_vector({0.0, std::log(3.0)}, {1, 2}, DType::Float64);
  REQUIRE(cross_entropy(z, {1}).item() == Approx(-std::log(0.75)).epsilon(1e-12));
  // Large logits must not overflow (the row max is subtracted first).
  Tensor big = Tensor::from_vector({1000.0, 0.0}, {1, 2}, DType::Float64);
  REQUIRE(cross_entropy(big, {0}).item() == Approx(0.0).margin(1e-12));
  std::vector<std::int32_t> labels = {0, 3, 2, 3, 1};
  FM_REQUIRE_GRADCHECK([&](const Inputs& x) { return cross_entropy(x[0], labels); },
                       Inputs{random_tensor({5, 4}, 26, -3.0, 3.0)});
  REQUIRE_THROWS_WITH(cross_entropy(random_tensor({2, 4}, 1), {0, 4}), Catch::Contains("outside [0, 4)"));
}

TEST_CASE("embedding: rows by hand, gradcheck, bad indices", "[gradcheck]") {
  // Table rows [1, 2], [3, 4], [5, 6]; indices 2, 0, 2 pick rows 2, 0, 2.
  Tensor table = Tensor::from_vector({1.0, 2.0, 3.0, 4.0, 5.0, 6.0}, {3, 2}, DType::Float64);
  Tensor out = embedding(table, {2, 0, 2});
  REQUIRE(out.shape() == Shape{3, 2});
  REQUIRE(out.to_vector() == std::vector<double>{5, 6, 1, 2, 5, 6});
  // The gradient scatter-adds: row 2 was picked twice, row 1 never.
  Tensor leaf = table.clone().set_requires_grad();
  sum(embedding(leaf, {2, 0, 2})).backward();
  REQUIRE(leaf.grad().to_vector() == std::vector<double>{1, 1, 0, 0, 2, 2});
  std::vector<std::int32_t> indices = {0, 3, 3, 1, 0, 2, 3};
  FM_REQUIRE_GRADCHECK([&](const Inputs& x) { return embedding(x[0], indices); }, Inputs{random_tensor({5, 3}, 27)});
  REQUIRE_THROWS_WITH(embedding(random_tensor({4, 2}, 1), {0, 4}), Catch::Contains("embedding: index 4 at position 1 outside the table's 4 rows"));
  REQUIRE_THROWS_WITH(embedding(random_tensor({4, 2}, 1), {-1}), Catch::Contains("index -1"));
  REQUIRE_THROWS_AS(embedding(random_tensor({4}, 1), {0}), ShapeError);
  // No indices: an empty [0, dim] result, and a zero gradient.
  REQUIRE(embedding(random_tensor({4, 2}, 1), {}).shape() == Shape{0, 2});
}
