// tests/test_nn_mlp.cpp — the 2-D velocity MLP and the sinusoidal time embedding: config parsing,
// shapes, parameter counts, the embedding formula, that training reduces the loss, and that the same
// seed gives bitwise the same losses.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "nn/mlp.h"
#include "nn/optim.h"
#include "nn/time_embedding.h"

using namespace fm;
using namespace fm::nn;
using nlohmann::json;

TEST_CASE("sinusoidal_time_embedding is seed 002's [sin(t/10000^(i/half)), cos(...)]", "[nn][time]") {
  Tensor t = Tensor::from_vector({0.0, 0.5, 3.0}, {3}, DType::Float64);
  const int dim = 8, half = 4;
  Tensor emb = sinusoidal_time_embedding(t, dim);
  REQUIRE(emb.shape() == Shape{3, 8});
  std::vector<double> values = emb.to_vector();
  for (int n = 0; n < 3; ++n)
    for (int i = 0; i < half; ++i) {
      double angle = t.to_vector()[n] / std::pow(10000.0, double(i) / half);
      REQUIRE(values[n * dim + i] == Approx(std::sin(angle)).margin(1e-15));
      REQUIRE(values[n * dim + half + i] == Approx(std::cos(angle)).margin(1e-15));
    }
  // time_scale multiplies t first.
  std::vector<double> scaled = sinusoidal_time_embedding(t, dim, 10.0).to_vector();
  REQUIRE(scaled[1 * dim + 0] == Approx(std::sin(5.0)).margin(1e-15));
  REQUIRE_THROWS_AS(sinusoidal_time_embedding(t, 7), ValueError);
  REQUIRE_THROWS_WITH(sinusoidal_time_embedding(t.reshape({3, 1}), 8), Catch::Contains("expected [N]"));
}

TEST_CASE("MLPConfig reads JSON, rejects unknown keys and bad values by name", "[nn][mlp][config]") {
  MLPConfig defaults = MLPConfig::from_json(json::object());
  REQUIRE(defaults.hidden_width == 64);
  REQUIRE(defaults.hidden_layers == 3);
  REQUIRE(defaults.activation == "gelu");
  REQUIRE(defaults.time_input == "raw");  // seed 003's choice, and the better one on the moons (nn/mlp.h)
  MLPConfig parsed = MLPConfig::from_json(json::parse(
      R"({"type": "mlp", "hidden_width": 32, "hidden_layers": 2, "activation": "silu", "time_input": "raw"})"));
  REQUIRE(parsed.hidden_width == 32);
  REQUIRE(parsed.time_input == "raw");
  REQUIRE(MLPConfig::from_json(parsed.to_json()).to_json() == parsed.to_json());

  auto error_of = [](const char* text) {
    try {
      MLPConfig::from_json(json::parse(text));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  REQUIRE_THAT(error_of(R"({"widht": 3})"), Catch::StartsWith("model.widht: unknown key"));
  REQUIRE_THAT(error_of(R"({"hidden_width": -3})"),
               Catch::StartsWith("model.hidden_width: expected a positive integer, got -3"));
  REQUIRE_THAT(error_of(R"({"hidden_width": 2.5})"), Catch::StartsWith("model.hidden_width: expected a positive integer"));
  REQUIRE_THAT(error_of(R"({"activation": "swish"})"), Catch::StartsWith("model.activation: unknown activation 'swish'"));
  REQUIRE_THAT(error_of(R"({"time_input": "film"})"), Catch::StartsWith("model.time_input: expected \"raw\" or \"sinusoidal\""));
  REQUIRE_THAT(error_of(R"({"time_embedding_dim": 5})"), Catch::StartsWith("model.time_embedding_dim: expected a positive even integer"));
  REQUIRE_THAT(error_of(R"({"type": "unet"})"), Catch::StartsWith("model.type: expected \"mlp\""));
  REQUIRE_THAT(error_of(R"([1, 2])"), Catch::StartsWith("model: expected a JSON object"));
}

TEST_CASE("VelocityMLP has seed 003's shape and the hand-counted number of parameters", "[nn][mlp]") {
  Generator gen(1);
  MLPConfig raw;
  raw.time_input = "raw";
  VelocityMLP raw_model(raw, gen);
  // (2 + 1)·64 + 64, then two 64·64 + 64 layers, then 64·2 + 2.
  REQUIRE(raw_model.parameter_count() == (3 * 64 + 64) + 2 * (64 * 64 + 64) + (64 * 2 + 2));
  MLPConfig sinusoidal;
  sinusoidal.time_input = "sinusoidal";
  sinusoidal.time_embedding_dim = 16;
  VelocityMLP sin_model(sinusoidal, gen);
  REQUIRE(sin_model.parameter_count() == (18 * 64 + 64) + 2 * (64 * 64 + 64) + (64 * 2 + 2));
  REQUIRE(sin_model.named_parameters().front().first == "net.0.weight");
  REQUIRE(sin_model.named_parameters().back().first == "net.6.bias");

  Tensor x = Tensor::zeros({5, 2});
  REQUIRE(raw_model.forward(x, Tensor::full({5}, 0.3)).shape() == Shape{5, 2});
  REQUIRE(raw_model.forward(x, Tensor::full({5, 1}, 0.3)).shape() == Shape{5, 2});
  // One time for the whole batch ([] or [1]) gives the same as repeating it.
  std::vector<double> shared = sin_model.forward(x, Tensor::scalar(0.3)).to_vector();
  REQUIRE(sin_model.forward(x, Tensor::full({1}, 0.3)).to_vector() == shared);
  REQUIRE(sin_model.forward(x, Tensor::full({5}, 0.3)).to_vector() == shared);
  REQUIRE_THROWS_WITH(raw_model.forward(x, Tensor::zeros({4})), Catch::Contains("VelocityMLP: t has shape [4]"));
  REQUIRE_THROWS_WITH(raw_model.forward(Tensor::zeros({5, 3}), Tensor::zeros({5})),
                      Catch::Contains("VelocityMLP: input [5, 3], expected [N, 2]"));
  REQUIRE_THROWS_AS(raw_model.forward(x, Tensor::zeros({5}, DType::Float64)), DTypeError);

  MLPConfig shallow;
  shallow.hidden_layers = 0;  // a single linear map of (x, t)
  VelocityMLP linear_model(shallow, gen);
  REQUIRE(linear_model.parameter_count() == (2 + 1) * 2 + 2);
}

namespace {

// Regression target in (x, t): smooth and nonlinear in all three inputs.
Tensor target_velocity(const Tensor& x, const Tensor& t) {
  Tensor x0 = x.narrow(1, 0, 1), x1 = x.narrow(1, 1, 1);
  Tensor tt = t.reshape({t.size(0), 1});
  return concat({sin(x0 * 2.0) + tt * x1, cos(x1) * tt - x0 * 0.5}, 1);
}

std::vector<double> train_losses(const MLPConfig& config, std::uint64_t seed, int steps) {
  Generator init_gen(seed), data_gen(seed + 1);
  VelocityMLP model(config, init_gen);
  Adam adam(model, AdamOptions{1e-2});
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    Tensor x = randn({64, 2}, data_gen), t = rand_uniform({64}, data_gen);
    adam.zero_grad();
    Tensor loss = mse_loss(model.forward(x, t), target_velocity(x, t));
    loss.backward();
    adam.step();
    losses.push_back(loss.item());
  }
  return losses;
}

double mean_of(const std::vector<double>& v, std::size_t from, std::size_t to) {
  double total = 0;
  for (std::size_t i = from; i < to; ++i) total += v[i];
  return total / double(to - from);
}

}  // namespace

TEST_CASE("an MLP trained with Adam fits a smooth function of (x, t)", "[nn][mlp][training]") {
  for (const char* time_input : {"raw", "sinusoidal"}) {
    INFO(time_input);
    MLPConfig config;
    config.time_input = time_input;
    std::vector<double> losses = train_losses(config, 42, 150);
    for (double loss : losses) REQUIRE(std::isfinite(loss));
    double first = mean_of(losses, 0, 10), last = mean_of(losses, 140, 150);
    INFO("mean loss of the first 10 steps " << first << ", of the last 10 " << last);
    REQUIRE(last < first / 10);
  }
}

TEST_CASE("same seed, same initialisation, bitwise the same loss sequence", "[nn][mlp][determinism]") {
  MLPConfig config;
  std::vector<double> a = train_losses(config, 7, 20), b = train_losses(config, 7, 20);
  REQUIRE(a == b);
  std::vector<double> other = train_losses(config, 8, 20);
  REQUIRE(other != a);
}

// The fused inference forward (core's mlp_inference, kernels/mlp_inference.h) against the op-by-op
// Sequential: bitwise equal, for row counts that are and are not multiples of the kernel's row block,
// enough rows to take the threaded path, every activation and an odd width.
TEST_CASE("without grad mode VelocityMLP runs fused, bitwise equal to the recorded forward", "[nn][mlp][inference]") {
  for (const char* activation : {"gelu", "silu", "relu", "tanh"}) {
    for (int width : {64, 37}) {
      Generator gen(7);
      MLPConfig config;
      config.activation = activation;
      config.hidden_width = width;
      VelocityMLP model(config, gen);
      for (std::int64_t rows : {1, 5, 128, 129, 2000}) {
        Tensor x = randn({rows, 2}, gen), t = rand_uniform({rows}, gen);
        std::vector<double> recorded = model.forward(x, t).to_vector();  // grad mode: the Sequential
        NoGradGuard no_grad;
        std::vector<double> fused = model.forward(x, t).to_vector();
        INFO(activation << " width " << width << " rows " << rows);
        REQUIRE(fused == recorded);
      }
    }
  }
}

// Weights updated in place between fused evaluations, by an optimiser step (the same buffers, as in
// fmtrain's periodic sampling) or by a single entry written directly, must be seen by the next fused
// call: a kernel that kept anything derived from the weights between calls (an earlier version kept
// their transpose) must notice the change.
TEST_CASE("the fused MLP forward sees weights updated in place between calls", "[nn][mlp][inference]") {
  Generator gen(11);
  MLPConfig config;
  VelocityMLP model(config, gen);
  Adam adam(model, AdamOptions{1e-2});
  Tensor x = randn({300, 2}, gen), t = rand_uniform({300}, gen);
  const auto fused_and_recorded = [&]() {
    std::vector<double> recorded = model.forward(x, t).to_vector();
    NoGradGuard no_grad;
    return std::make_pair(model.forward(x, t).to_vector(), recorded);
  };
  const auto [fused_before, recorded_before] = fused_and_recorded();
  REQUIRE(fused_before == recorded_before);
  for (int step = 0; step < 2; ++step) {  // two Adam steps: every weight moves, the buffers stay
    adam.zero_grad();
    mse_loss(model.forward(x, t), target_velocity(x, t)).backward();
    adam.step();
    const auto [fused, recorded] = fused_and_recorded();
    REQUIRE(fused != fused_before);
    REQUIRE(fused == recorded);
  }
  // One entry of the middle hidden layer's weight changed by hand: still seen.
  Tensor hidden_weight;
  for (const Tensor& p : model.parameters())
    if (p.dim() == 2 && p.size(0) == config.hidden_width && p.size(1) == config.hidden_width) hidden_weight = p;
  REQUIRE(hidden_weight.defined());
  const auto [fused_old, recorded_old] = fused_and_recorded();
  hidden_weight.data<float>()[17] += 0.25f;
  const auto [fused_new, recorded_new] = fused_and_recorded();
  REQUIRE(recorded_new != recorded_old);
  REQUIRE(fused_new == recorded_new);
}

TEST_CASE("mlp_inference checks its layers and refuses inputs that need a gradient", "[nn][mlp][inference]") {
  Generator gen(3);
  Tensor x = randn({4, 3}, gen), w0 = randn({5, 3}, gen), b0 = randn({5}, gen), w1 = randn({2, 5}, gen);
  // No bias on the last layer: the op-by-op path, the same numbers as linear() and gelu().
  std::vector<DenseLayer> layers{{w0, b0}, {w1, Tensor()}};
  std::vector<double> expected = linear(gelu(linear(x, w0, b0)), w1, Tensor()).to_vector();
  REQUIRE(mlp_inference(x, layers, Activation::Gelu).to_vector() == expected);
  // double runs layer by layer too (the gradcheck type)
  Tensor xd = x.to(DType::Float64);
  std::vector<DenseLayer> layers_d{{w0.to(DType::Float64), b0.to(DType::Float64)}, {w1.to(DType::Float64), Tensor()}};
  REQUIRE(mlp_inference(xd, layers_d, Activation::Relu).shape() == Shape{4, 2});

  REQUIRE_THROWS_WITH(mlp_inference(x, {{w1, Tensor()}}, Activation::Gelu),
                      Catch::Contains("mlp_inference: layer 0 weight [2, 5], expected [out, 3]"));
  REQUIRE_THROWS_WITH(mlp_inference(x, {{w0, w1}}, Activation::Gelu),
                      Catch::Contains("mlp_inference: layer 0 bias [2, 5], expected [5]"));
  REQUIRE_THROWS_AS(mlp_inference(x, {}, Activation::Gelu), ValueError);
  REQUIRE_THROWS_AS(mlp_inference(xd, layers, Activation::Gelu), DTypeError);
  Tensor w_trained = w0.detach();
  w_trained.set_requires_grad();
  REQUIRE_THROWS_WITH(mlp_inference(x, {{w_trained, b0}}, Activation::Gelu), Catch::Contains("NoGradGuard"));
  NoGradGuard no_grad;  // under the guard a trainable weight is fine
  REQUIRE(mlp_inference(x, {{w_trained, b0}}, Activation::Gelu).shape() == Shape{4, 5});
}
