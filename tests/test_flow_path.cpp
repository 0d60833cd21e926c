// tests/test_flow_path.cpp — schedulers and affine probability paths (flow/scheduler.h,
// flow/path.h): endpoint values, derivatives against finite differences, sample() against the
// formulas and against d/dt x_t, CondOT's exact target, and the velocity / x1 / x0 conversions
// (correct on exact data, round-trips for every pair, finite at the clamped ends); the schedulers'
// exact-operation formulas (kernels/path_law.h) against the C library's, and the per-sample
// coefficients made where the times are against the host's, on the CPU and on CUDA.
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/random.h"
#include "flow/path.h"
#include "flow/scheduler.h"
#include "tensor_compare.h"
#include "scheduler_fixtures.h"
#include "test_util.h"

using namespace fm;
using fm::test::max_abs_diff;
using namespace fm::flow;

namespace {

bool all_finite(const Tensor& x) {
  for (double v : x.to_vector())
    if (!std::isfinite(v)) return false;
  return true;
}

const Parameterization kAll[] = {Parameterization::Velocity, Parameterization::DataPrediction,
                                 Parameterization::NoisePrediction};

// Three samples of shape [3, 2, 2] and one time per sample.
struct Batch {
  Tensor x0, x1, t;
};
Batch make_batch(std::vector<double> times) {
  Generator gen(7);
  Batch b;
  b.x0 = randn({3, 2, 2}, gen, DType::Float64);
  b.x1 = randn({3, 2, 2}, gen, DType::Float64) * 2.0 + 1.0;
  b.t = Tensor::from_vector(times, {3}, DType::Float64);
  return b;
}

// Times of every kind: the ends, tiny ones, ones just below 1, a uniform spread.
std::vector<double> awkward_times(int n, std::uint64_t seed) {
  Generator gen(seed);
  std::vector<double> times{0.0, 1.0, 0.5, 1e-5, 1.0 - 1e-5};
  for (int i = 0; times.size() < std::size_t(n); ++i)
    times.push_back(i % 4 == 0 ? std::ldexp(1.0, -(i % 40) - 10)
                               : i % 4 == 1 ? 1.0 - std::ldexp(1.0, -(i % 20) - 4) : gen.uniform());
  return times;
}

}  // namespace

TEST_CASE("the cosine and VP formulas from exact operations agree with the C library's", "[flow][path]") {
  // kernels/path_law.h computes sin, cos, exp and expm1 from IEEE-exact operations (so the CPU and
  // CUDA agree bit for bit); here they are checked against the C library at double precision.
  for (double x = -3.0; x <= 3.0; x += 0.013) {
    INFO("x = " << x);
    REQUIRE(kernels::philox::expm1_exact(x) == Approx(std::expm1(x)).epsilon(4e-16).margin(1e-300));
  }
  REQUIRE(kernels::philox::expm1_exact(0.0) == 0.0);
  REQUIRE(kernels::philox::expm1_exact(1e-300) == 1e-300);
  const double beta_min = 0.1, beta_max = 20.0;
  for (double t : awkward_times(400, 5)) {
    INFO("t = " << t);
    const SchedulerValues c = CosineScheduler().at(t);
    const double half_pi = 0.5 * std::acos(-1.0);
    REQUIRE(std::abs(c.alpha - std::sin(half_pi * t)) < 4e-16);
    REQUIRE(std::abs(c.sigma - std::cos(half_pi * t)) < 4e-16);
    REQUIRE(std::abs(c.d_alpha - half_pi * std::cos(half_pi * t)) < 8e-16);
    REQUIRE(std::abs(c.d_sigma + half_pi * std::sin(half_pi * t)) < 8e-16);
    // The VP formulas of flow/scheduler.h, with the C library.
    const VPScheduler vp(beta_min, beta_max);
    const SchedulerValues v = vp.at(t);
    auto integrated = [&](double s) { return beta_min * s + 0.5 * (beta_max - beta_min) * s * s; };
    auto rate = [&](double s) { return beta_min + s * (beta_max - beta_min); };
    const double T = integrated(1.0 - t), alpha = std::exp(-0.5 * T);
    REQUIRE(v.alpha == Approx(alpha).epsilon(1e-14));
    REQUIRE(v.sigma == Approx(std::sqrt(-std::expm1(-T))).epsilon(1e-14).margin(1e-300));
    REQUIRE(v.d_alpha == Approx(0.5 * rate(1.0 - t) * alpha).epsilon(1e-14));
    const double tc = clamp_time(t), Tc = integrated(1.0 - tc), alpha_c = std::exp(-0.5 * Tc);
    REQUIRE(v.d_sigma == Approx(-0.5 * rate(1.0 - tc) * alpha_c * alpha_c / std::sqrt(-std::expm1(-Tc))).epsilon(1e-13));
  }
}

TEST_CASE("per-sample coefficients from a time tensor are bitwise those of the scheduler's host values",
          "[flow][path]") {
  // Every scheduler has a law(), so a path over it takes a batch's coefficients from core's
  // path_coefficients where the times are (the trainer's recorded steps read no time back). They
  // must equal the host recipe: the scheduler's values at each time, rounded to the dtype.
  Generator gen(41);
  const std::vector<double> times = awkward_times(96, 9);
  for (const std::string& name : scheduler_names()) {
    const AffineProbabilityPath with_law(make_scheduler(name));
    const AffineProbabilityPath host(std::make_shared<fm::test::HostValuesOnly>(make_scheduler(name)));
    REQUIRE(with_law.samples_from_device_times());
    REQUIRE_FALSE(host.samples_from_device_times());
    for (DType dtype : {DType::Float32, DType::Float64}) {
      INFO(name << " " << dtype_name(dtype));
      const Tensor x0 = randn({96, 1, 2, 3}, gen, dtype), x1 = randn({96, 1, 2, 3}, gen, dtype);
      const Tensor t = Tensor::from_vector(times, {96}, dtype);
      const PathSample a = with_law.sample(x0, x1, t), b = host.sample(x0, x1, t);
      REQUIRE(a.x_t.to_vector() == b.x_t.to_vector());
      REQUIRE(a.target_velocity.to_vector() == b.target_velocity.to_vector());
      // The coefficient rows themselves: path_at at each time the dtype holds, rounded once.
      const Tensor c = path_coefficients(t, *make_scheduler(name)->law());
      REQUIRE(c.shape() == Shape{4, 96});
      const std::vector<double> held = t.to_vector(), rows = c.to_vector();
      for (std::size_t i = 0; i < held.size(); ++i) {
        const SchedulerValues v = make_scheduler(name)->at(held[i]);
        const std::vector<double> expected =
            Tensor::from_vector({v.alpha, v.sigma, v.d_alpha, v.d_sigma}, {4}, dtype).to_vector();
        for (std::size_t k = 0; k < 4; ++k) REQUIRE(rows[k * held.size() + i] == expected[k]);
      }
    }
  }
  // Bad input: not one time per sample, or a VP law with bad rates.
  REQUIRE_THROWS_WITH(path_coefficients(Tensor::zeros({2, 2}), PathLaw{}), Catch::Contains("path_coefficients"));
  PathLaw bad{PathLawKind::VP};
  bad.beta_min = 0;
  REQUIRE_THROWS_WITH(path_coefficients(Tensor::zeros({2}), bad), Catch::Contains("0 < beta_min <= beta_max"));
}

TEST_CASE("path coefficients on CUDA are bitwise the CPU's for every scheduler", "[gpu]") {
  FM_REQUIRE_GPU();
  const Tensor t = Tensor::from_vector(awkward_times(1000, 13), {1000}, DType::Float32);
  for (const std::string& name : scheduler_names()) {
    INFO(name);
    const PathLaw law = *make_scheduler(name)->law();
    const Tensor on_cpu = path_coefficients(t, law), on_cuda = path_coefficients(t.to(Device::CUDA), law);
    REQUIRE(on_cuda.device() == Device::CUDA);
    REQUIRE(on_cuda.to_vector() == on_cpu.to_vector());
    // And the path's sample on CUDA equals the CPU's.
    Generator gen(3);
    const Tensor x0 = randn({1000, 2}, gen), x1 = randn({1000, 2}, gen);
    const AffineProbabilityPath path(make_scheduler(name));
    const PathSample cpu = path.sample(x0, x1, t);
    const PathSample cuda = path.sample(x0.to(Device::CUDA), x1.to(Device::CUDA), t.to(Device::CUDA));
    REQUIRE(cuda.x_t.to_vector() == cpu.x_t.to_vector());
    REQUIRE(cuda.target_velocity.to_vector() == cpu.target_velocity.to_vector());
  }
}

TEST_CASE("schedulers reach noise at t = 0 and data at t = 1", "[flow][path]") {
  for (std::string name : {"condot", "cosine"}) {
    auto s = make_scheduler(name);
    INFO(name);
    REQUIRE(s->at(0.0).alpha == Approx(0.0).margin(1e-15));
    REQUIRE(s->at(0.0).sigma == Approx(1.0).epsilon(1e-15));
    REQUIRE(s->at(1.0).alpha == Approx(1.0).epsilon(1e-15));
    REQUIRE(s->at(1.0).sigma == Approx(0.0).margin(1e-15));
  }
  // VP reaches data exactly but starts at almost-pure noise: α_0 = exp(−½(β_min + ½(β_max − β_min))).
  VPScheduler vp;
  REQUIRE(vp.at(1.0).alpha == 1.0);
  REQUIRE(vp.at(1.0).sigma == 0.0);
  REQUIRE(vp.at(0.0).alpha == Approx(std::exp(-0.5 * (0.1 + 0.5 * 19.9))).epsilon(1e-12));
  REQUIRE(vp.at(0.0).alpha < 0.007);
  // Variance preserving: α² + σ² = 1 for cosine and VP.
  for (double t : {0.0, 0.3, 0.77, 1.0}) {
    REQUIRE(std::pow(vp.at(t).alpha, 2) + std::pow(vp.at(t).sigma, 2) == Approx(1.0).epsilon(1e-14));
    SchedulerValues c = CosineScheduler().at(t);
    REQUIRE(c.alpha * c.alpha + c.sigma * c.sigma == Approx(1.0).epsilon(1e-14));
  }
}

TEST_CASE("scheduler derivatives match central differences", "[flow][path]") {
  for (const std::string& name : scheduler_names()) {
    auto s = make_scheduler(name);
    for (double t : {0.05, 0.3, 0.5, 0.8, 0.97}) {
      const double e = 1e-6;
      const double d_alpha = (s->at(t + e).alpha - s->at(t - e).alpha) / (2 * e);
      const double d_sigma = (s->at(t + e).sigma - s->at(t - e).sigma) / (2 * e);
      INFO(name << " at t = " << t);
      REQUIRE(s->at(t).d_alpha == Approx(d_alpha).epsilon(1e-6).margin(1e-8));
      REQUIRE(s->at(t).d_sigma == Approx(d_sigma).epsilon(1e-6).margin(1e-8));
    }
  }
}

TEST_CASE("VP's singular sigma derivative at t = 1 is evaluated at the clamped time", "[flow][path]") {
  VPScheduler vp;
  SchedulerValues at_one = vp.at(1.0);
  REQUIRE(std::isfinite(at_one.d_sigma));
  REQUIRE(at_one.d_sigma == vp.at(clamp_time(1.0)).d_sigma);
  REQUIRE(at_one.d_sigma < -10);  // large: σ̇ ~ −sqrt(β_min / (4ε))
  REQUIRE(clamp_time(1.0) == 1.0 - kTimeClampEpsilon);
  REQUIRE(clamp_time(0.0) == kTimeClampEpsilon);
  REQUIRE(clamp_time(0.4) == 0.4);
}

TEST_CASE("path.sample gives x_t = alpha x1 + sigma x0 and the velocity alpha' x1 + sigma' x0", "[flow][path]") {
  Batch b = make_batch({0.1, 0.5, 0.9});
  std::vector<double> times = b.t.to_vector();
  for (const std::string& name : scheduler_names()) {
    auto path = make_path(name);
    PathSample s = path->sample(b.x0, b.x1, b.t);
    REQUIRE(s.x_t.shape() == b.x1.shape());
    REQUIRE(s.target_velocity.shape() == b.x1.shape());
    for (int i = 0; i < 3; ++i) {
      SchedulerValues v = path->scheduler().at(times[std::size_t(i)]);
      Tensor x0 = b.x0.narrow(0, i, 1), x1 = b.x1.narrow(0, i, 1);
      INFO(name << " sample " << i);
      REQUIRE(max_abs_diff(s.x_t.narrow(0, i, 1), x1 * v.alpha + x0 * v.sigma) < 1e-14);
      REQUIRE(max_abs_diff(s.target_velocity.narrow(0, i, 1), x1 * v.d_alpha + x0 * v.d_sigma) < 1e-13);
    }
    // The target is the time derivative of x_t along the conditional path.
    const double e = 1e-6;
    Tensor x_plus = path->sample(b.x0, b.x1, b.t + e).x_t, x_minus = path->sample(b.x0, b.x1, b.t - e).x_t;
    INFO(name);
    REQUIRE(max_abs_diff((x_plus - x_minus) / (2 * e), s.target_velocity) < 1e-6);
  }
}

TEST_CASE("CondOTPath: target exactly x1 - x0 and exact endpoints", "[flow][path]") {
  Batch b = make_batch({0.0, 0.37, 1.0});
  CondOTPath path;
  PathSample s = path.sample(b.x0, b.x1, b.t);
  REQUIRE(max_abs_diff(s.target_velocity, b.x1 - b.x0) == 0.0);
  REQUIRE(max_abs_diff(s.x_t.narrow(0, 0, 1), b.x0.narrow(0, 0, 1)) == 0.0);
  REQUIRE(max_abs_diff(s.x_t.narrow(0, 2, 1), b.x1.narrow(0, 2, 1)) == 0.0);
  // Same numbers as the generic affine path built from the CondOT scheduler.
  AffineProbabilityPath generic(std::make_shared<CondOTScheduler>());
  PathSample g = generic.sample(b.x0, b.x1, b.t);
  REQUIRE(max_abs_diff(s.x_t, g.x_t) < 1e-15);
  REQUIRE(max_abs_diff(s.target_velocity, g.target_velocity) == 0.0);
  // A single time for the whole batch broadcasts.
  PathSample one = path.sample(b.x0, b.x1, Tensor::scalar(0.25, DType::Float64));
  REQUIRE(max_abs_diff(one.x_t, b.x0 * 0.75 + b.x1 * 0.25) < 1e-15);
  REQUIRE(make_path("condot")->name() == "condot");
  REQUIRE(dynamic_cast<const CondOTPath*>(make_path("condot").get()) != nullptr);
}

TEST_CASE("CondOTPath's coefficients from a time tensor are bitwise those from its host values", "[flow][path]") {
  // The trainer hands CondOT a time tensor on the training device (no read back); the coefficients
  // t and 1 − t made there by tensor ops must equal the host recipe: each time's double value, its
  // complement in double, both rounded to the dtype, then broadcasting multiplies.
  Generator gen(31);
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor x0 = randn({64, 1, 3, 3}, gen, dtype), x1 = randn({64, 1, 3, 3}, gen, dtype);
    // Times of every size: tiny ones (1 − t rounds), ones near 1, and a uniform spread.
    std::vector<double> times;
    for (int i = 0; i < 64; ++i) times.push_back(i < 8 ? std::ldexp(1.0, -3 * i - 20) : i < 16 ? 1.0 - std::ldexp(1.0, -i - 8) : gen.uniform());
    const Tensor t = Tensor::from_vector(times, {64}, dtype);
    const std::vector<double> held = t.to_vector();  // the values as the dtype holds them
    std::vector<double> complement(held.size());
    for (std::size_t i = 0; i < held.size(); ++i) complement[i] = 1.0 - held[i];
    const Tensor expected = mul(x1, Tensor::from_vector(held, {64, 1, 1, 1}, dtype)) +
                            mul(x0, Tensor::from_vector(complement, {64, 1, 1, 1}, dtype));
    const PathSample s = CondOTPath().sample(x0, x1, t);
    INFO(dtype_name(dtype));
    REQUIRE(s.x_t.to_vector() == expected.to_vector());
    REQUIRE(s.target_velocity.to_vector() == (x1 - x0).to_vector());
  }
}

TEST_CASE("conversions recover x1, x0 and the velocity from exact data for every scheduler", "[flow][path]") {
  Batch b = make_batch({0.1, 0.5, 0.9});
  for (const std::string& name : scheduler_names()) {
    auto path = make_path(name);
    PathSample s = path->sample(b.x0, b.x1, b.t);
    const Tensor& v = s.target_velocity;
    INFO(name);
    REQUIRE(max_abs_diff(path->velocity_to_x1(v, s.x_t, b.t), b.x1) < 1e-12);
    REQUIRE(max_abs_diff(path->velocity_to_x0(v, s.x_t, b.t), b.x0) < 1e-12);
    REQUIRE(max_abs_diff(path->x1_to_velocity(b.x1, s.x_t, b.t), v) < 1e-12);
    REQUIRE(max_abs_diff(path->x0_to_velocity(b.x0, s.x_t, b.t), v) < 1e-11);  // 1/α_t ≈ 150 at t = 0.1 for VP
    REQUIRE(max_abs_diff(path->x1_to_x0(b.x1, s.x_t, b.t), b.x0) < 1e-12);
    REQUIRE(max_abs_diff(path->x0_to_x1(b.x0, s.x_t, b.t), b.x1) < 1e-11);
  }
}

TEST_CASE("every conversion round-trips and the double-t overload agrees", "[flow][path]") {
  Generator gen(3);
  Tensor x_t = randn({3, 4}, gen, DType::Float64), prediction = randn({3, 4}, gen, DType::Float64);
  Tensor t = Tensor::from_vector({0.2, 0.2, 0.2}, {3}, DType::Float64);
  for (const std::string& name : scheduler_names()) {
    auto path = make_path(name);
    for (Parameterization from : kAll)
      for (Parameterization to : kAll) {
        Tensor there = path->convert(prediction, from, to, x_t, t);
        Tensor back = path->convert(there, to, from, x_t, t);
        INFO(name << ": " << parameterization_name(from) << " -> " << parameterization_name(to));
        REQUIRE(max_abs_diff(back, prediction) < 1e-11);
        REQUIRE(max_abs_diff(path->convert(prediction, from, to, x_t, 0.2), there) < 1e-15);
      }
  }
}

TEST_CASE("conversions that divide by alpha or sigma stay finite at t = 0 and t = 1", "[flow][path]") {
  Generator gen(4);
  Tensor x_t = randn({2, 3}, gen, DType::Float64), p = randn({2, 3}, gen, DType::Float64);
  Tensor ends = Tensor::from_vector({0.0, 1.0}, {2}, DType::Float64);
  for (const std::string& name : scheduler_names()) {
    auto path = make_path(name);
    for (Parameterization from : kAll)
      for (Parameterization to : kAll) {
        INFO(name << ": " << parameterization_name(from) << " -> " << parameterization_name(to));
        REQUIRE(all_finite(path->convert(p, from, to, x_t, ends)));
      }
  }
  // CondOT's x1 → velocity is (x1 − x_t)/(1 − t): at t = 1 it uses 1 − clamp_time(1) = ε.
  CondOTPath path;
  Tensor v = path.x1_to_velocity(p, x_t, 1.0);
  REQUIRE(max_abs_diff(v, (p - x_t) / kTimeClampEpsilon) < 1e-9 * (1 / kTimeClampEpsilon));
  // The velocity rows need no clamp: velocity → x1 at t = 1 is exactly x_t.
  REQUIRE(max_abs_diff(path.velocity_to_x1(p, x_t, 1.0), x_t) == 0.0);
}

TEST_CASE("paths check shapes and names", "[flow][path]") {
  CondOTPath path;
  Tensor x = Tensor::zeros({4, 2}, DType::Float64);
  Tensor t4 = Tensor::zeros({4}, DType::Float64);
  REQUIRE_THROWS_AS(path.sample(x, Tensor::zeros({4, 3}, DType::Float64), t4), ShapeError);
  REQUIRE_THROWS_WITH(path.sample(x, x, Tensor::zeros({3}, DType::Float64)), Catch::Contains("expected [4]"));
  REQUIRE_THROWS_AS(path.x1_to_velocity(x, Tensor::zeros({2, 2}, DType::Float64), 0.5), ShapeError);
  REQUIRE_THROWS_AS(make_path("ddpm"), ConfigError);
  REQUIRE_THROWS_WITH(make_scheduler("ddpm"), Catch::Contains("condot (or ot, linear), cosine, vp"));
  REQUIRE(parse_parameterization("epsilon") == Parameterization::NoisePrediction);
  REQUIRE(parse_parameterization("x1") == Parameterization::DataPrediction);
  REQUIRE_THROWS_AS(parse_parameterization("score"), ConfigError);
  REQUIRE_THROWS_AS(VPScheduler(0.0, 20.0), ValueError);
}

TEST_CASE("path samples are differentiable in the data and work in float32", "[flow][path]") {
  Tensor x1 = Tensor::from_vector({1.0, 2.0}, {2, 1}, DType::Float64).set_requires_grad();
  Tensor x0 = Tensor::from_vector({0.5, -0.5}, {2, 1}, DType::Float64);
  Tensor t = Tensor::from_vector({0.25, 0.75}, {2}, DType::Float64);
  PathSample s = make_path("cosine")->sample(x0, x1, t);
  sum(s.x_t).backward();
  std::vector<double> g = x1.grad().to_vector();
  REQUIRE(g[0] == Approx(std::sin(M_PI / 8)).epsilon(1e-14));
  REQUIRE(g[1] == Approx(std::sin(3 * M_PI / 8)).epsilon(1e-14));

  Batch b = make_batch({0.1, 0.5, 0.9});
  PathSample f = CondOTPath().sample(b.x0.to(DType::Float32), b.x1.to(DType::Float32), b.t.to(DType::Float32));
  REQUIRE(f.x_t.dtype() == DType::Float32);
  REQUIRE(max_abs_diff(f.x_t, CondOTPath().sample(b.x0, b.x1, b.t).x_t) < 1e-5);
}
