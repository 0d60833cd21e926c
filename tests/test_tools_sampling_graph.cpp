// tests/test_tools_sampling_graph.cpp — sample_in_chunks (tools/run_setup.h) with one field for every
// chunk records the solve and replays it on the GPU (flow/captured_solve.h): its samples are bitwise
// those of the same loop solving every chunk eagerly, including the last, shorter chunk.
#include <catch2/catch.hpp>

#include "core/random.h"
#include "flow/model_fn.h"
#include "flow/solver.h"
#include "kernels/runtime.h"
#include "nn/unet.h"
#include "test_util.h"
#include "tools/run_setup.h"

using namespace fm;
using namespace fm::tools;

TEST_CASE("sampling in chunks through a recorded solve gives the eager loop's samples", "[gpu]") {
  FM_REQUIRE_GPU();
  Generator init(5);
  nn::UNet unet(nn::UNetConfig::tiny(), init);
  unet.to(Device::CUDA);
  const flow::EulerSolver solver(2);
  const flow::VelocityField field =
      flow::velocity_field_from_model([&unet](const Tensor& x, const Tensor& t) { return unet.forward(x, t); });
  auto run = [&](bool one_field) {
    Generator gen(17);
    return sample_in_chunks(
        unet, solver, {1, 8, 8}, 7, 2,
        [&](std::int64_t, std::int64_t count) { return randn({count, 1, 8, 8}, gen).to(Device::CUDA); },
        [&](std::int64_t, std::int64_t) { return field; }, one_field);
  };
  const kernels::RuntimeCounters before = kernels::runtime_counters();
  const SampleResult recorded = run(true);
  REQUIRE((kernels::runtime_counters() - before).graph_replays == 2);  // chunks 2, 2, 2, 1: the 2nd and 3rd
  const SampleResult eager = run(false);
  REQUIRE(recorded.samples.to_vector() == eager.samples.to_vector());
  REQUIRE(recorded.nfe == eager.nfe);
}
