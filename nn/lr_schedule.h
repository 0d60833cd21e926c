// nn/lr_schedule.h — learning-rate schedules: constant, or linear warm-up followed by a constant rate
// or a cosine decay (Loshchilov & Hutter 2017, SGDR, without restarts).
//
// Layer: nn/ (uses core/ only). lr_at(step) takes the number of optimiser steps already taken, so
// the trainer calls optimizer.set_lr(schedule.lr_at(step)) before step `step` runs; being a pure
// function of the step, it resumes exactly from a checkpoint.
//   warm-up   (step < warmup_steps):  base_lr · (step + 1) / warmup_steps   (never 0 on the first step)
//   constant  afterwards:             base_lr
//   cosine    afterwards:             final_lr + ½(base_lr − final_lr)(1 + cos(π·p)),
//                                     p = min(1, (step − warmup_steps) / (total_steps − warmup_steps))
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace fm::nn {

struct LRSchedule {
  enum class Kind { Constant, Cosine };
  Kind kind = Kind::Constant;
  double base_lr = 1e-3;
  std::int64_t warmup_steps = 0;  // 0: no warm-up
  std::int64_t total_steps = 0;   // cosine only: the step at which final_lr is reached
  double final_lr = 0.0;          // cosine only

  double lr_at(std::int64_t step) const;
  void validate(const std::string& prefix = "lr_schedule") const;
  // {"kind": "constant" | "cosine", "base_lr", "warmup_steps", "total_steps", "final_lr"}; unknown
  // keys and bad values → fm::ConfigError naming the key.
  static LRSchedule from_json(const nlohmann::json& json, const std::string& prefix = "lr_schedule");
  nlohmann::json to_json() const;
};

}  // namespace fm::nn
