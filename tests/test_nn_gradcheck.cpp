// tests/test_nn_gradcheck.cpp — float64 central-difference gradchecks of whole modules: the
// gradient reaching every parameter and input through Linear, the MLP, the layers of the U-Net, an
// attention block and a tiny U-Net.
//
// Same scheme as tests/gradcheck.h (L = Σ r∘f for a fixed random r; PyTorch's float64 tolerances),
// but the tensors checked are the module's own parameters, perturbed in place, so the test covers the
// module's wiring and not only the ops. Large tensors are checked at a random subset of elements.
#include <catch2/catch.hpp>

#include <algorithm>

#include <functional>
#include <sstream>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "nn/attention.h"
#include "nn/conv.h"
#include "nn/group_norm.h"
#include "nn/linear.h"
#include "nn/mlp.h"
#include "nn/unet.h"

using namespace fm;
using namespace fm::nn;

namespace {

struct ModuleGradcheckOptions {
  double eps = 1e-6, atol = 1e-5, rtol = 1e-3;
  std::int64_t max_elements_per_tensor = 1 << 30;  // check at most this many (random) elements each
  std::uint64_t seed = 99;
};

// Checks dL/dθ for every named tensor (float64, contiguous leaves with requires_grad: module
// parameters and inputs). Returns "" on success, else the first mismatches.
std::string module_gradcheck(const std::function<Tensor()>& f, const std::vector<NamedTensor>& tensors,
                             ModuleGradcheckOptions options = {}) {
  for (const auto& [name, t] : tensors) {
    REQUIRE(t.dtype() == DType::Float64);
    REQUIRE(t.is_contiguous());
    REQUIRE(t.requires_grad());
    t.zero_grad();
  }
  Tensor y = f();
  Generator gen(options.seed);
  Tensor weights = randn(y.shape(), gen, DType::Float64);
  sum(mul(y, weights)).backward();
  auto loss = [&] {
    NoGradGuard no_grad;
    return sum(mul(f(), weights)).item();
  };
  std::ostringstream report;
  int mismatches = 0;
  std::int64_t checked = 0;
  for (const auto& [name, t] : tensors) {
    Tensor grad = t.grad();
    if (!grad.defined()) {
      report << name << ": backward produced no gradient\n";
      ++mismatches;
      continue;
    }
    std::vector<double> analytic = grad.to_vector();
    double* data = t.data<double>();
    std::vector<std::int64_t> elements;
    if (t.numel() <= options.max_elements_per_tensor) {
      for (std::int64_t k = 0; k < t.numel(); ++k) elements.push_back(k);
    } else {
      for (std::int64_t k = 0; k < options.max_elements_per_tensor; ++k)
        elements.push_back(std::int64_t(gen.below(std::uint64_t(t.numel()))));
    }
    for (std::int64_t k : elements) {
      const double saved = data[k];
      data[k] = saved + options.eps;
      const double plus = loss();
      data[k] = saved - options.eps;
      const double minus = loss();
      data[k] = saved;
      const double numeric = (plus - minus) / (2 * options.eps);
      ++checked;
      if (!(std::abs(analytic[std::size_t(k)] - numeric) <= options.atol + options.rtol * std::abs(numeric))) {
        if (mismatches < 6)
          report << name << " element " << k << ": analytic " << analytic[std::size_t(k)] << " numeric " << numeric << "\n";
        ++mismatches;
      }
    }
  }
  if (mismatches) report << mismatches << " of " << checked << " checked elements mismatch";
  return report.str();
}

Tensor input_tensor(const Shape& shape, std::uint64_t seed) {
  Generator gen(seed);
  return randn(shape, gen, DType::Float64).set_requires_grad();
}

std::vector<NamedTensor> with_inputs(const Module& module, std::vector<NamedTensor> inputs) {
  for (auto& named : module.named_parameters()) inputs.push_back(named);
  return inputs;
}

// Non-trivial values for parameters initialised to constants (GroupNorm 1/0, attention biases 0),
// so their gradients are checked away from a special point.
void randomise_parameters(Module& module, std::uint64_t seed) {
  Generator gen(seed);
  NoGradGuard no_grad;
  for (auto& [name, p] : module.named_parameters()) p.copy_(p.detach() + randn(p.shape(), gen, DType::Float64) * 0.3);
}

#define FM_REQUIRE_MODULE_GRADCHECK(...)                     \
  do {                                                       \
    std::string fm_report_ = module_gradcheck(__VA_ARGS__);  \
    INFO(fm_report_);                                        \
    REQUIRE(fm_report_.empty());                             \
  } while (0)

}  // namespace

TEST_CASE("gradcheck: Linear and the velocity MLP (both time inputs)", "[nn][gradcheck]") {
  Generator gen(1);
  Linear layer(3, 4, gen);
  layer.to(DType::Float64);
  Tensor x = input_tensor({5, 3}, 2);
  FM_REQUIRE_MODULE_GRADCHECK([&] { return layer.forward(x); }, with_inputs(layer, {{"x", x}}));

  for (const char* time_input : {"raw", "sinusoidal"}) {
    INFO(time_input);
    MLPConfig config;
    config.hidden_width = 8;
    config.hidden_layers = 2;
    config.time_input = time_input;
    config.time_embedding_dim = 4;
    config.time_scale = 3.0;
    VelocityMLP mlp(config, gen);
    mlp.to(DType::Float64);
    Tensor points = input_tensor({6, 2}, 3);
    Tensor t = Tensor::from_vector({0.0, 0.1, 0.4, 0.5, 0.9, 1.0}, {6}, DType::Float64);
    FM_REQUIRE_MODULE_GRADCHECK([&] { return mlp.forward(points, t); }, with_inputs(mlp, {{"x", points}}));
  }
}

TEST_CASE("gradcheck: Conv2d, ConvTranspose2d, GroupNorm and fused GroupNorm+SiLU layers", "[nn][gradcheck]") {
  Generator gen(4);
  Conv2d conv(2, 3, 3, 1, 1, gen);
  Conv2d halve(2, 2, 4, 2, 1, gen);
  ConvTranspose2d up(2, 3, 4, 2, 1, gen);
  GroupNorm norm(2, 4);
  for (Module* m : std::initializer_list<Module*>{&conv, &halve, &up, &norm}) m->to(DType::Float64);
  randomise_parameters(norm, 5);
  Tensor x = input_tensor({2, 2, 4, 4}, 6);
  FM_REQUIRE_MODULE_GRADCHECK([&] { return conv.forward(x); }, with_inputs(conv, {{"x", x}}));
  FM_REQUIRE_MODULE_GRADCHECK([&] { return halve.forward(x); }, with_inputs(halve, {{"x", x}}));
  FM_REQUIRE_MODULE_GRADCHECK([&] { return up.forward(x); }, with_inputs(up, {{"x", x}}));
  Tensor wide = input_tensor({2, 4, 3, 3}, 7);
  FM_REQUIRE_MODULE_GRADCHECK([&] { return norm.forward(wide); }, with_inputs(norm, {{"x", wide}}));
  FM_REQUIRE_MODULE_GRADCHECK([&] { return norm.forward_with_silu(wide); }, with_inputs(norm, {{"x", wide}}));
}

TEST_CASE("gradcheck: multi-head self-attention and the U-Net attention block", "[nn][gradcheck]") {
  Generator gen(8);
  MultiheadSelfAttention attention(4, 2, gen);
  attention.to(DType::Float64);
  randomise_parameters(attention, 9);
  Tensor tokens = input_tensor({2, 3, 4}, 10);
  FM_REQUIRE_MODULE_GRADCHECK([&] { return attention.forward(tokens); }, with_inputs(attention, {{"x", tokens}}));

  // GroupNorm over [B, C, H·W], attention over the pixels, residual add (nn/unet_blocks.h).
  GroupNorm norm(2, 4);
  norm.to(DType::Float64);
  randomise_parameters(norm, 11);
  Tensor image = input_tensor({2, 4, 2, 3}, 12);
  std::vector<NamedTensor> checked = with_inputs(attention, {{"x", image}});
  for (auto& named : norm.named_parameters()) checked.push_back(named);
  FM_REQUIRE_MODULE_GRADCHECK([&] { return attention_forward(norm, attention, image); }, checked);
}

TEST_CASE("gradcheck: a tiny U-Net (channels [4, 8], groups 2, 8x8), sampled elements", "[nn][gradcheck][unet]") {
  UNetConfig config = UNetConfig::tiny();
  config.time_scale = 10.0;
  Generator gen(13);
  UNet model(config, gen);
  model.to(DType::Float64);
  randomise_parameters(model, 14);
  Tensor x = input_tensor({2, 1, 8, 8}, 15);
  Tensor t = Tensor::from_vector({0.25, 0.8}, {2}, DType::Float64);
  ModuleGradcheckOptions options;
  options.max_elements_per_tensor = 2;  // ~70 tensors: every one is checked, at 2 random elements
  FM_REQUIRE_MODULE_GRADCHECK([&] { return model.forward(x, t); }, with_inputs(model, {{"x", x}}), options);
}

TEST_CASE("gradcheck: the class-conditional MLP and tiny U-Net through the class embedding", "[nn][gradcheck][conditional]") {
  // Labels repeat (rows 0 and 3 share class 1: the table's gradient scatter-adds) and include the
  // null class (3 of 3 classes); class 2 is unused, so its row must get an exact zero gradient.
  const std::vector<std::int32_t> labels{1, 0, 3, 1};
  Generator gen(21);
  MLPConfig mlp_config;
  mlp_config.hidden_width = 8;
  mlp_config.hidden_layers = 2;
  mlp_config.num_classes = 3;
  mlp_config.class_embedding_dim = 3;
  VelocityMLP mlp(mlp_config, gen);
  mlp.to(DType::Float64);
  Tensor points = input_tensor({4, 2}, 22);
  Tensor t = Tensor::from_vector({0.0, 0.3, 0.7, 1.0}, {4}, DType::Float64);
  FM_REQUIRE_MODULE_GRADCHECK([&] { return mlp.forward(points, t, labels); }, with_inputs(mlp, {{"x", points}}));
  const std::vector<double> unused_row_grad = mlp.class_embedding.grad().to_vector();
  for (int k = 6; k < 9; ++k) REQUIRE(unused_row_grad[std::size_t(k)] == 0.0);
  // Without labels (the null row broadcast to the batch, not a lookup): the null row gets the whole
  // batch's gradient, every other row exactly zero.
  FM_REQUIRE_MODULE_GRADCHECK([&] { return mlp.forward(points, t); }, with_inputs(mlp, {{"x", points}}));
  const std::vector<double> null_only_grad = mlp.class_embedding.grad().to_vector();
  for (int k = 0; k < 9; ++k) REQUIRE(null_only_grad[std::size_t(k)] == 0.0);
  REQUIRE(std::any_of(null_only_grad.begin() + 9, null_only_grad.end(), [](double g) { return g != 0.0; }));

  UNetConfig unet_config = UNetConfig::tiny();
  unet_config.num_classes = 3;
  UNet model(unet_config, gen);
  model.to(DType::Float64);
  randomise_parameters(model, 23);
  Tensor x = input_tensor({4, 1, 8, 8}, 24);
  // Every element of the table [4, 8]; the rest of the U-Net is covered by the unconditional case.
  FM_REQUIRE_MODULE_GRADCHECK([&] { return model.forward(x, t, labels); },
                              {{"class_embedding", model.class_embedding}, {"x", x}});
}
