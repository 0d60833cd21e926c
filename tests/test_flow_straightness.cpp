// tests/test_flow_straightness.cpp — the straightness S of flow/straightness.h: 0 for straight fields,
// the analytic value for a rotation, and the closed form against the definition on stored trajectories.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/ops.h"
#include "core/random.h"
#include "flow/straightness.h"

using namespace fm;
using namespace fm::flow;

TEST_CASE("a constant field and the straight interpolant's field have S = 0", "[flow][straightness]") {
  Generator gen(1);
  Tensor x0 = randn({64, 2}, gen, DType::Float64);
  Tensor shift = Tensor::from_vector({3.0, -1.0}, {2}, DType::Float64);
  Straightness constant = measure_straightness([&](const Tensor& x, double) { return x * 0.0 + shift; }, x0, 10);
  REQUIRE(constant.straightness == Approx(0).margin(1e-12));
  REQUIRE(constant.mean_displacement == Approx(10.0).epsilon(1e-12));
  // v(x, t) = (x1(x0) − x0) where each trajectory moves on a straight line at constant speed: the field
  // of the CondOT path toward a fixed target c, v(x, t) = (c − x)/(1 − t).
  Tensor target = Tensor::from_vector({0.5, 2.0}, {2}, DType::Float64);
  Straightness toward = measure_straightness([&](const Tensor& x, double t) { return (target - x) * (1.0 / (1.0 - t)); },
                                             x0, 7);
  REQUIRE(toward.straightness == Approx(0).margin(1e-10));
  std::vector<double> end = toward.end.to_vector();
  for (std::size_t i = 0; i < end.size(); ++i) REQUIRE(end[i] == Approx(i % 2 ? 2.0 : 0.5).margin(1e-12));
}

TEST_CASE("a rotation's S matches the definition on its Euler trajectory", "[flow][straightness]") {
  // v(x) = ω·(−x₁, x₀): circles. Compare the closed form with Σ_k h‖(Z_n − Z₀) − v_k‖² computed directly.
  Tensor x0 = Tensor::from_vector({1.0, 0.0, 0.0, 2.0}, {2, 2}, DType::Float64);
  const double omega = 1.5;
  auto rotate = [&](const Tensor& x, double) {
    return concat({x.narrow(1, 1, 1) * -omega, x.narrow(1, 0, 1) * omega}, 1);
  };
  const int steps = 50;
  Straightness s = measure_straightness(rotate, x0, steps);
  std::vector<Tensor> velocities;
  Tensor x = x0;
  for (int k = 0; k < steps; ++k) {
    velocities.push_back(rotate(x, 0));
    x = x + velocities.back() * (1.0 / steps);
  }
  Tensor d = x - x0;
  double direct = 0;
  for (const Tensor& v : velocities) direct += mean(sum(square(d - v), {1})).item() / steps;
  REQUIRE(s.straightness == Approx(direct).epsilon(1e-10));
  REQUIRE(s.straightness > 0.1);
  REQUIRE(s.relative_straightness == Approx(direct / mean(sum(square(d), {1})).item()).epsilon(1e-10));
  REQUIRE_THROWS_AS(measure_straightness(rotate, x0, 0), ValueError);
  REQUIRE_THROWS_AS(measure_straightness([](const Tensor& x, double) { return x.narrow(1, 0, 1); }, x0, 3), ShapeError);
}
