// flow/coupling.h — minibatch optimal-transport couplings: which source sample x0 is paired with which
// data sample x1 in a training batch.
//
// Independent coupling (plain conditional flow matching) pairs x0[i] with x1[i] as drawn. Minibatch OT
// (Tong et al. 2023, "OT-CFM"; Pooladian et al. 2023) first re-pairs the batch so that the total squared
// distance Σ_i ‖x0[i] − x1[σ(i)]‖² is as small as possible: the conditional paths then cross less, the
// learned field is straighter and few-step sampling improves.
//
// Two solvers:
//  - exact: the assignment problem solved by the shortest-augmenting-path (Hungarian / Jonker–Volgenant)
//    method with dual potentials, on the host, in double. O(n³) in the worst case, much less on the
//    random point clouds of a batch (a few ms for 512 points on one core).
//  - sinkhorn: entropic OT, π = diag(u)·exp(−C/ε)·diag(v) with both marginals uniform, iterated in the
//    log domain (stabilised log-sum-exps) with core ops, so it runs on whatever device the batch is on. Each x0[i] is then paired
//    with a column drawn from its row of π (so the pairing is random, not a permutation, and tends to the
//    exact assignment as ε → 0).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "flow/step_noise.h"

namespace fm::flow {

// Squared Euclidean distances C[i, j] = ‖a[i] − b[j]‖² between the rows of a [n, ...] and b [m, ...]
// (trailing dims flattened), as an [n, m] tensor on their device.
Tensor squared_distances(const Tensor& a, const Tensor& b);

// The permutation σ minimising Σ_i cost[i·n + σ(i)] for a dense n×n cost matrix (row-major, finite).
// Returns σ: row i is assigned column σ[i]; every column exactly once.
std::vector<std::int64_t> optimal_assignment(const std::vector<double>& cost, std::int64_t n);

struct SinkhornResult {
  Tensor plan;           // [n, m], rows sum to 1/n and columns to 1/m (to `tolerance`)
  int iterations = 0;    // iterations run
  double marginal_error = 0;  // max |row sum − 1/n| · n after the last iteration
};
// Entropic OT plan for cost [n, m] at regularisation epsilon (in the cost's units; the cost is used as
// given, so callers usually divide by its mean first). Stops when the row marginals are within
// `tolerance` (relative) or after max_iterations.
SinkhornResult sinkhorn_plan(const Tensor& cost, double epsilon, int max_iterations = 1000,
                             double tolerance = 1e-6);

// How a training batch's x0 and x1 are paired.
enum class CouplingKind {
  Independent,  // as drawn (plain conditional flow matching)
  MinibatchOT,  // the exact assignment (a permutation of x1)
  Sinkhorn,     // a partner per x0 drawn from its row of the entropic plan (on the batch's device)
};
struct CouplingOptions {
  CouplingKind kind = CouplingKind::Independent;
  double sinkhorn_epsilon = 0.05;  // relative to the batch's mean cost
  int sinkhorn_iterations = 200;
};
// "independent", "minibatch_ot", "sinkhorn"; ConfigError otherwise.
CouplingKind parse_coupling(const std::string& name);
std::vector<std::string> coupling_names();

// x1 reordered so that row i is x0[i]'s partner under the coupling (x1 itself for Independent). x0 and
// x1 are [N, ...] of the same shape on the same device. Sinkhorn's draws come from the Philox place
// (seed, Coupling, step, sample), so a resumed run pairs alike.
Tensor couple(const Tensor& x0, const Tensor& x1, const CouplingOptions& options, const StepNoise& noise);
// The partner of each x0[i] under the coupling: couple() is x1's rows taken in this order. Empty for
// Independent (each x0[i] keeps x1[i]). What belongs to a data row (its class label) follows it here.
std::vector<std::int32_t> coupling_partners(const Tensor& x0, const Tensor& x1, const CouplingOptions& options,
                                            const StepNoise& noise);
// x1's rows in the order of `partners` (couple()'s last step); x1 itself when partners is empty.
Tensor take_partners(const Tensor& x1, const std::vector<std::int32_t>& partners);
// The same for per-row values of x1 (class labels): values[partners[i]]; values itself when empty.
std::vector<std::int32_t> take_partners(const std::vector<std::int32_t>& values, const std::vector<std::int32_t>& partners);

}  // namespace fm::flow
