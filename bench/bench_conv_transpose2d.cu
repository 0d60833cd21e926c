// bench/bench_conv_transpose2d.cu — transposed 2-D convolution, the U-Net's 4×4 stride-2 upsampler
// (ConvTranspose2d(C, C, 4, 2, 1): 7×7 → 14×14 and 14×14 → 28×28), forward, bwd-data, bwd-weight.
//   y[n,o,:,:] = b[o] + Σ_c Σ_{i,j} x[n,c,i,j] · w[c,o,:,:] placed at (i·S − P, j·S − P)
// It is the adjoint of the conv2d with the same weight, stride and padding (kernels/conv2d.h,
// ConvTranspose2dParams::as_conv2d): its forward is that conv's bwd-data, its bwd-data is that
// conv's forward, its bwd-weight is that conv's bwd-weight with x and dy exchanged.
//
// Run:  fmbench conv_transpose2d [--shapes small] [--repeats N] [--csv FILE]
//       (fmbench --list conv_transpose2d: the table)
//
// Everything but the timing comes from conv_transpose2d's case table (cases/conv_transpose2d.h):
// the layers (its kBench cases; kBenchSmall under --shapes small), the FLOPs and fewest bytes of
// each pass, the tolerances, and the versions — the table's GPU implementations (v1 naive, v2
// implicit GEMM, cudnn as the baseline). A new version is one entry there. Beside them,
// "v2 bf16-act": the implicit GEMM on bfloat16 activations, as a bfloat16-activation U-Net runs it.
//
// Work and traffic, H×W the input size: FLOPs (each pass) = 2 · N · H · W · C_in · C_out · kh · kw
// (every input pixel meets the whole kernel). E.g. 64→64 at 7×7→14×14: 2·256·49·64·64·16 = 1.64 GFLOP
// against ~17 MB: compute-bound.
//
// CPU reference: conv_transpose2d_{forward,backward_input,backward_weight}_cpu<double> at the full
// batch, sample slices on all host threads (conv_bench_common.h).
#include "bench/conv_bench_common.h"
#include "bench/harness.h"
#include "cases/conv_transpose2d.h"

namespace fm::bench {

namespace {
// "v2 bf16-act": the implicit GEMM on bfloat16 activations (always on the bfloat16 tensor cores).
const conv::Bf16ActivationKernels<kernels::ConvTranspose2dParams> kBf16Activations{
    [](const bf16* x, const float* w, const float* b, bf16* y, const kernels::ConvTranspose2dParams& p) {
      kernels::conv_transpose2d_forward_cuda(x, w, b, y, p);
    },
    [](const bf16* dy, const float* w, bf16* dx, const kernels::ConvTranspose2dParams& p) {
      kernels::conv_transpose2d_backward_input_cuda(dy, w, dx, p);
    },
    [](const bf16* x, const bf16* dy, float* dw, float* db, const kernels::ConvTranspose2dParams& p) {
      kernels::conv_transpose2d_backward_weight_cuda(x, dy, dw, db, p);
    }};
}  // namespace

void run_conv_transpose2d(const Options& options) {
  measured_peaks(options);
  print_table_header("conv_transpose2d: the U-Net's 4x4 stride-2 upsamplers, FP32 (compute-bound: % of SGEMM FP32 peak)",
                     "x base = cudnn median / version median; TFLOP/s = 2*N*H*W*Cin*Cout*kh*kw / median, all passes");
  for (const cases::ConvTranspose2dCase& c : cases::conv_transpose2d_cases()) {
    if (!conv::lab_runs(c, options)) continue;
    conv::bench_case("conv_transpose2d", c, cases::conv_transpose2d_flops(c.params),
                     cases::conv_transpose2d_implementations(), cases::conv_transpose2d_reference(), kBf16Activations,
                     options);
  }
}

}  // namespace fm::bench
