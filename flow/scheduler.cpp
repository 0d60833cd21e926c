// flow/scheduler.cpp — α_t, σ_t and derivatives of the CondOT, cosine and VP schedulers (see
// scheduler.h for the formulas and their sources).
#include "flow/scheduler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace fm::flow {

double clamp_time(double t, double eps) { return std::min(std::max(t, eps), 1.0 - eps); }

SchedulerValues CondOTScheduler::at(double t) const { return path_coefficients_at(*law(), t); }

SchedulerValues CosineScheduler::at(double t) const { return path_coefficients_at(*law(), t); }

VPScheduler::VPScheduler(double beta_min, double beta_max) : beta_min_(beta_min), beta_max_(beta_max) {
  FM_CHECK(beta_min > 0 && beta_max >= beta_min, ValueError,
           "VPScheduler: need 0 < beta_min <= beta_max, got beta_min ", beta_min, ", beta_max ",
           beta_max);
}

std::optional<PathLaw> VPScheduler::law() const {
  PathLaw law{PathLawKind::VP};
  law.beta_min = beta_min_, law.beta_max = beta_max_, law.clamp_epsilon = kTimeClampEpsilon;
  return law;
}

SchedulerValues VPScheduler::at(double t) const { return path_coefficients_at(*law(), t); }

std::vector<std::string> scheduler_names() { return {"condot", "cosine", "vp"}; }

std::shared_ptr<const Scheduler> make_scheduler(const std::string& name) {
  if (name == "condot" || name == "ot" || name == "linear") return std::make_shared<CondOTScheduler>();
  if (name == "cosine") return std::make_shared<CosineScheduler>();
  if (name == "vp") return std::make_shared<VPScheduler>();
  throw ConfigError(cat("scheduler: unknown name '", name,
                        "', expected one of condot (or ot, linear), cosine, vp"));
}

}  // namespace fm::flow
