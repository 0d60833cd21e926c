// tests/test_tools_sampling_graph.cpp — sample_in_chunks (tools/run_setup.h) records its one field's
// solve and replays it on the GPU (flow/captured_solve.h): its samples are bitwise those of solving
// every chunk eagerly, including the last, shorter chunk; the same for guided sampling of a
// class-conditional U-Net, whose labels change from chunk to chunk (tools/conditional_sampling.h); a
// model that reads its labels on the host cannot be recorded and is sampled eagerly, with the same bits.
#include <catch2/catch.hpp>

#include "core/random.h"
#include "flow/guidance.h"
#include "flow/model_fn.h"
#include "flow/solver.h"
#include "kernels/runtime.h"
#include "nn/unet.h"
#include "tensor_compare.h"
#include "test_util.h"
#include "unet_fixtures.h"
#include "tools/conditional_sampling.h"
#include "tools/run_setup.h"

using namespace fm;
using namespace fm::tools;
using fm::test::max_abs_diff;

namespace {

// A class-conditional model that takes host labels only (VelocityModel's default RowIndex overload
// reads them back): v = x·(label + 1)·(t − 2), the labels uploaded as a factor per sample.
class HostLabelsModel final : public nn::VelocityModel {
 public:
  HostLabelsModel() : VelocityModel("HostLabelsModel") {}
  using VelocityModel::forward;  // the RowIndex overload: the base's default, which reads the labels back
  int num_classes() const override { return 3; }
  Tensor forward(const Tensor& x, const Tensor& t) override {
    return forward(x, t, std::vector<std::int32_t>(std::size_t(x.size(0)), num_classes()));
  }
  Tensor forward(const Tensor& x, const Tensor& t, const std::vector<std::int32_t>& labels) override {
    std::vector<double> factors(labels.begin(), labels.end());
    for (double& f : factors) f += 1.0;
    const Tensor factor = Tensor::from_vector(factors, {x.size(0), 1, 1, 1}, x.dtype(), x.device());
    const Tensor time = nn::expand_time(t, x, "HostLabelsModel").reshape({x.size(0), 1, 1, 1});
    return x * factor * (time - 2.0);
  }
  nlohmann::json config_json() const override { return {{"type", "host_labels"}}; }
};

}  // namespace

TEST_CASE("sampling in chunks through a recorded solve gives the eager loop's samples", "[gpu]") {
  FM_REQUIRE_GPU();
  Generator init(5);
  nn::UNet unet(nn::UNetConfig::tiny(), init);
  unet.to(Device::CUDA);
  const flow::EulerSolver solver(2);
  const flow::VelocityField field =
      flow::velocity_field_from_model([&unet](const Tensor& x, const Tensor& t) { return unet.forward(x, t); });
  Generator gen(17);
  const kernels::RuntimeCounters before = kernels::runtime_counters();
  const SampleResult recorded = sample_in_chunks(
      unet, solver, {1, 8, 8}, 7, 2,
      [&](std::int64_t, std::int64_t count) { return randn({count, 1, 8, 8}, gen).to(Device::CUDA); }, field);
  REQUIRE((kernels::runtime_counters() - before).graph_replays == 2);  // chunks 2, 2, 2, 1: the 2nd and 3rd
  // The same noise, chunk by chunk, solved eagerly (in eval mode, as sample_in_chunks runs).
  Generator again(17);
  std::vector<float> eager;
  unet.eval();
  for (std::int64_t start = 0; start < 7; start += 2) {
    const Tensor noise = randn({std::min<std::int64_t>(2, 7 - start), 1, 8, 8}, again).to(Device::CUDA);
    const std::vector<float> chunk = solver.solve(field, noise).x.to_float_vector();
    eager.insert(eager.end(), chunk.begin(), chunk.end());
  }
  unet.train();
  REQUIRE(recorded.samples.to_float_vector() == eager);
  REQUIRE(recorded.nfe == 2);
}

TEST_CASE("guided sampling in chunks is recorded once and reads each chunk's labels", "[gpu]") {
  FM_REQUIRE_GPU();
  const test::ConditionalTinyUNet model = test::conditional_tiny_unet(3, 9, Device::CUDA);
  const nn::UNetConfig& config = model.config;
  nn::UNet& unet = *model.unet;
  const flow::EulerSolver solver(2);
  Generator gen(23);
  const Tensor noise = randn({7, 1, 8, 8}, gen).to(Device::CUDA);
  const std::vector<std::int32_t> labels{0, 1, 2, 3, 2, 0, 1};  // 3 is the null class
  const double guidance = 2.0;
  const kernels::RuntimeCounters before = kernels::runtime_counters();
  const SampleResult recorded = generate_guided_samples_from_noise(unet, solver, noise, labels, guidance, 2);
  REQUIRE((kernels::runtime_counters() - before).graph_replays == 2);
  // Eagerly, each chunk through a field made for its own labels.
  const flow::ConditionalModelFn forward = model.forward();
  std::vector<float> eager;
  unet.eval();
  for (std::int64_t start = 0; start < 7; start += 2) {
    const std::int64_t count = std::min<std::int64_t>(2, 7 - start);
    const std::vector<std::int32_t> chunk_labels(labels.begin() + start, labels.begin() + start + count);
    const flow::VelocityField field = flow::guided_velocity_field(forward, chunk_labels, guidance, config.num_classes);
    const std::vector<float> chunk = solver.solve(field, noise.narrow(0, start, count)).x.to_float_vector();
    eager.insert(eager.end(), chunk.begin(), chunk.end());
  }
  unet.train();
  REQUIRE(recorded.samples.to_float_vector() == eager);
  // A label outside 0..3 is refused before any chunk is sampled.
  const kernels::RuntimeCounters before_refusal = kernels::runtime_counters();
  REQUIRE_THROWS_WITH(generate_guided_samples_from_noise(unet, solver, noise, {0, 1, 2, 4, 0, 0, 0}, guidance, 2),
                      Catch::Contains("label 4 (sample 3) out of range"));
  REQUIRE((kernels::runtime_counters() - before_refusal).kernel_launches == 0);
}

TEST_CASE("guided sampling of a model that reads its labels on the host runs eagerly with the same bits", "[gpu]") {
  FM_REQUIRE_GPU();
  HostLabelsModel model;
  const flow::EulerSolver solver(3);
  Generator gen(29);
  const Tensor noise = randn({5, 1, 4, 4}, gen).to(Device::CUDA);
  const std::vector<std::int32_t> labels{2, 0, 3, 1, 1};
  const kernels::RuntimeCounters before = kernels::runtime_counters();
  const SampleResult sampled = generate_guided_samples_from_noise(model, solver, noise, labels, 1.0, 2);
  REQUIRE((kernels::runtime_counters() - before).graph_replays == 0);  // the recording was refused
  const flow::ConditionalModelFn forward = [&model](const Tensor& x, const Tensor& t, const RowIndex& y) {
    return model.forward(x, t, y);
  };
  std::vector<float> eager;
  for (std::int64_t start = 0; start < 5; start += 2) {
    const std::int64_t count = std::min<std::int64_t>(2, 5 - start);
    const std::vector<std::int32_t> chunk_labels(labels.begin() + start, labels.begin() + start + count);
    const flow::VelocityField field = flow::guided_velocity_field(forward, chunk_labels, 1.0, model.num_classes());
    const std::vector<float> chunk = solver.solve(field, noise.narrow(0, start, count)).x.to_float_vector();
    eager.insert(eager.end(), chunk.begin(), chunk.end());
  }
  REQUIRE(sampled.samples.to_float_vector() == eager);
  // And the CPU's numbers, to float rounding (the device may contract a multiply-add): the samples
  // stay below ~100 in size after three steps, a few ulps of which are far below 1e-4; a wrong label
  // changes a sample by O(1).
  const SampleResult on_cpu =
      generate_guided_samples_from_noise(model, solver, noise.to(Device::CPU), labels, 1.0, 2);
  REQUIRE(max_abs_diff(on_cpu.samples, sampled.samples) <= 1e-4);
}
