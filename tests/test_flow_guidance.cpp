// tests/test_flow_guidance.cpp — classifier-free guidance (flow/guidance.h) against a closed-form fake
// conditional model: the formula, w = 0 (exactly the conditional output, one forward without the null
// branch), one batched forward equal to two separate ones, the parameterisation identity (combine then
// convert = convert then combine, for x1- and x0-predicting models), and bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <memory>

#include "core/error.h"
#include "core/ops.h"
#include "core/random.h"
#include "flow/guidance.h"
#include "flow/path.h"
#include "tensor_compare.h"

using namespace fm;
using namespace fm::flow;
using fm::test::max_abs_diff;

namespace {

constexpr int kClasses = 3;

// Class centre c_y = (y + 1, −2(y + 1)) for a real class; the null class's centre is (0, 0).
Tensor centres(const std::vector<std::int32_t>& labels, DType dtype) {
  std::vector<double> values;
  for (std::int32_t y : labels) {
    const double c = y == kClasses ? 0.0 : double(y + 1);
    values.push_back(c);
    values.push_back(-2.0 * c);
  }
  return Tensor::from_vector(values, {std::int64_t(labels.size()), 2}, dtype);
}

// A closed-form conditional network p(x, t, y) = (c_y − x)·(1 + t) + 0.25·x, row by row, that counts
// its calls and remembers the last batch size and labels.
struct FakeConditionalModel {
  int calls = 0;
  std::int64_t last_batch = 0;
  std::vector<std::int32_t> last_labels;
  ConditionalModelFn fn() {
    return [this](const Tensor& x, const Tensor& t, const RowIndex& index) {
      const std::vector<std::int32_t> labels = index.to_vector();
      ++calls;
      last_batch = x.size(0);
      last_labels = labels;
      const Tensor time = t.numel() == 1 ? t.reshape({1, 1}) : t.reshape({t.size(0), 1});
      return (centres(labels, x.dtype()) - x) * (time + 1.0) + x * 0.25;
    };
  }
  // One direct call with host labels.
  Tensor run(const Tensor& x, const Tensor& t, const std::vector<std::int32_t>& labels) {
    return fn()(x, t, RowIndex(labels, kClasses + 1, Device::CPU));
  }
};

Tensor random_points(std::int64_t n, std::uint64_t seed) {
  Generator gen(seed);
  return randn({n, 2}, gen, DType::Float64);
}

}  // namespace

TEST_CASE("guidance: the guided prediction is (1 + w) times the conditional minus w times the null one", "[flow][guidance]") {
  FakeConditionalModel fake;
  const std::vector<std::int32_t> labels{0, 2, 1, 1, kClasses};
  const Tensor x = random_points(5, 1);
  const Tensor t = Tensor::from_vector({0.1, 0.4, 0.7, 0.0, 0.95}, {5}, DType::Float64);
  for (double w : {0.5, 1.0, 4.0, -1.0}) {
    ModelFn guided = classifier_free_guidance(fake.fn(), labels, w, kClasses);
    const Tensor got = guided(x, t);
    // Closed form: p_y − p_∅ = (c_y − c_∅)(1 + t) = c_y (1 + t), so p_w = p_y + w·c_y·(1 + t).
    const std::vector<double> xs = x.to_vector(), ts = t.to_vector(), g = got.to_vector();
    for (int i = 0; i < 5; ++i) {
      const double c = labels[i] == kClasses ? 0.0 : double(labels[i] + 1);
      for (int d = 0; d < 2; ++d) {
        const double centre = d == 0 ? c : -2.0 * c;
        const double conditional = (centre - xs[2 * i + d]) * (1 + ts[i]) + 0.25 * xs[2 * i + d];
        const double expected = conditional + w * centre * (1 + ts[i]);
        // float64, a few operations on values of order 10: rounding stays below 1e-13.
        REQUIRE(std::abs(g[2 * i + d] - expected) <= 1e-13 * (1 + std::abs(expected)));
      }
    }
  }
  // The null class's sample is unconditional whatever w (both branches agree for it).
}

TEST_CASE("guidance: w = 0 is exactly the conditional output from one forward without the null branch", "[flow][guidance]") {
  FakeConditionalModel fake;
  const std::vector<std::int32_t> labels{2, 0, 1, 2};
  const Tensor x = random_points(4, 2);
  const Tensor t = Tensor::full({4}, 0.3, DType::Float64);
  const Tensor got = classifier_free_guidance(fake.fn(), labels, 0.0, kClasses)(x, t);
  CHECK(fake.calls == 1);
  CHECK(fake.last_batch == 4);
  CHECK(fake.last_labels == labels);
  FakeConditionalModel direct;
  REQUIRE(max_abs_diff(got, direct.run(x, t, labels)) == 0.0);
}

TEST_CASE("guidance: one batched forward on [x x] with labels [y null] equals two separate forwards", "[flow][guidance]") {
  FakeConditionalModel fake;
  const std::vector<std::int32_t> labels{1, 0, 2};
  const Tensor x = random_points(3, 3);
  const Tensor t = Tensor::from_vector({0.2, 0.5, 0.9}, {3}, DType::Float64);
  const double w = 2.0;
  const Tensor got = classifier_free_guidance(fake.fn(), labels, w, kClasses)(x, t);
  CHECK(fake.calls == 1);
  CHECK(fake.last_batch == 6);
  CHECK(fake.last_labels == std::vector<std::int32_t>{1, 0, 2, kClasses, kClasses, kClasses});

  FakeConditionalModel separate;
  const Tensor conditional = separate.run(x, t, labels);
  const Tensor unconditional = separate.run(x, t, {kClasses, kClasses, kClasses});
  // The fake model works row by row, so the stacked batch gives bitwise the same rows.
  REQUIRE(max_abs_diff(got, conditional * (1.0 + w) - unconditional * w) == 0.0);

  // A one-element t shared by the batch goes through unchanged.
  FakeConditionalModel shared;
  const Tensor one_time = Tensor::full({1}, 0.5, DType::Float64);
  const Tensor got_shared = classifier_free_guidance(shared.fn(), labels, w, kClasses)(x, one_time);
  const Tensor per_sample = classifier_free_guidance(separate.fn(), labels, w, kClasses)(x, Tensor::full({3}, 0.5, DType::Float64));
  REQUIRE(max_abs_diff(got_shared, per_sample) == 0.0);
}

TEST_CASE("guidance: for x1 and x0 predictions combining then converting equals converting then combining", "[flow][guidance]") {
  const std::vector<std::int32_t> labels{0, 1, 2, 1};
  const Tensor x = random_points(4, 4);
  const double w = 1.5;
  for (const char* scheduler : {"condot", "cosine"}) {
    auto path = make_path(scheduler);
    for (Parameterization kind : {Parameterization::DataPrediction, Parameterization::NoisePrediction}) {
      for (double time : {0.05, 0.5, 0.9}) {
        INFO(scheduler << " " << parameterization_name(kind) << " t = " << time);
        FakeConditionalModel fake;
        VelocityField field = guided_velocity_field(fake.fn(), labels, w, kClasses, kind, path);
        const Tensor combined_then_converted = field(x, time);
        const Tensor t = Tensor::full({4}, time, DType::Float64);
        const Tensor v_y = path->convert(fake.run(x, t, labels), kind, Parameterization::Velocity, x, time);
        const Tensor v_null =
            path->convert(fake.run(x, t, std::vector<std::int32_t>(4, kClasses)), kind, Parameterization::Velocity, x, time);
        const Tensor converted_then_combined = v_y * (1.0 + w) - v_null * w;
        // Equal up to rounding: the conversion coefficients reach 1/σ_t or 1/α_t (≤ 20 here) on values
        // of order 10, in float64 (eps 2.2e-16): a bound of 1e-11 leaves a wide margin over rounding
        // and is many orders below any real difference (a wrong branch changes values by O(1)).
        REQUIRE(max_abs_diff(combined_then_converted, converted_then_combined) <= 1e-11);
      }
    }
  }
}

TEST_CASE("guidance: bad input is a clear error", "[flow][guidance]") {
  FakeConditionalModel fake;
  const Tensor x = random_points(3, 5);
  const Tensor t = Tensor::full({3}, 0.5, DType::Float64);
  REQUIRE_THROWS_AS(classifier_free_guidance(fake.fn(), {0, -1, 2}, 1.0, kClasses), ValueError);
  REQUIRE_THROWS_WITH(classifier_free_guidance(fake.fn(), {0, kClasses + 1, 2}, 1.0, kClasses),
                      Catch::Contains("label 4 (sample 1) out of range"));
  REQUIRE_THROWS_AS(classifier_free_guidance(fake.fn(), {0, 1}, 1.0, 0), ValueError);
  REQUIRE_THROWS_AS(classifier_free_guidance(fake.fn(), {0, 1}, std::numeric_limits<double>::quiet_NaN(), kClasses),
                    ValueError);
  REQUIRE_THROWS_AS(classifier_free_guidance(ConditionalModelFn{}, {0}, 1.0, kClasses), ValueError);
  // Wrong number of labels for the batch, with and without the null branch.
  for (double w : {0.0, 1.0}) {
    ModelFn guided = classifier_free_guidance(fake.fn(), {0, 1}, w, kClasses);
    REQUIRE_THROWS_WITH(guided(x, t), Catch::Contains("2 labels were given, expected one label per sample"));
  }
  // A model that ignores the stacked batch (returns N rows instead of 2N).
  ConditionalModelFn broken = [](const Tensor& x_t, const Tensor&, const RowIndex&) {
    return x_t.narrow(0, 0, x_t.size(0) / 2);
  };
  REQUIRE_THROWS_AS(classifier_free_guidance(broken, {0, 1, 2}, 1.0, kClasses)(x, t), ShapeError);
}

TEST_CASE("guidance: labels refilled per batch give the fixed labels' predictions", "[flow][guidance]") {
  // One guided field over three batches, the host setting each batch's labels before it (as a chunked
  // sampler does): each batch's prediction is bitwise that of a field made for its labels alone.
  for (double w : {0.0, 2.0}) {
    FakeConditionalModel fake;
    auto labels = std::make_shared<GuidanceLabels>(w, kClasses, Device::CPU);
    const ModelFn guided = classifier_free_guidance(fake.fn(), labels);
    const std::vector<std::vector<std::int32_t>> batches{{0, 2, 1}, {kClasses, 1, 0}, {2}};
    const RowIndex* first_buffer = nullptr;
    for (std::size_t b = 0; b < batches.size(); ++b) {
      const std::int64_t n = std::int64_t(batches[b].size());
      const Tensor x = random_points(n, 20 + b);
      const Tensor t = Tensor::full({n}, 0.3 + 0.2 * double(b), DType::Float64);
      labels->set(batches[b]);
      REQUIRE(labels->batch() == n);
      // w = 0 holds y; otherwise [y; ∅].
      std::vector<std::int32_t> expected_buffer = batches[b];
      if (w != 0.0) expected_buffer.insert(expected_buffer.end(), batches[b].size(), kClasses);
      REQUIRE(labels->batch_labels().to_vector() == expected_buffer);
      // Batches of one size share one buffer (a recorded solve keeps reading it); another size has its own.
      if (b == 0) first_buffer = &labels->batch_labels();
      REQUIRE((&labels->batch_labels() == first_buffer) == (n == 3));
      const Tensor got = guided(x, t);
      const Tensor fixed = classifier_free_guidance(fake.fn(), batches[b], w, kClasses)(x, t);
      REQUIRE(got.to_vector() == fixed.to_vector());
    }
  }
  auto unset = std::make_shared<GuidanceLabels>(1.0, kClasses, Device::CPU);
  REQUIRE_THROWS_WITH(unset->batch_labels(), Catch::Contains("no labels were set"));
  REQUIRE_THROWS_WITH(unset->set({0, kClasses + 1}), Catch::Contains("label 4 (sample 1) out of range"));
  REQUIRE_THROWS_AS(GuidanceLabels(1.0, 0, Device::CPU), ValueError);
  FakeConditionalModel fake;
  REQUIRE_THROWS_AS(classifier_free_guidance(fake.fn(), std::shared_ptr<const GuidanceLabels>{}), ValueError);
}
