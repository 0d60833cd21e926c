// tests/test_tools_guidance.cpp — guided sampling and `fmeval guidance` (tools/conditional_sampling.h,
// tools/guidance_eval.h) with a closed-form conditional model of 8 gaussians: the exact per-mode flow
// blended with the exact unconditional flow, as an under-trained conditional model that half ignores
// its label. Checks: the fraction of samples in the asked mode rises with the guidance weight; guided
// sampling at w = 0 with null labels is the unconditional sampler; the per-class grid's rows share their
// noise; bad requests and flags are refused.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <numbers>

#include "core/error.h"
#include "core/io/npy.h"
#include "core/ops.h"
#include "flow/datasets2d.h"
#include "nn/velocity_model.h"
#include "tools/checkpoint_model.h"
#include "tools/cli_args.h"
#include "tools/conditional_sampling.h"
#include "tools/config.h"
#include "tools/guidance_eval.h"
#include "tools/run_setup.h"
#include "tools/tool_flags.h"

#include "classifier_fixtures.h"
#include "fashion_mnist_fixtures.h"
#include "tensor_compare.h"
#include "test_util.h"

using namespace fm;
using fm::tools::Json;

namespace {

// The exact flow of CondOT from N(0, I) to 8 gaussians (radius 2, std s = 0.1), per mode and mixed.
// For one mode N(μ, s²I): x_t = t·μ + σ_t·ε with σ_t² = t²s² + (1 − t)², so the velocity is
// v_k(x, t) = μ + (σ̇_t/σ_t)(x − t·μ), σ̇_t·σ_t = t·s² − (1 − t) (no singularity at t = 1 for s > 0).
// The unconditional flow is the posterior mixture Σ_k π_k(x, t)·v_k with π_k ∝ N(x; t·μ_k, σ_t²I).
// The fake's conditional output is (1 − λ)·v_∅ + λ·v_y: guidance w gives v_∅ + λ(1 + w)(v_y − v_∅),
// the exact class flow at w = 1/λ − 1.
class BlendedEightGaussians final : public nn::VelocityModel {
 public:
  BlendedEightGaussians(double lambda, int classes = 8)
      : VelocityModel("BlendedEightGaussians"), lambda_(lambda), classes_(classes) {}
  Tensor forward(const Tensor& x, const Tensor& t) override {
    return forward(x, t, std::vector<std::int32_t>(std::size_t(x.size(0)), classes_));
  }
  Tensor forward(const Tensor& x, const Tensor& t, const std::vector<std::int32_t>& labels) override {
    const std::int64_t n = x.size(0);
    REQUIRE(std::int64_t(labels.size()) == n);
    const std::vector<double> xs = x.to_vector(), ts = t.to_vector();
    std::vector<double> out(std::size_t(2 * n));
    for (std::int64_t i = 0; i < n; ++i) {
      const double time = ts.size() == 1 ? ts[0] : ts[std::size_t(i)];
      const double sigma2 = time * time * kStd * kStd + (1 - time) * (1 - time);
      const double rate = (time * kStd * kStd - (1 - time)) / sigma2;  // σ̇/σ
      double mixed[2] = {0, 0}, own[2] = {0, 0}, weights[8], top = -1e300;
      double vk[8][2];
      for (int k = 0; k < 8; ++k) {
        const double mx = 2 * std::cos(2 * std::numbers::pi * k / 8), my = 2 * std::sin(2 * std::numbers::pi * k / 8);
        const double dx = xs[2 * i] - time * mx, dy = xs[2 * i + 1] - time * my;
        vk[k][0] = mx + rate * dx, vk[k][1] = my + rate * dy;
        weights[k] = -(dx * dx + dy * dy) / (2 * sigma2);
        top = std::max(top, weights[k]);
      }
      double total = 0;
      for (double& w : weights) total += (w = std::exp(w - top));
      for (int k = 0; k < 8; ++k) mixed[0] += weights[k] / total * vk[k][0], mixed[1] += weights[k] / total * vk[k][1];
      const std::int32_t y = labels[std::size_t(i)];
      REQUIRE((y >= 0 && y <= classes_));
      if (y == classes_) {
        own[0] = mixed[0], own[1] = mixed[1];
      } else {
        own[0] = (1 - lambda_) * mixed[0] + lambda_ * vk[y % 8][0];
        own[1] = (1 - lambda_) * mixed[1] + lambda_ * vk[y % 8][1];
      }
      out[std::size_t(2 * i)] = own[0], out[std::size_t(2 * i + 1)] = own[1];
    }
    ++forward_calls;
    return Tensor::from_vector(out, {n, 2}, x.dtype(), x.device());
  }
  int num_classes() const override { return classes_; }
  nlohmann::json config_json() const override { return {{"type", "fake-8gaussians"}}; }
  int forward_calls = 0;

 private:
  static constexpr double kStd = 0.1;
  double lambda_;
  int classes_;
};

tools::CheckpointModel fake_checkpoint(double lambda, int classes = 8) {
  tools::CheckpointModel loaded;
  loaded.config = tools::resolve_config({{"data", {{"name", "8gaussians"}}},
                                         {"sample", {{"solver", "euler"}, {"steps", 20}}}});
  loaded.model = std::make_unique<BlendedEightGaussians>(lambda, classes);
  return loaded;
}

}  // namespace

TEST_CASE("guidance eval: the fraction of samples in the asked mode rises with the guidance weight", "[tools][guidance]") {
  tools::CheckpointModel loaded = fake_checkpoint(0.3);
  tools::GuidanceEvalRequest request;
  request.weights = {0, 1, 2.3};
  request.n_per_class = 100;
  tools::GuidanceEvalResult result = tools::evaluate_guidance(loaded, request, nullptr);
  REQUIRE(result.rows.size() == 3 * 9);
  const double f0 = result.overall(0).hit_fraction, f1 = result.overall(1).hit_fraction, f2 = result.overall(2.3).hit_fraction;
  INFO(tools::guidance_table(result));
  // 800 samples per weight: a fraction's binomial standard error is at most 0.5/√800 ≈ 0.018, so a rise
  // of 0.05 is about three standard errors (and the same noise at every w makes the steps tighter still).
  CHECK(f1 > f0 + 0.05);
  CHECK(f2 > f1 + 0.05);
  // w = 2.3 is close to 1/λ − 1 = 2.33, the exact per-mode flow: modes 7.7 std apart from their
  // boundaries, so nearly every sample lands in its mode (20 Euler steps blur a little).
  CHECK(f2 > 0.95);
  // The sliced W2 to the asked class's data shrinks from w = 0 (samples spread over other modes) to
  // the exact class flow.
  CHECK(result.overall(2.3).distance < result.overall(0).distance);
  for (const tools::GuidanceRow& row : result.rows) CHECK(row.distance_floor > 0);
}

TEST_CASE("guidance eval: CSV and both trade-off pictures are written", "[tools][guidance]") {
  tools::CheckpointModel loaded = fake_checkpoint(1.0);
  tools::GuidanceEvalRequest request;
  request.weights = {0, 1};
  request.n_per_class = 20;
  tools::GuidanceEvalResult result = tools::evaluate_guidance(loaded, request, nullptr);
  // The exact class flow (λ = 1) puts nearly every sample into its mode already at w = 0.
  CHECK(result.overall(0).hit_fraction >= 0.95);
  fm::test::TempDir dir("fm_test_guidance");
  const auto files = tools::write_guidance_outputs(result, dir.file("g.csv"), dir.file("g.png"));
  REQUIRE(files.size() == 3);
  for (const std::string& f : files) CHECK(std::filesystem::file_size(f) > 100);
  CHECK(files[2] == dir.file("g_distance.png"));
  const Json record = result.to_json();
  CHECK(record["rows"].size() == 2 * 9);
  CHECK(record["hit"] == "mode fraction");
}

TEST_CASE("guided sampling: w = 0 with every label null is the unconditional sampler, bitwise", "[tools][guidance]") {
  BlendedEightGaussians model(0.3);
  auto solver = tools::build_solver({{"solver", "midpoint"}, {"steps", 8}, {"rtol", 1e-5}, {"atol", 1e-5}});
  Generator a(5), b(5);
  const tools::SampleResult plain = tools::generate_samples(model, *solver, {2}, 40, a, Device::CPU, 16);
  const tools::SampleResult guided =
      tools::generate_guided_samples(model, *solver, {2}, std::vector<std::int32_t>(40, 8), 0.0, b, Device::CPU, 16);
  REQUIRE(fm::test::max_abs_diff(plain.samples, guided.samples) == 0.0);
  CHECK(plain.nfe == guided.nfe);
}

TEST_CASE("guided sampling: the per-class grid repeats its noise on every row and labels are drawn from the seed", "[tools][guidance]") {
  Generator gen(3);
  const tools::ClassGrid grid = tools::class_grid_noise(4, 5, {2}, gen, Device::CPU);
  REQUIRE(grid.noise.size(0) == 20);
  REQUIRE(grid.labels.size() == 20);
  for (int k = 1; k < 4; ++k) {
    CHECK(fm::test::max_abs_diff(grid.noise.narrow(0, 5 * k, 5), grid.noise.narrow(0, 0, 5)) == 0.0);
    CHECK(grid.labels[std::size_t(5 * k)] == k);
  }
  // Guided samples of the grid: rows differ only by label, so with the exact class flow row k sits in mode k.
  BlendedEightGaussians model(1.0, 4);
  auto solver = tools::build_solver({{"solver", "euler"}, {"steps", 20}, {"rtol", 1e-5}, {"atol", 1e-5}});
  const tools::SampleResult result = tools::generate_guided_samples_from_noise(model, *solver, grid.noise, grid.labels, 0.0);
  const auto landed = flow::EightGaussiansDistribution().class_of(result.samples);
  for (std::size_t i = 0; i < landed.size(); ++i) CHECK(landed[i] == grid.labels[i]);

  const auto labels = tools::uniform_labels(1000, 8, 11);
  CHECK(labels == tools::uniform_labels(1000, 8, 11));
  std::vector<int> counts(8, 0);
  for (std::int32_t y : labels) {
    REQUIRE((y >= 0 && y < 8));
    counts[std::size_t(y)]++;
  }
  // 125 expected per class, binomial sd ≈ 10.5: every class within 5 sd.
  for (int c : counts) CHECK(std::abs(c - 125) < 53);
}

TEST_CASE("guidance eval: bad requests and flags are refused with a clear error", "[tools][guidance]") {
  {
    // An unconditional model.
    tools::CheckpointModel loaded = fake_checkpoint(0.5, 0);
    REQUIRE_THROWS_WITH(tools::evaluate_guidance(loaded, {}, nullptr),
                        Catch::Contains("needs a class-conditional model") && Catch::Contains("unconditional"));
  }
  tools::CheckpointModel loaded = fake_checkpoint(0.5);
  tools::GuidanceEvalRequest request;
  request.n_per_class = 10;
  request.weights = {};
  REQUIRE_THROWS_AS(tools::evaluate_guidance(loaded, request, nullptr), ConfigError);
  request.weights = {0, -1};
  REQUIRE_THROWS_WITH(tools::evaluate_guidance(loaded, request, nullptr), Catch::Contains("--weights-list: weight -1"));
  request.weights = {0};
  request.n_per_class = 1;
  REQUIRE_THROWS_AS(tools::evaluate_guidance(loaded, request, nullptr), ConfigError);
  // The flag parsing fmeval guidance uses.
  REQUIRE_THROWS_WITH(tools::parse_list<double>("--weights-list", "0,abc"), Catch::Contains("--weights-list"));
  const char* argv[] = {"guidance", "--checkpoint", "c.safetensors", "--guidance-weight", "2"};
  REQUIRE_THROWS_WITH(tools::CliArgs(5, const_cast<char**>(argv), tools::fmeval_guidance_flags().value_flags,
                                     tools::fmeval_guidance_flags().switch_flags),
                      Catch::Contains("--guidance-weight"));
  // Guided sampling refuses labels that do not match the noise, and unconditional models.
  BlendedEightGaussians model(0.5);
  auto solver = tools::build_solver({{"solver", "euler"}, {"steps", 2}, {"rtol", 1e-5}, {"atol", 1e-5}});
  REQUIRE_THROWS_AS(tools::generate_guided_samples_from_noise(model, *solver, Tensor::zeros({3, 2}), {0, 1}, 1.0), ShapeError);
  REQUIRE_THROWS_WITH(tools::generate_guided_samples_from_noise(model, *solver, Tensor::zeros({2, 2}), {0, 9}, 1.0),
                      Catch::Contains("label 9"));
  BlendedEightGaussians unconditional(0.5, 0);
  REQUIRE_THROWS_AS(tools::generate_guided_samples_from_noise(unconditional, *solver, Tensor::zeros({1, 2}), {0}, 1.0),
                    ConfigError);
}

namespace {

// The exact CondOT flow to point masses at K template images m_k (class means of real images): for one
// mass, v_k(x, t) = (m_k − x)/(1 − t); the unconditional flow weighs them by the posterior
// π_k ∝ exp(−|x − t·m_k|² / (2(1 − t)²)). Euler never evaluates t = 1, and its last step lands exactly
// on the field's target. As above, the conditional output is (1 − λ)·v_∅ + λ·v_y.
class BlendedTemplates final : public nn::VelocityModel {
 public:
  BlendedTemplates(std::vector<std::vector<double>> templates, double lambda)
      : VelocityModel("BlendedTemplates"), templates_(std::move(templates)), lambda_(lambda) {}
  Tensor forward(const Tensor& x, const Tensor& t) override {
    return forward(x, t, std::vector<std::int32_t>(std::size_t(x.size(0)), num_classes()));
  }
  Tensor forward(const Tensor& x, const Tensor& t, const std::vector<std::int32_t>& labels) override {
    const std::int64_t n = x.size(0), d = x.numel() / n;
    const std::vector<double> xs = x.to_vector(), ts = t.to_vector();
    std::vector<double> out(xs.size());
    const int classes = num_classes();
    for (std::int64_t i = 0; i < n; ++i) {
      const double time = ts.size() == 1 ? ts[0] : ts[std::size_t(i)];
      const double* xi = xs.data() + i * d;
      std::vector<double> logits(static_cast<std::size_t>(classes));
      double top = -1e300;
      for (int k = 0; k < classes; ++k) {
        double squared = 0;
        for (std::int64_t j = 0; j < d; ++j) {
          const double diff = xi[j] - time * templates_[std::size_t(k)][std::size_t(j)];
          squared += diff * diff;
        }
        logits[std::size_t(k)] = -squared / (2 * (1 - time) * (1 - time));
        top = std::max(top, logits[std::size_t(k)]);
      }
      double total = 0;
      for (double& l : logits) total += (l = std::exp(l - top));
      const std::int32_t y = labels[std::size_t(i)];
      for (std::int64_t j = 0; j < d; ++j) {
        double mixed = 0;
        for (int k = 0; k < classes; ++k) mixed += logits[std::size_t(k)] / total * templates_[std::size_t(k)][std::size_t(j)];
        const double target = y == classes ? mixed : (1 - lambda_) * mixed + lambda_ * templates_[std::size_t(y)][std::size_t(j)];
        out[std::size_t(i * d + j)] = (target - xi[j]) / (1 - time);
      }
    }
    return Tensor::from_vector(out, x.shape(), x.dtype(), x.device());
  }
  int num_classes() const override { return int(templates_.size()); }
  nlohmann::json config_json() const override { return {{"type", "fake-templates"}}; }

 private:
  std::vector<std::vector<double>> templates_;
  double lambda_;
};

}  // namespace

TEST_CASE("guidance eval on images: the classifier's accuracy against the asked class rises with w", "[tools][guidance][images]") {
  if (fm::test::fashion_mnist_missing()) return;
  fm::test::TempDir dir("fm_test_guidance_images");
  fm::test::write_quick_classifier(dir.file("classifier.safetensors"));
  // Templates: the mean of each class over 2000 train images.
  const tools::LabelledImages train = tools::load_fashion_mnist(tools::kFashionMnistDir, "train", 2000);
  std::vector<std::vector<double>> templates(10, std::vector<double>(784, 0.0));
  std::vector<int> counts(10, 0);
  const std::vector<double> pixels = train.images.to_vector();
  for (std::int64_t i = 0; i < train.count(); ++i) {
    const int y = train.labels[std::size_t(i)];
    counts[std::size_t(y)]++;
    for (int j = 0; j < 784; ++j) templates[std::size_t(y)][std::size_t(j)] += pixels[std::size_t(i * 784 + j)];
  }
  for (int k = 0; k < 10; ++k)
    for (double& v : templates[std::size_t(k)]) v /= counts[std::size_t(k)];

  tools::CheckpointModel loaded;
  loaded.config = tools::resolve_config({{"data", {{"name", "fashion_mnist"}}},
                                         {"sample", {{"solver", "euler"}, {"steps", 10}}}});
  const double lambda = 0.25;
  loaded.model = std::make_unique<BlendedTemplates>(templates, lambda);
  tools::GuidanceEvalRequest request;
  request.weights = {0, 1 / lambda - 1};
  request.n_per_class = 8;
  request.classifier = dir.file("classifier.safetensors");
  tools::GuidanceEvalResult result = tools::evaluate_guidance(loaded, request, nullptr);
  INFO(tools::guidance_table(result));
  REQUIRE(result.images);
  REQUIRE(result.rows.size() == 2 * 11);
  const tools::GuidanceRow& plain = result.overall(0), &guided = result.overall(3);
  // At w = 1/λ − 1 every sample is its class's mean image, which even a briefly trained classifier
  // mostly gets right; at w = 0 three quarters of each sample are whatever template the noise drifted to
  // (a random class), so the accuracy is far lower.
  CHECK(guided.hit_fraction >= 0.7);
  CHECK(guided.hit_fraction > plain.hit_fraction + 0.2);
  for (const tools::GuidanceRow& row : result.rows) {
    CHECK(std::isfinite(row.distance));
    CHECK(row.distance >= 0);
    CHECK(row.distance_floor > 0);
  }
}
