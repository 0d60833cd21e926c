// cases/silu.h — the case table of SiLU, y = x·σ(x), and its backward dx = dy·σ(x)·(1 + x·(1 − σ(x)))
// (formulas: kernels/activation.h): the shapes, the tolerance against the float64 reference, the
// fewest bytes of each pass, and the implementations.
//
// Read by tests/test_kernel_silu.cpp (every implementation × every kTest case, forward and
// backward; the float64 gradcheck on the kGradcheck cases) and bench/bench_silu.cu (the GPU
// implementations × the kBench or kBenchSmall cases); `fmbench --list silu` prints it.
// The fused bias + SiLU is an op of its own: cases/bias_silu.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cases/case_table.h"

namespace fm::cases {

// ---- the cases ------------------------------------------------------------------------------------
// SiLU is elementwise: only the element count matters to the kernels. The lab's shapes are the
// U-Net's NCHW activations (cuDNN is handed them as 4-D tensors); the tests' are 1-D counts chosen
// around the float4 kernel's edges.
struct SiluCase {
  std::vector<long long> dims;  // sizes, outermost first: {256, 32, 28, 28}, or {1000003}
  unsigned uses;                // CaseUse bits
  const char* where;            // the U-Net activation, or what the size exercises
  // The tests shift x, dy, y and dx this many floats off the allocation's alignment (1: not 16-byte
  // aligned, so v2 takes its scalar path). The lab ignores it.
  int misalign = 0;

  std::int64_t elements() const;
};
const std::vector<SiluCase>& silu_cases();
// As the lab prints it (and --filter matches it): "256x32x28x28".
std::string shape_name(const SiluCase& c);

// ---- work and traffic -------------------------------------------------------------------------------
// Memory-bound: a dozen flops against 8 or 12 bytes per element, so FLOPs are not counted and the
// lab's "% peak" is achieved bandwidth over the measured device-to-device copy bandwidth.
//   forward:  fewest bytes = read x + write y        = 8·n
//   backward: fewest bytes = read x, dy + write dx   = 12·n
// (cuDNN's backward also reads y: 16 bytes per element against our 12; the lab counts 12 for all.)
double silu_forward_bytes(const SiluCase& c);
double silu_backward_bytes(const SiluCase& c);

// ---- tolerance (float result vs the float64 reference) ----------------------------------------------
// expf is within 2 ulp and x·σ(x) adds a couple more: a few ulps of the output's scale; 2e-6 allows
// ~16 ulp (FLT_EPSILON ≈ 1.2e-7). A wrong formula or a missed element is off by far more.
constexpr double kSiluRel = 2e-6;
// y and dx: scaled_tolerance(ref, kSiluRel, kSiluRel).
Tolerance silu_tolerance(const std::vector<double>& reference);

// ---- the implementations ------------------------------------------------------------------------------
// Host pointers for the CPU entries, device pointers for the GPU ones; dims are the case's sizes
// (only cuDNN looks at them: it is given the tensor as 4-D NCHW).
using SiluForwardFn = void (*)(const float* x, float* y, const std::vector<long long>& dims);
// y is the forward's output for the same x: only cuDNN's backward reads it.
using SiluBackwardFn = void (*)(const float* x, const float* y, const float* dy, float* dx,
                                const std::vector<long long>& dims);

struct SiluImpl {
  const char* name;  // the lab's version name: "v1 naive", "v2 float4", "elementwise", "cudnn"
  ImplKind kind;
  SiluForwardFn forward;
  SiluBackwardFn backward;
  bool lab_baseline = false;  // the lab's "x base" version
};
// CPU entries first, then the GPU ones in the lab's row order. GPU entries exist only in CUDA (or
// emulator) builds; cuDNN only in a real CUDA build (not the emulator), and it runs only where
// kernels::cudnn_available().
const std::vector<SiluImpl>& silu_implementations();
// Whether impl can run in this process (a Library entry needs cuDNN at run time).
bool silu_impl_available(const SiluImpl& impl);

OpListing silu_listing();  // fmbench --list silu

}  // namespace fm::cases
