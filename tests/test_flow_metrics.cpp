// tests/test_flow_metrics.cpp — sliced Wasserstein-2 (flow/metrics.h): exact 1-D cases (equal and
// unequal sizes), zero for identical sets, |shift| for a 1-D shift and |shift|/sqrt(d) on average
// in d dimensions, symmetry, determinism by seed, images of any d, and the finite-sample floor.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/ops.h"
#include "core/random.h"
#include "flow/datasets2d.h"
#include "flow/metrics.h"

using namespace fm;
using namespace fm::flow;

TEST_CASE("1-D W2 squared between sorted samples is exact for equal and unequal sizes", "[flow][metrics]") {
  REQUIRE(wasserstein2_squared_1d_sorted({0.0, 1.0, 2.0}, {1.0, 2.0, 3.0}) == 1.0);
  REQUIRE(wasserstein2_squared_1d_sorted({0.0, 1.0}, {0.0, 1.0}) == 0.0);
  // Quantile functions 0|1 (halves) and 0|½|1 (thirds) differ by ½ on (⅓, ⅔]: W2² = ¼·⅓ = 1/12.
  REQUIRE(wasserstein2_squared_1d_sorted({0.0, 1.0}, {0.0, 0.5, 1.0}) == Approx(1.0 / 12).epsilon(1e-15));
  REQUIRE(wasserstein2_squared_1d_sorted({0.0, 0.5, 1.0}, {0.0, 1.0}) == Approx(1.0 / 12).epsilon(1e-15));
  // A point mass against two points: mean of squared distances.
  REQUIRE(wasserstein2_squared_1d_sorted({1.0}, {0.0, 4.0}) == Approx((1.0 + 9.0) / 2).epsilon(1e-15));
  // Duplicating every point leaves the measure, hence the distance, unchanged.
  REQUIRE(wasserstein2_squared_1d_sorted({0.0, 0.0, 3.0, 3.0}, {1.0, 2.0}) ==
          Approx(wasserstein2_squared_1d_sorted({0.0, 3.0}, {1.0, 2.0})).epsilon(1e-15));
  REQUIRE_THROWS_AS(wasserstein2_squared_1d_sorted({}, {1.0}), ValueError);
}

TEST_CASE("sliced W2 is zero for identical sets and symmetric", "[flow][metrics]") {
  Generator gen(1);
  Tensor a = randn({300, 3}, gen, DType::Float64), b = randn({200, 3}, gen, DType::Float64);
  REQUIRE(sliced_wasserstein2(a, a) == 0.0);
  // The same set in another order is the same measure.
  Tensor reversed = concat({a.narrow(0, 150, 150), a.narrow(0, 0, 150)}, 0);
  REQUIRE(sliced_wasserstein2(a, reversed) == 0.0);
  REQUIRE(sliced_wasserstein2(a, b) == sliced_wasserstein2(b, a));
  REQUIRE(sliced_wasserstein2(a, b) > 0.0);
}

TEST_CASE("sliced W2 of a 1-D shift is the shift, and |shift|/sqrt(d) on average in d dims", "[flow][metrics]") {
  Generator gen(2);
  Tensor a = randn({500, 1}, gen, DType::Float64);
  for (double shift : {0.3, -2.0})
    REQUIRE(sliced_wasserstein2(a, a + shift) == Approx(std::abs(shift)).epsilon(1e-12));
  // In d dims a shift δ projects to ⟨θ, δ⟩ with E⟨θ, δ⟩² = |δ|²/d over random unit θ.
  Tensor cloud = randn({400, 2}, gen, DType::Float64);
  Tensor delta = Tensor::from_vector({0.6, 0.8}, {1, 2}, DType::Float64);  // |δ| = 1
  SlicedWassersteinOptions many;
  many.directions = 4000;
  REQUIRE(sliced_wasserstein2(cloud, cloud + delta, many) == Approx(1.0 / std::sqrt(2.0)).epsilon(0.03));
  Tensor images = randn({50, 1, 4, 4}, gen, DType::Float64);  // d = 16, flattened
  REQUIRE(sliced_wasserstein2(images, images + 1.0, many) == Approx(1.0).epsilon(0.03));  // |δ| = 4, /sqrt(16)
}

TEST_CASE("sliced W2 is deterministic by seed and reads float32 and any point shape", "[flow][metrics]") {
  Generator gen(3);
  Tensor a = randn({100, 5}, gen), b = randn({120, 5}, gen) + 0.5;
  SlicedWassersteinOptions s1{64, 1}, s2{64, 2};
  const double d1 = sliced_wasserstein2(a, b, s1);
  REQUIRE(d1 == sliced_wasserstein2(a, b, s1));  // bitwise
  REQUIRE(d1 != sliced_wasserstein2(a, b, s2));
  REQUIRE(d1 == Approx(sliced_wasserstein2(a, b, s2)).epsilon(0.2));
  REQUIRE(sliced_wasserstein2(a.to(DType::Float64), b.to(DType::Float64), s1) == d1);  // float32 values read exactly
  REQUIRE_THROWS_AS(sliced_wasserstein2(a, randn({10, 4}, gen)), ShapeError);
  REQUIRE_THROWS_AS(sliced_wasserstein2(a, b, SlicedWassersteinOptions{0, 0}), ValueError);
}

TEST_CASE("the sliced W2 floor is clearly positive and well below a real discrepancy", "[flow][metrics]") {
  auto moons = make_toy_distribution("moons");
  auto sample_moons = [&](std::int64_t n, Generator& g) { return moons->sample(n, g, DType::Float64); };
  Generator gen(4);
  const double floor = sliced_wasserstein2_floor(sample_moons, 2000, gen);
  Generator other(5);
  Tensor data = moons->sample(2000, other, DType::Float64);
  Tensor shifted = moons->sample(2000, other, DType::Float64) + 0.5;
  const double off = sliced_wasserstein2(shifted, data);
  std::printf("moons, n = 2000: SW2 floor %.4f, shifted by 0.5: %.4f\n", floor, off);
  REQUIRE(floor > 0.005);
  REQUIRE(floor < 0.1);
  REQUIRE(off > 5 * floor);
  // Halving n raises the floor (finite-sample noise ~ 1/sqrt(n)).
  Generator g2(4);
  REQUIRE(sliced_wasserstein2_floor(sample_moons, 250, g2) > floor);
}

TEST_CASE("the floor of a fixed data set uses two disjoint random subsets", "[flow][metrics]") {
  Generator gen(6);
  Tensor data = randn({600, 1, 2, 2}, gen);  // image-shaped, float32
  Generator a(7), b(7);
  const double floor = sliced_wasserstein2_floor(data, 300, a);
  REQUIRE(floor == sliced_wasserstein2_floor(data, 300, b));
  REQUIRE(floor > 0.0);
  // Two disjoint subsets of n points need 2n points.
  REQUIRE_THROWS_WITH(sliced_wasserstein2_floor(data, 301, a), Catch::Contains("need at least 602 points"));
  // With n = M/2 every point is used once: the two halves together are the whole set, so the floor
  // is the distance between a random half and its complement.
  Tensor twice = concat({data.narrow(0, 0, 50), data.narrow(0, 0, 50)}, 0);
  Generator c(8);
  REQUIRE(sliced_wasserstein2_floor(twice, 50, c) > 0.0);  // a random split almost never pairs the copies
}
