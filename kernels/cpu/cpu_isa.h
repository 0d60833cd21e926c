// kernels/cpu/cpu_isa.h — which vector instruction set the CPU kernels use, chosen at run time.
//
// The portable build compiles host code for x86-64-v3 (AVX2 + FMA; cmake/host_isa.cmake), so a
// binary runs on any recent x86-64 CPU. The hottest float loops are compiled a second time for
// x86-64-v4 (AVX-512: 16 floats per instruction instead of 8) in their own source files
// (kernels/cpu/*_avx512.cpp, built when the compiler can target it: FM_HAVE_AVX512_KERNELS), and
// each call picks one copy here. Both copies run the same source, so they compute the same
// formulas; they may differ in the last bit only where the compiler contracts a*b+c into an FMA
// differently.
//
// FM_CPU_ISA=avx2 forces the portable copy (so the tests can run both copies on one AVX-512
// machine); FM_CPU_ISA=avx512 asks for the AVX-512 copy and is an error on a CPU without it;
// unset or "auto" picks AVX-512 when the CPU and the build have it.
#pragma once

namespace fm::kernels {

enum class CpuIsa { Portable, Avx512 };

// The choice for this process (read once from the CPU and FM_CPU_ISA; throws fm::ConfigError naming
// the variable for a value it does not know or for avx512 on a CPU without it).
CpuIsa cpu_isa();
const char* cpu_isa_name(CpuIsa isa);

// True when the AVX-512 copies should run.
inline bool use_avx512_kernels() { return cpu_isa() == CpuIsa::Avx512; }

}  // namespace fm::kernels
