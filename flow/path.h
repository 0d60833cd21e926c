// flow/path.h — affine conditional probability paths over Tensors: sampling (x_t, target velocity)
// for training, and the conversions between the three ways a network can parameterise the flow
// (velocity, x1 = data prediction, x0 = noise prediction), all in one place.
//
// Sits in flow/ on top of core/ (tensor ops); built from a flow/scheduler.h Scheduler.
//
//   x_t = α_t·x1 + σ_t·x0                        (the path; t = 0 noise, t = 1 data)
//   u_t = α̇_t·x1 + σ̇_t·x0                        (its conditional velocity, the training target)
//
// Every time argument t is a Tensor [N] (one time per sample; N = x.size(0)), a one-element
// Tensor or a double (one time for the whole batch). Coefficients are computed in double — on t's
// device for per-sample times of x's device and dtype (core's path_coefficients), on the host from
// t's values otherwise, the same bits either way — and applied with broadcasting multiplies, so
// everything runs on x's device/dtype.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "flow/scheduler.h"

namespace fm::flow {

// What a network's output means.
enum class Parameterization {
  Velocity,        // u_t(x): what the ODE solvers integrate
  DataPrediction,  // x1 prediction, E[X1 | X_t = x]
  NoisePrediction  // x0 prediction, E[X0 | X_t = x] (ε-prediction in diffusion language)
};
const char* parameterization_name(Parameterization p);  // "velocity", "x1", "x0"
// "velocity" (or "v"), "x1" (or "data"), "x0" (or "noise", "epsilon"); ConfigError otherwise.
Parameterization parse_parameterization(const std::string& name);

// A time argument: a Tensor [N] (one time per sample) or with one element, or a plain double for
// the whole batch (what the solvers have). Implicit on purpose, so callers write path.sample(x0,
// x1, t) or path.x1_to_velocity(x1, x, 0.5) without wrapping.
class TimeArgument {
 public:
  TimeArgument(const Tensor& t) : tensor_(t) {}
  TimeArgument(double t) : scalar_(t), is_scalar_(true) {}
  // The values on the host, checked against x's batch size: N values, or one for the whole batch.
  // (A tensor on the device is read back: a wait for the device.)
  std::vector<double> values(const char* op, const Tensor& x) const;
  // The time tensor, or null for a plain double.
  const Tensor* tensor() const { return is_scalar_ ? nullptr : &tensor_; }

 private:
  Tensor tensor_;
  double scalar_ = 0;
  bool is_scalar_ = false;
};

struct PathSample {
  Tensor x_t;              // α_t·x1 + σ_t·x0, shape of x1
  Tensor target_velocity;  // α̇_t·x1 + σ̇_t·x0, shape of x1
};

// x_out = coef_x_t·x_t + coef_input·input: every conversion is such a linear combination.
struct ConversionCoefficients {
  double coef_x_t = 0, coef_input = 0;
};

class AffineProbabilityPath {
 public:
  explicit AffineProbabilityPath(std::shared_ptr<const Scheduler> scheduler);
  virtual ~AffineProbabilityPath() = default;

  const Scheduler& scheduler() const { return *scheduler_; }
  std::string name() const { return scheduler_->name(); }

  // x0 (noise) and x1 (data) of equal shape [N, ...]; t [N], one element or a double.
  // Differentiable in x0 and x1 (not in t).
  virtual PathSample sample(const Tensor& x0, const Tensor& x1, const TimeArgument& t) const;
  // Whether sample() computes its coefficients from a time tensor on the tensor's own device (no
  // read of t back to the host): the trainer then draws t on the device (flow/loss.cpp). True when
  // the scheduler has a law() (every scheduler here): sample() then takes per-sample coefficients
  // from core's path_coefficients where t is, with the bits of the scheduler's at(). Otherwise the
  // coefficients come from the times' host values.
  virtual bool samples_from_device_times() const { return scheduler_->law().has_value(); }

  // The conversion table of Lipman et al. 2024 ("Flow Matching Guide and Code", Sec. 4.8.1,
  // eqs. 4.55–4.57 and the inverse relations). With D = α_t·σ̇_t − σ_t·α̇_t (never 0 for the
  // schedulers here: −1 for CondOT, −π/2 for cosine):
  //   velocity → x1:  x1 = (σ̇_t·x_t − σ_t·v) / D        velocity → x0:  x0 = (α_t·v − α̇_t·x_t) / D
  //   x1 → velocity:  v = (σ̇_t/σ_t)·x_t + (α̇_t − α_t·σ̇_t/σ_t)·x1                      (eq. 4.56)
  //   x0 → velocity:  v = (α̇_t/α_t)·x_t + (σ̇_t − σ_t·α̇_t/α_t)·x0                      (eq. 4.57)
  //   x1 → x0:        x0 = (x_t − α_t·x1) / σ_t           x0 → x1:        x1 = (x_t − σ_t·x0) / α_t
  // Rows that divide by σ_t (vanishes at t = 1) or α_t (vanishes at t = 0) evaluate the scheduler
  // at clamp_time(t) (flow/scheduler.h); the velocity rows need no clamp and use t as given.
  static ConversionCoefficients conversion_coefficients(const SchedulerValues& at_t,
                                                        Parameterization from, Parameterization to);
  ConversionCoefficients conversion_coefficients(double t, Parameterization from,
                                                 Parameterization to) const;

  // Converts a prediction `input` of kind `from` at (x_t, t) into kind `to`.
  Tensor convert(const Tensor& input, Parameterization from, Parameterization to, const Tensor& x_t,
                 const TimeArgument& t) const;

  // Named shorthands for convert().
  Tensor velocity_to_x1(const Tensor& velocity, const Tensor& x_t, const TimeArgument& t) const;
  Tensor velocity_to_x0(const Tensor& velocity, const Tensor& x_t, const TimeArgument& t) const;
  Tensor x1_to_velocity(const Tensor& x1_prediction, const Tensor& x_t, const TimeArgument& t) const;
  Tensor x0_to_velocity(const Tensor& x0_prediction, const Tensor& x_t, const TimeArgument& t) const;
  Tensor x1_to_x0(const Tensor& x1_prediction, const Tensor& x_t, const TimeArgument& t) const;
  Tensor x0_to_x1(const Tensor& x0_prediction, const Tensor& x_t, const TimeArgument& t) const;

 protected:
  std::shared_ptr<const Scheduler> scheduler_;
};

// The default path: α_t = t, σ_t = 1 − t. sample() is the textbook recipe (seed 000):
// x_t = (1 − t)·x0 + t·x1 and the target x1 − x0 computed directly (one subtraction, no coefficient
// tensors for α̇ = 1, σ̇ = −1). Its coefficients t and 1 − t are cheap tensor ops, so a per-sample
// time tensor is used where it lives (on the device: no copy, no read back), with the same bits as
// the host computation (t is exact in its dtype, and 1 − t rounds once either way).
class CondOTPath final : public AffineProbabilityPath {
 public:
  CondOTPath();
  PathSample sample(const Tensor& x0, const Tensor& x1, const TimeArgument& t) const override;
  bool samples_from_device_times() const override { return true; }
};

// An affine path from a scheduler name ("condot" gives a CondOTPath); ConfigError otherwise.
std::shared_ptr<const AffineProbabilityPath> make_path(const std::string& scheduler_name);

}  // namespace fm::flow
