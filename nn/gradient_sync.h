// nn/gradient_sync.h — summing a model's gradients over the ranks of a data-parallel job, bucket by
// bucket, while the backward pass is still running.
//
// The gradients of a flattened model (nn/flat_parameters.h) live in one flat buffer. It is cut into
// buckets of whole parameters, about `bucket_bytes` each, taken from the end of the buffer: backward
// reaches the last layers first, so the first buckets are the first to be complete. During
// backward() a BackwardObserver (core/autograd.h) counts each parameter whose gradient is final;
// when every parameter of a bucket is, its all-reduce starts (core/distributed.h: MPI on the CPU,
// NCCL on CUDA) and the pass goes on computing the next bucket's gradients meanwhile. finish() waits
// for them all. Buckets start strictly in bucket order, so every rank issues the same collectives in
// the same order (MPI's rule), whatever order its leaves finish in — the scheme of PyTorch DDP.
//
// The sum, not the mean: the trainer scales each rank's loss by its share of the global batch
// (flow/trainer.h), so the summed gradient is the gradient of the global batch's mean loss.
#pragma once
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/autograd.h"
#include "core/distributed.h"
#include "nn/flat_parameters.h"

namespace fm::nn {

struct GradientBucket {
  std::int64_t begin = 0, end = 0;  // elements [begin, end) of the flat gradient buffer
  std::vector<std::size_t> parameters;  // the FlatParameters indices inside it
};

// The buckets of a layout: whole parameters from the last to the first, a new bucket once the
// current one holds at least bucket_bytes (so a parameter larger than that is a bucket of its own).
std::vector<GradientBucket> make_gradient_buckets(const FlatParameters& layout, std::int64_t bucket_bytes);

class GradientSync {
 public:
  static constexpr std::int64_t kDefaultBucketBytes = std::int64_t(1) << 20;  // 1 MiB: a few per U-Net
  GradientSync(const FlatParameters& layout, std::int64_t bucket_bytes = kDefaultBucketBytes);

  // Watches one backward pass (keep it alive across backward()): starts each bucket's reduction when
  // its last parameter is final.
  BackwardObserverGuard watch_backward();
  // Starts the buckets not started yet and waits for every reduction; afterwards the flat gradient
  // buffer holds the sum over all ranks. Every parameter must have a gradient on every rank. After a
  // backward() that threw, finish() was never reached: build a new GradientSync (a data-parallel
  // job ends anyway, tools/ranks.h).
  void finish();

  const std::vector<GradientBucket>& buckets() const { return buckets_; }
  const FlatParameters& layout() const { return layout_; }
  // Host seconds spent waiting in finish() since the previous take_wait_seconds(): the part of the
  // communication that the backward pass did not hide.
  double take_wait_seconds();
  // Buckets started during backward() (overlapped) and after it (in finish()) since construction.
  std::int64_t buckets_started_in_backward() const { return started_in_backward_; }
  std::int64_t buckets_started_after_backward() const { return started_after_backward_; }

 private:
  void leaves_finished(const std::vector<TensorImpl*>& leaves);
  void start_ready_buckets();
  void start_bucket(std::size_t b);

  const FlatParameters& layout_;
  std::vector<GradientBucket> buckets_;
  std::unordered_map<const TensorImpl*, std::size_t> bucket_of_;  // parameter → its bucket
  std::vector<std::int64_t> waiting_;  // per bucket: parameters not yet final in this pass
  std::vector<dist::PendingAllreduce> pending_;
  std::size_t next_to_start_ = 0;
  bool on_host_ = true;  // CPU gradients (MPI): poke MPI's progress engine between backward nodes
  double wait_seconds_ = 0;
  std::int64_t started_in_backward_ = 0, started_after_backward_ = 0;
};

}  // namespace fm::nn
