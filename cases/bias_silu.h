// cases/bias_silu.h — the case table of the fused bias + SiLU, y = silu(x + bias[c]) over a tensor
// viewed as [outer, C, inner], and its backward (dx, and dbias summed over outer and inner)
// (formulas: kernels/activation.h): the shapes, the tolerances against the float64 reference and
// the implementations. An op of its own beside SiLU (cases/silu.h): it has a bias, a second output
// (dbias, a reduction) and both tensor layouts. The kernel lab has no bias_silu table, so no case
// here is timed.
//
// Read by tests/test_kernel_bias_silu.cpp (every implementation × every kTest case, forward and
// backward; the float64 gradcheck on the kGradcheck cases); `fmbench --list bias_silu` prints it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cases/case_table.h"

namespace fm::cases {

// ---- the cases ------------------------------------------------------------------------------------
// NCHW feature maps: outer = N, inner = H·W; [rows, C] matrices (the linear layers): outer = rows,
// inner = 1.
struct BiasSiluCase {
  std::int64_t outer;
  int C;
  std::int64_t inner;
  unsigned uses;       // CaseUse bits
  const char* where;   // the layout and what the shape exercises
  // The tests shift x, dy, y and dx this many floats off the allocation's alignment (bias and dbias
  // stay aligned).
  int misalign = 0;

  std::size_t elements() const { return std::size_t(outer) * std::size_t(C) * std::size_t(inner); }
};
const std::vector<BiasSiluCase>& bias_silu_cases();
// "outer=4 C=64 inner=196"
std::string shape_name(const BiasSiluCase& c);

// ---- tolerances (float result vs the float64 reference) -------------------------------------------
// y and dx are elementwise: SiLU's rule, scaled_tolerance(ref, kSiluRel, kSiluRel) (cases/silu.h:
// expf within 2 ulp, x·σ(x) a couple more; 2e-6 allows ~16 ulp).
Tolerance bias_silu_elementwise_tolerance(const std::vector<double>& reference);
// dbias is a one-pass float reduction over outer·inner terms (up to a few thousand): float summation
// error grows like √n·ε for random-sign terms (≈ 7e-6 at n = 3136); 1e-4 of the output's scale
// leaves more than 10× headroom, while an indexing or formula bug is off by O(1).
constexpr double kBiasSiluReductionRel = 1e-4;
Tolerance bias_silu_dbias_tolerance(const std::vector<double>& reference);

// ---- the implementations ------------------------------------------------------------------------------
// Exactly the kernels/ signatures (host pointers for the CPU entry, device pointers for the GPU one).
using BiasSiluForwardFn = void (*)(const float* x, const float* bias, float* y, std::int64_t outer, int C,
                                   std::int64_t inner);
using BiasSiluBackwardFn = void (*)(const float* x, const float* bias, const float* dy, float* dx, float* dbias,
                                    std::int64_t outer, int C, std::int64_t inner);
struct BiasSiluImpl {
  const char* name;
  ImplKind kind;
  BiasSiluForwardFn forward;
  BiasSiluBackwardFn backward;
};
// The CPU loops at float, then (CUDA or emulator builds) the CUDA kernels.
const std::vector<BiasSiluImpl>& bias_silu_implementations();

OpListing bias_silu_listing();  // fmbench --list bias_silu

}  // namespace fm::cases
