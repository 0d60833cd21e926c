// cmake/host_checks/slp_struct_store_caller.cpp — a known GCC 12 miscompile, checked at configure time
// (cmake/host_isa.cmake) with the host flags the build will use.
//
// GCC 12.2 with -O2/-O3 and -march=native on AVX-512 CPUs (also -march=icelake-server,
// skylake-avx512; not x86-64-v3/v4) lets its SLP vectoriser store one 4-lane broadcast of 1e-6 over
// rtol, atol, first_step and max_step below, so the callee sees first_step = max_step = 1e-6 instead of
// 0. Any struct of options set field by field can be corrupted this way. The callee lives in another
// file so the compiler cannot see through the call.
#include "slp_struct_store_options.h"

void set_some_fields_and_pass() {
  CheckedOptions options;
  options.rtol = options.atol = 1e-6;
  options.max_steps = 60;
  receive_options(options);
}
