// flow/time_sampler.h — distributions of the training time t ∈ [0, 1] (t = 0 noise, t = 1 data).
//
// Sits in flow/ on top of core/ (Tensor, random). Each sampler maps one sample's draws (a uniform or
// a normal, from core/random.h's RandomDraws) to a time in double. In training the draws come from the
// Philox stream NoiseStream::Time at (seed, step, sample index) (flow/step_noise.h) and the times are
// made on the training device by one kernel (core philox_times; every sampler here says its law()),
// with the same bits on the CPU and on CUDA, so a step copies no times to the device; a Generator can
// drive the same samplers too (on the host). The result is a Tensor [N] of the requested dtype/device. Values are kept strictly below 1 after rounding to the dtype (a float32
// draw of 0.99999998 would otherwise round to 1.0f, where some paths' targets are singular).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "flow/step_noise.h"

namespace fm::flow {

// Seed 003 (from Hawley's tutorial): w(t, s) = 4(1 − s)·t³ + 6(s − 1)·t² + (3 − 2s)·t.
// w(0) = 0, w(1) = 1, w'(½) = s, w'(0) = w'(1) = 3 − 2s; monotone exactly for s ∈ [0, 3/2].
// s < 1 spends more draws in the middle of [0, 1] (density 1/w' is largest where w' is smallest),
// s = 1 is the identity, s = 3/2 gives a shape close to the cosine schedule.
double polynomial_time_warp(double t, double slope);

class TimeSampler {
 public:
  virtual ~TimeSampler() = default;
  // One time in [0, 1] from one sample's draws.
  virtual double draw(RandomDraws& draws) const = 0;
  // The law as the Philox time kernel knows it (kernels/time_law.h), when it knows it: then
  // sample(n, noise, ...) draws on the tensor's own device. A sampler without one is drawn on the host
  // and copied. draw() and the kernel give the same numbers for the same draws.
  virtual std::optional<TimeLaw> law() const { return std::nullopt; }
  double draw(Generator& gen) const;
  virtual std::string name() const = 0;
  // n independent draws as a Tensor [n], drawn in order from `gen`.
  Tensor sample(std::int64_t n, Generator& gen, DType dtype = DType::Float32,
                Device device = Device::CPU) const;
  // The times of samples noise.first_sample … + n − 1 at noise.step: sample i's time comes from its own
  // Philox place in NoiseStream::Time, whatever n and first_sample are.
  Tensor sample(std::int64_t n, const StepNoise& noise, DType dtype = DType::Float32,
                Device device = Device::CPU) const;
};

// t ~ U[0, 1): the recipe of seeds 000–004.
class UniformTimeSampler final : public TimeSampler {
 public:
  using TimeSampler::draw;
  double draw(RandomDraws& draws) const override;
  std::string name() const override { return "uniform"; }
  std::optional<TimeLaw> law() const override { return TimeLaw{}; }
};

// t = sigmoid(mean + std·z), z ~ N(0, 1): the logit-normal of Esser et al. 2024 (Stable Diffusion 3,
// "Scaling Rectified Flow Transformers", Sec. 3.1 "Logit-Normal Sampling"); SD3 uses mean 0, std 1.
// Puts more weight on the middle of the path, where the velocity is hardest to predict.
class LogitNormalTimeSampler final : public TimeSampler {
 public:
  explicit LogitNormalTimeSampler(double mean = 0.0, double std = 1.0);
  using TimeSampler::draw;
  double draw(RandomDraws& draws) const override;
  std::string name() const override { return "logit_normal"; }
  std::optional<TimeLaw> law() const override;
  double mean() const { return mean_; }
  double std() const { return std_; }

 private:
  double mean_, std_;
};

// t = polynomial_time_warp(u, slope), u ~ U[0, 1) (seed 003's reflow sampler; slope 0.5 default).
class WarpedUniformTimeSampler final : public TimeSampler {
 public:
  explicit WarpedUniformTimeSampler(double slope = 0.5);
  using TimeSampler::draw;
  double draw(RandomDraws& draws) const override;
  std::string name() const override { return "warp"; }
  std::optional<TimeLaw> law() const override;
  double slope() const { return slope_; }

 private:
  double slope_;
};

// t uniform on the grid {0, 1/k, …, (k − 1)/k}: the times a k-step Euler sampler evaluates the field at.
// Training on pairs with these times only is the rectified-flow paper's distillation to k steps
// (Liu et al. 2023, §2.3 / eq. 8 for k = 1): the student has to be right exactly where k Euler steps
// will ask it, and nowhere else.
class GridTimeSampler final : public TimeSampler {
 public:
  explicit GridTimeSampler(int points);
  using TimeSampler::draw;
  double draw(RandomDraws& draws) const override;
  std::string name() const override { return "grid"; }
  std::optional<TimeLaw> law() const override;
  int points() const { return points_; }

 private:
  int points_;
};

// Parameters a config may set; each sampler reads only its own.
struct TimeSamplerOptions {
  double logit_normal_mean = 0.0;
  double logit_normal_std = 1.0;
  double warp_slope = 0.5;
  int grid_points = 1;
};
// "uniform", "logit_normal" (or "logitnormal"), "warp" (or "polynomial_warp"), "grid"; ConfigError
// otherwise.
std::shared_ptr<const TimeSampler> make_time_sampler(const std::string& name,
                                                     const TimeSamplerOptions& options = {});
std::vector<std::string> time_sampler_names();

}  // namespace fm::flow
