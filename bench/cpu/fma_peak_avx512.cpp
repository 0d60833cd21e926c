// bench/cpu/fma_peak_avx512.cpp — the AVX-512 copy of the peak loop (bench/cpu/fma_peak_kernel.h),
// compiled with FM_AVX512_KERNEL_FLAGS (CMakeLists.txt); called only when kernels/cpu/cpu_isa.h
// picks the AVX-512 kernels.
#include "bench/cpu/fma_peak_kernel.h"

namespace fm::bench {

float fma_chains_avx512(std::int64_t iterations, float a, float b) { return fma_chains<64>(iterations, a, b); }

}  // namespace fm::bench
