// cases/group_norm.h — the case table of GroupNorm and of the fused GroupNorm + SiLU that starts
// every U-Net residual branch (formulas: kernels/group_norm.h): the shapes, the tolerances against
// the float64 reference, the fewest bytes of each pass, and the two ops' implementations.
//
// Read by tests/test_kernel_group_norm.cpp (every implementation × every kTest case, forward and
// backward; the float64 gradcheck on the kGradcheck cases) and bench/bench_group_norm.cu (the GPU
// implementations × the kBench or kBenchSmall cases); `fmbench --list group_norm` prints it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cases/case_table.h"

namespace fm::cases {

// ---- the cases ------------------------------------------------------------------------------------
// x is [N, C, H, W] in G groups of C/G consecutive channels; the kernels see H·W flattened, so for
// the tests' awkward shapes the split of HW into H×W is arbitrary (1×HW).
struct GroupNormCase {
  int N, C, H, W, G;
  unsigned uses;       // CaseUse bits
  const char* where;   // the U-Net layer, or what the shape exercises
  // x is uniform in [x_low, x_high]: a mean away from zero checks the statistics for cancellation.
  float x_low = -1.f, x_high = 1.f;
  // The tests shift x, dy, y and dx this many floats off the allocation's alignment (1: not 16-byte
  // aligned, so the GPU kernels take their scalar path). The lab ignores it.
  int misalign = 0;

  int hw() const { return H * W; }
  std::size_t elements() const { return std::size_t(N) * C * H * W; }
  std::size_t groups() const { return std::size_t(N) * G; }
  std::int64_t group_size() const { return std::int64_t(C / G) * H * W; }  // M = (C/G)·HW
};
const std::vector<GroupNormCase>& group_norm_cases();
// As the lab prints it (and --filter matches it): "256x64x28x28 G8".
std::string shape_name(const GroupNormCase& c);

// eps of every case (the engine's default).
constexpr float kGroupNormEps = 1e-5f;

// ---- work and traffic --------------------------------------------------------------------------------
// Memory-bound (~10 flops per element, not counted). Fewest bytes, either op, n = N·C·HW elements
// (γ, β, mean, rstd and the [N, C] partial sums are negligible):
//   forward:  read x, write y        = 8·n
//   backward: read x, dy, write dx   = 12·n
double group_norm_forward_bytes(const GroupNormCase& c);
double group_norm_backward_bytes(const GroupNormCase& c);

// ---- tolerances (float result vs the float64 reference) -------------------------------------------
// The outputs are one-pass float reductions (or come from them: y and dx through the statistics) over
// a group (up to a few hundred thousand terms) or over N·HW terms (dγ, dβ). Float summation error
// grows like √n·ε for random-sign terms (≈ 7e-6 at n = 3136); 1e-4 of the output's scale leaves
// more than 10× headroom, while an indexing or formula bug is off by O(1).
constexpr double kGroupNormReductionRel = 1e-4;
// The mean of a float group is off by rounding at the *data's* scale (max |x|), not at the mean's
// own near-zero scale: atol = 1e-5·max|x| is ~80 ulps of the data, far above the float sum's error
// over a group (two-pass sums or Welford's).
Tolerance group_norm_mean_tolerance(const GroupNormCase& c);
// rstd is a positive O(1/σ) number: relative, kGroupNormReductionRel.
Tolerance group_norm_rstd_tolerance();
// y, dx, dγ, dβ: scaled_tolerance(ref, kGroupNormReductionRel, kGroupNormReductionRel). y is O(1): a
// few ulps per element plus the statistics' error scaled by |x̂| ≲ 2; entries of dx, dγ, dβ that
// cancel to ~0 are judged by the size of the whole output.
Tolerance group_norm_output_tolerance(const std::vector<double>& reference);
// y and dx stored in bfloat16 (against a double reference on the same bfloat16 inputs): the one
// rounding of the output, 2^-8 relative, on top of the float rule, and the same of the output's scale
// for the elements that cancel.
Tolerance group_norm_bf16_output_tolerance(const std::vector<double>& reference);

// ---- the implementations ------------------------------------------------------------------------------
// One signature per pass for both ops and every implementation (host pointers for the CPU entry,
// device pointers for the GPU ones). z and dz serve only the unfused GroupNorm + SiLU, which runs as
// autograd would without the fused kernel: the forward writes GroupNorm's output z (n floats) and
// SiLU reads it back; the backward reads z (saved by that forward) and passes the gradient dz (n
// floats of scratch) from SiLU's backward to GroupNorm's. Every other entry ignores both.
using GroupNormForwardFn = void (*)(const float* x, const float* gamma, const float* beta, float* y,
                                    float* mean, float* rstd, float* z, int N, int C, int HW, int G,
                                    float eps);
// mean and rstd are the forward's saved outputs; beta is read only by GroupNorm + SiLU (SiLU's
// derivative is taken at γ·x̂ + β).
using GroupNormBackwardFn = void (*)(const float* dy, const float* x, const float* mean,
                                     const float* rstd, const float* gamma, const float* beta,
                                     const float* z, float* dz, float* dx, float* dgamma,
                                     float* dbeta, int N, int C, int HW, int G);

struct GroupNormImpl {
  const char* name;  // the lab's version name: "v1 naive", "v2", "fused v3", ...
  ImplKind kind;
  GroupNormForwardFn forward;
  GroupNormBackwardFn backward;
  // The Cached family (v3) holds the group in shared memory: it runs only where
  // kernels::group_norm_cache_bytes fits kGroupNormMaxCacheBytes, and throws ValueError elsewhere.
  bool caches_group = false;
  bool lab_baseline = false;  // the lab's "x base" version
  // A row in the lab's table. Not for Auto: it runs v2 or v3, which have their rows.
  bool benchmarked = true;
};
// Whether impl runs on this case's groups (false: it must throw ValueError).
bool group_norm_impl_runs(const GroupNormImpl& impl, const GroupNormCase& c, bool backward);

// ---- the two ops: GroupNorm, and GroupNorm + SiLU -----------------------------------------------------
// The float64 references: group_norm{,_silu}_{forward,backward}_cpu<double> (kernels/cpu/group_norm.cpp).
using GroupNormReferenceForwardFn = void (*)(const double* x, const double* gamma, const double* beta,
                                             double* y, double* mean, double* rstd, int N, int C,
                                             int HW, int G, double eps);
using GroupNormReferenceBackwardFn = void (*)(const double* dy, const double* x, const double* mean,
                                              const double* rstd, const double* gamma,
                                              const double* beta, double* dx, double* dgamma,
                                              double* dbeta, int N, int C, int HW, int G);
struct GroupNormOp {
  const char* name;           // "group_norm", "group_norm_silu" (fmbench --list)
  bool silu;                  // y = silu(GroupNorm(x))
  const char* forward_pass;   // the lab's pass names: "fwd" / "fwd+silu"
  const char* backward_pass;  //                       "bwd" / "bwd+silu"
  GroupNormReferenceForwardFn reference_forward;
  GroupNormReferenceBackwardFn reference_backward;
  std::vector<GroupNormImpl> implementations;  // CPU first, then the GPU ones in the lab's row order
};
// GroupNorm, then GroupNorm + SiLU. GPU entries exist only in CUDA (or emulator) builds.
const std::vector<GroupNormOp>& group_norm_ops();

OpListing group_norm_listing();       // fmbench --list group_norm
OpListing group_norm_silu_listing();  // fmbench --list group_norm_silu

}  // namespace fm::cases
