// bench/cpu/gemm_lab.cpp — the kernel lab's GEMM rows (bench/cpu/kernel_lab.h): gemm_cpu<float>
// (kernels/cpu/gemm.cpp) on the GEMM shapes the small U-Net (configs/fashion_mnist_cpu.json, batch 64)
// runs in one training step. Shapes are M×N×K with op(A), op(B) as in the conv's three GEMMs.
//
// Most of these GEMMs run inside an image-parallel region (kernels/cpu/conv2d_im2col.cpp,
// kernels/cpu/attention*.cpp), i.e. on one core each: run the lab with OMP_NUM_THREADS=1 to see those
// (the peak is then one core's too), with more threads to see how a single big GEMM splits.
// FM_CPU_ISA=avx2 forces the portable micro-kernel.
#include <memory>
#include <string>
#include <vector>

#include "bench/cpu/kernel_lab.h"
#include "core/error.h"
#include "kernels/gemm.h"

namespace fm::bench {
namespace {

struct Shape {
  const char* what;
  bool trans_a, trans_b;
  int M, N, K;
};

// From a logged training step: the conv im2col GEMMs (forward nn, input-gradient tn, weight-gradient
// nt) at 28×28, 14×14 and 7×7, attention's per-head products and the 1×1 projections. (Since
// 2026-12-06 the 3×3 convolutions no longer run as these GEMMs but read a padded image in place,
// kernels/cpu/conv_forward_kernel.h and conv_weight_grad_kernel.h; their shapes stay here as GEMMs
// of that size, and the 4×4 stride-2 and 1×1 convolutions still are GEMMs.)
const Shape kShapes[] = {
    {"conv 32->32 28x28 fwd", false, false, 32, 784, 288},
    {"conv 32->32 28x28 dx", true, false, 288, 784, 32},
    {"conv 32->32 28x28 dW", false, true, 32, 288, 784},
    {"conv 16->32 28x28 fwd", false, false, 32, 784, 144},
    {"conv 32->16 28x28 fwd", false, false, 16, 784, 288},
    {"conv 32->32 14x14 fwd", false, false, 32, 196, 288},
    {"conv 32->32 14x14 dx", true, false, 288, 196, 32},
    {"conv 32->32 14x14 dW", false, true, 32, 288, 196},
    {"conv 64->32 14x14 fwd", false, false, 32, 196, 512},
    {"conv 32->32 7x7 fwd", false, false, 32, 49, 288},
    {"conv 32->32 7x7 dx", true, false, 288, 49, 32},
    {"conv 32->32 7x7 dW", false, true, 32, 288, 49},
    {"attn scores 14x14", false, true, 196, 196, 8},
    {"attn P.V 14x14", false, false, 196, 8, 196},
    {"attn dP^T.dO 14x14", true, false, 196, 8, 196},
    {"1x1 proj 14x14 (batch)", false, false, 12544, 32, 96},
    {"1x1 proj dW (batch)", true, false, 32, 96, 12544},
};

struct Buffers {
  std::vector<float> a, b, c;
};

}  // namespace

void add_gemm_lab_cases(std::vector<CpuLabCase>& cases) {
  for (const Shape& s : kShapes) {
    auto buffers = std::make_shared<Buffers>();
    buffers->a.resize(std::size_t(s.M) * s.K);
    buffers->b.resize(std::size_t(s.K) * s.N);
    buffers->c.resize(std::size_t(s.M) * s.N);
    for (std::size_t i = 0; i < buffers->a.size(); ++i) buffers->a[i] = float(i % 7) * 0.25f - 0.75f;
    for (std::size_t i = 0; i < buffers->b.size(); ++i) buffers->b[i] = float(i % 5) * 0.5f - 1.0f;
    const int lda = s.trans_a ? s.M : s.K, ldb = s.trans_b ? s.K : s.N;
    const std::string pass = cat(s.trans_a ? 't' : 'n', s.trans_b ? 't' : 'n');
    const std::string shape = cat(s.what, " ", s.M, "x", s.N, "x", s.K);
    const std::string params = cat("M=", s.M, ";N=", s.N, ";K=", s.K, ";trans_a=", int(s.trans_a),
                                   ";trans_b=", int(s.trans_b));
    cases.push_back({"gemm", shape, pass, params, 2.0 * s.M * s.N * s.K, [buffers, s, lda, ldb] {
                       kernels::gemm_cpu<float>(s.trans_a, s.trans_b, s.M, s.N, s.K, 1.f, buffers->a.data(), lda,
                                                buffers->b.data(), ldb, 0.f, buffers->c.data(), s.N);
                     }});
  }
}

}  // namespace fm::bench
