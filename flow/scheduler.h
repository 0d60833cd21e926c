// flow/scheduler.h — schedulers (α_t, σ_t) of affine conditional probability paths, and the one
// helper that clamps t away from the ends where a formula divides by a vanishing α_t or σ_t.
//
// Sits in flow/ (above nn/ and core/); scalar math in double, no Tensors. The cosine and VP formulas
// live in kernels/path_law.h (path_at, reached through core/ops.h's path_coefficients_at), so the
// host's values and the device's per-sample coefficients are the same bits. flow/path.h turns a
// scheduler into a probability path over Tensors.
//
// Convention (docs, GUIDE.md): t = 0 is noise, t = 1 is data. An affine conditional path is
//     x_t = α_t·x1 + σ_t·x0,        x0 ~ N(0, I) noise, x1 ~ data,
// with α_0 = 0, σ_0 = 1 and α_1 = 1, σ_1 = 0 (Lipman et al. 2024, "Flow Matching Guide and Code",
// arXiv:2412.06264, Sec. 4.8 "affine conditional flows"). Its conditional velocity is
// d/dt x_t = α̇_t·x1 + σ̇_t·x0.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/ops.h"  // PathLaw: the schedulers' formulas, shared with the kernels

namespace fm::flow {

// α_t, σ_t and their time derivatives at one t: the kernels' PathCoefficients (kernels/path_law.h),
// so a scheduler's values and the device's per-sample coefficients are one type as well as one formula.
using SchedulerValues = PathCoefficients;

// How far from the ends of [0, 1] clamp_time keeps t. A compromise: smaller keeps the formulas
// closer to exact near the ends, larger keeps 1/σ_t (1/(1 − t) for CondOT) from amplifying the
// float32 rounding of (x1 − x_t) into a huge velocity. 1e-5 bounds that factor by 1e5.
inline constexpr double kTimeClampEpsilon = 1e-5;

// THE clamp: min(max(t, eps), 1 − eps). Used wherever a formula divides by α_t (vanishes at t = 0)
// or σ_t (vanishes at t = 1): the x1-/x0-prediction conversions in flow/path.cpp and the VP
// scheduler's σ̇_t ∝ 1/σ_t. Nowhere else, so the sampled path itself stays exact.
double clamp_time(double t, double eps = kTimeClampEpsilon);

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual SchedulerValues at(double t) const = 0;
  virtual std::string name() const = 0;
  // The scheduler as the path-coefficient kernels know it (kernels/path_law.h), when they do (every
  // scheduler here): then a batch's coefficients are made on the device from its time tensor, with
  // the bits of at(), and a training step on that path can be recorded.
  virtual std::optional<PathLaw> law() const { return std::nullopt; }
};

// Conditional optimal transport (Lipman et al. 2023, Sec. 4.1 Example II with σ_min = 0):
// α_t = t, σ_t = 1 − t, so x_t = (1 − t)·x0 + t·x1 and the target velocity is x1 − x0.
// The project's default.
class CondOTScheduler final : public Scheduler {
 public:
  SchedulerValues at(double t) const override;  // path_coefficients_at(law(), t), as for every scheduler
  std::string name() const override { return "condot"; }
  std::optional<PathLaw> law() const override { return PathLaw{PathLawKind::CondOT}; }
};

// Cosine / trigonometric (the Guide's Sec. 4.8 cosine scheduler; Nichol & Dhariwal 2021 in spirit):
// α_t = sin(πt/2), σ_t = cos(πt/2); α_t² + σ_t² = 1 (variance preserving for unit-variance data).
class CosineScheduler final : public Scheduler {
 public:
  SchedulerValues at(double t) const override;  // path_coefficients_at(law(), t)
  std::string name() const override { return "cosine"; }
  std::optional<PathLaw> law() const override { return PathLaw{PathLawKind::Cosine}; }
};

// Variance preserving, the VP-SDE of Song et al. 2021 ("Score-Based Generative Modeling through
// SDEs", ICLR 2021, Sec. 3.4 and App. B) read as a flow path as in Lipman et al. 2023 ("Flow
// Matching for Generative Modeling", Sec. 4.1 Example I, the VP path):
// with the linear noise rate β(s) = β_min + s·(β_max − β_min) in diffusion time s = 1 − t and
// T(s) = ∫_0^s β = β_min·s + ½·(β_max − β_min)·s²,
//     α_t = exp(−½·T(1 − t)),   σ_t = sqrt(1 − α_t²),
//     α̇_t = ½·β(1 − t)·α_t,     σ̇_t = −α_t·α̇_t / σ_t.
// Two consequences to know: α_0 = exp(−½·T(1)) ≈ 0.0066 for the defaults, not exactly 0 (the VP
// path starts at almost-pure noise), and σ̇_t diverges like (1 − t)^(−1/2) at t = 1; σ̇ is therefore
// evaluated at clamp_time(t) so the target velocity stays finite when t rounds to 1.
class VPScheduler final : public Scheduler {
 public:
  explicit VPScheduler(double beta_min = 0.1, double beta_max = 20.0);
  SchedulerValues at(double t) const override;  // path_coefficients_at(law(), t)
  std::string name() const override { return "vp"; }
  std::optional<PathLaw> law() const override;
  double beta_min() const { return beta_min_; }
  double beta_max() const { return beta_max_; }

 private:
  double beta_min_, beta_max_;
};

// "condot" (also "ot", "linear"), "cosine", "vp"; ConfigError listing these otherwise.
std::shared_ptr<const Scheduler> make_scheduler(const std::string& name);
std::vector<std::string> scheduler_names();

}  // namespace fm::flow
