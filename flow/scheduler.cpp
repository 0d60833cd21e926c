// flow/scheduler.cpp — α_t, σ_t and derivatives of the CondOT, cosine and VP schedulers (see
// scheduler.h for the formulas and their sources).
#include "flow/scheduler.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace fm::flow {

double clamp_time(double t, double eps) { return std::min(std::max(t, eps), 1.0 - eps); }

SchedulerValues CondOTScheduler::at(double t) const { return {t, 1.0 - t, 1.0, -1.0}; }

SchedulerValues CosineScheduler::at(double t) const {
  const double half_pi = 0.5 * std::numbers::pi;
  const double s = std::sin(half_pi * t), c = std::cos(half_pi * t);
  return {s, c, half_pi * c, -half_pi * s};
}

VPScheduler::VPScheduler(double beta_min, double beta_max) : beta_min_(beta_min), beta_max_(beta_max) {
  FM_CHECK(beta_min > 0 && beta_max >= beta_min, ValueError,
           "VPScheduler: need 0 < beta_min <= beta_max, got beta_min ", beta_min, ", beta_max ",
           beta_max);
}

SchedulerValues VPScheduler::at(double t) const {
  // Diffusion time s = 1 − t runs the other way: s = 0 is data.
  auto integrated_rate = [&](double s) { return beta_min_ * s + 0.5 * (beta_max_ - beta_min_) * s * s; };
  auto rate = [&](double s) { return beta_min_ + s * (beta_max_ - beta_min_); };
  SchedulerValues v;
  const double T = integrated_rate(1.0 - t);
  v.alpha = std::exp(-0.5 * T);
  v.sigma = std::sqrt(-std::expm1(-T));  // 1 − e^{−T} without cancellation near t = 1
  v.d_alpha = 0.5 * rate(1.0 - t) * v.alpha;
  // σ̇ = −α·α̇/σ blows up at t = 1 (σ → 0): evaluate it at the clamped time instead.
  const double tc = clamp_time(t);
  const double Tc = integrated_rate(1.0 - tc);
  const double alpha_c = std::exp(-0.5 * Tc);
  v.d_sigma = -0.5 * rate(1.0 - tc) * alpha_c * alpha_c / std::sqrt(-std::expm1(-Tc));
  return v;
}

std::vector<std::string> scheduler_names() { return {"condot", "cosine", "vp"}; }

std::shared_ptr<const Scheduler> make_scheduler(const std::string& name) {
  if (name == "condot" || name == "ot" || name == "linear") return std::make_shared<CondOTScheduler>();
  if (name == "cosine") return std::make_shared<CosineScheduler>();
  if (name == "vp") return std::make_shared<VPScheduler>();
  throw ConfigError(cat("scheduler: unknown name '", name,
                        "', expected one of condot (or ot, linear), cosine, vp"));
}

}  // namespace fm::flow
