// cmake/host_checks/slp_struct_store_main.cpp — the callee and main of the miscompile check: exits 0
// when the caller passed the fields it did not set unchanged, 1 (printing them) when they were
// overwritten.
#include <cstdio>

#include "slp_struct_store_options.h"

void set_some_fields_and_pass();

static int wrong_fields = -1;

void receive_options(CheckedOptions options, double, double) {
  wrong_fields = 0;
  if (options.rtol != 1e-6 || options.atol != 1e-6) ++wrong_fields;
  if (options.first_step != 0.0 || options.max_step != 0.0) ++wrong_fields;
  if (options.max_steps != 60 || options.safety != 0.9 || options.beta != 0.04) ++wrong_fields;
  if (wrong_fields)
    std::printf("rtol %g atol %g first_step %g max_step %g max_steps %lld", options.rtol, options.atol,
                options.first_step, options.max_step, static_cast<long long>(options.max_steps));
}

int main() {
  set_some_fields_and_pass();
  return wrong_fields == 0 ? 0 : 1;
}
