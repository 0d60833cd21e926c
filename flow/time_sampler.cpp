// flow/time_sampler.cpp — uniform, logit-normal, polynomially warped and grid training times.
#include "flow/time_sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace fm::flow {
namespace {

// The largest value below 1 that the dtype can hold: keeps t < 1 after rounding to the dtype.
double largest_below_one(DType dtype) {
  switch (dtype) {
    case DType::Float32: return double(std::nextafter(1.0f, 0.0f));
    case DType::Float64: return std::nextafter(1.0, 0.0);
    case DType::BFloat16: return 1.0 - 1.0 / 256;  // 8 significant bits
  }
  return 0.0;
}

}  // namespace

double polynomial_time_warp(double t, double s) {
  // Horner form of 4(1 − s)t³ + 6(s − 1)t² + (3 − 2s)t, with the time kernel's exact operations.
  return kernels::philox::time_warp(t, s);
}

double TimeSampler::draw(Generator& gen) const {
  GeneratorDraws draws(gen);
  return draw(draws);
}

Tensor TimeSampler::sample(std::int64_t n, Generator& gen, DType dtype, Device device) const {
  FM_CHECK(n >= 0, ValueError, "time sampler '", name(), "': sample count ", n, " is negative");
  const double upper = largest_below_one(dtype);
  GeneratorDraws draws(gen);
  std::vector<double> values(static_cast<std::size_t>(n));
  for (double& v : values) v = std::min(std::max(draw(draws), 0.0), upper);
  return Tensor::from_vector(values, {n}, dtype, device);
}

Tensor TimeSampler::sample(std::int64_t n, const StepNoise& noise, DType dtype, Device device) const {
  FM_CHECK(n >= 0, ValueError, "time sampler '", name(), "': sample count ", n, " is negative");
  if (const std::optional<TimeLaw> kernel_law = law())  // on the device itself: no copy
    return philox_times(n, noise.key(NoiseStream::Time), noise.step, noise.first_sample, *kernel_law, dtype, device,
                        noise.step_on_device);
  FM_CHECK(!noise.step_on_device, DeviceError, "time sampler '", name(), "' draws its times on the host, so a "
           "recorded step cannot replay them");
  const double upper = largest_below_one(dtype);
  std::vector<double> values(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    PhiloxSampleDraws draws(noise.key(NoiseStream::Time), noise.step, noise.first_sample + i);
    values[std::size_t(i)] = std::min(std::max(draw(draws), 0.0), upper);
  }
  return Tensor::from_vector(values, {n}, dtype, device);
}

double UniformTimeSampler::draw(RandomDraws& draws) const { return draws.uniform(); }

LogitNormalTimeSampler::LogitNormalTimeSampler(double mean, double std) : mean_(mean), std_(std) {
  FM_CHECK(std > 0 && std::isfinite(std) && std::isfinite(mean), ValueError,
           "logit_normal time sampler: need a finite mean and std > 0, got mean ", mean, ", std ", std);
}

double LogitNormalTimeSampler::draw(RandomDraws& draws) const {
  // The time kernel's arithmetic (its own exp), so host and device draws agree bit for bit.
  return kernels::philox::logistic_of_normal(draws.normal(), mean_, std_);
}

std::optional<TimeLaw> LogitNormalTimeSampler::law() const {
  TimeLaw law;
  law.kind = TimeLawKind::LogitNormal;
  law.mean = mean_, law.std = std_;
  return law;
}

WarpedUniformTimeSampler::WarpedUniformTimeSampler(double slope) : slope_(slope) {
  // Outside [0, 3/2] the warp is not monotone (w' < 0 somewhere) and leaves [0, 1].
  FM_CHECK(slope >= 0.0 && slope <= 1.5, ValueError,
           "warp time sampler: slope ", slope, " is outside [0, 1.5], where the warp is monotone");
}

double WarpedUniformTimeSampler::draw(RandomDraws& draws) const {
  return polynomial_time_warp(draws.uniform(), slope_);
}

std::optional<TimeLaw> WarpedUniformTimeSampler::law() const {
  TimeLaw law;
  law.kind = TimeLawKind::Warp;
  law.slope = slope_;
  return law;
}

GridTimeSampler::GridTimeSampler(int points) : points_(points) {
  FM_CHECK(points >= 1, ValueError, "grid time sampler: the number of grid points must be >= 1, got ", points);
}

double GridTimeSampler::draw(RandomDraws& draws) const { return kernels::philox::grid_time(draws.uniform(), points_); }

std::optional<TimeLaw> GridTimeSampler::law() const {
  TimeLaw law;
  law.kind = TimeLawKind::Grid;
  law.points = points_;
  return law;
}

std::vector<std::string> time_sampler_names() { return {"uniform", "logit_normal", "warp", "grid"}; }

std::shared_ptr<const TimeSampler> make_time_sampler(const std::string& name,
                                                     const TimeSamplerOptions& options) {
  if (name == "uniform") return std::make_shared<UniformTimeSampler>();
  if (name == "logit_normal" || name == "logitnormal")
    return std::make_shared<LogitNormalTimeSampler>(options.logit_normal_mean,
                                                    options.logit_normal_std);
  if (name == "warp" || name == "polynomial_warp")
    return std::make_shared<WarpedUniformTimeSampler>(options.warp_slope);
  if (name == "grid") return std::make_shared<GridTimeSampler>(options.grid_points);
  throw ConfigError(cat("time sampler: unknown name '", name,
                        "', expected one of uniform, logit_normal, warp, grid"));
}

}  // namespace fm::flow
