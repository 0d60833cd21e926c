// nn/gradient_sync.cpp — bucketed, overlapped gradient all-reduce (see gradient_sync.h).
#include "nn/gradient_sync.h"

#include <chrono>

#include "core/error.h"

namespace fm::nn {

std::vector<GradientBucket> make_gradient_buckets(const FlatParameters& layout, std::int64_t bucket_bytes) {
  FM_CHECK(bucket_bytes > 0, ValueError, "gradient buckets: bucket_bytes must be positive, got ", bucket_bytes);
  std::vector<GradientBucket> buckets;
  const std::int64_t element_bytes = std::int64_t(dtype_size(layout.grads().dtype()));
  for (std::size_t k = layout.size(); k-- > 0;) {
    const bool full = !buckets.empty() && (buckets.back().end - buckets.back().begin) * element_bytes >= bucket_bytes;
    if (buckets.empty() || full) {
      GradientBucket fresh;
      fresh.begin = fresh.end = layout.offset(k) + layout.numel(k);
      buckets.push_back(fresh);
    }
    GradientBucket& bucket = buckets.back();
    // Parameters are contiguous in the flat buffer, so walking backwards extends the bucket down.
    FM_CHECK(layout.offset(k) + layout.numel(k) == bucket.begin, ValueError, "gradient buckets: parameter ",
             layout.name(k), " ends at ", layout.offset(k) + layout.numel(k), "; expected it to end where the next "
             "parameter begins (", bucket.begin, ")");
    bucket.begin = layout.offset(k);
    bucket.parameters.push_back(k);
  }
  return buckets;
}

GradientSync::GradientSync(const FlatParameters& layout, std::int64_t bucket_bytes)
    : layout_(layout), buckets_(make_gradient_buckets(layout, bucket_bytes)) {
  FM_CHECK(layout.grads().dtype() == DType::Float32, DTypeError,
           "data-parallel training: gradients are all-reduced in float32, the model is ",
           dtype_name(layout.grads().dtype()));
  for (std::size_t b = 0; b < buckets_.size(); ++b)
    for (std::size_t k : buckets_[b].parameters) bucket_of_[layout.parameter(k).impl()] = b;
  waiting_.assign(buckets_.size(), 0);
  on_host_ = layout.grads().device() == Device::CPU;
  pending_.resize(buckets_.size());
}

BackwardObserverGuard GradientSync::watch_backward() {
  FM_CHECK(next_to_start_ == 0 || next_to_start_ == buckets_.size(), ValueError,
           "GradientSync: a backward pass began with ", next_to_start_, " of ", buckets_.size(),
           " buckets of the previous one started; expected finish() after every watched backward()");
  next_to_start_ = 0;
  for (std::size_t b = 0; b < buckets_.size(); ++b) waiting_[b] = std::int64_t(buckets_[b].parameters.size());
  return BackwardObserverGuard([this](const std::vector<TensorImpl*>& leaves) { leaves_finished(leaves); });
}

void GradientSync::leaves_finished(const std::vector<TensorImpl*>& leaves) {
  bool any = false;
  for (const TensorImpl* leaf : leaves) {
    auto found = bucket_of_.find(leaf);
    if (found == bucket_of_.end()) continue;  // not a parameter of this model (an input)
    --waiting_[found->second];
    any = true;
  }
  if (any) {
    const std::size_t before = next_to_start_;
    start_ready_buckets();
    started_in_backward_ += std::int64_t(next_to_start_ - before);
  }
  if (on_host_) dist::make_progress();  // MPI moves data only inside MPI calls (NCCL needs no help)
}

void GradientSync::start_ready_buckets() {
  while (next_to_start_ < buckets_.size() && waiting_[next_to_start_] == 0) start_bucket(next_to_start_++);
}

void GradientSync::start_bucket(std::size_t b) {
  // Every parameter must have its gradient in the flat buffer: one without would leave stale values
  // in its slice, and the optimiser would step it on one rank but not another.
  for (std::size_t k : buckets_[b].parameters) {
    const Tensor& parameter = layout_.parameter(k);
    FM_CHECK(parameter.grad().defined() && parameter.grad().raw_data() == layout_.gradient_home(k).raw_data(),
             ValueError, "data-parallel training: parameter '", layout_.name(k),
             "' got no gradient in this step (every parameter must take part in every step)");
  }
  const Tensor slice = layout_.grads().narrow(0, buckets_[b].begin, buckets_[b].end - buckets_[b].begin);
  pending_[b] = dist::start_allreduce_sum(slice);
}

void GradientSync::finish() {
  const std::size_t before = next_to_start_;
  while (next_to_start_ < buckets_.size()) start_bucket(next_to_start_++);
  started_after_backward_ += std::int64_t(next_to_start_ - before);
  const auto begin = std::chrono::steady_clock::now();
  for (dist::PendingAllreduce& p : pending_) p.wait();
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
}

double GradientSync::take_wait_seconds() {
  const double seconds = wait_seconds_;
  wait_seconds_ = 0;
  return seconds;
}

}  // namespace fm::nn
