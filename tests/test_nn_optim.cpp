// tests/test_nn_optim.cpp — SGD / Adam / AdamW against hand-computed steps, optimiser state
// export/import, clip_grad_norm, learning-rate schedules and the EMA.
//
// The optimiser cases use a tiny quadratic L(θ) = ½ Σ a_i θ_i², whose gradient a∘θ the tests set
// directly (set_grad), so every number below is the update formula alone, recomputed in double.
// Comparisons allow 1e-14 relative error: the compiler may contract a·b + c into one FMA in this
// file's arithmetic but not across the engine's separate Tensor ops, which changes the last bit.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "nn/ema.h"
#include "nn/linear.h"
#include "nn/lr_schedule.h"
#include "nn/optim.h"

using namespace fm;
using namespace fm::nn;

namespace {

const std::vector<double> kCurvature{1.0, 3.0, 0.5};
const std::vector<double> kStart{1.0, -2.0, 0.5};

Tensor make_parameter(const std::vector<double>& values) {
  return Tensor::from_vector(values, {std::int64_t(values.size())}, DType::Float64).set_requires_grad();
}

// Sets the quadratic's gradient a∘θ on the parameter and returns it.
std::vector<double> set_quadratic_grad(const Tensor& parameter) {
  std::vector<double> theta = parameter.to_vector(), grad(theta.size());
  for (std::size_t i = 0; i < theta.size(); ++i) grad[i] = kCurvature[i] * theta[i];
  parameter.set_grad(Tensor::from_vector(grad, {std::int64_t(grad.size())}, DType::Float64));
  return grad;
}

void require_close(const std::vector<double>& actual, const std::vector<double>& expected) {
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    INFO("element " << i);
    REQUIRE(actual[i] == Approx(expected[i]).epsilon(1e-14).margin(1e-300));
  }
}

// Reference Adam/AdamW in double, PyTorch's step order.
struct ReferenceAdam {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled;
  std::vector<double> m, v;
  int step = 0;
  void update(std::vector<double>& theta, std::vector<double> grad) {
    if (m.empty()) m.assign(theta.size(), 0.0), v.assign(theta.size(), 0.0);
    ++step;
    for (std::size_t i = 0; i < theta.size(); ++i) {
      if (weight_decay != 0) {
        if (decoupled) theta[i] *= 1 - lr * weight_decay;
        else grad[i] += weight_decay * theta[i];
      }
      m[i] = m[i] + (grad[i] - m[i]) * (1 - beta1);
      v[i] = v[i] * beta2 + grad[i] * grad[i] * (1 - beta2);
      double bc1 = 1 - std::pow(beta1, step), bc2 = 1 - std::pow(beta2, step);
      double denom = std::sqrt(v[i]) / std::sqrt(bc2) + eps;
      theta[i] = theta[i] + (m[i] / denom) * (-(lr / bc1));
    }
  }
};

}  // namespace

TEST_CASE("Adam's first step moves each parameter by lr against the gradient's sign", "[nn][optim]") {
  Tensor theta = make_parameter(kStart);
  Adam adam({{"theta", theta}}, AdamOptions{0.1, 0.9, 0.999, 1e-8, 0.0});
  set_quadratic_grad(theta);
  adam.step();
  // m̂ = g and v̂ = g², so the step is lr·g/(|g| + ε): ±0.1 up to ε.
  std::vector<double> after = theta.to_vector();
  REQUIRE(after[0] == Approx(1.0 - 0.1).epsilon(1e-7));
  REQUIRE(after[1] == Approx(-2.0 + 0.1).epsilon(1e-7));
  REQUIRE(after[2] == Approx(0.5 - 0.1).epsilon(1e-7));
}

TEST_CASE("Adam, Adam with L2 and AdamW match hand-computed first two steps", "[nn][optim]") {
  struct Case {
    const char* name;
    double weight_decay;
    bool decoupled;
  };
  for (Case c : {Case{"adam", 0.0, false}, Case{"adam-l2", 0.1, false}, Case{"adamw", 0.1, true}}) {
    INFO(c.name);
    Tensor theta = make_parameter(kStart);
    AdamOptions options{0.05, 0.8, 0.99, 1e-8, c.weight_decay};
    std::unique_ptr<Optimizer> optimizer;
    if (c.decoupled) optimizer = std::make_unique<AdamW>(std::vector<NamedTensor>{{"theta", theta}}, options);
    else optimizer = std::make_unique<Adam>(std::vector<NamedTensor>{{"theta", theta}}, options);
    ReferenceAdam reference{0.05, 0.8, 0.99, 1e-8, c.weight_decay, c.decoupled, {}, {}};
    std::vector<double> expected = kStart;
    for (int step = 0; step < 2; ++step) {
      std::vector<double> grad = set_quadratic_grad(theta);
      optimizer->step();
      reference.update(expected, grad);
      require_close(theta.to_vector(), expected);
    }
  }
  // Hand numbers for plain Adam, step 1 (lr 0.05, β 0.8/0.99): θ0 = 1, g = 1 → θ1 = 1 − 0.05/(1 + 1e-8).
  Tensor theta = make_parameter({1.0});
  Adam adam({{"theta", theta}}, AdamOptions{0.05, 0.8, 0.99, 1e-8, 0.0});
  theta.set_grad(Tensor::from_vector({1.0}, {1}, DType::Float64));
  adam.step();
  REQUIRE(theta.item() == Approx(1.0 - 0.05 / (1.0 + 1e-8)).epsilon(1e-15));
  // Step 2 with g = 0.5: m = 0.2 + 0.2·(0.5 − 0.2) = 0.26, v = 0.99·0.01 + 0.01·0.25 = 0.0124.
  theta.set_grad(Tensor::from_vector({0.5}, {1}, DType::Float64));
  adam.step();
  const double m = 0.2 + (0.5 - 0.2) * 0.2;             // 0.26
  const double v = 0.01 * 0.99 + 0.25 * 0.01;           // 0.0124
  const double m_hat = m / (1 - 0.64), v_hat = v / (1 - 0.9801);
  REQUIRE(theta.item() == Approx(1.0 - 0.05 / (1.0 + 1e-8) - 0.05 * m_hat / (std::sqrt(v_hat) + 1e-8)).epsilon(1e-12));
}

TEST_CASE("SGD plain, with momentum, Nesterov and weight decay match hand-computed steps", "[nn][optim]") {
  // Plain SGD: θ ← θ − lr·aθ, i.e. θ·(1 − lr·a) per step.
  {
    Tensor theta = make_parameter(kStart);
    SGD sgd({{"theta", theta}}, SGDOptions{0.1});
    for (int step = 0; step < 2; ++step) {
      set_quadratic_grad(theta);
      sgd.step();
    }
    std::vector<double> expected(3);
    for (int i = 0; i < 3; ++i) expected[i] = kStart[i] * (1 - 0.1 * kCurvature[i]) * (1 - 0.1 * kCurvature[i]);
    require_close(theta.to_vector(), expected);
  }
  // Momentum 0.9, dampening 0.1, weight decay 0.01, with and without Nesterov.
  for (bool nesterov : {false, true}) {
    INFO("nesterov " << nesterov);
    SGDOptions options{0.1, 0.9, nesterov ? 0.0 : 0.1, 0.01, nesterov};
    Tensor theta = make_parameter(kStart);
    SGD sgd({{"theta", theta}}, options);
    std::vector<double> expected = kStart, buffer;
    for (int step = 0; step < 2; ++step) {
      std::vector<double> grad = set_quadratic_grad(theta);
      sgd.step();
      for (int i = 0; i < 3; ++i) grad[i] = grad[i] + expected[i] * options.weight_decay;
      if (buffer.empty()) buffer = grad;  // the first buffer is the gradient itself
      else
        for (int i = 0; i < 3; ++i) buffer[i] = buffer[i] * options.momentum + grad[i] * (1 - options.dampening);
      for (int i = 0; i < 3; ++i) {
        double direction = nesterov ? grad[i] + buffer[i] * options.momentum : buffer[i];
        expected[i] = expected[i] - direction * options.lr;
      }
      require_close(theta.to_vector(), expected);
    }
  }
}

TEST_CASE("optimisers skip parameters without a gradient", "[nn][optim]") {
  Tensor used = make_parameter({1.0}), unused = make_parameter({5.0});
  Adam adam({{"used", used}, {"unused", unused}}, AdamOptions{0.1});
  used.set_grad(Tensor::from_vector({1.0}, {1}, DType::Float64));
  adam.step();
  REQUIRE(unused.item() == 5.0);
  StateDict state = adam.state_dict();
  REQUIRE(state.count("used.exp_avg") == 1);
  REQUIRE(state.count("unused.exp_avg") == 0);
}

TEST_CASE("optimiser state export and import continue bitwise identically", "[nn][optim]") {
  auto run = [](Optimizer& optimizer, Linear& model, int steps, std::uint64_t seed) {
    Generator gen(seed);
    for (int s = 0; s < steps; ++s) {
      Tensor x = randn({8, 3}, gen), y = randn({8, 2}, gen);
      optimizer.zero_grad();
      mse_loss(model.forward(x), y).backward();
      optimizer.step();
    }
  };
  for (int kind = 0; kind < 2; ++kind) {
    INFO((kind == 0 ? "adamw" : "sgd"));
    Generator gen_a(5), gen_b(6);
    Linear a(3, 2, gen_a), b(3, 2, gen_b);
    std::unique_ptr<Optimizer> opt_a, opt_b;
    if (kind == 0) {
      opt_a = std::make_unique<AdamW>(a, AdamOptions{1e-2, 0.9, 0.999, 1e-8, 0.05});
      opt_b = std::make_unique<AdamW>(b, AdamOptions{1e-2, 0.9, 0.999, 1e-8, 0.05});
    } else {
      opt_a = std::make_unique<SGD>(a, SGDOptions{1e-2, 0.9});
      opt_b = std::make_unique<SGD>(b, SGDOptions{1e-2, 0.9});
    }
    run(*opt_a, a, 3, 100);
    StateDict exported = opt_a->state_dict();
    b.load_state_dict(a.state_dict());
    opt_b->load_state_dict(exported);
    run(*opt_a, a, 2, 200);
    run(*opt_b, b, 2, 200);
    for (const auto& [name, tensor] : a.state_dict()) REQUIRE(tensor.to_vector() == b.state_dict().at(name).to_vector());
    // The exported dict was a snapshot: two more steps did not change it.
    for (const auto& [name, tensor] : opt_a->state_dict())
      if (name.find("step") == std::string::npos && kind == 0)
        REQUIRE(tensor.to_vector() != exported.at(name).to_vector());
  }
}

TEST_CASE("optimiser load_state_dict names the bad key", "[nn][optim]") {
  Tensor theta = make_parameter(kStart);
  Adam adam({{"theta", theta}});
  set_quadratic_grad(theta);
  adam.step();
  StateDict good = adam.state_dict();
  REQUIRE(good.at("theta.step").item() == 1.0);

  StateDict unknown_param = good;
  unknown_param["phi.exp_avg"] = Tensor::zeros({3}, DType::Float64);
  REQUIRE_THROWS_WITH(adam.load_state_dict(unknown_param), Catch::Contains("unexpected key 'phi.exp_avg'"));
  StateDict unknown_field = good;
  unknown_field["theta.momentum_buffer"] = Tensor::zeros({3}, DType::Float64);
  REQUIRE_THROWS_WITH(adam.load_state_dict(unknown_field), Catch::Contains("unknown field 'momentum_buffer'"));
  StateDict misshaped = good;
  misshaped["theta.exp_avg_sq"] = Tensor::zeros({4}, DType::Float64);
  REQUIRE_THROWS_WITH(adam.load_state_dict(misshaped),
                      Catch::Contains("'theta.exp_avg_sq' has shape [4] but [3] is expected"));
  StateDict partial = good;
  partial.erase("theta.step");
  REQUIRE_THROWS_WITH(adam.load_state_dict(partial), Catch::Contains("missing key 'theta.step'"));
  // Step counts that are not a count of steps: negative, fractional, infinite, and beyond 2^53 (the
  // last found by fuzz/fuzz_checkpoint: 5.6e252 did not fit the 64-bit counter it was converted to).
  for (double step : {-1.0, 1.5, double(INFINITY), 9007199254740994.0, 5.6e252}) {
    INFO("step " << step);
    StateDict bad_step = good;
    bad_step["theta.step"] = Tensor::scalar(step, DType::Float64);
    REQUIRE_THROWS_WITH(adam.load_state_dict(bad_step),
                        Catch::Contains("'theta.step' holds") && Catch::Contains("expected a whole number in [0, 2^53]"));
  }
  StateDict largest = good;
  largest["theta.step"] = Tensor::scalar(9007199254740992.0, DType::Float64);
  adam.load_state_dict(largest);
  adam.load_state_dict(good);  // the good one still loads
}

TEST_CASE("clip_grad_norm scales by max_norm/(norm + 1e-6), returns the old norm, never writes in place", "[nn][optim]") {
  Tensor a = make_parameter({0.0, 0.0}), b = make_parameter({0.0}), c = make_parameter({1.0});
  Tensor grad_a = Tensor::from_vector({3.0, 4.0}, {2}, DType::Float64);
  Tensor grad_b = Tensor::from_vector({12.0}, {1}, DType::Float64);
  a.set_grad(grad_a);
  b.set_grad(grad_b);  // c has no gradient and is ignored
  double norm = clip_grad_norm({a, b, c}, 6.5);
  REQUIRE(norm == Approx(13.0).epsilon(1e-15));
  const double coefficient = 6.5 / (13.0 + 1e-6);
  REQUIRE(a.grad().to_vector()[0] == Approx(3.0 * coefficient).epsilon(1e-15));
  REQUIRE(a.grad().to_vector()[1] == Approx(4.0 * coefficient).epsilon(1e-15));
  REQUIRE(b.grad().item() == Approx(12.0 * coefficient).epsilon(1e-15));
  // The old gradient tensors are untouched (they may share storage with other tensors).
  REQUIRE(grad_a.to_vector() == std::vector<double>{3.0, 4.0});
  REQUIRE(grad_b.item() == 12.0);

  // Below the limit nothing is replaced.
  Tensor before = a.grad();
  REQUIRE(clip_grad_norm({a, b}, 100.0) == Approx(6.5).epsilon(1e-6));
  REQUIRE(a.grad().impl() == before.impl());
  REQUIRE(clip_grad_norm({c}, 1.0) == 0.0);
  REQUIRE_THROWS_AS(clip_grad_norm({a}, 0.0), ValueError);
}

TEST_CASE("learning-rate schedules: constant, linear warm-up, cosine decay", "[nn][schedule]") {
  LRSchedule constant;
  constant.base_lr = 0.01;
  REQUIRE(constant.lr_at(0) == 0.01);
  REQUIRE(constant.lr_at(123456) == 0.01);

  LRSchedule warm;
  warm.base_lr = 0.01;
  warm.warmup_steps = 4;
  REQUIRE(warm.lr_at(0) == Approx(0.0025));
  REQUIRE(warm.lr_at(1) == Approx(0.005));
  REQUIRE(warm.lr_at(3) == Approx(0.01));
  REQUIRE(warm.lr_at(4) == 0.01);

  LRSchedule cosine;
  cosine.kind = LRSchedule::Kind::Cosine;
  cosine.base_lr = 1.0;
  cosine.final_lr = 0.1;
  cosine.warmup_steps = 10;
  cosine.total_steps = 110;
  REQUIRE(cosine.lr_at(4) == Approx(0.5));
  REQUIRE(cosine.lr_at(10) == Approx(1.0));
  REQUIRE(cosine.lr_at(60) == Approx(0.55));                                // half way: the mean
  REQUIRE(cosine.lr_at(35) == Approx(0.1 + 0.45 * (1 + std::cos(M_PI / 4))));
  REQUIRE(cosine.lr_at(110) == Approx(0.1));
  REQUIRE(cosine.lr_at(5000) == Approx(0.1));                               // stays at the floor

  LRSchedule parsed = LRSchedule::from_json(nlohmann::json::parse(
      R"({"kind": "cosine", "base_lr": 1.0, "final_lr": 0.1, "warmup_steps": 10, "total_steps": 110})"));
  REQUIRE(parsed.lr_at(35) == cosine.lr_at(35));
  REQUIRE(LRSchedule::from_json(parsed.to_json()).lr_at(77) == parsed.lr_at(77));
  REQUIRE_THROWS_WITH(LRSchedule::from_json(nlohmann::json::parse(R"({"kind": "step"})")),
                      Catch::Contains("lr_schedule.kind: expected \"constant\" or \"cosine\""));
  REQUIRE_THROWS_WITH(LRSchedule::from_json(nlohmann::json::parse(R"({"base_lr": -1})")),
                      Catch::Contains("lr_schedule.base_lr: expected a positive number"));
  REQUIRE_THROWS_WITH(LRSchedule::from_json(nlohmann::json::parse(R"({"kind": "cosine", "total_steps": 0})")),
                      Catch::Contains("lr_schedule.total_steps"));
  REQUIRE_THROWS_WITH(LRSchedule::from_json(nlohmann::json::parse(R"({"warmup": 3})")),
                      Catch::Contains("lr_schedule.warmup: unknown key"));
}

TEST_CASE("EMA: shadow = decay·shadow + (1 − decay)·θ, swap and state dict", "[nn][ema]") {
  Generator gen(9);
  Linear model(2, 1, gen);
  model.to(DType::Float64);
  std::vector<double> w0 = model.weight.to_vector();
  EMA ema(model, 0.9);

  auto set_weight = [&](std::vector<double> values) { model.weight.copy_(Tensor::from_vector(values, {1, 2}, DType::Float64)); };
  set_weight({1.0, 2.0});
  ema.update();
  set_weight({3.0, -1.0});
  ema.update();
  std::vector<double> expected(2);
  const std::vector<double> w1{1.0, 2.0}, w2{3.0, -1.0};
  for (int i = 0; i < 2; ++i) expected[i] = (w0[i] * 0.9 + w1[i] * 0.1) * 0.9 + w2[i] * 0.1;
  require_close(ema.state_dict().at("weight").to_vector(), expected);
  REQUIRE(ema.num_updates() == 2);

  {
    ScopedEMAWeights guard(ema);
    require_close(model.weight.to_vector(), expected);
  }
  REQUIRE(model.weight.to_vector() == w2);

  // State dict round trip into a fresh EMA, and into a second model directly.
  Generator other_gen(10);
  Linear other(2, 1, other_gen);
  other.to(DType::Float64);
  EMA restored(other, 0.9);
  restored.load_state_dict(ema.state_dict());
  require_close(restored.state_dict().at("weight").to_vector(), expected);
  ema.copy_to(other);
  require_close(other.weight.to_vector(), expected);
  StateDict bad = ema.state_dict();
  bad["weight"] = Tensor::zeros({2, 1}, DType::Float64);
  REQUIRE_THROWS_WITH(restored.load_state_dict(bad), Catch::Contains("'weight' has shape [2, 1]"));

  // Warm-up: decay min(0.999, (1 + n)/(10 + n)) at update n.
  EMA warm(model, 0.999, true);
  REQUIRE(warm.current_decay() == Approx(0.1));
  warm.update();
  REQUIRE(warm.current_decay() == Approx(2.0 / 11.0));
  warm.set_num_updates(100000);
  REQUIRE(warm.current_decay() == 0.999);
}
