// flow/loss.cpp — conditional flow-matching loss and loss-per-t-bin accumulation (see loss.h).
#include "flow/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "core/ops.h"

namespace fm::flow {

namespace {
void check_batch(const Tensor& x1) {
  FM_CHECK(x1.defined() && x1.dim() >= 1 && x1.size(0) > 0, ShapeError,
           "flow matching loss: data batch has shape ",
           x1.defined() ? shape_str(x1.shape()) : "undefined", ", expected [N, ...] with N > 0");
}

// The loss with times t (x1's device) whose values the path reads from t_for_path: t itself, or the
// same values on the host when t was made there, so the path's per-sample coefficients cost no
// copy back from the device (a host sync per step).
FlowMatchingLoss loss_with_times(const ModelFn& model, const Tensor& x1, const AffineProbabilityPath& path, Tensor t,
                                 Tensor x0, const Tensor& t_for_path) {
  FM_CHECK(static_cast<bool>(model), ValueError, "flow matching loss: the model is empty");
  check_batch(x1);
  FlowMatchingLoss out;
  out.t = std::move(t);
  out.x0 = std::move(x0);
  PathSample s = path.sample(out.x0, x1, t_for_path.defined() ? t_for_path : out.t);
  Tensor prediction = model(s.x_t, out.t);
  FM_CHECK(prediction.defined() && prediction.shape() == x1.shape(), ShapeError,
           "flow matching loss: the model returned ",
           prediction.defined() ? shape_str(prediction.shape()) : "nothing", " for x_t of shape ",
           shape_str(x1.shape()), "; expected the same shape");
  Tensor squared_error = square(prediction - s.target_velocity);
  // Mean over each sample's elements, then over the batch: equal to mean(squared_error) because
  // every sample has the same number of elements, and gives the per-sample values for free.
  Tensor per_sample = squared_error;
  if (x1.dim() > 1) {
    std::vector<int> feature_dims(std::size_t(x1.dim() - 1));
    std::iota(feature_dims.begin(), feature_dims.end(), 1);
    per_sample = mean(squared_error, feature_dims);
  }
  out.loss = mean(per_sample);
  out.per_sample_loss = per_sample.detach();
  return out;
}
}  // namespace

FlowMatchingLoss conditional_flow_matching_loss(const ModelFn& model, const Tensor& x1,
                                                const AffineProbabilityPath& path,
                                                const TimeSampler& time_sampler, const StepNoise& noise) {
  check_batch(x1);
  Tensor x0 = philox_normal(x1.shape(), noise.key(NoiseStream::X0), noise.step, noise.first_sample, x1.dtype(),
                            x1.device());
  return conditional_flow_matching_loss(model, x1, path, time_sampler, noise, std::move(x0));
}

FlowMatchingLoss conditional_flow_matching_loss(const ModelFn& model, const Tensor& x1,
                                                const AffineProbabilityPath& path,
                                                const TimeSampler& time_sampler, const StepNoise& noise, Tensor x0) {
  check_batch(x1);
  FM_CHECK(x0.defined() && x0.shape() == x1.shape() && x0.dtype() == x1.dtype() && x0.device() == x1.device(),
           ShapeError, "flow matching loss: x0 ", x0.defined() ? x0.describe() : "undefined",
           " must match the data batch ", x1.describe());
  const std::int64_t n = x1.size(0);
  // Where the times are made: on x1's device when the sampler has a device law and the path takes
  // its coefficients from a device tensor (every scheduler with a law(): kernels/path_law.h): no
  // copy, no read back. Otherwise on the host (in x1's dtype: the values the device will hold),
  // copied over, the path reading the host copy. Both give the same bits (kernels/time_law.h).
  if (time_sampler.law() && path.samples_from_device_times())
    return loss_with_times(model, x1, path, time_sampler.sample(n, noise, x1.dtype(), x1.device()), std::move(x0),
                           Tensor());
  Tensor t_host = time_sampler.sample(n, noise, x1.dtype(), Device::CPU);
  return loss_with_times(model, x1, path, t_host.to(x1.device()), std::move(x0), t_host);
}

FlowMatchingLoss conditional_flow_matching_loss(const ModelFn& model, const Tensor& x1,
                                                const AffineProbabilityPath& path,
                                                const TimeSampler& time_sampler, Generator& gen) {
  check_batch(x1);
  const std::int64_t n = x1.size(0);
  // Order of draws fixed (t, then x0) so a seed reproduces a run exactly.
  Tensor t = time_sampler.sample(n, gen, x1.dtype(), x1.device());
  Tensor x0 = randn(x1.shape(), gen, x1.dtype(), x1.device());
  return conditional_flow_matching_loss(model, x1, path, std::move(t), std::move(x0));
}

FlowMatchingLoss conditional_flow_matching_loss(const ModelFn& model, const Tensor& x1,
                                                const AffineProbabilityPath& path, Tensor t, Tensor x0) {
  return loss_with_times(model, x1, path, std::move(t), std::move(x0), Tensor());
}

LossByTimeBins::LossByTimeBins(int bins) {
  FM_CHECK(bins >= 1, ValueError, "LossByTimeBins: bin count ", bins, " must be >= 1");
  sums_.assign(std::size_t(bins), 0.0);
  counts_.assign(std::size_t(bins), 0);
}

int LossByTimeBins::bin_of(double t, int bins) {
  // floor(t·K) clamped to [0, K − 1]: t = 1 (and rounding just above) lands in the last bin.
  const double scaled = std::floor(t * bins);
  return int(std::min(std::max(scaled, 0.0), double(bins - 1)));
}

void LossByTimeBins::add(const std::vector<double>& losses, const std::vector<double>& t) {
  FM_CHECK(losses.size() == t.size(), ShapeError, "LossByTimeBins: ", losses.size(),
           " losses but ", t.size(), " times; expected one time per loss");
  for (std::size_t i = 0; i < t.size(); ++i) {
    const int k = bin_of(t[i], bins());
    sums_[std::size_t(k)] += losses[i];
    ++counts_[std::size_t(k)];
  }
}

void LossByTimeBins::add(const Tensor& per_sample_loss, const Tensor& t) {
  FM_CHECK(per_sample_loss.dim() == 1 && t.dim() == 1, ShapeError,
           "LossByTimeBins: per-sample loss ", shape_str(per_sample_loss.shape()), " and t ",
           shape_str(t.shape()), " must both be [N]");
  add(per_sample_loss.to_vector(), t.to_vector());
}

void LossByTimeBins::reset() {
  std::fill(sums_.begin(), sums_.end(), 0.0);
  std::fill(counts_.begin(), counts_.end(), 0);
}

std::vector<double> LossByTimeBins::means() const {
  std::vector<double> m(sums_.size());
  for (std::size_t k = 0; k < m.size(); ++k)
    m[k] = counts_[k] ? sums_[k] / double(counts_[k]) : std::numeric_limits<double>::quiet_NaN();
  return m;
}

std::vector<double> loss_by_time_bins(const Tensor& per_sample_loss, const Tensor& t, int bins) {
  LossByTimeBins binned(bins);
  binned.add(per_sample_loss, t);
  return binned.means();
}

}  // namespace fm::flow
