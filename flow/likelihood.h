// flow/likelihood.h — the log-likelihood of data under a flow-matching model, by the instantaneous
// change of variables (Chen et al. 2018, "Neural ODEs", Thm. 1; FFJORD, Grathwohl et al. 2019):
//
//   d/dt log p_t(x_t) = −div v(x_t, t)   ⇒   log p_1(x_1) = log p_0(x_0) − ∫_0^1 div v(x_t, t) dt,
//
// where x_t solves dx/dt = v(x, t) backwards from the data point x_1 (t = 1) to x_0 (t = 0, the
// source; this project's convention). The state is augmented with ℓ, dℓ/dt = div v(x_t, t), ℓ(1) = 0,
// so ℓ(0) = −∫_0^1 div v dt and log p_1(x_1) = log p_0(x_0) + ℓ(0). The augmented state goes through
// any of flow/solver.h's solvers from t = 1 to t = 0: euler, midpoint, heun, rk4 (fixed steps) or
// dopri5 (adaptive; its error norm runs over x and ℓ together, so rtol/atol bound ℓ's local error too).
//
// The divergence at each stage is computed with the autograd engine, from one forward pass:
//   exact       Σ_i e_iᵀ J e_i: one vector-Jacobian product (backward) per dimension — for low D;
//   hutchinson  E_z[zᵀ J z] = tr J for probes with E[z zᵀ] = I (Hutchinson 1989): K backward passes,
//               Rademacher (±1) or Gaussian probes. Each sample's K probes are drawn once per solve
//               from a counter-based Philox stream keyed by (seed, global sample index, probe) and
//               used at every stage of every step (FFJORD's choice): the integrand zᵀ J(x_t, t) z is
//               then a smooth function of t, so the solver's order and error bound hold for it, and the
//               result is an unbiased estimate of what the exact divergence would give on the same
//               trajectory (x_t never depends on z). Fresh probes per stage would lower the variance
//               somewhat, but make the integrand noise, for which "4th order" means nothing.
// Samples are independent (the models act per sample), so one backward with a probe for the whole
// batch gives every sample's vector-Jacobian product at once.
//
// Memory is flat in the number of steps: each evaluation's graph (the model's forward pass) lives only
// inside velocity_and_divergence and is dropped before it returns; what the solver combines are
// detached tensors, so no graph links one stage or step to the next.
//
// Sits in flow/ on top of core/ (autograd) and flow/solver.h. The solvers run under NoGradGuard; each
// evaluation turns grad mode back on for its own forward pass (EnableGradGuard, core/autograd.h), so
// this works whatever the caller's grad mode. Model parameters that require grad get gradients
// accumulated as a side effect; callers that only evaluate switch requires_grad off on them
// (tools/nll_eval.cpp does, and restores it).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "flow/solver.h"

namespace fm::flow {

enum class DivergenceMethod { Exact, Hutchinson };
enum class ProbeDistribution { Rademacher, Gaussian };

// "exact" / "hutchinson", "rademacher" / "gaussian"; ConfigError naming the choices otherwise.
DivergenceMethod parse_divergence_method(const std::string& name);
ProbeDistribution parse_probe_distribution(const std::string& name);
std::string divergence_method_name(DivergenceMethod method);
std::string probe_distribution_name(ProbeDistribution probe);

// The Philox stream of the Hutchinson probes: a stream id far from the training streams
// (flow/step_noise.h numbers those from 1), so probes never coincide with a run's noise.
inline constexpr std::uint32_t kLikelihoodProbeStream = 101;

struct LikelihoodOptions {
  std::string solver = "rk4";  // euler, midpoint, heun, rk4 (fixed steps) or dopri5 (adaptive)
  int steps = 100;                 // fixed-step solvers
  double rtol = 1e-5, atol = 1e-5; // dopri5: per-element tolerance atol + rtol·|y| on the state [x, ℓ]
  DivergenceMethod divergence = DivergenceMethod::Exact;
  ProbeDistribution probe = ProbeDistribution::Rademacher;
  int probes = 1;                  // Hutchinson: probes per sample (the estimate is their mean)
  std::uint64_t seed = 0;          // Hutchinson: the probes' Philox key
  std::int64_t first_sample = 0;   // global index of x_1's first row: sample i's probes are keyed by
                                   // first_sample + i, so a data set split into batches gets the same
                                   // probes however it is split
};

struct LikelihoodResult {
  Tensor log_prob;             // [N] log p_1(x_1) in the model's coordinates, x_1's dtype and device
  Tensor source_log_prob;      // [N] log p_0(x_0) under N(0, I)
  Tensor divergence_integral;  // [N] ∫_0^1 div v(x_t, t) dt (a Hutchinson estimate when so chosen)
  Tensor x0;                   // [N, ...] the state reached at t = 0
  std::int64_t nfe = 0;        // velocity evaluations (forward passes)
  std::int64_t backward_passes = 0;  // vector-Jacobian products (each covers the whole batch)
  std::int64_t steps = 0;            // steps taken (accepted ones for dopri5)
  std::int64_t rejected_steps = 0;   // dopri5 only
};

// log p_1(x_1) for every row of x_1 [N, ...] (N ≥ 1, at least one element per sample), the source
// being the standard normal N(0, I). ValueError / ConfigError on bad options (steps < 1, probes < 1,
// an unknown solver, bad dopri5 tolerances), ShapeError when the field returns another shape.
LikelihoodResult log_likelihood(const VelocityField& velocity, const Tensor& x1, const LikelihoodOptions& options);

struct VelocityAndDivergence {
  Tensor velocity;    // [N, ...], detached
  Tensor divergence;  // [N], detached
};
// v(x, t) and its divergence (per sample) from one forward pass. probes: [K, N, ...] (Hutchinson;
// ignored for Exact). Turns grad mode on for the forward pass (callable under NoGradGuard, as the
// solvers call it). The graph of the forward pass is gone when this returns.
VelocityAndDivergence velocity_and_divergence(const VelocityField& velocity, const Tensor& x, double t,
                                              DivergenceMethod method, const Tensor& probes = {},
                                              std::int64_t* backward_passes = nullptr);

// The probes of samples first_sample … first_sample + shape[0] − 1: [K, shape...] in dtype/device.
// Rademacher: ±1 from one Philox uniform per element; Gaussian: Philox normals.
Tensor make_probes(const Shape& shape, int probes, ProbeDistribution distribution, std::uint64_t seed,
                   std::int64_t first_sample, DType dtype, Device device);

// log N(x; 0, I) per sample: −½|x|² − (D/2)·log 2π over each row of x [N, ...] → [N].
Tensor standard_normal_log_density(const Tensor& x);

}  // namespace fm::flow
