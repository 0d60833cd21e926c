// flow/trainer.cpp — the training step (see trainer.h); the checkpoint's layout is flow/checkpoint_format.cpp.
#include "flow/trainer.h"

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
      time_sampler_(std::move(time_sampler)), options_(options), seed_(seed) {}

StepStats FlowTrainer::train_step() {
  model_.train();
  // The whole batch is samples 0 … batch_size − 1 of this step; a data-parallel rank would pass its
  // own first_sample and get exactly its slice of these numbers.
  const StepNoise noise{seed_, step_, 0};
  Tensor x1 = data_.next_batch(options_.batch_size, noise).to(options_.device);
  ModelFn velocity = [this](const Tensor& x_t, const Tensor& t) { return model_.forward(x_t, t); };
  FlowMatchingLoss result = conditional_flow_matching_loss(velocity, x1, *path_, *time_sampler_, noise);

  optimizer_.zero_grad();
  result.loss.backward();
  StepStats stats;
  // Always measure the norm (logged); clip only when asked (an infinite max_norm never scales).
  // Clip, step and EMA run as one pass over the model's flat parameter buffers (nn/flat_parameters.h,
  // kernels/optimizer.h), with the numbers of clip_grad_norm, step() and update() one after another.
  stats.lr = schedule_.lr_at(step_);
  optimizer_.set_lr(stats.lr);
  if (!model_.flat_parameters()) model_.flatten_parameters();
  stats.grad_norm =
      optimizer_.clip_step_and_update_ema(model_, options_.grad_clip > 0 ? options_.grad_clip : INFINITY, ema_);
  ++step_;

  stats.step = step_;
  stats.loss = result.loss.item();
  stats.loss_by_t_bin = loss_by_time_bins(result.per_sample_loss, result.t, options_.loss_bins);
  return stats;
}

void FlowTrainer::save_checkpoint(const std::string& path, std::map<std::string, std::string> metadata) const {
  save_training_checkpoint(path, checkpointed_state(), seed_, step_, std::move(metadata));
}

std::map<std::string, std::string> FlowTrainer::load_checkpoint(const std::string& path) {
  RestoredTraining restored = load_training_checkpoint(path, checkpointed_state());
  seed_ = restored.seed;
  step_ = restored.step;
  return restored.metadata;
}

}  // namespace fm::flow
