// core/ops_optim.h — in-place operations for optimisers over flat buffers (not recorded by autograd):
// the fused step (clip + SGD/Adam/AdamW + EMA in one pass), the per-parameter sums of squares of a
// flat gradient (CPU) and its global squared norm in two launches (CUDA), adding a gradient into the buffer it accumulates in; and the training loop's running
// loss sums kept on the device (LossAccumulator).
//
// Layer: core/ (the nn/ optimisers call these; the kernels are kernels/optimizer.h). Hyperparameters
// arrive in double, as the Tensor ops of nn/optim.cpp receive them, and are converted to the element
// type here exactly as an affine op converts its scale and shift, so the fused step computes the
// same bits as those ops (the formulas are listed in kernels/optimizer.h).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/optimizer.h"

namespace fm {

// A training step's step-dependent scalars as the device reads them in a recorded step (see
// kernels/optimizer.h and StepScalarsTable below).
using StepScalars = kernels::StepScalars;

enum class FusedUpdateRule { None, SGD, Adam };

struct FusedStepHyperparameters {
  bool clip = false;  // g ← clip_scale·g (written back to the gradient buffer)
  double clip_scale = 1.0;
  // Instead of clip/clip_scale: clip as clip_grad_norm would with max_norm clip_max_norm, decided on
  // the device from buffers.clip_sum_of_squares (CUDA only), so the host never reads the norm.
  bool clip_on_device = false;
  double clip_max_norm = 0.0;
  FusedUpdateRule rule = FusedUpdateRule::None;
  bool weight_decay = false;  // Adam L2 or SGD decay with weight_decay_value
  double weight_decay_value = 0.0;
  bool decoupled = false;  // AdamW: θ ← decoupled_factor·θ
  double decoupled_factor = 1.0;
  double one_minus_beta1 = 0, beta2 = 0, one_minus_beta2 = 0, inverse_sqrt_bias2 = 0, eps = 0, neg_step_size = 0;
  bool has_momentum = false, first_momentum_step = false, nesterov = false;
  double momentum = 0, one_minus_dampening = 0, lr = 0;
  bool ema = false;  // e ← ema_decay·e + ema_one_minus_decay·θ
  double ema_decay = 0, ema_one_minus_decay = 0;
};

// Flat, contiguous, one-dimensional buffers of one dtype and device, element i of each belonging
// to the same parameter element. A buffer the step does not use may be undefined.
struct FusedStepBuffers {
  Tensor param, grad, exp_avg, exp_avg_sq, momentum, shadow;
  Tensor clip_sum_of_squares;  // one element, the gradients' squared L2 norm (hyper.clip_on_device)
  // CUDA only: a device row whose scalars replace hyper's step-dependent ones (lr, decoupled_factor,
  // neg_step_size, inverse_sqrt_bias2, ema_decay, ema_one_minus_decay), for a recorded step.
  const StepScalars* per_step = nullptr;
};

// Runs the fused step on elements [begin, begin + count) of the buffers. CPU (float, double) and
// CUDA (float).
void fused_step(const FusedStepBuffers& buffers, std::int64_t begin, std::int64_t count,
                const FusedStepHyperparameters& hyper);

// The squared L2 norm of a set of segments of a flat CPU gradient, computed as clip_grad_norm's
// Tensor ops compute it: per segment sum(square(g)) (float squares summed in double, rounded to the
// element type), then those sums added in segment order in the element type. `scratch` holds one
// double per segment (kept by the caller so a step allocates nothing). Returns the total as double.
double segment_sum_of_squares(const Tensor& flat_grad, const std::vector<std::int64_t>& offsets,
                              const std::vector<std::int64_t>& counts, std::vector<double>& scratch);

// The squared L2 norm of the ranges [offsets[k], offsets[k] + counts[k]) of a flat CUDA float32
// gradient, left on the device as a one-element float32 tensor (no host wait): one launch per range
// and one more (kernels/optimizer.h, a deterministic two-stage reduction with the squares summed in
// double). Adjacent ranges should be merged by the caller: one range, two launches. The result is
// the exact squared norm rounded to float (within 2⁻²⁴ relative plus the double sums' n·2⁻⁵³), not
// the bits of the per-parameter float sums of clip_grad_norm's Tensor ops.
Tensor device_sum_of_squares(const Tensor& flat_grad, const std::vector<std::int64_t>& offsets,
                             const std::vector<std::int64_t>& counts);

// dst ← dst + src, elementwise (same shape, dtype and device; dst contiguous).
void add_into(const Tensor& dst, const Tensor& src);

// Several values read back to the host with one copy (a log step's loss sums, gradient norm and
// per-sample losses and times: one wait instead of one per value). read() queues a device-to-device
// copy of each device region into one staging buffer (no wait; the buffer is kept and grows only
// when a read needs more) and copies that buffer to the host once; host regions are copied directly.
// The values are the bits of the regions, so whatever is computed from them is what reading each
// region on its own would give.
class HostReadback {
 public:
  HostReadback() = default;
  ~HostReadback();
  HostReadback(const HostReadback&) = delete;
  HostReadback& operator=(const HostReadback&) = delete;

  void clear();  // forgets the regions (keeps the staging buffer)
  // A region: `count` doubles at `src` (device memory when on_device) or a tensor's elements (kept
  // alive until the next clear()). Returns the region's index.
  int add_doubles(const double* src, std::int64_t count, bool on_device);
  int add(const Tensor& tensor);
  // Copies every region to the host: at most one copy back (one wait) whatever the number of regions.
  void read();
  // Region k's elements as doubles (each element converted exactly), after read().
  std::vector<double> values(int k) const;
  double value(int k, std::int64_t i = 0) const;

 private:
  struct Region {
    const void* src;
    std::size_t bytes, offset;  // offset: in the staging buffer and in host_
    DType dtype;
    bool on_device;
    Tensor keep;  // the tensor the region reads, if any
  };
  std::vector<Region> regions_;
  std::vector<unsigned char> host_;
  void* staging_ = nullptr;  // device
  std::size_t staging_bytes_ = 0;
};

// Running sums of a training loss in float64, kept where the loss is computed, so that a step adds
// its loss without the host reading it (on CUDA: one one-thread launch, no wait). The host reads them
// when it needs a number (a log line), one copy of four doubles. CUDA has no float64 tensors, so the
// sums are raw device memory. The sums are those of a host loop adding each loss's item() in order:
// the same bits (kernels/optimizer.h, accumulate_loss_slots).
class LossAccumulator {
 public:
  struct Sums {
    double last = 0;            // the loss last added
    double since_restart = 0;   // the sum of the losses added since restart_sum() (or clear())
    double epoch = 0;           // the sum since the last add that began an epoch, that loss included
    double finished_epoch = 0;  // `epoch` as it was just before that add: the finished epoch's sum
  };
  LossAccumulator() = default;
  ~LossAccumulator();
  LossAccumulator(const LossAccumulator&) = delete;
  LossAccumulator& operator=(const LossAccumulator&) = delete;

  // Adds a one-element loss (CPU float/double, CUDA float). Once a CUDA loss was added the sums
  // live on the device, and CPU losses are refused. per_step (CUDA, a recorded step): begins_epoch
  // is read from that device row instead; the sums must already live on the device (a graph
  // cannot record their first upload).
  void add(const Tensor& loss, bool begins_epoch, const StepScalars* per_step = nullptr);
  Sums read() const;      // all zero before the first add; on CUDA, a copy to the host (a sync)
  // The same numbers through a HostReadback shared with other values: queue(), then after the
  // readback's read(), sums_in() with the index queue() returned.
  int queue(HostReadback& readback) const;
  static Sums sums_in(const HostReadback& readback, int region);
  void restart_sum();     // since_restart ← 0, without waiting
  void clear();           // every sum ← 0, without waiting

 private:
  double host_slots_[4] = {0, 0, 0, 0};  // the sums of CPU losses
  double* device_slots_ = nullptr;       // the sums of CUDA losses (cuda_malloc'd on the first add)
};

// The step-dependent scalars of a recorded training step on the device (CUDA). A CUDA graph replays
// its launches with the arguments they were recorded with, so what changes from step to step (the
// learning rate, Adam's bias corrections, the EMA's warm-up decay, whether the batch began an epoch)
// cannot be a launch argument. Instead the host plans a window of steps ahead — it knows every one
// of these numbers in advance — and uploads their rows in one copy; the graph's first launch,
// select_next(), copies the next row into one fixed row that the recorded kernels read (current()).
// So a step costs no copy to the device: one upload serves up to capacity() steps (the trainer plans
// again, one more upload, when a step's row differs from the plan, e.g. at an epoch's first step).
class StepScalarsTable {
 public:
  explicit StepScalarsTable(std::int64_t capacity);
  ~StepScalarsTable();
  StepScalarsTable(const StepScalarsTable&) = delete;
  StepScalarsTable& operator=(const StepScalarsTable&) = delete;

  std::int64_t capacity() const { return capacity_; }
  // The table's rows ← rows (at most capacity()), and the next select_next() takes row 0: one copy to
  // the device, queued behind the work before it, so replays already queued read the old rows.
  void upload(const std::vector<StepScalars>& rows);
  // One launch (recorded into the graph): current ← the next row of the table.
  void select_next();
  const StepScalars* current() const;  // device memory
  // Two of its fields, for the kernels that read one word (Philox draws, the batch's gather).
  const std::uint32_t* current_philox_step() const;
  const std::int64_t* current_batch_start() const;

 private:
  std::int64_t capacity_;
  unsigned char* memory_ = nullptr;     // device: the current row, the index, the table
  std::vector<unsigned char> staging_;  // host: the bytes of an upload (kept: no allocation per upload)
};

}  // namespace fm
