// tests/test_flow_likelihood.cpp — flow/likelihood.h against answers known in closed form: a flow
// between two Gaussians (log-density exact to RK4's derived error bound), the exact divergence of a
// linear field (its trace), Hutchinson's estimator against the exact divergence of a nonlinear MLP
// (within its own standard error), dopri5 within a bound from its tolerances, every solver under
// NoGradGuard, memory flat in the number of solver steps (fixed and adaptive), and bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>
#include <vector>

#include "core/autograd.h"
#include "core/host_allocator.h"
#include "core/ops.h"
#include "core/random.h"
#include "flow/likelihood.h"
#include "flow/model_fn.h"

using namespace fm;
using namespace fm::flow;

namespace {

// Source N(0, I), target N(mu, s² I), independent coupling, linear path x_t = (1 − t)x0 + t·x1:
// x_t ~ N(t·mu, σ_t² I) with σ_t² = q(t) = (1 − t)² + t²s², and the marginal velocity
// v(x, t) = mu + (σ_t'/σ_t)(x − t·mu), σ_t'/σ_t = q'(t) / (2 q(t)).
struct GaussianFlow {
  std::vector<double> mu;
  double s;
  double log_sigma_rate(double t) const {  // σ_t'/σ_t
    const double q = (1 - t) * (1 - t) + t * t * s * s;
    const double dq = -2 * (1 - t) + 2 * t * s * s;
    return dq / (2 * q);
  }
  ModelFn model() const {
    return [this](const Tensor& x, const Tensor& t) {
      const double time = t.to_vector().front();  // the solver passes one time for the whole batch
      Tensor m = Tensor::from_vector(mu, {1, std::int64_t(mu.size())}, x.dtype(), x.device());
      return m + (x - m * time) * log_sigma_rate(time);
    };
  }
  // log N(x; mu, s² I) per row.
  std::vector<double> log_density(const std::vector<double>& x) const {
    const std::size_t d = mu.size();
    std::vector<double> out;
    for (std::size_t i = 0; i < x.size() / d; ++i) {
      double squared = 0;
      for (std::size_t j = 0; j < d; ++j) squared += (x[i * d + j] - mu[j]) * (x[i * d + j] - mu[j]);
      out.push_back(-0.5 * squared / (s * s) - double(d) * std::log(s) - 0.5 * double(d) * std::log(2 * std::numbers::pi));
    }
    return out;
  }
};

std::vector<double> rk4_log_prob(const GaussianFlow& flow, const Tensor& x1, int steps,
                                 DivergenceMethod method = DivergenceMethod::Exact,
                                 ProbeDistribution probe = ProbeDistribution::Rademacher) {
  LikelihoodOptions options;
  options.solver = "rk4";
  options.steps = steps;
  options.divergence = method;
  options.probe = probe;
  options.probes = 3;
  return log_likelihood(velocity_field_from_model(flow.model()), x1, options).log_prob.to_vector();
}

// A small nonlinear 2-D field, v(x, t) = W2·tanh(W1·x + b1 + t·c) + b2, float64, fixed weights.
ModelFn small_mlp(std::uint64_t seed, std::int64_t dims = 2, std::int64_t hidden = 16) {
  Generator gen(seed);
  Tensor w1 = randn({hidden, dims}, gen, DType::Float64), b1 = randn({hidden}, gen, DType::Float64);
  Tensor c = randn({hidden}, gen, DType::Float64);
  Tensor w2 = randn({dims, hidden}, gen, DType::Float64) * (1.0 / std::sqrt(double(hidden)));
  Tensor b2 = randn({dims}, gen, DType::Float64);
  return [=](const Tensor& x, const Tensor& t) {
    Tensor pre = linear(x, w1.to(x.dtype()), b1.to(x.dtype())) + t.unsqueeze(1) * c.to(x.dtype()).unsqueeze(0);
    return linear(tanh(pre), w2.to(x.dtype()), b2.to(x.dtype()));
  };
}

}  // namespace

TEST_CASE("likelihood of a Gaussian-to-Gaussian flow matches the closed form within RK4's error bound",
          "[flow][likelihood]") {
  const GaussianFlow flow{{1.5, -0.5}, 0.5};
  // Here div v = D·σ_t'/σ_t = D·g'(t) with g = ½ log q does not depend on x, so the ℓ component of
  // RK4 is Simpson's rule on f = D·g' over panels of width h = 1/n: |error| ≤ h⁴/2880 · max|f⁗|.
  // q(t) = (1 + s²)(t − r)(t − r̄) with r = (1 + i·s)/(1 + s²), so g^(5)(t) = 12·[(t − r)^-5 + (t − r̄)^-5]
  // and |f⁗| = D|g^(5)| ≤ 24·D/|Im r|^5 = 24·D·((1 + s²)/s)^5. Bound: D·h⁴·((1 + s²)/s)^5 / 120.
  const int steps = 100;
  const double h = 1.0 / steps, dims = 2;
  const double simpson_bound = dims * std::pow(h, 4) * std::pow((1 + 0.25) / 0.5, 5) / 120;

  SECTION("at the mean the state stays on the line t·mu, so only the divergence integral errs") {
    // RK4's stages at x = t·mu all see v = mu and land on (t + c·h)·mu: x_0 = 0 up to rounding.
    Tensor x1 = Tensor::from_vector(flow.mu, {1, 2}, DType::Float64);
    const double got = rk4_log_prob(flow, x1, steps)[0];
    const double want = flow.log_density(flow.mu)[0];
    INFO("got " << got << " want " << want << " bound " << simpson_bound);
    REQUIRE(std::abs(got - want) <= simpson_bound + 1e-12);
  }
  SECTION("away from the mean the error falls at 4th order, and below its Richardson estimate") {
    const std::vector<double> points{1.5, -0.5, 0.2, 0.4, 2.5, -1.0, 1.0, 0.3};
    Tensor x1 = Tensor::from_vector(points, {4, 2}, DType::Float64);
    const std::vector<double> want = flow.log_density(points);
    const std::vector<double> coarse = rk4_log_prob(flow, x1, steps / 2), fine = rk4_log_prob(flow, x1, steps);
    for (std::size_t i = 0; i < want.size(); ++i) {
      const double error_coarse = std::abs(coarse[i] - want[i]), error_fine = std::abs(fine[i] - want[i]);
      // A 4th-order method: e(h) = C·h⁴ + O(h⁵), so e(h) ≈ |r(2h) − r(h)|/15; twice that allows the O(h⁵)
      // remainder to be as large as the leading term. The point at the mean has only the Simpson error.
      const double richardson = std::abs(coarse[i] - fine[i]) / 15;
      INFO("point " << i << ": error " << error_fine << " (at n/2: " << error_coarse << "), Richardson " << richardson);
      REQUIRE(error_fine <= 2 * richardson + simpson_bound + 1e-12);
      if (error_coarse > 1e-9) {  // far above rounding: the ratio shows the order
        REQUIRE(error_coarse / error_fine > 16 * 0.7);
        REQUIRE(error_coarse / error_fine < 16 * 1.3);
      }
    }
  }
  SECTION("Rademacher probes are exact here (J = g'·I and |z|² = D), Gaussian ones are not") {
    // zᵀJz = g'·|z|²: with ±1 entries |z|² = D always, so Hutchinson equals the exact divergence.
    Tensor x1 = Tensor::from_vector({0.2, 0.4, 2.5, -1.0}, {2, 2}, DType::Float64);
    const std::vector<double> exact = rk4_log_prob(flow, x1, 20);
    const std::vector<double> rademacher = rk4_log_prob(flow, x1, 20, DivergenceMethod::Hutchinson);
    const std::vector<double> gaussian =
        rk4_log_prob(flow, x1, 20, DivergenceMethod::Hutchinson, ProbeDistribution::Gaussian);
    for (std::size_t i = 0; i < exact.size(); ++i) {
      REQUIRE(std::abs(rademacher[i] - exact[i]) < 1e-12);
      REQUIRE(std::abs(gaussian[i] - exact[i]) > 1e-6);  // |z|² ≠ D for 3 Gaussian probes
    }
  }
}

TEST_CASE("dopri5 on the Gaussian-to-Gaussian flow matches the closed form within a bound from rtol and atol",
          "[flow][likelihood]") {
  const GaussianFlow flow{{1.5, -0.5}, 0.5};
  const std::vector<double> points{1.5, -0.5, 0.2, 0.4, 2.5, -1.0, 1.0, 0.3};
  const std::int64_t n = 4, dims = 2;
  Tensor x1 = Tensor::from_vector(points, {n, dims}, DType::Float64);
  const std::vector<double> want = flow.log_density(points);
  // The bound. dopri5 accepts a step when the RMS over the M = N·(D + 1) elements of the state [x, ℓ] of
  // e_i / (atol + rtol·max(|y_i|, |y_i'|)) is at most 1, so every element's local error estimate is at
  // most √M·(atol + rtol·|y|max) (taking the estimate as a bound on the propagated 5th-order solution's
  // own error, the premise of all error-per-step control).
  //  ℓ: dℓ/dt = D·g'(t) depends on neither x nor ℓ, so its local errors just add up over the steps.
  //  x: dx/dt = mu + (σ_t'/σ_t)(x − t·mu) is linear, and a perturbation at t reaches t = 0 scaled by
  //     σ_0/σ_t ≤ 1/min σ_t = √(1 + s²)/s; in log p_0(x_0) = −½|x_0|² − … it costs at most |x_0|·|δx_0|,
  //     with |x_0| ≤ √D·max|x_0,i| and |δx_0| ≤ √D·(per-element error).
  // So |error| ≤ steps·√M·[(atol + rtol·max|ℓ|) + |x_0|·√D·√(1 + s²)/s·(atol + rtol·max|x|)].
  auto bound = [&](const LikelihoodResult& r, double tol) {
    const double m = double(n * (dims + 1)), amplification = std::sqrt(1 + 0.25) / 0.5;
    double max_x = 0, max_l = 0, max_x0 = 0;
    for (double v : points) max_x = std::max(max_x, std::abs(v));
    for (double v : r.x0.to_vector()) max_x = std::max(max_x, std::abs(v)), max_x0 = std::max(max_x0, std::abs(v));
    for (double v : r.divergence_integral.to_vector()) max_l = std::max(max_l, std::abs(v));
    return double(r.steps) * std::sqrt(m) *
           ((tol + tol * max_l) + std::sqrt(double(dims)) * max_x0 * std::sqrt(double(dims)) * amplification * (tol + tol * max_x));
  };
  LikelihoodOptions options;
  options.solver = "dopri5";
  std::vector<double> errors;
  for (double tol : {1e-4, 1e-8}) {
    options.rtol = options.atol = tol;
    const LikelihoodResult r = log_likelihood(velocity_field_from_model(flow.model()), x1, options);
    // NFE = 1 (the first v) + 1 (the starting-step heuristic) + 6 per attempted step (FSAL).
    REQUIRE(r.nfe == 2 + 6 * (r.steps + r.rejected_steps));
    const std::vector<double> got = r.log_prob.to_vector();
    double largest = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      INFO("tol " << tol << " point " << i << ": got " << got[i] << " want " << want[i] << " bound " << bound(r, tol));
      REQUIRE(std::abs(got[i] - want[i]) <= bound(r, tol));
      largest = std::max(largest, std::abs(got[i] - want[i]));
    }
    WARN("dopri5 rtol = atol = " << tol << ": " << r.nfe << " NFE (" << r.steps << " steps, " << r.rejected_steps
                                 << " rejected), largest error " << largest << ", bound " << bound(r, tol));
    errors.push_back(largest);
  }
  // The tolerance does steer the error: 10⁴ times tighter is clearly more accurate.
  INFO("largest errors: " << errors[0] << " at 1e-4, " << errors[1] << " at 1e-8");
  REQUIRE(errors[1] < errors[0] / 10);
}

TEST_CASE("every solver integrates the likelihood and agrees on the Gaussian flow", "[flow][likelihood]") {
  const GaussianFlow flow{{1.5, -0.5}, 0.5};
  const std::vector<double> points{0.2, 0.4, 2.5, -1.0};
  Tensor x1 = Tensor::from_vector(points, {2, 2}, DType::Float64);
  const std::vector<double> want = flow.log_density(points);
  // Called under NoGradGuard on purpose: each evaluation turns grad mode on for itself.
  NoGradGuard no_grad;
  {
    EnableGradGuard grad_on;  // the guard itself: on inside, the outer mode back after
    REQUIRE(grad_mode_enabled());
  }
  REQUIRE_FALSE(grad_mode_enabled());
  for (const std::string solver : {"euler", "midpoint", "heun", "rk4", "dopri5"}) {
    LikelihoodOptions options;
    options.solver = solver;
    options.steps = 400;
    const LikelihoodResult r = log_likelihood(velocity_field_from_model(flow.model()), x1, options);
    const std::vector<double> got = r.log_prob.to_vector();
    REQUIRE_FALSE(grad_mode_enabled());  // the caller's mode is back
    for (std::size_t i = 0; i < want.size(); ++i) {
      INFO(solver << " point " << i << ": got " << got[i] << " want " << want[i]);
      // Euler's global error is O(h) with h = 1/400; the others are far inside this.
      REQUIRE(std::abs(got[i] - want[i]) < 0.05);
    }
  }
}

TEST_CASE("exact divergence of a linear field equals the trace of its matrix", "[flow][likelihood]") {
  Generator gen(3);
  Tensor a = randn({3, 3}, gen, DType::Float64);
  double trace = 0;
  for (int i = 0; i < 3; ++i) trace += a.to_vector()[std::size_t(i) * 3 + i];
  // v(x, t) = A·x + t·(1, 1, 1): J = A everywhere.
  VelocityField field = [&a](const Tensor& x, double t) { return linear(x, a, Tensor()) + t; };
  Tensor x = randn({5, 3}, gen, DType::Float64);
  std::int64_t backward_passes = 0;
  VelocityAndDivergence vd = velocity_and_divergence(field, x, 0.3, DivergenceMethod::Exact, {}, &backward_passes);
  REQUIRE(backward_passes == 3);  // one vector-Jacobian product per dimension, for the whole batch
  REQUIRE(vd.divergence.shape() == Shape{5});
  for (double value : vd.divergence.to_vector()) REQUIRE(std::abs(value - trace) < 1e-12);
  REQUIRE_FALSE(vd.velocity.requires_grad());
  REQUIRE_FALSE(vd.divergence.requires_grad());
  // A field that ignores x has divergence 0.
  VelocityField constant = [](const Tensor& x, double) { return Tensor::ones(x.shape(), x.dtype()); };
  for (double value : velocity_and_divergence(constant, x, 0.5, DivergenceMethod::Exact).divergence.to_vector())
    REQUIRE(value == 0.0);
}

TEST_CASE("Hutchinson's mean converges to the exact divergence of a nonlinear MLP within its standard error",
          "[flow][likelihood]") {
  VelocityField field = velocity_field_from_model(small_mlp(11));
  Generator gen(5);
  const std::int64_t n = 6;
  Tensor x = randn({n, 2}, gen, DType::Float64);
  const double t = 0.37;
  const std::vector<double> exact = velocity_and_divergence(field, x, t, DivergenceMethod::Exact).divergence.to_vector();
  const int probes = 2000;
  for (ProbeDistribution distribution : {ProbeDistribution::Rademacher, ProbeDistribution::Gaussian}) {
    Tensor z = make_probes({n, 2}, probes, distribution, /*seed=*/9, /*first_sample=*/0, DType::Float64, Device::CPU);
    // Each probe's estimate alone (their spread gives the standard error of the mean) ...
    std::vector<double> sum(n, 0), squares(n, 0);
    for (int k = 0; k < probes; ++k) {
      std::vector<double> one =
          velocity_and_divergence(field, x, t, DivergenceMethod::Hutchinson, z.narrow(0, k, 1)).divergence.to_vector();
      for (std::int64_t i = 0; i < n; ++i) sum[i] += one[i], squares[i] += one[i] * one[i];
    }
    // ... and all probes in one call: the mean of the same numbers.
    const std::vector<double> together =
        velocity_and_divergence(field, x, t, DivergenceMethod::Hutchinson, z).divergence.to_vector();
    for (std::int64_t i = 0; i < n; ++i) {
      const double mean = sum[i] / probes;
      const double variance = (squares[i] - probes * mean * mean) / (probes - 1);
      const double standard_error = std::sqrt(std::max(variance, 0.0) / probes);
      INFO(probe_distribution_name(distribution) << " sample " << i << ": exact " << exact[i] << ", mean " << mean
                                                 << " +- " << standard_error);
      REQUIRE(std::abs(together[i] - mean) < 1e-9 * (1 + std::abs(mean)));
      // 4 standard errors: a false alarm for one of 12 unbiased means has probability about 1e-3.
      REQUIRE(std::abs(mean - exact[i]) <= 4 * standard_error);
      REQUIRE(standard_error > 0);  // the off-diagonal of J is not zero here: the test has teeth
    }
  }
  // The probes are a pure function of (seed, sample index, probe): a batch's slice equals the whole's.
  Tensor whole = make_probes({6, 2}, 2, ProbeDistribution::Rademacher, 9, 0, DType::Float64, Device::CPU);
  Tensor tail = make_probes({2, 2}, 2, ProbeDistribution::Rademacher, 9, 4, DType::Float64, Device::CPU);
  REQUIRE(whole.narrow(1, 4, 2).contiguous().to_vector() == tail.to_vector());
}

TEST_CASE("likelihood memory is flat in the number of solver steps", "[flow][likelihood]") {
  if (host_memory::direct()) {
    WARN("skipped: the host allocator's cache is bypassed (FM_CPU_ALLOCATOR=direct or a sanitizer build), so its "
         "cached bytes do not measure the peak");
    return;
  }
  // Every block a computation frees goes into the host allocator's cache, and a new request of a size
  // class is served from it. After a run the cache therefore holds at least the run's peak of live
  // blocks; a run of 100 steps that kept anything per step (a graph) would need more blocks than a run
  // of 10, and the cache would grow by them.
  VelocityField field = velocity_field_from_model(small_mlp(2, 2, 32));
  Generator gen(1);
  Tensor x1 = randn({64, 2}, gen, DType::Float32);
  LikelihoodOptions options;
  options.steps = 10;
  for (DivergenceMethod method : {DivergenceMethod::Exact, DivergenceMethod::Hutchinson}) {
    options.divergence = method;
    options.steps = 10;
    log_likelihood(field, x1, options);  // warm the cache with a 10-step run's blocks
    const std::size_t after_10 = host_memory::cached_bytes();
    options.steps = 100;
    LikelihoodResult result = log_likelihood(field, x1, options);
    const std::size_t after_100 = host_memory::cached_bytes();
    INFO(divergence_method_name(method) << ": cached bytes after 10 steps " << after_10 << ", after 100 " << after_100);
    // (≤, not ==: the 100-step run's result is still alive here, the 10-step run's went back to the cache.)
    REQUIRE(after_100 <= after_10);
    REQUIRE(result.nfe == 400);
    REQUIRE_FALSE(result.log_prob.requires_grad());
    REQUIRE(result.log_prob.grad_fn() == nullptr);
  }
  // dopri5 too: a tight tolerance takes many more steps than a loose one, and no more memory.
  options.solver = "dopri5";
  options.divergence = DivergenceMethod::Exact;
  options.rtol = options.atol = 1e-3;
  const std::int64_t loose_steps = log_likelihood(field, x1, options).steps;
  const std::size_t after_loose = host_memory::cached_bytes();
  options.rtol = options.atol = 1e-9;
  const LikelihoodResult tight = log_likelihood(field, x1, options);
  INFO("dopri5: " << loose_steps << " steps at 1e-3, " << tight.steps << " at 1e-9; cached bytes " << after_loose
                  << " then " << host_memory::cached_bytes());
  REQUIRE(tight.steps >= 3 * loose_steps);
  REQUIRE(host_memory::cached_bytes() <= after_loose);
  options.solver = "rk4";

  // The control: a field that keeps each evaluation's output (and with it the graph) alive makes the
  // cache grow, so the measurement above would see a leak.
  std::vector<Tensor> kept;
  VelocityField leaky = [&](const Tensor& x, double t) {
    Tensor v = field(x, t);
    kept.push_back(v);
    return v;
  };
  options.divergence = DivergenceMethod::Exact;
  options.steps = 10;
  log_likelihood(leaky, x1, options);
  kept.clear();
  const std::size_t leaky_10 = host_memory::cached_bytes();
  options.steps = 100;
  log_likelihood(leaky, x1, options);
  kept.clear();
  REQUIRE(host_memory::cached_bytes() > leaky_10);
}

TEST_CASE("likelihood refuses bad input with a clear error", "[flow][likelihood]") {
  VelocityField field = velocity_field_from_model(small_mlp(1));
  Tensor x1 = Tensor::zeros({3, 2}, DType::Float64);
  LikelihoodOptions options;
  options.steps = 0;
  REQUIRE_THROWS_AS(log_likelihood(field, x1, options), ValueError);
  options.steps = 4;
  options.probes = 0;
  REQUIRE_THROWS_AS(log_likelihood(field, x1, options), ValueError);
  options.probes = 1;
  options.solver = "dopri5";
  options.rtol = 0;
  REQUIRE_THROWS_AS(log_likelihood(field, x1, options), ValueError);
  options.rtol = 1e-5;
  options.solver = "leapfrog";
  REQUIRE_THROWS_AS(log_likelihood(field, x1, options), ConfigError);
  options.solver = "rk4";
  REQUIRE_THROWS_AS(log_likelihood(field, Tensor::zeros({3}, DType::Float64), options), ShapeError);
  REQUIRE_THROWS_AS(log_likelihood(VelocityField{}, x1, options), ValueError);
  VelocityField wrong_shape = [](const Tensor& x, double) { return x.narrow(1, 0, 1); };
  REQUIRE_THROWS_AS(log_likelihood(wrong_shape, x1, options), ShapeError);
  REQUIRE_THROWS_AS(parse_divergence_method("trace"), ConfigError);
  REQUIRE_THROWS_AS(parse_probe_distribution("uniform"), ConfigError);
  REQUIRE(parse_divergence_method("hutchinson") == DivergenceMethod::Hutchinson);
  REQUIRE(parse_probe_distribution("gaussian") == ProbeDistribution::Gaussian);
}
