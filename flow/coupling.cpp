// flow/coupling.cpp — minibatch OT couplings (see coupling.h): squared distances, the exact assignment
// and the Sinkhorn plan.
#include "flow/coupling.h"

#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/ops_nn.h"

namespace fm::flow {

Tensor squared_distances(const Tensor& a, const Tensor& b) {
  FM_CHECK(a.defined() && b.defined() && a.dim() >= 1 && b.dim() >= 1, ShapeError,
           "squared_distances: both inputs need a batch dim");
  Tensor a2 = a.reshape({a.size(0), -1}), b2 = b.reshape({b.size(0), -1});
  FM_CHECK(a2.size(1) == b2.size(1), ShapeError, "squared_distances: rows of ", shape_str(a.shape()), " and ",
           shape_str(b.shape()), " have different sizes");
  // ‖a‖² + ‖b‖² − 2·a·bᵀ: one GEMM instead of an [n, m, d] difference tensor. Clamped at 0 from below:
  // the cancellation can leave tiny negatives for (nearly) equal rows.
  Tensor a_norms = sum(square(a2), {1}, true), b_norms = sum(square(b2), {1}, true);
  Tensor d = a_norms + b_norms.transpose(0, 1) - matmul(a2, b2.transpose(0, 1)) * 2.0;
  return relu(d);
}

// Shortest augmenting paths with dual potentials (Jonker & Volgenant 1987; Burkard, Dell'Amico &
// Martello, "Assignment Problems", §4.4). Potentials u (rows) and v (columns) keep every reduced cost
// c_ij − u_i − v_j ≥ 0, and 0 on the assigned pairs, which is what makes the assignment optimal at the
// end (the dual is then feasible and complementary).
//  1. Column reduction: v_j = min_i c_ij; each column whose cheapest row is still free takes it
//     (on random point clouds about two rows in three, for no search at all).
//  2. Each remaining free row r grows a Dijkstra tree over columns by reduced cost until it reaches
//     a free column; the potentials of the columns settled on the way are lowered by how much closer
//     they were than that free column, and the assignment is flipped along the path.
// O(n³) in the worst case; each tree step is one pass over the columns not yet settled.
std::vector<std::int64_t> optimal_assignment(const std::vector<double>& cost, std::int64_t n) {
  FM_CHECK(n >= 0 && std::int64_t(cost.size()) == n * n, ShapeError, "optimal_assignment: cost has ",
           cost.size(), " entries, expected n·n = ", n * n);
  for (double c : cost) FM_CHECK(std::isfinite(c), ValueError, "optimal_assignment: the cost matrix has a non-finite entry");
  constexpr std::int64_t kFree = -1;
  std::vector<double> u(n, 0.0), v(n, std::numeric_limits<double>::infinity());
  std::vector<std::int64_t> row_of(n, kFree), column_of(n, kFree);
  auto c = [&](std::int64_t i, std::int64_t j) { return cost[std::size_t(i * n + j)]; };

  // 1. Column reduction.
  std::vector<std::int64_t> cheapest_row(n, 0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      if (c(i, j) < v[j]) v[j] = c(i, j), cheapest_row[j] = i;
  for (std::int64_t j = 0; j < n; ++j)
    if (column_of[cheapest_row[j]] == kFree) column_of[cheapest_row[j]] = j, row_of[j] = cheapest_row[j];

  // 2. One shortest augmenting path per free row.
  std::vector<double> distance(n);
  std::vector<std::int64_t> previous_row(n), unsettled(n), settled;
  settled.reserve(n);
  for (std::int64_t r = 0; r < n; ++r) {
    if (column_of[r] != kFree) continue;
    // `best` is the position in `unsettled` of the closest unsettled column (the first one on ties);
    // each pass that updates the distances also finds the next one, so a tree step reads the
    // unsettled columns once.
    std::int64_t best = 0;
    for (std::int64_t j = 0; j < n; ++j) {
      distance[j] = c(r, j) - u[r] - v[j], previous_row[j] = r, unsettled[j] = j;
      if (distance[j] < distance[best]) best = j;
    }
    std::int64_t unsettled_count = n;
    settled.clear();
    std::int64_t free_column = kFree;
    double reached = 0;
    while (free_column == kFree) {
      // Settle the closest unsettled column.
      const std::int64_t j = unsettled[best];
      unsettled[best] = unsettled[--unsettled_count];
      reached = distance[j];
      if (row_of[j] == kFree) {
        free_column = j;
        break;
      }
      settled.push_back(j);
      // Its row's edges may bring the other columns closer.
      const std::int64_t i = row_of[j];
      const double base = reached - u[i];
      const double* cost_row = cost.data() + std::size_t(i * n);
      best = 0;
      double best_distance = std::numeric_limits<double>::infinity();
      for (std::int64_t p = 0; p < unsettled_count; ++p) {
        const std::int64_t k = unsettled[p];
        const double through_i = base + cost_row[k] - v[k];
        if (through_i < distance[k]) distance[k] = through_i, previous_row[k] = i;
        if (distance[k] < best_distance) best_distance = distance[k], best = p;
      }
    }
    // Potentials: keep reduced costs ≥ 0 and 0 along the new assignment.
    u[r] += reached;
    for (std::int64_t j : settled) {
      const double shift = reached - distance[j];
      v[j] -= shift;
      u[row_of[j]] += shift;
    }
    // Flip the path: free_column ← previous_row[free_column] ← … ← r.
    for (std::int64_t j = free_column;;) {
      const std::int64_t i = previous_row[j], next = column_of[i];
      row_of[j] = i;
      column_of[i] = j;
      if (i == r) break;
      j = next;
    }
  }
  return column_of;
}

namespace {

// The maximum of each row of x [n, m], as [n, 1]: a tree of pairwise maxima, max(a, b) = b + relu(a − b),
// in core ops so it runs on x's device. (b + (a − b) may differ from a in the last bit; the log-sum-exp
// below needs a value near the maximum, not the exact one.)
Tensor row_max(Tensor x) {
  while (x.size(1) > 1) {
    const std::int64_t half = x.size(1) / 2;
    Tensor a = x.narrow(1, 0, half), b = x.narrow(1, half, half);
    Tensor larger = b + relu(a - b);
    x = x.size(1) % 2 ? concat({larger, x.narrow(1, 2 * half, 1)}, 1) : larger;
  }
  return x;
}

// log Σ_j exp(x_ij) per row, as [n, 1], stable for any values: the row's maximum is taken out first,
// so the largest term is e^0 and nothing overflows or underflows to a zero sum.
Tensor row_logsumexp(const Tensor& x) {
  Tensor m = row_max(x);
  return m + log(sum(exp(x - m), {1}, true));
}

}  // namespace

SinkhornResult sinkhorn_plan(const Tensor& cost, double epsilon, int max_iterations, double tolerance) {
  FM_CHECK(cost.defined() && cost.dim() == 2 && cost.size(0) > 0 && cost.size(1) > 0, ShapeError,
           "sinkhorn_plan: cost must be a non-empty [n, m] matrix");
  FM_CHECK(epsilon > 0 && std::isfinite(epsilon), ValueError, "sinkhorn_plan: epsilon must be positive, got ", epsilon);
  FM_CHECK(max_iterations >= 1, ValueError, "sinkhorn_plan: max_iterations must be >= 1");
  const std::int64_t n = cost.size(0), m = cost.size(1);
  // Log-domain Sinkhorn with scaled potentials f [n, 1], g [1, m]: π_ij = exp(f_i + g_j − C_ij/ε).
  // Each half-step sets the rows (columns) to sum to 1/n (1/m) exactly:
  //   f_i = −log n − logsumexp_j(g_j − C_ij/ε),   g_j = −log m − logsumexp_i(f_i − C_ij/ε),
  // with the maximum taken out of every log-sum-exp, so a far outlier or a small ε cannot turn a
  // row's sum into 0 (and its potential into infinity).
  Tensor scaled_cost = cost * (1.0 / epsilon);
  Tensor f = Tensor::zeros({n, 1}, cost.dtype(), cost.device());
  Tensor g = Tensor::zeros({1, m}, cost.dtype(), cost.device());
  const double log_n = std::log(double(n)), log_m = std::log(double(m));
  SinkhornResult result;
  for (int iteration = 1; iteration <= max_iterations; ++iteration) {
    f = row_logsumexp(g - scaled_cost) * -1.0 - log_n;
    g = (row_logsumexp((f - scaled_cost).transpose(0, 1)) * -1.0 - log_m).transpose(0, 1);
    result.iterations = iteration;
    // After the column update the columns are exact; the rows show how far from converged we are.
    // Read back every 10 iterations (a host sync on the GPU) and at the end.
    if (iteration % 10 == 0 || iteration == max_iterations) {
      Tensor rows = sum(exp(f + g - scaled_cost), {1}) * double(n);
      std::vector<double> values = rows.to_vector();
      double error = 0;
      for (double r : values) error = std::max(error, std::isfinite(r) ? std::fabs(r - 1.0) : std::numeric_limits<double>::infinity());
      result.marginal_error = error;
      FM_CHECK(std::isfinite(error), NumericError, "sinkhorn_plan: the plan is not finite at epsilon ", epsilon,
               " (is the cost matrix finite?)");
      if (error <= tolerance) break;
    }
  }
  result.plan = exp(f + g - scaled_cost);
  return result;
}

CouplingKind parse_coupling(const std::string& name) {
  if (name == "independent") return CouplingKind::Independent;
  if (name == "minibatch_ot") return CouplingKind::MinibatchOT;
  if (name == "sinkhorn") return CouplingKind::Sinkhorn;
  throw ConfigError(cat("train.coupling: unknown coupling \"", name, "\", expected one of independent, minibatch_ot, sinkhorn"));
}

std::vector<std::string> coupling_names() { return {"independent", "minibatch_ot", "sinkhorn"}; }

Tensor couple(const Tensor& x0, const Tensor& x1, const CouplingOptions& options, const StepNoise& noise) {
  if (options.kind == CouplingKind::Independent) return x1;
  return take_partners(x1, coupling_partners(x0, x1, options, noise));
}

Tensor take_partners(const Tensor& x1, const std::vector<std::int32_t>& partners) {
  if (partners.empty()) return x1;
  NoGradGuard no_grad;
  return embedding(x1.reshape({x1.size(0), -1}), partners).reshape(x1.shape());
}

std::vector<std::int32_t> take_partners(const std::vector<std::int32_t>& values,
                                        const std::vector<std::int32_t>& partners) {
  if (partners.empty()) return values;
  std::vector<std::int32_t> taken(partners.size());
  for (std::size_t i = 0; i < partners.size(); ++i) {
    FM_CHECK(partners[i] >= 0 && std::size_t(partners[i]) < values.size(), ValueError, "take_partners: partner ",
             partners[i], " of row ", i, " outside the ", values.size(), " values");
    taken[i] = values[std::size_t(partners[i])];
  }
  return taken;
}

std::vector<std::int32_t> coupling_partners(const Tensor& x0, const Tensor& x1, const CouplingOptions& options,
                                            const StepNoise& noise) {
  if (options.kind == CouplingKind::Independent) return {};
  FM_CHECK(x0.defined() && x1.defined() && x0.shape() == x1.shape() && x0.dim() >= 1, ShapeError,
           "coupling: x0 ", x0.defined() ? shape_str(x0.shape()) : "undefined", " and x1 ",
           x1.defined() ? shape_str(x1.shape()) : "undefined", " must have the same shape [N, ...]");
  NoGradGuard no_grad;
  const std::int64_t n = x0.size(0);
  Tensor cost = squared_distances(x0, x1);
  std::vector<std::int32_t> partner(static_cast<std::size_t>(n));
  if (options.kind == CouplingKind::MinibatchOT) {
    // Solved on the host in double: bring the costs over first (CUDA has no float64 tensors).
    std::vector<std::int64_t> sigma = optimal_assignment(cost.to(Device::CPU).to(DType::Float64).to_vector(), n);
    for (std::int64_t i = 0; i < n; ++i) partner[std::size_t(i)] = std::int32_t(sigma[std::size_t(i)]);
  } else {
    // ε is relative to the mean cost, so one setting suits any data scale.
    const double mean_cost = mean(cost).item();
    SinkhornResult plan = sinkhorn_plan(cost * (1.0 / std::max(mean_cost, 1e-30)), options.sinkhorn_epsilon,
                                        options.sinkhorn_iterations, 1e-3);
    std::vector<double> pi = plan.plan.to_vector();
    for (std::int64_t i = 0; i < n; ++i) {
      const double* row = pi.data() + i * n;
      double total = 0;
      for (std::int64_t j = 0; j < n; ++j) total += row[j];
      PhiloxSampleDraws draws(noise.key(NoiseStream::Coupling), noise.step, noise.first_sample + i);
      double target = draws.uniform() * total, running = 0;
      std::int64_t chosen = n - 1;
      for (std::int64_t j = 0; j < n; ++j) {
        running += row[j];
        if (running > target) {
          chosen = j;
          break;
        }
      }
      partner[std::size_t(i)] = std::int32_t(chosen);
    }
  }
  return partner;
}

}  // namespace fm::flow
