// nn/lr_schedule.cpp — warm-up / constant / cosine learning rates (see lr_schedule.h).
#include "nn/lr_schedule.h"

#include <cmath>

#include "core/error.h"
#include "nn/config_json.h"

namespace fm::nn {

double LRSchedule::lr_at(std::int64_t step) const {
  FM_CHECK(step >= 0, ValueError, "LRSchedule: step must be >= 0, got ", step);
  if (step < warmup_steps) return base_lr * double(step + 1) / double(warmup_steps);
  if (kind == Kind::Constant) return base_lr;
  const std::int64_t decay_steps = total_steps - warmup_steps;
  const double progress = decay_steps <= 0 ? 1.0 : std::min(1.0, double(step - warmup_steps) / double(decay_steps));
  return final_lr + 0.5 * (base_lr - final_lr) * (1.0 + std::cos(M_PI * progress));
}

void LRSchedule::validate(const std::string& prefix) const {
  auto key = [&](const std::string& name) { return prefix.empty() ? name : prefix + "." + name; };
  FM_CHECK(std::isfinite(base_lr) && base_lr > 0, ConfigError, key("base_lr"), ": expected a positive number, got ", base_lr);
  FM_CHECK(warmup_steps >= 0, ConfigError, key("warmup_steps"), ": expected a non-negative integer, got ", warmup_steps);
  if (kind == Kind::Cosine) {
    FM_CHECK(total_steps > warmup_steps, ConfigError, key("total_steps"), ": expected more than ", key("warmup_steps"),
             " (", warmup_steps, ") for a cosine decay, got ", total_steps);
    FM_CHECK(std::isfinite(final_lr) && final_lr >= 0 && final_lr <= base_lr, ConfigError, key("final_lr"),
             ": expected a number in [0, base_lr = ", base_lr, "], got ", final_lr);
  }
}

LRSchedule LRSchedule::from_json(const nlohmann::json& json, const std::string& prefix) {
  LRSchedule schedule;
  ConfigReader reader(json, prefix);
  std::string kind = "constant";
  reader.read_string("kind", kind);
  if (kind == "constant")
    schedule.kind = Kind::Constant;
  else if (kind == "cosine")
    schedule.kind = Kind::Cosine;
  else
    throw ConfigError(cat(reader.path("kind"), ": expected \"constant\" or \"cosine\", got \"", kind, "\""));
  reader.read_positive_number("base_lr", schedule.base_lr);
  int warmup = 0, total = 0;
  reader.read_nonnegative_int("warmup_steps", warmup);
  reader.read_nonnegative_int("total_steps", total);
  schedule.warmup_steps = warmup;
  schedule.total_steps = total;
  reader.read_nonnegative_number("final_lr", schedule.final_lr);
  reader.reject_unknown_keys();
  schedule.validate(prefix);
  return schedule;
}

nlohmann::json LRSchedule::to_json() const {
  return nlohmann::json{{"kind", kind == Kind::Constant ? "constant" : "cosine"},
                        {"base_lr", base_lr},
                        {"warmup_steps", warmup_steps},
                        {"total_steps", total_steps},
                        {"final_lr", final_lr}};
}

}  // namespace fm::nn
