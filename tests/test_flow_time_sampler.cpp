// tests/test_flow_time_sampler.cpp — training-time distributions (flow/time_sampler.h): ranges,
// moments against closed forms or quadrature, the polynomial warp's endpoints and slope,
// dtype/device of the result, t < 1 after float32 rounding, determinism, bad parameters; the training
// form drawn by (seed, step, sample index): the same moments, and independent of the batch split.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>

#include "flow/time_sampler.h"

using namespace fm;
using namespace fm::flow;

namespace {

struct Moments {
  double mean = 0, variance = 0, min = 1, max = 0;
};
Moments moments(const std::vector<double>& v) {
  Moments m;
  for (double x : v) m.mean += x, m.min = std::min(m.min, x), m.max = std::max(m.max, x);
  m.mean /= double(v.size());
  for (double x : v) m.variance += (x - m.mean) * (x - m.mean);
  m.variance /= double(v.size() - 1);
  return m;
}

// ∫_a^b f by composite Simpson with n (even) intervals.
double simpson(const std::function<double(double)>& f, double a, double b, int n = 20000) {
  const double h = (b - a) / n;
  double s = f(a) + f(b);
  for (int i = 1; i < n; ++i) s += f(a + i * h) * (i % 2 ? 4 : 2);
  return s * h / 3;
}

const std::int64_t kDraws = 200000;
// Standard error of a mean of kDraws values in [0, 1] is at most 0.5/sqrt(kDraws) ≈ 0.0011; the
// margins below are about 5 standard errors.
const double kMeanMargin = 0.005;

}  // namespace

TEST_CASE("uniform times lie in 0 to 1 (1 excluded) with mean 1/2 and variance 1/12", "[flow][time]") {
  Generator gen(1);
  Tensor t = UniformTimeSampler().sample(kDraws, gen, DType::Float64);
  REQUIRE(t.shape() == Shape{kDraws});
  Moments m = moments(t.to_vector());
  REQUIRE(m.min >= 0.0);
  REQUIRE(m.max < 1.0);
  REQUIRE(m.mean == Approx(0.5).margin(kMeanMargin));
  REQUIRE(m.variance == Approx(1.0 / 12).margin(0.002));
}

TEST_CASE("logit-normal times match the moments of sigmoid(mean + std z)", "[flow][time]") {
  for (auto [mu, sd] : std::vector<std::pair<double, double>>{{0.0, 1.0}, {0.5, 0.8}, {-1.0, 1.5}}) {
    // Exact moments by quadrature over z ~ N(0, 1).
    auto density = [](double z) { return std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI); };
    auto sigmoid = [&](double z) { return 1.0 / (1.0 + std::exp(-(mu + sd * z))); };
    const double mean = simpson([&](double z) { return sigmoid(z) * density(z); }, -12, 12);
    const double second = simpson([&](double z) { return sigmoid(z) * sigmoid(z) * density(z); }, -12, 12);
    Generator gen(2);
    Tensor t = LogitNormalTimeSampler(mu, sd).sample(kDraws, gen, DType::Float64);
    Moments m = moments(t.to_vector());
    INFO("mean " << mu << " std " << sd);
    REQUIRE(m.min > 0.0);
    REQUIRE(m.max < 1.0);
    REQUIRE(m.mean == Approx(mean).margin(kMeanMargin));
    REQUIRE(m.variance == Approx(second - mean * mean).margin(0.002));
    // The median is sigmoid(mean).
    std::vector<double> v = t.to_vector();
    std::nth_element(v.begin(), v.begin() + kDraws / 2, v.end());
    REQUIRE(v[kDraws / 2] == Approx(1.0 / (1.0 + std::exp(-mu))).margin(0.005));
  }
  // SD3's default mean 0, std 1 gives E[t] = 1/2 by symmetry and a spread below uniform's 1/12.
  Generator gen(3);
  Moments m = moments(LogitNormalTimeSampler().sample(kDraws, gen, DType::Float64).to_vector());
  REQUIRE(m.mean == Approx(0.5).margin(kMeanMargin));
  REQUIRE(m.variance < 1.0 / 12);
}

TEST_CASE("the polynomial warp maps 0 to 0 and 1 to 1 with slope s at 1/2", "[flow][time]") {
  for (double s : {0.0, 0.5, 1.0, 1.5}) {
    INFO("s = " << s);
    REQUIRE(polynomial_time_warp(0.0, s) == 0.0);
    REQUIRE(polynomial_time_warp(1.0, s) == Approx(1.0).epsilon(1e-15));
    REQUIRE(polynomial_time_warp(0.5, s) == Approx(0.5).epsilon(1e-15));  // point symmetric about (½, ½)
    const double e = 1e-6;
    const double slope = (polynomial_time_warp(0.5 + e, s) - polynomial_time_warp(0.5 - e, s)) / (2 * e);
    REQUIRE(slope == Approx(s).margin(1e-8));
    const double slope_at_0 = (polynomial_time_warp(e, s) - polynomial_time_warp(0.0, s)) / e;
    REQUIRE(slope_at_0 == Approx(3 - 2 * s).margin(1e-5));
    double previous = 0;  // monotone for s ∈ [0, 3/2]
    for (int i = 1; i <= 1000; ++i) {
      const double w = polynomial_time_warp(i / 1000.0, s);
      REQUIRE(w >= previous);
      previous = w;
    }
  }
  for (double t : {0.1, 0.42, 0.9}) REQUIRE(polynomial_time_warp(t, 1.0) == Approx(t).epsilon(1e-15));
}

TEST_CASE("warped times concentrate in the middle as the warp predicts", "[flow][time]") {
  const double s = 0.5;
  // P(w(U) ∈ [¼, ¾]) = w⁻¹(¾) − w⁻¹(¼); invert the monotone warp by bisection.
  auto inverse = [&](double y) {
    double lo = 0, hi = 1;
    for (int i = 0; i < 100; ++i) {
      const double mid = 0.5 * (lo + hi);
      (polynomial_time_warp(mid, s) < y ? lo : hi) = mid;
    }
    return 0.5 * (lo + hi);
  };
  const double expected_middle = inverse(0.75) - inverse(0.25);
  Generator gen(4);
  std::vector<double> v = WarpedUniformTimeSampler(s).sample(kDraws, gen, DType::Float64).to_vector();
  Moments m = moments(v);
  auto in_middle = [](double t) { return t >= 0.25 && t <= 0.75; };
  const double middle = double(std::count_if(v.begin(), v.end(), in_middle)) / kDraws;
  REQUIRE(m.min >= 0.0);
  REQUIRE(m.max < 1.0);
  REQUIRE(m.mean == Approx(0.5).margin(kMeanMargin));  // ∫ w = ½ for every s
  REQUIRE(middle == Approx(expected_middle).margin(0.005));
  REQUIRE(middle > 0.6);  // more than uniform's ½
  const double second = simpson([&](double u) { return std::pow(polynomial_time_warp(u, s), 2); }, 0, 1);
  REQUIRE(m.variance == Approx(second - 0.25).margin(0.002));
}

TEST_CASE("time samplers give one time per sample in the asked dtype, below 1 after rounding",
          "[flow][time]") {
  Generator gen(5);
  for (const std::string& name : time_sampler_names()) {
    auto sampler = make_time_sampler(name);
    Tensor t32 = sampler->sample(17, gen);
    Tensor t64 = sampler->sample(17, gen, DType::Float64, Device::CPU);
    INFO(name);
    REQUIRE(sampler->name() == name);
    REQUIRE(t32.dtype() == DType::Float32);
    REQUIRE(t64.dtype() == DType::Float64);
    REQUIRE(t32.shape() == Shape{17});
    REQUIRE(t32.device() == Device::CPU);
    REQUIRE(sampler->sample(0, gen).numel() == 0);
  }
  // A draw of 1 − 2⁻⁴⁰ would round to 1.0f in float32: it is kept just below 1 instead.
  struct AlmostOne : TimeSampler {
    using TimeSampler::draw;
    double draw(RandomDraws&) const override { return 1.0 - std::ldexp(1.0, -40); }
    std::string name() const override { return "almost_one"; }
  };
  Tensor t = AlmostOne().sample(3, gen);
  for (float v : t.to_float_vector()) {
    REQUIRE(v < 1.0f);
    REQUIRE(v == std::nextafter(1.0f, 0.0f));
  }
  REQUIRE(AlmostOne().sample(1, gen, DType::Float64).item() == 1.0 - std::ldexp(1.0, -40));
  for (float v : AlmostOne().sample(3, StepNoise{1, 2, 3}).to_float_vector()) REQUIRE(v == std::nextafter(1.0f, 0.0f));
}

namespace {
// Options under which every sampler is random (the grid sampler's default single point, t = 0, is not).
TimeSamplerOptions random_options() {
  TimeSamplerOptions options;
  options.grid_points = 8;
  return options;
}
}  // namespace

TEST_CASE("time samplers are deterministic by seed", "[flow][time]") {
  for (const std::string& name : time_sampler_names()) {
    auto sampler = make_time_sampler(name, random_options());
    Generator a(42), b(42), c(43);
    std::vector<double> va = sampler->sample(100, a).to_vector();
    INFO(name);
    REQUIRE(va == sampler->sample(100, b).to_vector());
    REQUIRE(va != sampler->sample(100, c).to_vector());
  }
}

TEST_CASE("training times are drawn by (seed, step, sample index), whatever the batch split", "[flow][time]") {
  for (const std::string& name : time_sampler_names()) {
    auto sampler = make_time_sampler(name, random_options());
    INFO(name);
    const StepNoise step{42, 17, 0};
    const std::vector<double> whole = sampler->sample(64, step, DType::Float64).to_vector();
    // Samples [16, 40) drawn by another "rank" are the same 24 times.
    const std::vector<double> part = sampler->sample(24, StepNoise{42, 17, 16}, DType::Float64).to_vector();
    REQUIRE(part == std::vector<double>(whole.begin() + 16, whole.begin() + 40));
    // Sample i's time is its own draw at (seed, Time, step, i).
    PhiloxSampleDraws draws(step.key(NoiseStream::Time), 17, 5);
    REQUIRE(whole[5] == std::min(sampler->draw(draws), std::nextafter(1.0, 0.0)));
    REQUIRE(whole == sampler->sample(64, step, DType::Float64).to_vector());
    REQUIRE(whole != sampler->sample(64, StepNoise{42, 18, 0}, DType::Float64).to_vector());
    REQUIRE(whole != sampler->sample(64, StepNoise{43, 17, 0}, DType::Float64).to_vector());
    // float32 is the float64 time rounded (and kept below 1).
    std::vector<float> f32 = sampler->sample(64, step).to_float_vector();
    for (std::size_t i = 0; i < f32.size(); ++i)
      REQUIRE(f32[i] == std::min(float(whole[i]), std::nextafter(1.0f, 0.0f)));
  }
}

TEST_CASE("the time kernel gives every sample exactly its sampler's host draw, in float64 and float32",
          "[flow][time]") {
  // The kernel (core philox_times, kernels/time_law.h) is what training uses; the host draw through
  // PhiloxSampleDraws is the readable reference. Several parameter sets per sampler.
  std::vector<std::shared_ptr<const TimeSampler>> samplers = {std::make_shared<UniformTimeSampler>(),
                                                              std::make_shared<LogitNormalTimeSampler>(0.0, 1.0),
                                                              std::make_shared<LogitNormalTimeSampler>(-0.5, 3.0),
                                                              std::make_shared<WarpedUniformTimeSampler>(0.5),
                                                              std::make_shared<WarpedUniformTimeSampler>(1.5),
                                                              std::make_shared<GridTimeSampler>(1),
                                                              std::make_shared<GridTimeSampler>(7)};
  for (const auto& sampler : samplers) {
    INFO(sampler->name());
    REQUIRE(sampler->law().has_value());
    const StepNoise step{987654321, 3, 100};
    const std::vector<double> t64 = sampler->sample(500, step, DType::Float64).to_vector();
    const std::vector<float> t32 = sampler->sample(500, step).to_float_vector();
    for (std::int64_t i = 0; i < 500; ++i) {
      PhiloxSampleDraws draws(step.key(NoiseStream::Time), step.step, step.first_sample + i);
      const double host = std::min(std::max(sampler->draw(draws), 0.0), std::nextafter(1.0, 0.0));
      REQUIRE(t64[std::size_t(i)] == host);
      REQUIRE(t32[std::size_t(i)] == std::min(float(host), std::nextafter(1.0f, 0.0f)));
    }
  }
}

TEST_CASE("training times drawn by step and sample have the samplers' moments", "[flow][time]") {
  // kDraws times spread over steps and samples, as training draws them.
  auto draw_all = [](const TimeSampler& sampler) {
    std::vector<double> v;
    for (std::int64_t step = 0; step < kDraws / 1000; ++step) {
      std::vector<double> t = sampler.sample(1000, StepNoise{7, step, 0}, DType::Float64).to_vector();
      v.insert(v.end(), t.begin(), t.end());
    }
    return v;
  };
  Moments u = moments(draw_all(UniformTimeSampler()));
  REQUIRE(u.mean == Approx(0.5).margin(kMeanMargin));
  REQUIRE(u.variance == Approx(1.0 / 12).margin(0.002));
  REQUIRE(u.min >= 0.0);
  REQUIRE(u.max < 1.0);
  // Logit-normal(0, 1): symmetric about 1/2; E[sigmoid(z)²] by quadrature against the normal density.
  Moments ln = moments(draw_all(LogitNormalTimeSampler()));
  const double pi = 3.14159265358979323846;
  const double second = simpson(
      [&](double z) { return std::pow(1.0 / (1.0 + std::exp(-z)), 2) * std::exp(-z * z / 2) / std::sqrt(2 * pi); }, -12,
      12);
  REQUIRE(ln.mean == Approx(0.5).margin(kMeanMargin));
  REQUIRE(ln.variance == Approx(second - 0.25).margin(0.002));
}

TEST_CASE("time sampler parameters are validated and unknown names refused", "[flow][time]") {
  REQUIRE_THROWS_AS(WarpedUniformTimeSampler(1.6), ValueError);
  REQUIRE_THROWS_AS(WarpedUniformTimeSampler(-0.1), ValueError);
  REQUIRE_THROWS_AS(LogitNormalTimeSampler(0.0, 0.0), ValueError);
  REQUIRE_THROWS_AS(make_time_sampler("beta"), ConfigError);
  REQUIRE_THROWS_WITH(make_time_sampler("beta"), Catch::Contains("uniform, logit_normal, warp"));
  TimeSamplerOptions options;
  options.warp_slope = 1.25;
  options.logit_normal_mean = -0.5;
  auto warp = std::dynamic_pointer_cast<const WarpedUniformTimeSampler>(make_time_sampler("warp", options));
  REQUIRE(warp->slope() == 1.25);
  auto ln = std::dynamic_pointer_cast<const LogitNormalTimeSampler>(make_time_sampler("logit_normal", options));
  REQUIRE(ln->mean() == -0.5);
  REQUIRE(ln->std() == 1.0);
}

TEST_CASE("the grid sampler draws the k Euler times, each about 1/k of the time", "[flow][time]") {
  Generator gen(4);
  for (int k : {1, 2, 4}) {
    GridTimeSampler grid(k);
    std::vector<double> t = grid.sample(4000, gen, DType::Float64).to_vector();
    std::vector<int> counts(k, 0);
    for (double v : t) {
      const double scaled = v * k;
      REQUIRE(scaled == std::round(scaled));  // on the grid
      REQUIRE(v >= 0.0);
      REQUIRE(v < 1.0);
      ++counts[int(scaled)];
    }
    for (int c : counts) REQUIRE(std::abs(c - 4000.0 / k) < 5 * std::sqrt(4000.0 / k));  // 5 sigma
  }
  TimeSamplerOptions options;
  options.grid_points = 2;
  REQUIRE(make_time_sampler("grid", options)->sample(50, gen, DType::Float64).to_vector().size() == 50);
  REQUIRE_THROWS_AS(GridTimeSampler(0), ValueError);
}
