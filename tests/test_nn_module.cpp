// tests/test_nn_module.cpp — the Module base (names, state dicts, placement, modes), Sequential,
// Linear and the PyTorch default initialisation bounds.
//
// Only layers whose ops are in core/ops.h are used here (Linear, activations); the image layers are
// exercised in test_nn_layers.cpp and test_nn_unet.cpp.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "nn/activation.h"
#include "nn/init.h"
#include "nn/linear.h"
#include "nn/module.h"

using namespace fm;
using namespace fm::nn;

namespace {

// A small two-level model: a Sequential child, a direct Linear child, a parameter and a buffer.
class TwoLevel : public Module {
 public:
  explicit TwoLevel(std::uint64_t seed) : Module("TwoLevel") {
    Generator gen(seed);
    scale = Tensor::full({3}, 2.0);
    register_parameter("scale", &scale);
    running = Tensor::zeros({2});
    register_buffer("running", &running);
    body = register_module("body", std::make_shared<Sequential>(std::vector<std::shared_ptr<Layer>>{
                                       std::make_shared<Linear>(3, 4, gen), std::make_shared<GELU>(),
                                       std::make_shared<Linear>(4, 2, gen)}));
    head = register_module("head", std::make_shared<Linear>(2, 1, gen, /*bias=*/false));
  }
  Tensor forward(const Tensor& x) { return head->forward(body->forward(x * scale)); }

  Tensor scale, running;
  std::shared_ptr<Sequential> body;
  std::shared_ptr<Linear> head;
};

std::vector<std::string> names_of(const std::vector<NamedTensor>& named) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : named) names.push_back(name);
  return names;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector() == b.to_vector();
}

}  // namespace

TEST_CASE("Module names parameters, buffers and children with dots in registration order", "[nn][module]") {
  TwoLevel model(1);
  REQUIRE(names_of(model.named_parameters()) ==
          std::vector<std::string>{"scale", "body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias",
                                   "head.weight"});
  REQUIRE(names_of(model.named_buffers()) == std::vector<std::string>{"running"});
  // 3 + (4·3 + 4) + (2·4 + 2) + 1·2
  REQUIRE(model.parameter_count() == 3 + 16 + 10 + 2);
  StateDict state = model.state_dict();
  REQUIRE(state.size() == 7);
  REQUIRE(state.count("running") == 1);
  for (const Tensor& p : model.parameters()) {
    REQUIRE(p.requires_grad());
    REQUIRE(p.is_leaf());
  }
  REQUIRE(model.named_children().size() == 2);
}

TEST_CASE("state_dict round trip copies every value bitwise and converts dtype", "[nn][module]") {
  TwoLevel source(1), target(2);
  REQUIRE_FALSE(bitwise_equal(source.body->operator[](0)->named_parameters()[0].second,
                              target.body->operator[](0)->named_parameters()[0].second));
  source.running.fill_(0.25);
  target.load_state_dict(source.state_dict());
  StateDict a = source.state_dict(), b = target.state_dict();
  for (const auto& [name, tensor] : a) REQUIRE(bitwise_equal(tensor, b.at(name)));

  // The state dict is a view, not a snapshot: later changes to the model show through it.
  StateDict view = source.state_dict();
  source.running.fill_(7.0);
  REQUIRE(view.at("running").to_vector() == std::vector<double>{7.0, 7.0});

  // Loading float32 values into a float64 model converts them exactly.
  TwoLevel wide(3);
  wide.to(DType::Float64);
  wide.load_state_dict(a);
  REQUIRE(wide.state_dict().at("body.0.weight").dtype() == DType::Float64);
  REQUIRE(bitwise_equal(wide.state_dict().at("body.0.weight"), a.at("body.0.weight")));
}

TEST_CASE("load_state_dict names the missing, unexpected or mis-shaped key and changes nothing", "[nn][module]") {
  TwoLevel model(1), other(2);
  StateDict before = model.state_dict();
  std::vector<double> weight_before = before.at("body.0.weight").to_vector();

  StateDict missing = other.state_dict();
  missing.erase("body.2.bias");
  REQUIRE_THROWS_WITH(model.load_state_dict(missing), Catch::Contains("missing key 'body.2.bias'") &&
                                                          Catch::Contains("[2]"));

  StateDict extra = other.state_dict();
  extra["body.9.weight"] = Tensor::zeros({5});
  REQUIRE_THROWS_WITH(model.load_state_dict(extra), Catch::Contains("unexpected key 'body.9.weight'"));

  StateDict misshaped = other.state_dict();
  misshaped["head.weight"] = Tensor::zeros({2, 1});
  REQUIRE_THROWS_AS(model.load_state_dict(misshaped), ValueError);
  REQUIRE_THROWS_WITH(model.load_state_dict(misshaped),
                      Catch::Contains("'head.weight' has shape [2, 1] in the state dict but [1, 2] in the model"));

  // Every failed load above left the weights alone (checks run before any copy).
  REQUIRE(model.state_dict().at("body.0.weight").to_vector() == weight_before);
}

TEST_CASE("registration refuses empty, dotted and duplicate names", "[nn][module]") {
  struct Bad : Module {
    Tensor a = Tensor::zeros({1}), b = Tensor::zeros({1});
    explicit Bad(int which) : Module("Bad") {
      if (which == 0) register_parameter("", &a);
      if (which == 1) register_parameter("x.y", &a);
      if (which == 2) {
        register_parameter("w", &a);
        register_buffer("w", &b);
      }
    }
  };
  REQUIRE_THROWS_WITH(Bad(0), Catch::Contains("empty name"));
  REQUIRE_THROWS_WITH(Bad(1), Catch::Contains("contains '.'"));
  REQUIRE_THROWS_WITH(Bad(2), Catch::Contains("'w' is already registered"));
}

TEST_CASE("train and eval reach every child", "[nn][module]") {
  TwoLevel model(1);
  REQUIRE(model.is_training());
  model.eval();
  REQUIRE_FALSE(model.is_training());
  REQUIRE_FALSE(model.body->is_training());
  REQUIRE_FALSE((*model.body)[2]->is_training());
  model.train();
  REQUIRE((*model.body)[2]->is_training());
}

TEST_CASE("to(DType) keeps parameters trainable leaves and the forward pass differentiable", "[nn][module]") {
  TwoLevel model(4);
  model.to(DType::Float64);
  REQUIRE(model.dtype() == DType::Float64);
  REQUIRE(model.device() == Device::CPU);
  for (const auto& [name, p] : model.named_parameters()) {
    INFO(name);
    REQUIRE(p.dtype() == DType::Float64);
    REQUIRE(p.requires_grad());
    REQUIRE(p.is_leaf());
  }
  REQUIRE(model.running.dtype() == DType::Float64);
  Tensor x = Tensor::ones({5, 3}, DType::Float64);
  sum(model.forward(x)).backward();
  for (const auto& [name, p] : model.named_parameters()) {
    INFO(name);
    REQUIRE(p.grad().defined());
  }
  model.zero_grad();
  for (const Tensor& p : model.parameters()) REQUIRE_FALSE(p.grad().defined());
}

TEST_CASE("Linear computes x·Wᵀ + b over any leading dims and checks its input", "[nn][linear]") {
  Generator gen(7);
  Linear layer(3, 2, gen);
  layer.to(DType::Float64);
  Tensor x = Tensor::from_vector({1, 2, 3, -1, 0, 0.5}, {2, 1, 3}, DType::Float64);
  std::vector<double> w = layer.weight.to_vector(), b = layer.bias.to_vector(), xs = x.to_vector();
  std::vector<double> y = layer.forward(x).to_vector();
  REQUIRE(layer.forward(x).shape() == Shape{2, 1, 2});
  for (int n = 0; n < 2; ++n)
    for (int o = 0; o < 2; ++o) {
      double expected = b[o];
      for (int i = 0; i < 3; ++i) expected += xs[n * 3 + i] * w[o * 3 + i];
      REQUIRE(y[n * 2 + o] == Approx(expected).epsilon(1e-14));
    }
  REQUIRE_THROWS_WITH(layer.forward(Tensor::ones({4, 5}, DType::Float64)),
                      Catch::Contains("Linear(3 -> 2): input [4, 5], expected [..., 3]"));
  Linear no_bias(3, 2, gen, false);
  REQUIRE(no_bias.named_parameters().size() == 1);
}

TEST_CASE("Linear init is PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)) and reproducible", "[nn][init]") {
  Generator gen(11);
  Linear layer(50, 40, gen);
  const double bound = 1.0 / std::sqrt(50.0);
  std::vector<double> w = layer.weight.to_vector(), b = layer.bias.to_vector();
  double lowest = 1, highest = -1, mean = 0;
  for (double v : w) {
    lowest = std::min(lowest, v);
    highest = std::max(highest, v);
    mean += v / double(w.size());
  }
  REQUIRE(lowest >= -bound);
  REQUIRE(highest <= bound);
  // 2000 draws: the extremes come close to the bounds and the mean is near 0 (not a shifted range).
  REQUIRE(highest > 0.95 * bound);
  REQUIRE(lowest < -0.95 * bound);
  REQUIRE(std::abs(mean) < 0.05 * bound);
  for (double v : b) REQUIRE(std::abs(v) <= bound);

  Generator same(11);
  Linear again(50, 40, same);
  REQUIRE(bitwise_equal(again.weight, layer.weight));
  REQUIRE(bitwise_equal(again.bias, layer.bias));
}

TEST_CASE("fan_in follows PyTorch for linear, conv and transposed-conv weight shapes", "[nn][init]") {
  REQUIRE(init::fan_in({64, 32}) == 32);
  REQUIRE(init::fan_in({64, 32, 3, 3}) == 32 * 9);  // Conv2d [out, in, k, k]
  // ConvTranspose2d weight is [in, out, k, k]; PyTorch reads size(1), i.e. out·k·k.
  REQUIRE(init::fan_in({64, 32, 4, 4}) == 32 * 16);
  REQUIRE(init::fan_out({64, 32, 4, 4}) == 64 * 16);
  REQUIRE_THROWS_AS(init::fan_in({5}), ShapeError);

  Generator gen(3);
  Tensor w = init::default_weight({8, 4, 3, 3}, gen);
  for (double v : w.to_vector()) REQUIRE(std::abs(v) <= 1.0 / std::sqrt(36.0));
  Tensor xavier = init::xavier_uniform({96, 32}, gen);
  const double xavier_bound = std::sqrt(6.0 / (32 + 96));
  double highest = 0;
  for (double v : xavier.to_vector()) highest = std::max(highest, std::abs(v));
  REQUIRE(highest <= xavier_bound);
  REQUIRE(highest > 0.95 * xavier_bound);
}

TEST_CASE("Sequential applies its layers in order and fuses a following SiLU when a layer offers it", "[nn][module]") {
  // A layer that records which entry point ran.
  struct FusableScale : Layer {
    int plain_calls = 0, fused_calls = 0;
    FusableScale() : Layer("FusableScale") {}
    Tensor forward(const Tensor& x) override {
      ++plain_calls;
      return x * 2.0;
    }
    bool has_fused_silu() const override { return true; }
    Tensor forward_with_silu(const Tensor& x) override {
      ++fused_calls;
      return silu(x * 2.0);
    }
  };
  auto scale = std::make_shared<FusableScale>();
  Sequential sequence({scale, std::make_shared<SiLU>(), std::make_shared<Tanh>()});
  Tensor x = Tensor::from_vector({-1.0, 0.5, 2.0}, {3}, DType::Float64);
  std::vector<double> fused = sequence.forward(x).to_vector();
  REQUIRE(scale->fused_calls == 1);
  REQUIRE(scale->plain_calls == 0);
  sequence.set_fuse_group_norm_silu(false);
  std::vector<double> unfused = sequence.forward(x).to_vector();
  REQUIRE(scale->plain_calls == 1);
  REQUIRE(fused == unfused);
  for (std::size_t i = 0; i < 3; ++i) {
    double v = 2.0 * x.to_vector()[i];
    REQUIRE(fused[i] == Approx(std::tanh(v / (1 + std::exp(-v)))).epsilon(1e-14));
  }
}

TEST_CASE("make_activation knows silu, gelu, relu, tanh and names the key otherwise", "[nn][module]") {
  for (const char* name : {"silu", "gelu", "relu", "tanh"}) REQUIRE(make_activation(name, "model.activation"));
  REQUIRE_THROWS_AS(make_activation("swish", "model.activation"), ConfigError);
  REQUIRE_THROWS_WITH(make_activation("swish", "model.activation"),
                      Catch::Contains("model.activation: unknown activation 'swish'"));
}
