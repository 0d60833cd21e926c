// tests/test_flow_captured_solve.cpp — sampling through a recorded solve (flow/captured_solve.h):
//   * chunk after chunk, a tiny U-Net's Euler and RK4 solves (and Euler on bfloat16 activations)
//     replayed from the graph are bitwise the eager solves, and a replayed chunk costs the host one
//     graph launch, not a launch per kernel;
//   * a chunk of another shape (the last, shorter one), dopri5 and the CPU are solved eagerly, correctly;
//   * a class-conditional U-Net's null class (no labels) is recorded and replayed likewise;
//   * a guided solve of a class-conditional U-Net, its labels set per chunk in a device buffer
//     (flow/guidance.h's GuidanceLabels), is recorded and replayed with each chunk's labels;
//   * a model that uploads host values in its forward pass cannot be recorded: the solve falls back
//     to eager work for good, with the same results; any other error while recording reaches the
//     caller and leaves the stream as it was.
#include <catch2/catch.hpp>

#include <memory>
#include <vector>

#include "core/ops.h"
#include "core/random.h"
#include "flow/captured_solve.h"
#include "flow/guidance.h"
#include "flow/model_fn.h"
#include "kernels/runtime.h"
#include "nn/unet.h"
#include "test_util.h"
#include "unet_fixtures.h"

using namespace fm;
using namespace fm::flow;

namespace {

Tensor noise_chunk(std::int64_t n, std::uint64_t seed) {
  Generator gen(seed);
  return randn({n, 1, 8, 8}, gen).to(Device::CUDA);
}

// Solves chunks of noise through a CapturedSolve and eagerly; every chunk must give the same bits.
// num_classes > 0: a class-conditional U-Net called without labels (its null class for every sample).
void require_replays_equal_eager(const FixedStepSolver& solver, bool bfloat16_activations = false,
                                 int num_classes = 0) {
  Generator init(5);
  nn::UNetConfig config = nn::UNetConfig::tiny();
  config.bfloat16_activations = bfloat16_activations;
  config.num_classes = num_classes;
  nn::UNet unet(config, init);
  unet.to(Device::CUDA);
  unet.eval();
  const VelocityField field =
      velocity_field_from_model([&unet](const Tensor& x, const Tensor& t) { return unet.forward(x, t); });
  CapturedSolve captured(solver, field);
  for (std::uint64_t chunk = 0; chunk < 4; ++chunk) {
    const Tensor noise = noise_chunk(2, 100 + chunk);
    const kernels::RuntimeCounters before = kernels::runtime_counters();
    const SolveResult replayed = captured.solve(noise);
    const kernels::RuntimeCounters host_work = kernels::runtime_counters() - before;
    const SolveResult eager = solver.solve(field, noise);
    INFO("chunk " << chunk);
    REQUIRE(replayed.x.to_vector() == eager.x.to_vector());
    REQUIRE(replayed.nfe == eager.nfe);
    REQUIRE(replayed.steps == eager.steps);
    if (chunk >= 2) {
      // Recorded at chunk 1; from then on the host issues the noise copy, the graph, the result's copy.
      REQUIRE(host_work.graph_replays == 1);
      REQUIRE(host_work.kernel_launches <= 2);
      REQUIRE(host_work.host_to_device_copies == 0);
    }
  }
  REQUIRE(captured.recorded());
  REQUIRE(captured.replays() == 3);  // chunk 0 eager, chunk 1 recorded and replayed, chunks 2 and 3
}

}  // namespace

TEST_CASE("a recorded Euler solve of a U-Net replays chunk after chunk bitwise as the eager solve", "[gpu]") {
  FM_REQUIRE_GPU();
  require_replays_equal_eager(EulerSolver(2));
}

TEST_CASE("a recorded RK4 solve of a U-Net replays chunk after chunk bitwise as the eager solve", "[gpu]") {
  FM_REQUIRE_GPU();
  require_replays_equal_eager(RK4Solver(1));
}

TEST_CASE("a recorded Euler solve of a U-Net on bfloat16 activations replays bitwise as the eager solve",
          "[gpu][bfloat16]") {
  FM_REQUIRE_GPU();
  require_replays_equal_eager(EulerSolver(2), true);
}

TEST_CASE("a recorded solve of a conditional U-Net's null class replays bitwise as the eager solve", "[gpu]") {
  // Without labels the model takes its null class's row for every sample, with nothing copied from
  // the host per evaluation: recorded like an unconditional model (a per-call upload would be refused).
  FM_REQUIRE_GPU();
  require_replays_equal_eager(EulerSolver(2), false, 4);
}

TEST_CASE("a recorded guided solve of a conditional U-Net reads each chunk's labels from the device", "[gpu]") {
  FM_REQUIRE_GPU();
  const test::ConditionalTinyUNet model = test::conditional_tiny_unet(4, 7, Device::CUDA);
  const nn::UNetConfig& config = model.config;
  model.unet->eval();
  const ConditionalModelFn forward = model.forward();
  const EulerSolver solver(3);
  // Chunks of 3 with labels that differ from chunk to chunk (the null class too), then a shorter one.
  const std::vector<std::vector<std::int32_t>> chunks{{0, 1, 2}, {3, 4, 0}, {2, 2, 1}, {4, 3, 1}, {1, 0}};
  for (double w : {0.0, 1.5}) {
    auto labels = std::make_shared<GuidanceLabels>(w, config.num_classes, Device::CUDA);
    CapturedSolve captured(solver, guided_velocity_field(forward, labels));
    for (std::size_t chunk = 0; chunk < chunks.size(); ++chunk) {
      const Tensor noise = noise_chunk(std::int64_t(chunks[chunk].size()), 300 + chunk);
      const kernels::RuntimeCounters before = kernels::runtime_counters();
      labels->set(chunks[chunk]);
      const SolveResult replayed = captured.solve(noise);
      const kernels::RuntimeCounters host_work = kernels::runtime_counters() - before;
      // Eagerly, with the chunk's labels fixed in a field of their own.
      const SolveResult eager =
          solver.solve(guided_velocity_field(forward, chunks[chunk], w, config.num_classes), noise);
      INFO("guidance " << w << ", chunk " << chunk);
      REQUIRE(replayed.x.to_vector() == eager.x.to_vector());
      if (chunk >= 2 && chunk <= 3) {
        // Replays: the labels' copy and the noise's, one graph launch, the result's copy.
        REQUIRE(host_work.graph_replays == 1);
        REQUIRE(host_work.kernel_launches <= 2);
        REQUIRE(host_work.host_to_device_copies == 1);
        REQUIRE(host_work.synchronizations == 0);
      }
    }
    REQUIRE(captured.recorded());
    REQUIRE(captured.replays() == 3);  // chunks 1 (recorded), 2 and 3; chunk 0 and the short one eagerly
  }
}

TEST_CASE("another shape, dopri5 and the CPU are solved eagerly, and a forward pass that uploads is not recorded",
          "[gpu]") {
  FM_REQUIRE_GPU();
  const EulerSolver solver(2);
  // Shapes: the last chunk is shorter.
  const VelocityField damped = [](const Tensor& x, double t) { return x * (-0.5 - t); };
  CapturedSolve by_shape(solver, damped);
  for (std::int64_t n : {4, 4, 4, 3}) {
    const Tensor noise = noise_chunk(n, std::uint64_t(n) * 7);
    const std::int64_t replays_before = by_shape.replays();
    REQUIRE(by_shape.solve(noise).x.to_vector() == solver.solve(damped, noise).x.to_vector());
    if (n == 3) REQUIRE(by_shape.replays() == replays_before);
  }
  REQUIRE(by_shape.replays() == 2);

  // A field that makes a GPU tensor from host values on every call.
  const VelocityField uploads = [](const Tensor& x, double t) {
    const Tensor scale = Tensor::from_vector({-0.5 - t}, {1}, x.dtype(), Device::CUDA);
    return x * scale;
  };
  CapturedSolve refused(solver, uploads);
  for (int chunk = 0; chunk < 3; ++chunk) {
    const Tensor noise = noise_chunk(4, 50 + std::uint64_t(chunk));
    REQUIRE(refused.solve(noise).x.to_vector() == solver.solve(uploads, noise).x.to_vector());
  }
  REQUIRE(refused.eager_only());
  REQUIRE_FALSE(refused.recorded());
  REQUIRE(refused.replays() == 0);

  // dopri5's steps depend on values read back every step: solved eagerly every chunk.
  const Dopri5Solver dopri5(AdaptiveStepOptions{});
  CapturedSolve adaptive(dopri5, damped);
  for (int chunk = 0; chunk < 3; ++chunk) {
    const Tensor noise = noise_chunk(4, 70 + std::uint64_t(chunk));
    REQUIRE(adaptive.solve(noise).x.to_vector() == dopri5.solve(damped, noise).x.to_vector());
  }
  REQUIRE(adaptive.replays() == 0);
  REQUIRE_FALSE(adaptive.recorded());

  // An error while recording (not a refusal) reaches the caller, and the stream leaves capture mode.
  int calls = 0;
  const VelocityField fails_second_time = [&calls](const Tensor& x, double) {
    if (++calls == 2) throw ValueError("this field fails once");
    return x * 0.5;
  };
  const EulerSolver one_step(1);
  CapturedSolve failing(one_step, fails_second_time);
  const Tensor noise = noise_chunk(4, 60);
  failing.solve(noise);
  REQUIRE_THROWS_AS(failing.solve(noise), ValueError);
  REQUIRE((noise * 2.0).to_vector() == (noise.to(Device::CPU) * 2.0).to_vector());  // eager again

  // On the CPU there is nothing to record.
  CapturedSolve on_cpu(solver, damped);
  Generator gen(9);
  const Tensor host_noise = randn({4, 2}, gen);
  for (int chunk = 0; chunk < 3; ++chunk)
    REQUIRE(on_cpu.solve(host_noise).x.to_vector() == solver.solve(damped, host_noise).x.to_vector());
  REQUIRE(on_cpu.replays() == 0);
}
