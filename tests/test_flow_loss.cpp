// tests/test_flow_loss.cpp — the conditional flow-matching loss (flow/loss.h): the documented draw
// order (t, then x0) reproduced by hand, per-sample losses and their mean, gradients against
// central differences, other paths and samplers, image-shaped batches, and the t-bin bookkeeping.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/ops.h"
#include "core/random.h"
#include "flow/loss.h"
#include "tensor_compare.h"

using namespace fm;
using fm::test::max_abs_diff;
using namespace fm::flow;

namespace {

Tensor data_batch(Shape shape = {6, 2}) {
  Generator gen(11);
  return randn(shape, gen, DType::Float64) * 0.5 + 2.0;
}

}  // namespace

TEST_CASE("the loss draws t then x0 and regresses on x1 - x0 under CondOT", "[flow][loss]") {
  Tensor x1 = data_batch();
  ModelFn zero = [](const Tensor& x, const Tensor&) { return Tensor::zeros(x.shape(), x.dtype()); };
  Generator gen(5);
  FlowMatchingLoss out = conditional_flow_matching_loss(zero, x1, CondOTPath(), UniformTimeSampler(), gen);
  // Replay the documented draws by hand.
  Generator replay(5);
  Tensor t = UniformTimeSampler().sample(6, replay, DType::Float64);
  Tensor x0 = randn({6, 2}, replay, DType::Float64);
  REQUIRE(out.t.to_vector() == t.to_vector());
  REQUIRE(out.x0.to_vector() == x0.to_vector());
  REQUIRE(gen.next_u64() == replay.next_u64());  // nothing else was drawn
  Tensor target = x1 - x0;
  REQUIRE(out.loss.item() == Approx(mean(square(target)).item()).epsilon(1e-14));
  REQUIRE(out.loss.dim() == 0);
  REQUIRE(out.per_sample_loss.shape() == Shape{6});
  REQUIRE(max_abs_diff(out.per_sample_loss, mean(square(target), {1})) < 1e-14);
  REQUIRE_FALSE(out.per_sample_loss.requires_grad());
}

TEST_CASE("the model sees x_t and t and a perfect conditional oracle scores zero", "[flow][loss]") {
  // With the drawn x0 known, the oracle (x_t, t) → (x1 − x_t)/(1 − t) is the conditional target.
  Tensor x1 = data_batch();
  Generator probe(8);
  Tensor expected_t = UniformTimeSampler().sample(6, probe, DType::Float64);
  Tensor expected_x0 = randn({6, 2}, probe, DType::Float64);
  ModelFn oracle = [&](const Tensor& x_t, const Tensor& t) {
    REQUIRE(t.to_vector() == expected_t.to_vector());
    Tensor expected_x_t = CondOTPath().sample(expected_x0, x1, expected_t).x_t;
    REQUIRE(max_abs_diff(x_t, expected_x_t) == 0.0);
    return CondOTPath().x1_to_velocity(x1, x_t, t);
  };
  Generator gen(8);
  FlowMatchingLoss out = conditional_flow_matching_loss(oracle, x1, CondOTPath(), UniformTimeSampler(), gen);
  REQUIRE(out.loss.item() < 1e-20);
}

TEST_CASE("loss gradients match central differences", "[flow][loss]") {
  Tensor x1 = data_batch();
  Tensor w = Tensor::from_vector({0.3, -0.2}, {2}, DType::Float64).set_requires_grad();
  Tensor b = Tensor::from_vector({0.1}, {1}, DType::Float64).set_requires_grad();
  // v = x_t ∘ w + b·t (per-sample t broadcast over the features).
  auto model_with = [&](const Tensor& wv, const Tensor& bv) -> ModelFn {
    return [wv, bv](const Tensor& x, const Tensor& t) { return x * wv + t.unsqueeze(1) * bv; };
  };
  auto loss_at = [&](const Tensor& wv, const Tensor& bv) {
    Generator gen(9);
    return conditional_flow_matching_loss(model_with(wv, bv), x1, *make_path("cosine"),
                                          LogitNormalTimeSampler(), gen).loss;
  };
  loss_at(w, b).backward();
  const double e = 1e-6;
  std::vector<double> wv = w.to_vector();
  for (int i = 0; i < 2; ++i) {
    std::vector<double> plus = wv, minus = wv;
    plus[std::size_t(i)] += e, minus[std::size_t(i)] -= e;
    const double numeric = (loss_at(Tensor::from_vector(plus, {2}, DType::Float64), b).item() -
                            loss_at(Tensor::from_vector(minus, {2}, DType::Float64), b).item()) / (2 * e);
    REQUIRE(w.grad().to_vector()[std::size_t(i)] == Approx(numeric).epsilon(1e-6).margin(1e-9));
  }
  Tensor b_plus = Tensor::from_vector({0.1 + e}, {1}, DType::Float64);
  Tensor b_minus = Tensor::from_vector({0.1 - e}, {1}, DType::Float64);
  const double numeric_b = (loss_at(w.detach(), b_plus).item() - loss_at(w.detach(), b_minus).item()) / (2 * e);
  REQUIRE(b.grad().item() == Approx(numeric_b).epsilon(1e-6).margin(1e-9));
}

TEST_CASE("image-shaped batches average per sample over C, H, W and follow dtype", "[flow][loss]") {
  Tensor x1 = data_batch({3, 1, 4, 4}).to(DType::Float32);
  ModelFn zero = [](const Tensor& x, const Tensor& t) {
    REQUIRE(t.shape() == Shape{x.size(0)});
    REQUIRE(t.dtype() == DType::Float32);
    return Tensor::zeros(x.shape(), x.dtype());
  };
  Generator gen(10);
  FlowMatchingLoss out = conditional_flow_matching_loss(zero, x1, *make_path("vp"),
                                                        WarpedUniformTimeSampler(), gen);
  REQUIRE(out.per_sample_loss.shape() == Shape{3});
  REQUIRE(out.t.dtype() == DType::Float32);
  REQUIRE(out.loss.dtype() == DType::Float32);
  REQUIRE(mean(out.per_sample_loss).item() == Approx(out.loss.item()).epsilon(1e-6));
  // A model with the wrong output shape is refused by name.
  ModelFn wrong = [](const Tensor& x, const Tensor&) { return x.flatten(1); };
  REQUIRE_THROWS_WITH(conditional_flow_matching_loss(wrong, x1, CondOTPath(), UniformTimeSampler(), gen),
                      Catch::Contains("the model returned [3, 16]"));
}

TEST_CASE("the loss is deterministic by seed", "[flow][loss]") {
  Tensor x1 = data_batch();
  ModelFn half = [](const Tensor& x, const Tensor&) { return x * 0.5; };
  Generator a(3), b(3);
  const double la = conditional_flow_matching_loss(half, x1, CondOTPath(), UniformTimeSampler(), a).loss.item();
  const double lb = conditional_flow_matching_loss(half, x1, CondOTPath(), UniformTimeSampler(), b).loss.item();
  REQUIRE(la == lb);
}

TEST_CASE("losses are binned into K equal t-bins", "[flow][loss]") {
  REQUIRE(LossByTimeBins::bin_of(0.0, 4) == 0);
  REQUIRE(LossByTimeBins::bin_of(0.2499, 4) == 0);
  REQUIRE(LossByTimeBins::bin_of(0.25, 4) == 1);
  REQUIRE(LossByTimeBins::bin_of(0.99, 4) == 3);
  REQUIRE(LossByTimeBins::bin_of(1.0, 4) == 3);  // t = 1 goes to the last bin
  LossByTimeBins bins(4);
  bins.add(Tensor::from_vector({1.0, 3.0, 10.0, 7.0}, {4}), Tensor::from_vector({0.1, 0.2, 0.6, 1.0}, {4}));
  bins.add(std::vector<double>{5.0}, std::vector<double>{0.05});
  std::vector<double> means = bins.means();
  REQUIRE(means[0] == Approx(3.0));  // (1 + 3 + 5) / 3
  REQUIRE(std::isnan(means[1]));     // no samples
  REQUIRE(means[2] == Approx(10.0));
  REQUIRE(means[3] == Approx(7.0));
  REQUIRE(bins.counts() == std::vector<std::int64_t>{3, 0, 1, 1});
  REQUIRE(bins.bin_start(1) == 0.25);
  REQUIRE(bins.bin_end(1) == 0.5);
  bins.reset();
  REQUIRE(bins.counts() == std::vector<std::int64_t>{0, 0, 0, 0});
  std::vector<double> one_shot = loss_by_time_bins(Tensor::from_vector({2.0, 4.0}, {2}),
                                                   Tensor::from_vector({0.7, 0.8}, {2}), 2);
  REQUIRE(std::isnan(one_shot[0]));
  REQUIRE(one_shot[1] == Approx(3.0));
  REQUIRE_THROWS_AS(LossByTimeBins(0), ValueError);
  REQUIRE_THROWS_AS(bins.add(std::vector<double>{1.0}, std::vector<double>{0.1, 0.2}), ShapeError);
}
