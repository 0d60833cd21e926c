// tests/test_flow_coupling.cpp — minibatch OT couplings (flow/coupling.h): the exact assignment against
// brute force over every permutation, squared distances against the direct formula, and the Sinkhorn
// plan's marginals and its convergence to the exact assignment as epsilon → 0.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/ops.h"
#include "core/ops_nn.h"
#include "core/random.h"
#include "flow/coupling.h"

using namespace fm;
using namespace fm::flow;

namespace {

double assignment_cost(const std::vector<double>& cost, std::int64_t n, const std::vector<std::int64_t>& sigma) {
  double total = 0;
  for (std::int64_t i = 0; i < n; ++i) total += cost[i * n + sigma[i]];
  return total;
}

double brute_force_minimum(const std::vector<double>& cost, std::int64_t n) {
  std::vector<std::int64_t> sigma(n);
  std::iota(sigma.begin(), sigma.end(), 0);
  double best = assignment_cost(cost, n, sigma);
  while (std::next_permutation(sigma.begin(), sigma.end())) best = std::min(best, assignment_cost(cost, n, sigma));
  return best;
}

}  // namespace

TEST_CASE("optimal_assignment finds the brute-force minimum and a permutation", "[flow][coupling]") {
  Generator gen(11);
  for (std::int64_t n : {1, 2, 3, 5, 7, 8}) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<double> cost(n * n);
      // Half the trials on a coarse integer grid: many ties, the case where a sloppy search goes wrong.
      for (double& c : cost) c = trial % 2 ? gen.uniform() * 10 : std::floor(gen.uniform() * 4);
      std::vector<std::int64_t> sigma = optimal_assignment(cost, n);
      std::vector<std::int64_t> sorted = sigma;
      std::sort(sorted.begin(), sorted.end());
      std::vector<std::int64_t> identity(n);
      std::iota(identity.begin(), identity.end(), 0);
      REQUIRE(sorted == identity);
      INFO("n " << n << " trial " << trial);
      REQUIRE(assignment_cost(cost, n, sigma) == Approx(brute_force_minimum(cost, n)).margin(1e-12));
    }
  }
  REQUIRE(optimal_assignment({}, 0).empty());
  REQUIRE_THROWS_WITH(optimal_assignment({1, 2, 3}, 2), Catch::Contains("expected n·n = 4"));
  REQUIRE_THROWS_WITH(optimal_assignment({1, 2, std::nan(""), 3}, 2), Catch::Contains("non-finite"));
}

TEST_CASE("on points that are a shuffled copy, the assignment undoes the shuffle", "[flow][coupling]") {
  Generator gen(5);
  const std::int64_t n = 300;
  Tensor a = randn({n, 2}, gen, DType::Float64);
  std::vector<std::int32_t> shuffle(n);
  std::iota(shuffle.begin(), shuffle.end(), 0);
  for (std::int64_t i = n - 1; i > 0; --i) std::swap(shuffle[i], shuffle[gen.below(i + 1)]);
  Tensor b = embedding(a, shuffle);  // b[k] = a[shuffle[k]]
  std::vector<std::int64_t> sigma = optimal_assignment(squared_distances(a, b).to_vector(), n);
  for (std::int64_t k = 0; k < n; ++k) REQUIRE(sigma[shuffle[k]] == k);
}

TEST_CASE("squared_distances is ‖a_i − b_j‖² over flattened rows", "[flow][coupling]") {
  Generator gen(2);
  Tensor a = randn({4, 2, 3}, gen, DType::Float64), b = randn({5, 6}, gen, DType::Float64);
  std::vector<double> d = squared_distances(a, b).to_vector(), av = a.to_vector(), bv = b.to_vector();
  REQUIRE(squared_distances(a, b).shape() == Shape{4, 5});
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 5; ++j) {
      double expected = 0;
      for (int k = 0; k < 6; ++k) expected += (av[i * 6 + k] - bv[j * 6 + k]) * (av[i * 6 + k] - bv[j * 6 + k]);
      REQUIRE(d[i * 5 + j] == Approx(expected).margin(1e-12));
    }
  REQUIRE_THROWS_AS(squared_distances(a, randn({5, 5}, gen)), ShapeError);
}

TEST_CASE("the Sinkhorn plan has uniform marginals and tends to the exact assignment as epsilon → 0", "[flow][coupling]") {
  Generator gen(9);
  const std::int64_t n = 40;
  Tensor x0 = randn({n, 2}, gen, DType::Float64), x1 = randn({n, 2}, gen, DType::Float64) + 1.0;
  Tensor cost = squared_distances(x0, x1);
  std::vector<double> c = cost.to_vector();
  const double exact = assignment_cost(c, n, optimal_assignment(c, n)) / n;  // the plan's mass per pair is 1/n
  double previous_gap = INFINITY;
  for (double epsilon : {1.0, 0.3, 0.1, 0.03}) {
    SinkhornResult r = sinkhorn_plan(cost, epsilon, 20000, 1e-9);
    INFO("epsilon " << epsilon << ": " << r.iterations << " iterations");
    REQUIRE(r.marginal_error <= 1e-9);
    std::vector<double> plan = r.plan.to_vector();
    double transported = 0;
    for (std::int64_t k = 0; k < n * n; ++k) transported += plan[k] * c[k];
    for (std::int64_t j = 0; j < n; ++j) {
      double column = 0;
      for (std::int64_t i = 0; i < n; ++i) column += plan[i * n + j];
      REQUIRE(column == Approx(1.0 / n).epsilon(1e-9));
    }
    const double gap = transported - exact;
    INFO("plan cost " << transported << " exact " << exact);
    REQUIRE(gap >= -1e-9);          // no plan beats the optimum
    REQUIRE(gap < previous_gap);    // and the gap shrinks with epsilon
    previous_gap = gap;
  }
  REQUIRE(previous_gap < 0.01 * exact);
  REQUIRE_THROWS_AS(sinkhorn_plan(cost, 0.0), ValueError);
  // float32 and a tiny epsilon, every cost far over 87·epsilon (exp(−C/ε) alone would be 0 everywhere):
  // the stabilised log-sum-exps still give a plan with the right marginals. To float32's resolution:
  // C/ε is about 1e5 here, stored to ±0.004, and e^±0.004 moves an entry by 0.4%.
  SinkhornResult tiny = sinkhorn_plan((cost + 100.0).to(DType::Float32), 1e-3, 50, 1e-4);
  std::vector<double> tiny_plan = tiny.plan.to_vector();
  for (double p : tiny_plan) REQUIRE(std::isfinite(p));
  for (std::int64_t j = 0; j < n; ++j) {
    double column = 0;
    for (std::int64_t i = 0; i < n; ++i) column += tiny_plan[i * n + j];
    REQUIRE(column == Approx(1.0 / n).epsilon(1e-2));
  }
}

TEST_CASE("couple() re-pairs a batch: the exact assignment, or Sinkhorn draws near it", "[flow][coupling]") {
  Generator gen(21);
  const std::int64_t n = 64;
  Tensor x0 = randn({n, 2}, gen, DType::Float64), x1 = randn({n, 2}, gen, DType::Float64) * 2.0 + 3.0;
  const StepNoise noise{1, 4, 0};
  auto total_cost = [&](const Tensor& partner) { return sum(square(x0 - partner)).item(); };
  CouplingOptions independent;
  REQUIRE(couple(x0, x1, independent, noise).to_vector() == x1.to_vector());

  CouplingOptions ot;
  ot.kind = parse_coupling("minibatch_ot");
  Tensor paired = couple(x0, x1, ot, noise);
  std::vector<double> c = squared_distances(x0, x1).to_vector();
  REQUIRE(total_cost(paired) == Approx(assignment_cost(c, n, optimal_assignment(c, n))).epsilon(1e-12));
  REQUIRE(total_cost(paired) < 0.9 * total_cost(x1));
  // A permutation of x1's rows: same multiset of first coordinates.
  auto first_coordinates = [](const Tensor& t) {
    std::vector<double> v = t.to_vector(), out;
    for (std::size_t i = 0; i < v.size(); i += 2) out.push_back(v[i]);
    std::sort(out.begin(), out.end());
    return out;
  };
  REQUIRE(first_coordinates(paired) == first_coordinates(x1));
  // Images: rows are flattened for the cost and reshaped back.
  Tensor images0 = randn({5, 1, 3, 3}, gen), images1 = randn({5, 1, 3, 3}, gen);
  REQUIRE(couple(images0, images1, ot, noise).shape() == Shape{5, 1, 3, 3});

  CouplingOptions sinkhorn;
  sinkhorn.kind = CouplingKind::Sinkhorn;
  sinkhorn.sinkhorn_epsilon = 0.01;
  sinkhorn.sinkhorn_iterations = 2000;
  Tensor drawn = couple(x0, x1, sinkhorn, noise);
  REQUIRE(drawn.to_vector() == couple(x0, x1, sinkhorn, noise).to_vector());  // keyed draws: reproducible
  REQUIRE(total_cost(drawn) < 1.1 * total_cost(paired));                     // close to the optimum
  REQUIRE(total_cost(drawn) < 0.9 * total_cost(x1));                         // far below independent
  // One far outlier in a batch of identical points (its row's costs are 160 / ε-units above the rest's):
  // the Sinkhorn coupling pairs it without under- or overflow.
  std::vector<double> outlier_x0{10, 0};
  for (int i = 1; i < 8; ++i) outlier_x0.insert(outlier_x0.end(), {0.0, 0.0});
  Tensor lonely = Tensor::from_vector(outlier_x0, {8, 2}), crowd = Tensor::zeros({8, 2});
  CouplingOptions default_sinkhorn;
  default_sinkhorn.kind = CouplingKind::Sinkhorn;
  REQUIRE(couple(lonely, crowd, default_sinkhorn, noise).to_vector() == crowd.to_vector());
  REQUIRE_THROWS_WITH(parse_coupling("greedy"), Catch::Contains("expected one of independent, minibatch_ot, sinkhorn"));
  REQUIRE_THROWS_AS(couple(x0, x1.narrow(0, 0, 10), ot, noise), ShapeError);
}
