// kernels/cpu/parallel_for.h — an OpenMP loop that is only entered when it pays.
//
// `#pragma omp parallel for if (cond)` still calls into the OpenMP runtime when cond is false: it
// sets up (and tears down) a team of one thread, about 1,000 instructions or ~100 ns, which for a
// tiny tensor is a third of the whole op (fmbench cpu-ops). Testing the condition here first keeps
// the small-tensor path a plain loop. The body is a lambda taking the index; it is inlined into both
// loops, so the compiler vectorises it as it would a hand-written loop.
#pragma once
#include <cstdint>

namespace fm::kernels {

template <typename Body>
[[gnu::always_inline]] inline void parallel_for(std::int64_t n, bool use_threads, Body body) {
  if (use_threads) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) body(i);
  } else {
    for (std::int64_t i = 0; i < n; ++i) body(i);
  }
}

}  // namespace fm::kernels
