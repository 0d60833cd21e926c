// tests/test_nn_grad_norm_cuda.cpp — the global squared gradient norm on CUDA in two launches
// (core/ops_optim.h device_sum_of_squares, kernels/optimizer.h): within its stated tolerance of the
// float64 norm computed on the CPU, the same bits run after run, and two launches (plus one per extra
// range) whatever the size. And the fused clip + Adam + EMA step, through the optimiser, in at most
// ten launches for the moons MLP and a tiny U-Net, however many parameter tensors they have.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/ops.h"
#include "core/ops_optim.h"
#include "core/random.h"
#include "kernels/optimizer.h"
#include "kernels/runtime.h"
#include "nn/ema.h"
#include "nn/mlp.h"
#include "nn/optim.h"
#include "nn/unet.h"
#include "optimizer_fixtures.h"
#include "test_util.h"

using namespace fm;
using fm::test::fill_gradients;

namespace {

// Σ g² over the ranges, every square and sum in double on the CPU, in index order.
double float64_sum_of_squares(const std::vector<float>& g, const std::vector<std::int64_t>& offsets,
                              const std::vector<std::int64_t>& counts) {
  double sum = 0;
  for (std::size_t k = 0; k < offsets.size(); ++k)
    for (std::int64_t i = offsets[k]; i < offsets[k] + counts[k]; ++i) sum += double(g[std::size_t(i)]) * g[std::size_t(i)];
  return sum;
}

// Gradients of mixed sign and magnitude (1e-4 … 1e2), as a model's are.
std::vector<float> mixed_values(std::int64_t n, std::uint64_t seed) {
  Generator gen(seed);
  std::vector<float> normal = randn({n}, gen).to_float_vector();
  std::vector<float> scale = rand_uniform({n}, gen, -4.0, 2.0, DType::Float32, Device::CPU).to_float_vector();
  for (std::size_t i = 0; i < normal.size(); ++i) normal[i] *= std::pow(10.0f, scale[i]);
  return normal;
}

Tensor device_tensor(const std::vector<float>& values) {
  return Tensor::from_floats(values, {std::int64_t(values.size())}, Device::CUDA);
}

// The squared norm: the exact value rounded once to float (2⁻²⁴ relative), the double sums adding
// n·2⁻⁵³ at most (1e-9 relative here): 2⁻²⁴ + 1e-9 relative.
void require_within_tolerance(double device, double exact) {
  INFO(std::hexfloat << "device " << device << ", float64 " << exact);
  REQUIRE(std::abs(device - exact) <= (0x1p-24 + 1e-9) * exact);
}

}  // namespace

TEST_CASE("the CUDA squared gradient norm is within float rounding of the float64 norm, in two launches",
          "[core][optim][norm][gpu]") {
  FM_REQUIRE_GPU();
  // 1 element, part of a block, exactly one block, one more, many blocks, more than the block cap
  // (kernels::kNormMaxBlocks blocks of longer slices).
  for (std::int64_t n : {std::int64_t(1), std::int64_t(255), kernels::kNormElementsPerBlock,
                         kernels::kNormElementsPerBlock + 1, std::int64_t(100003),
                         kernels::kNormMaxBlocks * kernels::kNormElementsPerBlock + 4097}) {
    INFO("n = " << n);
    const std::vector<float> g = mixed_values(n, 11 + std::uint64_t(n));
    const Tensor grad = device_tensor(g);
    const std::vector<std::int64_t> offsets{0}, counts{n};
    const kernels::RuntimeCounters before = kernels::runtime_counters();
    const Tensor squares = device_sum_of_squares(grad, offsets, counts);
    const kernels::RuntimeCounters d = kernels::runtime_counters() - before;
    REQUIRE(d.kernel_launches == 2);
    REQUIRE(d.synchronizations == 0);
    REQUIRE(squares.device() == Device::CUDA);
    REQUIRE(squares.numel() == 1);
    require_within_tolerance(squares.item(), float64_sum_of_squares(g, offsets, counts));
  }
}

TEST_CASE("the CUDA squared gradient norm is the same bits run after run, and sums only its ranges",
          "[core][optim][norm][gpu]") {
  FM_REQUIRE_GPU();
  const std::int64_t n = 50000;
  std::vector<float> g = mixed_values(n, 5);
  // Elements outside the ranges are huge: any of them counted would show.
  for (std::int64_t i = 1000; i < 1100; ++i) g[std::size_t(i)] = 1e30f;
  for (std::int64_t i = 40000; i < n; ++i) g[std::size_t(i)] = 1e30f;
  const Tensor grad = device_tensor(g);
  const std::vector<std::int64_t> offsets{0, 1100}, counts{1000, 40000 - 1100};
  const kernels::RuntimeCounters before = kernels::runtime_counters();
  const float first = float(device_sum_of_squares(grad, offsets, counts).item());
  REQUIRE((kernels::runtime_counters() - before).kernel_launches == 3);  // one per range, one to combine
  require_within_tolerance(first, float64_sum_of_squares(g, offsets, counts));
  for (int run = 0; run < 3; ++run) {
    const float again = float(device_sum_of_squares(grad, offsets, counts).item());
    REQUIRE(std::memcmp(&again, &first, sizeof first) == 0);
  }
  // A non-finite gradient makes the norm non-finite (the clip then leaves the gradients alone).
  g[7] = INFINITY;
  REQUIRE(std::isinf(device_sum_of_squares(device_tensor(g), offsets, counts).item()));
  g[7] = NAN;
  REQUIRE(std::isnan(device_sum_of_squares(device_tensor(g), offsets, counts).item()));
}

namespace {

// Gradients on every parameter from a backward pass, as a training step makes them: on a flat model
// backward writes them into their homes in the flat gradient buffer (nn/flat_parameters.h).
void backward_pass(nn::VelocityModel& model, const Shape& example, std::uint64_t seed) {
  Generator gen(seed);
  Shape batch{2};
  batch.insert(batch.end(), example.begin(), example.end());
  Tensor x = randn(batch, gen).to(Device::CUDA);
  Tensor t = rand_uniform({2}, gen, 0.0, 1.0, DType::Float32, Device::CPU).to(Device::CUDA);
  mean(square(model.forward(x, t))).backward();
}

// Launches of one clip + Adam + EMA step through clip_step_and_update_ema_async, after one warm-up
// step; clipping at 1e-3 scales every step.
std::uint64_t launches_of_fused_step(nn::VelocityModel& model, const Shape& example) {
  model.to(Device::CUDA);
  model.flatten_parameters();
  nn::Adam optimizer(model);
  nn::EMA ema(model, 0.9);
  for (int step = 0; step < 2; ++step) {
    optimizer.zero_grad();
    backward_pass(model, example, 1 + std::uint64_t(step));
    if (step == 0) optimizer.clip_step_and_update_ema_async(model, 1e-3, &ema);
  }
  const kernels::RuntimeCounters before = kernels::runtime_counters();
  nn::GradNorm norm = optimizer.clip_step_and_update_ema_async(model, 1e-3, &ema);
  const kernels::RuntimeCounters d = kernels::runtime_counters() - before;
  REQUIRE(d.synchronizations == 0);
  REQUIRE(d.device_to_host_copies == 0);
  REQUIRE(norm.value() > 1e-3);  // so the kernel did clip
  return d.kernel_launches;
}

}  // namespace

TEST_CASE("clip + Adam + EMA on CUDA take at most 10 launches, whatever the number of parameter tensors",
          "[nn][optim][fused][norm][gpu]") {
  FM_REQUIRE_GPU();
  Generator init(3);
  nn::VelocityMLP moons(nn::MLPConfig{2, 32, 2}, init);
  nn::UNetConfig config = nn::UNetConfig::tiny();
  nn::UNet unet(config, init);
  const std::size_t unet_tensors = unet.parameters().size();
  const std::uint64_t moons_launches = launches_of_fused_step(moons, {2});
  const std::uint64_t unet_launches = launches_of_fused_step(unet, {1, 8, 8});
  WARN("clip + Adam + EMA launches: moons MLP " << moons_launches << " (" << moons.parameters().size()
                                                << " parameter tensors), tiny U-Net " << unet_launches << " ("
                                                << unet_tensors << " parameter tensors)");
  REQUIRE(unet_tensors > 10);  // the per-parameter norm took ~3 launches per tensor
  REQUIRE(moons_launches <= 10);
  REQUIRE(unet_launches <= 10);
}

TEST_CASE("the fused CUDA step with clipping is the same bits run after run", "[nn][optim][fused][norm][gpu]") {
  FM_REQUIRE_GPU();
  auto run = [] {
    Generator init(3);
    nn::VelocityMLP model(nn::MLPConfig{2, 32, 2}, init);
    model.to(Device::CUDA);
    model.flatten_parameters();
    nn::Adam optimizer(model);
    nn::EMA ema(model, 0.9);
    std::vector<double> norms;
    for (int step = 0; step < 3; ++step) {
      fill_gradients(model, 10 + std::uint64_t(step));
      norms.push_back(optimizer.clip_step_and_update_ema_async(model, 0.5, &ema).value());
    }
    std::vector<float> values;
    for (const Tensor& p : model.parameters())
      for (float v : p.to_float_vector()) values.push_back(v);
    for (const auto& [name, shadow] : ema.state_dict())
      for (float v : shadow.to_float_vector()) values.push_back(v);
    return std::make_pair(norms, values);
  };
  const auto first = run(), second = run();
  REQUIRE(first.first.size() == second.first.size());
  REQUIRE(std::memcmp(first.first.data(), second.first.data(), first.first.size() * sizeof(double)) == 0);
  REQUIRE(first.second.size() == second.second.size());
  REQUIRE(std::memcmp(first.second.data(), second.second.data(), first.second.size() * sizeof(float)) == 0);
}
