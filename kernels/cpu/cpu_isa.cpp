// kernels/cpu/cpu_isa.cpp — the run-time choice of CPU kernel copies (see cpu_isa.h).
#include "kernels/cpu/cpu_isa.h"

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace fm::kernels {
namespace {

bool cpu_has_avx512() {
#if defined(FM_HAVE_AVX512_KERNELS) && (defined(__x86_64__) || defined(__i386__))
  // x86-64-v4: the AVX-512 subsets the -march=x86-64-v4 copies may use.
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512cd");
#else
  return false;
#endif
}

CpuIsa choose() {
  const char* requested = std::getenv("FM_CPU_ISA");
  const std::string value = requested ? requested : "auto";
  if (value == "auto" || value.empty()) return cpu_has_avx512() ? CpuIsa::Avx512 : CpuIsa::Portable;
  if (value == "avx2" || value == "portable") return CpuIsa::Portable;
  if (value == "avx512") {
    if (!cpu_has_avx512())
      throw ConfigError("FM_CPU_ISA=avx512: this CPU or this build has no AVX-512 kernels; expected auto or avx2");
    return CpuIsa::Avx512;
  }
  throw ConfigError("FM_CPU_ISA=" + value + ": expected auto, avx2 or avx512");
}

}  // namespace

CpuIsa cpu_isa() {
  static const CpuIsa isa = choose();  // thread-safe, once per process
  return isa;
}

const char* cpu_isa_name(CpuIsa isa) { return isa == CpuIsa::Avx512 ? "avx512" : "portable"; }

}  // namespace fm::kernels
