// flow/straightness.h — how straight a learned flow is (Liu et al. 2023, "Flow Straight and Fast",
// eq. 3): S = ∫₀¹ E‖(Z₁ − Z₀) − v(Z_t, t)‖² dt along the flow's own trajectories Z_t from Z₀ = x0.
//
// S = 0 exactly when every trajectory is a straight line travelled at constant speed; then one Euler
// step lands where a hundred would, which is why reflow (straighter couplings) buys few-step sampling.
//
// Estimated with n Euler steps, where it has a closed form: with Z_{k+1} = Z_k + h·v_k, the endpoint
// displacement is Z_n − Z₀ = h·Σ v_k, so
//   Σ_k h·‖(Z_n − Z₀) − v_k‖² = h·Σ_k ‖v_k‖² − ‖Z_n − Z₀‖²
// (expand the square; the cross terms sum to −2‖Z_n − Z₀‖²). One pass, no stored trajectory, and
// never negative (Cauchy–Schwarz). The relative form divides by E‖Z₁ − Z₀‖², the squared length of
// the straight path: 0 for straight flows, unitless, comparable between data sets.
#pragma once
#include "core/tensor.h"
#include "flow/solver.h"

namespace fm::flow {

struct Straightness {
  double straightness = 0;           // S: mean over samples of ∫‖(Z₁ − Z₀) − v‖² dt
  double relative_straightness = 0;  // S / E‖Z₁ − Z₀‖²
  double mean_displacement = 0;      // E‖Z₁ − Z₀‖² (squared, summed over a sample's elements)
  Tensor end;                        // Z₁ for each start, as the Euler solver reaches it
};

// Integrates x_start [N, ...] from t = 0 to 1 with `steps` Euler steps of `velocity` (under
// NoGradGuard) and returns S and its parts.
Straightness measure_straightness(const VelocityField& velocity, const Tensor& x_start, int steps);

}  // namespace fm::flow
