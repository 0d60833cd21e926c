// tests/test_flow_source.cpp — source distributions (flow/source.h): the Gaussian source's training
// draws are the X0 stream the loss always used, a 2-D data set as source draws its own points from a
// stream of its own, and bad names and shapes are refused by name.
#include <catch2/catch.hpp>

#include "core/random.h"
#include "flow/source.h"

using namespace fm;
using namespace fm::flow;

TEST_CASE("the Gaussian source draws the X0 stream by (seed, step, sample)", "[flow][source]") {
  auto source = make_source("gaussian");
  REQUIRE(source->name() == "gaussian");
  const StepNoise noise{5, 12, 3};
  Tensor x0 = source->sample({4, 2}, noise, DType::Float64, Device::CPU);
  REQUIRE(x0.to_vector() == philox_normal({4, 2}, noise.key(NoiseStream::X0), 12, 3, DType::Float64).to_vector());
  Generator a(1), b(1);
  REQUIRE(source->sample({3, 1, 2, 2}, a, DType::Float32, Device::CPU).to_vector() ==
          randn({3, 1, 2, 2}, b).to_vector());
}

TEST_CASE("a 2-D data set as source: its own points, from the SourcePoint stream", "[flow][source]") {
  auto source = make_source("8gaussians");
  auto data = make_toy_distribution("8gaussians");
  const StepNoise noise{5, 12, 0};
  Tensor x0 = source->sample({16, 2}, noise, DType::Float64, Device::CPU);
  REQUIRE(x0.to_vector() ==
          data->sample(16, noise, DType::Float64, Device::CPU, NoiseStream::SourcePoint).to_vector());
  // Not the same points the data stream gives at the same place (a source must not echo the data).
  REQUIRE(x0.to_vector() != data->sample(16, noise, DType::Float64, Device::CPU).to_vector());
  // Any slice of a batch is the same points (data-parallel ranks).
  std::vector<double> whole = x0.to_vector();
  std::vector<double> tail = source->sample({6, 2}, StepNoise{5, 12, 10}, DType::Float64, Device::CPU).to_vector();
  REQUIRE(tail == std::vector<double>(whole.begin() + 20, whole.end()));
  REQUIRE_THROWS_WITH(source->sample({4, 1, 28, 28}, noise, DType::Float32, Device::CPU),
                      Catch::Contains("a 2-D source needs 2-D data"));
  REQUIRE_THROWS_WITH(make_source("pareto"), Catch::Contains("data.source: unknown source \"pareto\", expected one of gaussian, moons"));
}
