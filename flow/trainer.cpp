// flow/trainer.cpp — the training step (see trainer.h); the checkpoint's layout is flow/checkpoint_format.cpp.
#include "flow/trainer.h"

#include <chrono>
#include <cmath>
#include <utility>

#include "core/autograd.h"
#include "core/ops.h"

namespace fm::flow {

FlowTrainer::FlowTrainer(nn::VelocityModel& model, nn::Optimizer& optimizer, nn::LRSchedule schedule,
                         nn::EMA* ema, TrainingData& data, std::shared_ptr<const AffineProbabilityPath> path,
                         std::shared_ptr<const TimeSampler> time_sampler, std::uint64_t seed,
                         TrainerOptions options)
    : model_(model), optimizer_(optimizer), schedule_(schedule), ema_(ema), data_(data), path_(std::move(path)),
      time_sampler_(std::move(time_sampler)), options_(options), seed_(seed), batch_epoch_(data.epoch()) {}

void FlowTrainer::run_step() {
  model_.train();
  // The whole batch is samples 0 … batch_size − 1 of this step; a data-parallel rank would pass its
  // own first_sample and get exactly its slice of these numbers.
  const StepNoise noise{seed_, step_, 0};
  Tensor x1 = data_.next_batch(options_.batch_size, noise).to(options_.device);
  began_epoch_ = data_.epoch() != batch_epoch_;
  batch_epoch_ = data_.epoch();
  // x0: the pairs' own (reflow), or a draw from the source re-paired with the batch by the coupling.
  Tensor x0 = data_.paired_source();
  if (x0.defined()) {
    x0 = x0.to(options_.device);
  } else {
    x0 = options_.source ? options_.source->sample(x1.shape(), noise, x1.dtype(), x1.device())
                         : GaussianSource().sample(x1.shape(), noise, x1.dtype(), x1.device());
    if (options_.coupling.kind != CouplingKind::Independent) {
      const auto begin = std::chrono::steady_clock::now();
      x1 = couple(x0, x1, options_.coupling, noise);
      coupling_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    }
  }
  ModelFn velocity = [this](const Tensor& x_t, const Tensor& t) { return model_.forward(x_t, t); };
  FlowMatchingLoss result = conditional_flow_matching_loss(velocity, x1, *path_, *time_sampler_, noise, std::move(x0));

  optimizer_.zero_grad();
  result.loss.backward();
  // Always measure the norm (logged); clip only when asked (an infinite max_norm never scales).
  // Clip, step and EMA run as one pass over the model's flat parameter buffers (nn/flat_parameters.h,
  // kernels/optimizer.h), with the numbers of clip_grad_norm, step() and update() one after another.
  last_.lr = schedule_.lr_at(step_);
  optimizer_.set_lr(last_.lr);
  if (!model_.flat_parameters()) model_.flatten_parameters();
  last_.grad_norm = optimizer_.clip_step_and_update_ema_async(
      model_, options_.grad_clip > 0 ? options_.grad_clip : INFINITY, ema_);
  ++step_;

  losses_.add(result.loss, began_epoch_);
  ++steps_in_sum_;
  if (began_epoch_) {
    steps_in_finished_epoch_ = steps_in_epoch_;
    steps_in_epoch_ = 0;
  }
  ++steps_in_epoch_;
  // Kept (not read) for last_step_stats: its per-t-bin losses.
  last_.per_sample_loss = result.per_sample_loss;
  last_.t = result.t;
}

StepStats FlowTrainer::train_step() {
  run_step();
  return last_step_stats();
}

StepStats FlowTrainer::last_step_stats() const {
  StepStats stats;
  stats.step = step_;
  if (!last_.t.defined()) return stats;  // no step taken by this trainer yet
  stats.lr = last_.lr;
  stats.loss = losses_.read().last;
  stats.grad_norm = last_.grad_norm.value();
  stats.loss_by_t_bin = loss_by_time_bins(last_.per_sample_loss, last_.t, options_.loss_bins);
  return stats;
}

double FlowTrainer::take_coupling_seconds() {
  const double seconds = coupling_seconds_;
  coupling_seconds_ = 0;
  return seconds;
}

LossSum FlowTrainer::loss_sum() const { return {losses_.read().since_restart, steps_in_sum_}; }

LossSum FlowTrainer::take_loss_sum() {
  const LossSum sum = loss_sum();
  losses_.restart_sum();
  steps_in_sum_ = 0;
  return sum;
}

LossSum FlowTrainer::finished_epoch_loss() const {
  return {losses_.read().finished_epoch, steps_in_finished_epoch_};
}

void FlowTrainer::restart_loss_sums() {
  losses_.clear();
  steps_in_sum_ = steps_in_epoch_ = steps_in_finished_epoch_ = 0;
  began_epoch_ = false;
  batch_epoch_ = data_.epoch();
  last_ = LastStep{};
}

void FlowTrainer::save_checkpoint(const std::string& path, std::map<std::string, std::string> metadata) const {
  save_training_checkpoint(path, checkpointed_state(), seed_, step_, std::move(metadata));
}

std::map<std::string, std::string> FlowTrainer::load_checkpoint(const std::string& path) {
  RestoredTraining restored = load_training_checkpoint(path, checkpointed_state());
  seed_ = restored.seed;
  step_ = restored.step;
  restart_loss_sums();  // the sums and the epoch count from the restored data position
  return restored.metadata;
}

}  // namespace fm::flow
