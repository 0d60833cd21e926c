// flow/loss.h — the conditional flow-matching loss and the per-time-bin bookkeeping the trainer logs.
//
// Sits in flow/ on top of core/ (ops, random), flow/path.h and flow/time_sampler.h; the model is
// any callable (an nn/ network wrapped in a lambda).
//
// L_CFM(θ) = E_{t, x0 ~ N(0, I), x1 ~ data} ‖u_θ(x_t, t) − (α̇_t·x1 + σ̇_t·x0)‖²
// (Lipman et al. 2023, eq. 9 with a Gaussian path; for CondOT the target is x1 − x0, seed 000),
// estimated on a batch as the mean over samples and elements (PyTorch's mse_loss convention).
#pragma once
#include <cstdint>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "flow/path.h"
#include "flow/step_noise.h"
#include "flow/time_sampler.h"
#include "flow/model_fn.h"

namespace fm::flow {

struct FlowMatchingLoss {
  Tensor loss;                  // scalar [], differentiable: mean over the batch of per_sample_loss
  Tensor per_sample_loss;       // [N], detached: mean over each sample's elements of (u_θ − u)²
  Tensor t;                     // [N], the times drawn (x1's dtype and device)
  Tensor x0;                    // the noise drawn, x1's shape (detached; for inspection and tests)
};

// Draws t ~ time_sampler (N values) and x0 ~ N(0, I) (x1's shape), builds (x_t, target) =
// path.sample(x0, x1, t), evaluates model(x_t, t) and returns the loss. Everything is created in x1's
// dtype and on x1's device; x1 is [N, ...].
// The training form: sample b's t and x0 come from the Philox streams Time and X0 at (seed, step,
// noise.first_sample + b) (flow/step_noise.h); x0 is made directly on x1's device, t on the host and
// copied over, and the path takes its per-sample coefficients from the host copy, so nothing is read
// back from the device.
FlowMatchingLoss conditional_flow_matching_loss(const ModelFn& model, const Tensor& x1,
                                                const AffineProbabilityPath& path,
                                                const TimeSampler& time_sampler, const StepNoise& noise);
// The same with x0 given (x1's shape, dtype and device: a coupled or paired source batch); t from the
// Time stream as above.
FlowMatchingLoss conditional_flow_matching_loss(const ModelFn& model, const Tensor& x1,
                                                const AffineProbabilityPath& path,
                                                const TimeSampler& time_sampler, const StepNoise& noise, Tensor x0);
// The same with t and then x0 drawn in order from `gen` (on the host).
FlowMatchingLoss conditional_flow_matching_loss(const ModelFn& model, const Tensor& x1,
                                                const AffineProbabilityPath& path,
                                                const TimeSampler& time_sampler, Generator& gen);
// The same with given t [N] and x0 (x1's shape).
FlowMatchingLoss conditional_flow_matching_loss(const ModelFn& model, const Tensor& x1,
                                                const AffineProbabilityPath& path, Tensor t, Tensor x0);

// Per-sample losses grouped into K equal bins of t ∈ [0, 1]: bin k holds t ∈ [k/K, (k+1)/K)
// (t = 1 goes to the last bin). Accumulates across batches until reset(); a bin with no samples
// reports NaN as its mean.
class LossByTimeBins {
 public:
  explicit LossByTimeBins(int bins);
  void add(const Tensor& per_sample_loss, const Tensor& t);
  void add(const std::vector<double>& per_sample_loss, const std::vector<double>& t);
  void reset();
  int bins() const { return int(sums_.size()); }
  std::vector<double> means() const;
  const std::vector<std::int64_t>& counts() const { return counts_; }
  double bin_start(int k) const { return double(k) / bins(); }
  double bin_end(int k) const { return double(k + 1) / bins(); }
  static int bin_of(double t, int bins);

 private:
  std::vector<double> sums_;
  std::vector<std::int64_t> counts_;
};

// One-shot form: the mean per-sample loss in each of `bins` equal t-bins (NaN where empty).
std::vector<double> loss_by_time_bins(const Tensor& per_sample_loss, const Tensor& t, int bins);

}  // namespace fm::flow
