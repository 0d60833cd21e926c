// bench/cpu/kernel_lab.h — `fmbench cpu-kernels`: the kernel lab on the CPU. Every CPU kernel the
// small U-Net's training step spends its time in (configs/fashion_mnist_cpu.json at batch 64: the
// convolutions' three passes, attention forward and backward, the GEMM shapes, the fused GroupNorm +
// SiLU), each timed on the shapes that step runs, as GFLOP/s and as a share of the machine's measured
// FMA ceiling (bench/cpu/fma_peak.h), or for GroupNorm + SiLU, as the GPU lab measures it (a few
// operations per value), as GB/s and a share of a copy of as many bytes. The GPU lab compares each kernel with cuDNN/cuBLAS; here the library a
// user would compare with is PyTorch's CPU kernels (oneDNN, MKL): bench/cpu_vs_pytorch.py --only
// kernels runs the same rows in PyTorch (bench/cpu_kernels_pytorch.py, reading this lab's CSV) and
// prints the ratio of each.
//
// Needs no GPU and makes no CUDA call; in every build with fmbench.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace fm::bench {

struct CpuKernelLabOptions {
  int rounds = 15;        // timed rounds per row; the fastest is reported (--repeats N)
  bool quick = false;     // --quick: one round of one call per row, no peak (a smoke test, not a measurement)
  std::string filter;     // --filter TEXT: only rows whose "op shape pass" contains TEXT
  std::string csv_path;   // --csv FILE: one row per case
};

// One row of the lab: a kernel call on one shape. `params` names the shape's sizes as key=value
// pairs separated by ';' (the CSV column bench/cpu_kernels_pytorch.py rebuilds the inputs from).
// A row counts operations (flops > 0: GFLOP/s against the FMA peak) or bytes (bytes > 0: GB/s
// against a copy of as many bytes, timed the same way, bench/cpu/kernel_lab.cpp).
struct CpuLabCase {
  std::string op, shape, pass, params;
  double flops = 0;            // floating-point operations of one call (2 per multiply-add)
  std::function<void()> run;   // one call on inputs the case owns
  double bytes = 0;            // byte-counted rows: the fewest bytes one call must read and write
};

// The cases of each op (bench/cpu/conv_lab.cpp, attention_lab.cpp, gemm_lab.cpp, norm_lab.cpp),
// inputs filled.
void add_conv_lab_cases(std::vector<CpuLabCase>& cases);
void add_attention_lab_cases(std::vector<CpuLabCase>& cases);
void add_gemm_lab_cases(std::vector<CpuLabCase>& cases);
void add_group_norm_lab_cases(std::vector<CpuLabCase>& cases);

// Measures the peak, times every selected case, prints the table (and the CSV); returns 0. Throws
// ConfigError when --filter matches nothing and IOError when the CSV cannot be written (fmbench prints
// the one line and exits 2).
int run_cpu_kernel_lab(const CpuKernelLabOptions& options);

}  // namespace fm::bench
