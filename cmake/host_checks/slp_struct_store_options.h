// cmake/host_checks/slp_struct_store_options.h — the struct of the miscompile check (see
// slp_struct_store_caller.cpp): options with defaults, as flow/solver.h's Dopri5Options has.
#pragma once
#include <cstdint>

struct CheckedOptions {
  double rtol = 1e-5, atol = 1e-5;
  double first_step = 0.0;
  double max_step = 0.0;
  std::int64_t max_steps = 100000;
  double safety = 0.9;
  double min_factor = 0.2, max_factor = 10.0;
  double beta = 0.04;
};

void receive_options(CheckedOptions options, double a = 0.0, double b = 1.0);
