// cmake/host_checks/cpu_level.cpp — run at configure time (cmake/host_isa.cmake): prints the highest
// x86-64 micro-architecture level this CPU runs, "x86-64-v3" (AVX2, FMA, BMI1/2, F16C, ...) or
// "x86-64" (the baseline every x86-64 CPU has).
#include <cstdio>

int main() {
  __builtin_cpu_init();
  bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
            __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
  std::printf("%s", v3 ? "x86-64-v3" : "x86-64");
  return 0;
}
