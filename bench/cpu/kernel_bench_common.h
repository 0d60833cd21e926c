// bench/cpu/kernel_bench_common.h — what the CPU kernel benches (conv_bench.cpp, attention_bench.cpp)
// share: their one argument, the number of rounds, and the clock that times each pass.
#pragma once
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace fm::bench {

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// argv[1] as a whole number ≥ 1 (15 without it); 0 after a one-line usage message for anything else
// (a second argument, "8x", "0").
inline int rounds_argument(int argc, char** argv, const char* program) {
  int rounds = 15;
  if (argc > 1) {
    const char* text = argv[1];
    const auto [end, error] = std::from_chars(text, text + std::strlen(text), rounds);
    if (error != std::errc() || *end != '\0') rounds = 0;
  }
  if (argc > 2 || rounds < 1) {
    std::fprintf(stderr, "usage: %s [rounds: a whole number >= 1, default 15]\n", program);
    return 0;
  }
  return rounds;
}

}  // namespace fm::bench
