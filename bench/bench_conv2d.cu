// bench/bench_conv2d.cu — 2-D convolution (NCHW, cross-correlation, PyTorch's conventions) over every
// convolution layer of the seed U-Net at batch 256: forward, backward w.r.t. the input (bwd-data) and
// backward w.r.t. weight and bias (bwd-weight). Formulas: kernels/conv2d.h.
//   y[n,o,i,j] = b[o] + Σ_{c,r,s} x[n, c, i·S − P + r, j·S − P + s] · w[o,c,r,s]
//
// Run:  fmbench conv2d [--shapes small] [--repeats N] [--csv FILE]     (fmbench --list conv2d: the table)
//
// Everything but the timing comes from conv2d's case table (cases/conv2d.h): the layers (its kBench
// cases; kBenchSmall under --shapes small), the FLOPs and fewest bytes of each pass, the tolerances,
// and the versions — the table's GPU implementations (v1 naive, v2 implicit GEMM, cudnn as the
// baseline). A new version is one entry there. Beside them, "v2 bf16-act": the implicit GEMM on
// bfloat16 activations (x, y, dy, dx at 2 bytes; float32 weights), as a U-Net with
// model.activations = "bfloat16" runs it.
//
// Work and traffic: FLOPs (each pass) = 2 · N · Ho · Wo · C_out · C_in · kh · kw. E.g. 64→64, 3×3
// at 28×28: 14.8 GFLOP against ~103 MB, ~140 FLOP per byte: compute-bound, so "% peak" is against
// the measured FP32 SGEMM rate.
//
// CPU reference: conv2d_{forward,backward_input,backward_weight}_cpu<double> (the tests' reference
// loops) at the full batch, sample slices on all host threads (see conv_bench_common.h).
#include <cstdio>
#include <string>

#include "bench/conv_bench_common.h"
#include "bench/harness.h"
#include "cases/conv2d.h"

namespace fm::bench {

namespace {
// "v2 bf16-act": the implicit GEMM on bfloat16 activations (always on the bfloat16 tensor cores).
const conv::Bf16ActivationKernels<kernels::Conv2dParams> kBf16Activations{
    [](const bf16* x, const float* w, const float* b, bf16* y, const kernels::Conv2dParams& p) {
      kernels::conv2d_forward_cuda(x, w, b, y, p);
    },
    [](const bf16* dy, const float* w, bf16* dx, const kernels::Conv2dParams& p) {
      kernels::conv2d_backward_input_cuda(dy, w, dx, p);
    },
    [](const bf16* x, const bf16* dy, float* dw, float* db, const kernels::Conv2dParams& p) {
      kernels::conv2d_backward_weight_cuda(x, dy, dw, db, p);
    }};
}  // namespace

void run_conv2d(const Options& options) {
  measured_peaks(options);
  print_table_header("conv2d: the U-Net's convolutions, FP32 (compute-bound: % of SGEMM FP32 peak)",
                     "x base = cudnn median / version median; TFLOP/s = 2*N*Ho*Wo*Cout*Cin*kh*kw / median, all passes");
  for (const cases::Conv2dCase& c : cases::conv2d_cases()) {
    if (!conv::lab_runs(c, options)) continue;
    const kernels::Conv2dParams& p = c.params;
    const std::string shape = cases::conv::shape_name(p);
    // kernels/cuda/conv2d_implicit_gemm.cu: GEMMs of at most two columns run on the direct kernel.
    if (p.out_channels <= 2)
      std::printf("   # %s: v2's forward GEMM has %d column(s): v2 runs the direct (v1) kernel there\n",
                  shape.c_str(), p.out_channels);
    if (p.in_channels <= 2)
      std::printf("   # %s: v2's bwd-data GEMM has %d column(s): v2 runs the direct (v1) kernel there\n",
                  shape.c_str(), p.in_channels);
    conv::bench_case("conv2d", c, cases::conv2d_flops(p), cases::conv2d_implementations(), cases::conv2d_reference(),
                     kBf16Activations, options);
  }
}

}  // namespace fm::bench
