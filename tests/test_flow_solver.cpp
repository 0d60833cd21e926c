// tests/test_flow_solver.cpp — the ODE solvers of flow/solver.h on fields with known solutions:
// exactness where the method is exact, observed convergence orders, exact NFE counts, dopri5's
// tolerance/cost trade-off and step bookkeeping, callbacks, no-grad, the factory, and the
// network-to-field adapter of flow/model_fn.h; on a GPU (or the CUDA emulator), every solver
// on the device against the CPU.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "flow/path.h"
#include "flow/solver.h"
#include "flow/model_fn.h"
#include "tensor_compare.h"
#include "test_util.h"

using namespace fm;
using fm::test::max_abs_diff;
using namespace fm::flow;

namespace {

// v(x, t) = 3t²: x(1) = x(0) + 1. Independent of x, so a Runge–Kutta method reduces to its
// quadrature rule (Euler: left Riemann sum, midpoint rule, Heun: trapezoid, RK4: Simpson).
VelocityField cubic_field() {
  return [](const Tensor& x, double t) { return Tensor::full(x.shape(), 3 * t * t, x.dtype(), x.device()); };
}
// v(x, t) = x·cos t: x(t) = x(0)·exp(sin t). Non-polynomial in t and depends on x.
VelocityField exp_sin_field() {
  return [](const Tensor& x, double t) { return x * std::cos(t); };
}

Tensor start_state() { return Tensor::from_vector({0.5, -1.25, 2.0, 0.75}, {2, 2}, DType::Float64); }

Tensor exact_exp_sin(const Tensor& x0, double t) { return x0 * std::exp(std::sin(t)); }

double error_at(const std::string& solver, int steps, const VelocityField& field, const Tensor& exact) {
  SolverOptions options;
  options.steps = steps;
  return max_abs_diff(make_solver(solver, options)->solve(field, start_state()).x, exact);
}

// Observed order log2(e(n) / e(2n)) over n = n0, 2n0, 4n0; returns the orders found.
std::vector<double> observed_orders(const std::string& solver, int n0, const VelocityField& field,
                                    const Tensor& exact) {
  std::vector<double> errors, orders;
  for (int n = n0; n <= 8 * n0; n *= 2) errors.push_back(error_at(solver, n, field, exact));
  for (std::size_t i = 0; i + 1 < errors.size(); ++i) orders.push_back(std::log2(errors[i] / errors[i + 1]));
  std::printf("%-9s errors", solver.c_str());
  for (double e : errors) std::printf(" %.3e", e);
  std::printf("  orders");
  for (double p : orders) std::printf(" %.3f", p);
  std::printf("\n");
  return orders;
}

}  // namespace

TEST_CASE("RK4 integrates v = 3t^2 exactly (Simpson's rule is exact on cubics)", "[flow][solver]") {
  Tensor exact = start_state() + 1.0;
  for (int steps : {1, 2, 7}) {
    SolveResult r = RK4Solver(steps).solve(cubic_field(), start_state());
    INFO("steps " << steps);
    REQUIRE(max_abs_diff(r.x, exact) < 1e-14);
  }
}

TEST_CASE("fixed-step errors on v = 3t^2 match the quadrature rules' closed forms", "[flow][solver]") {
  // Errors x_n(1) − x(1) for n steps of size h = 1/n: Euler −(3n − 1)/(2n²) (left Riemann sum),
  // midpoint −h²/4, Heun +h²/2 (trapezoid).
  Tensor x0 = start_state();
  for (int n : {4, 10}) {
    const double h = 1.0 / n;
    auto err = [&](const OdeSolver& s) {
      return (s.solve(cubic_field(), x0).x - x0 - 1.0).to_vector()[0];
    };
    INFO("steps " << n);
    REQUIRE(err(EulerSolver(n)) == Approx(-(3.0 * n - 1) / (2.0 * n * n)).epsilon(1e-10));
    REQUIRE(err(MidpointSolver(n)) == Approx(-h * h / 4).epsilon(1e-10));
    REQUIRE(err(HeunSolver(n)) == Approx(h * h / 2).epsilon(1e-10));
  }
}

TEST_CASE("Euler, Midpoint, Heun converge at orders 1, 2, 2 on v = 3t^2", "[flow][solver]") {
  Tensor exact = start_state() + 1.0;
  const std::vector<std::pair<std::string, double>> expected = {{"euler", 1.0}, {"midpoint", 2.0}, {"heun", 2.0}};
  for (const auto& [name, order] : expected) {
    for (double p : observed_orders(name, 8, cubic_field(), exact)) {
      INFO(name);
      REQUIRE(p == Approx(order).margin(0.1));
    }
  }
}

TEST_CASE("on v = x cos t all four fixed-step solvers show their order, RK4 about 4", "[flow][solver]") {
  Tensor exact = exact_exp_sin(start_state(), 1.0);
  const std::vector<std::pair<std::string, double>> expected = {
      {"euler", 1.0}, {"midpoint", 2.0}, {"heun", 2.0}, {"rk4", 4.0}};
  for (const auto& [name, order] : expected) {
    // Start at 16 steps: Euler's first-order term needs a few steps to dominate.
    for (double p : observed_orders(name, 16, exp_sin_field(), exact)) {
      INFO(name);
      REQUIRE(p == Approx(order).margin(0.15));
    }
  }
  // And the absolute accuracy at 32 steps is what the orders promise.
  REQUIRE(error_at("rk4", 32, exp_sin_field(), exact) < 1e-7);
}

TEST_CASE("fixed-step NFE is exactly n, 2n, 2n, 4n and the callback sees every step", "[flow][solver]") {
  const std::vector<std::pair<std::string, int>> cost = {{"euler", 1}, {"midpoint", 2}, {"heun", 2}, {"rk4", 4}};
  for (const auto& [name, per_step] : cost) {
    for (int n : {1, 5, 13}) {
      SolverOptions options;
      options.steps = n;
      std::vector<double> times;
      SolveResult r = make_solver(name, options)->solve(
          exp_sin_field(), start_state(), [&](double t, const Tensor& x) {
            times.push_back(t);
            REQUIRE(x.shape() == Shape{2, 2});
          });
      INFO(name << " with " << n << " steps");
      REQUIRE(r.nfe == std::int64_t(per_step) * n);
      REQUIRE(r.steps == n);
      REQUIRE(r.rejected_steps == 0);
      REQUIRE(times.size() == std::size_t(n));
      REQUIRE(times.back() == 1.0);  // the last step lands on t = 1 exactly
      for (std::size_t i = 0; i < times.size(); ++i) REQUIRE(times[i] == Approx(double(i + 1) / n).epsilon(1e-15));
    }
  }
}

TEST_CASE("dopri5 meets the requested tolerance and costs fewer NFE at looser tolerances", "[flow][solver]") {
  Tensor exact = exact_exp_sin(start_state(), 1.0);
  std::int64_t previous_nfe = 0;
  for (double tol : {1e-10, 1e-7, 1e-4}) {
    AdaptiveStepOptions options;
    options.rtol = options.atol = tol;
    SolveResult r = Dopri5Solver(options).solve(exp_sin_field(), start_state());
    const double err = max_abs_diff(r.x, exact);
    std::printf("dopri5 tol %.0e: error %.3e, nfe %lld, accepted %lld, rejected %lld\n", tol, err,
                (long long)r.nfe, (long long)r.steps, (long long)r.rejected_steps);
    INFO("tol " << tol << " error " << err << " nfe " << r.nfe);
    // Local error per step is held at tol·scale (|x| <= 2·e ≈ 5); the global error of this smooth,
    // non-stiff problem stays within a small multiple of it.
    REQUIRE(err <= 10 * tol * (1 + 5));
    REQUIRE(r.nfe == 2 + 6 * (r.steps + r.rejected_steps));  // f0, the step heuristic, 6 per attempt (FSAL)
    if (previous_nfe) REQUIRE(r.nfe < previous_nfe);
    previous_nfe = r.nfe;
  }
}

TEST_CASE("dopri5 is exact on v = 3t^2 and honours a given first step", "[flow][solver]") {
  AdaptiveStepOptions options;
  options.first_step = 0.25;
  SolveResult r = Dopri5Solver(options).solve(cubic_field(), start_state());
  REQUIRE(max_abs_diff(r.x, start_state() + 1.0) < 1e-14);
  REQUIRE(r.nfe == 1 + 6 * (r.steps + r.rejected_steps));  // no heuristic evaluation
  // A 5th-order method has zero error on a cubic: steps only grow, by the factor bound 10.
  REQUIRE(r.rejected_steps == 0);
}

TEST_CASE("dopri5 rejects steps on a stiff field and still counts every evaluation", "[flow][solver]") {
  // v = −200·(x − sin t): the explicit stability limit (h ≈ 3.3/200) forces the controller to probe
  // it, so some steps are rejected; the solution follows sin t closely after a short transient.
  VelocityField stiff = [](const Tensor& x, double t) { return (x - std::sin(t)) * -200.0; };
  AdaptiveStepOptions options;
  options.rtol = options.atol = 1e-6;
  std::vector<double> times;
  SolveResult r = Dopri5Solver(options).solve(stiff, start_state(),
                                              [&](double t, const Tensor&) { times.push_back(t); });
  std::printf("dopri5 stiff: nfe %lld, accepted %lld, rejected %lld\n", (long long)r.nfe,
              (long long)r.steps, (long long)r.rejected_steps);
  REQUIRE(r.rejected_steps > 0);
  REQUIRE(r.nfe == 2 + 6 * (r.steps + r.rejected_steps));
  REQUIRE(times.size() == std::size_t(r.steps));
  REQUIRE(times.back() == 1.0);
  for (std::size_t i = 1; i < times.size(); ++i) REQUIRE(times[i] > times[i - 1]);
  // Quasi-steady state x ≈ sin t − cos t / 200 (first-order expansion in 1/200).
  for (double v : r.x.to_vector()) REQUIRE(v == Approx(std::sin(1.0) - std::cos(1.0) / 200).margin(1e-4));
}

TEST_CASE("solvers integrate backwards when t_end < t_start", "[flow][solver]") {
  Tensor x1 = exact_exp_sin(start_state(), 1.0);
  SolverOptions options;
  options.t_start = 1.0;
  options.t_end = 0.0;
  options.steps = 64;
  options.adaptive.rtol = options.adaptive.atol = 1e-9;
  REQUIRE(max_abs_diff(make_solver("rk4", options)->solve(exp_sin_field(), x1).x, start_state()) < 1e-8);
  REQUIRE(max_abs_diff(make_solver("dopri5", options)->solve(exp_sin_field(), x1).x, start_state()) < 1e-7);
}

TEST_CASE("solvers record no autograd graph and check the field's output shape", "[flow][solver]") {
  Tensor w = Tensor::from_vector({0.5}, {1}, DType::Float64).set_requires_grad();
  VelocityField field = [&](const Tensor& x, double) { return x * w; };
  for (const std::string& name : solver_names()) {
    SolveResult r = make_solver(name)->solve(field, start_state());
    INFO(name);
    REQUIRE_FALSE(r.x.requires_grad());
    REQUIRE(max_abs_diff(r.x, start_state() * std::exp(0.5)) < 1e-2);  // Euler, 100 steps: ~4e-3
  }
  REQUIRE(grad_mode_enabled());  // the guard is released afterwards
  VelocityField wrong = [](const Tensor& x, double) { return Tensor::zeros({x.size(0)}, x.dtype()); };
  REQUIRE_THROWS_AS(EulerSolver(4).solve(wrong, start_state()), ShapeError);
  REQUIRE_THROWS_WITH(Dopri5Solver().solve(wrong, start_state()), Catch::Contains("returned [2]"));
}

TEST_CASE("solvers work in float32", "[flow][solver]") {
  Tensor x0 = start_state().to(DType::Float32);
  SolveResult r = RK4Solver(20).solve(exp_sin_field(), x0);
  REQUIRE(r.x.dtype() == DType::Float32);
  REQUIRE(max_abs_diff(r.x, exact_exp_sin(start_state(), 1.0)) < 1e-5);
  SolveResult a = Dopri5Solver().solve(exp_sin_field(), x0);
  REQUIRE(max_abs_diff(a.x, exact_exp_sin(start_state(), 1.0)) < 1e-4);
}

TEST_CASE("every solver on CUDA takes the CPU's steps to the CPU's answer", "[flow][solver][gpu]") {
  FM_REQUIRE_GPU();
  Generator gen(8);
  Tensor x0 = randn({64, 2}, gen).to(DType::Float32);
  for (const std::string& name : solver_names()) {
    INFO(name);
    SolverOptions options;
    options.steps = 20;
    auto solver = make_solver(name, options);
    SolveResult cpu = solver->solve(exp_sin_field(), x0), gpu = solver->solve(exp_sin_field(), x0.to(Device::CUDA));
    REQUIRE(gpu.x.device() == Device::CUDA);
    // dopri5's step control reads its error norm back from the device: the same decisions.
    REQUIRE(gpu.nfe == cpu.nfe);
    REQUIRE(gpu.rejected_steps == cpu.rejected_steps);
    // Element-wise float32 updates only: bitwise equal on the CUDA emulator (2026-11-22). With |x|
    // up to 7.2, 1e-5 is a few float32 ulps: room for the GPU fusing a multiply and an add.
    REQUIRE(max_abs_diff(gpu.x, cpu.x) < 1e-5);
  }
}

TEST_CASE("the solver factory knows five names and refuses others with a ConfigError", "[flow][solver]") {
  for (const std::string& name : solver_names()) REQUIRE(make_solver(name)->name() == name);
  REQUIRE(solver_names().size() == 5);
  REQUIRE_THROWS_AS(make_solver("rk45"), ConfigError);
  REQUIRE_THROWS_WITH(make_solver("rk45"), Catch::Contains("euler, midpoint, heun, rk4, dopri5"));
  REQUIRE_THROWS_AS(EulerSolver(0), ValueError);
  AdaptiveStepOptions bad;
  bad.rtol = bad.atol = 0;
  REQUIRE_THROWS_AS(Dopri5Solver(bad), ValueError);
}

TEST_CASE("dopri5 gives up with a clear error after max_steps", "[flow][solver]") {
  AdaptiveStepOptions options;
  options.max_steps = 3;
  options.rtol = options.atol = 1e-12;
  REQUIRE_THROWS_WITH(Dopri5Solver(options).solve(exp_sin_field(), start_state()),
                      Catch::Contains("gave up after 3 steps"));
}

TEST_CASE("velocity_field_from_model passes one time per sample and converts x1 predictions", "[flow][solver]") {
  // A velocity model: checks the time tensor it receives.
  ModelFn model = [](const Tensor& x, const Tensor& t) {
    REQUIRE(t.shape() == Shape{x.size(0)});
    REQUIRE(t.dtype() == x.dtype());
    return x * t.to_vector()[0];
  };
  Tensor v = velocity_field_from_model(model)(start_state(), 0.25);
  REQUIRE(max_abs_diff(v, start_state() * 0.25) < 1e-15);

  // Data concentrated at one point c: the ideal x1-predictor returns c everywhere. Under CondOT
  // its velocity is (c − x)/(1 − t), and Euler lands on c exactly (the last step has h = 1 − t).
  Tensor c = Tensor::from_vector({3.0, -1.0}, {1, 2}, DType::Float64);
  ModelFn predicts_c = [&](const Tensor& x, const Tensor&) { return c.expand(x.shape()).contiguous(); };
  VelocityField field =
      velocity_field_from_model(predicts_c, Parameterization::DataPrediction, std::make_shared<CondOTPath>());
  Tensor x0 = Tensor::from_vector({0.1, 0.2, -0.3, 0.4}, {2, 2}, DType::Float64);
  SolveResult r = EulerSolver(10).solve(field, x0);
  REQUIRE(max_abs_diff(r.x, c.expand({2, 2})) < 1e-12);
  REQUIRE_THROWS_AS(velocity_field_from_model(predicts_c, Parameterization::DataPrediction), ValueError);
}
