// flow/trainer.cpp — the training step and the checkpoint (see trainer.h).
#include "flow/trainer.h"

#include <bit>
#include <cmath>

#include "core/autograd.h"
#include "core/io/tensor_io.h"
#include "core/ops.h"

namespace fm::flow {

std::vector<std::uint64_t> generator_words(const Generator& gen) {
  Generator::State s = gen.state();
  return {s.words[0], s.words[1], s.words[2], s.words[3], s.has_spare_normal ? 1u : 0u,
          std::bit_cast<std::uint64_t>(s.spare_normal)};
}

void set_generator_words(Generator& gen, const std::vector<std::uint64_t>& w) {
  FM_CHECK(w.size() == 6, FormatError, "checkpoint: generator state has ", w.size(), " words, expected 6");
  Generator::State s;
  for (int i = 0; i < 4; ++i) s.words[std::size_t(i)] = w[std::size_t(i)];
  s.has_spare_normal = w[4] != 0;
  s.spare_normal = std::bit_cast<double>(w[5]);
  gen.set_state(s);
}

FlowTrainer::FlowTrainer(nn::VelocityModel& model, nn::Optimizer& optimizer, nn::LRSchedule schedule,
                         nn::EMA* ema, TrainingData& data, std::shared_ptr<const AffineProbabilityPath> path,
                         std::shared_ptr<const TimeSampler> time_sampler, std::uint64_t seed,
                         TrainerOptions options)
    : model_(model), optimizer_(optimizer), schedule_(schedule), ema_(ema), data_(data), path_(std::move(path)),
      time_sampler_(std::move(time_sampler)), options_(options), gen_(seed) {}

StepStats FlowTrainer::train_step() {
  model_.train();
  Tensor x1 = data_.next_batch(options_.batch_size, gen_).to(options_.device);
  VelocityModel velocity = [this](const Tensor& x_t, const Tensor& t) { return model_.forward(x_t, t); };
  FlowMatchingLoss result = conditional_flow_matching_loss(velocity, x1, *path_, *time_sampler_, gen_);

  optimizer_.zero_grad();
  result.loss.backward();
  StepStats stats;
  // Always measure the norm (logged); clip only when asked (an infinite max_norm never scales).
  stats.grad_norm = nn::clip_grad_norm(model_, options_.grad_clip > 0 ? options_.grad_clip : INFINITY);
  stats.lr = schedule_.lr_at(step_);
  optimizer_.set_lr(stats.lr);
  optimizer_.step();
  if (ema_) ema_->update();
  ++step_;

  stats.step = step_;
  stats.loss = result.loss.item();
  stats.loss_by_t_bin = loss_by_time_bins(result.per_sample_loss, result.t, options_.loss_bins);
  return stats;
}

void FlowTrainer::save_checkpoint(const std::string& path, std::map<std::string, std::string> metadata) const {
  io::NamedTensors tensors;
  for (const auto& [name, t] : model_.state_dict()) tensors["model." + name] = t;
  if (ema_)
    for (const auto& [name, t] : ema_->state_dict()) tensors["ema." + name] = t;
  for (const auto& [name, t] : optimizer_.state_dict()) tensors["optim." + name] = t;
  std::map<std::string, std::vector<std::uint64_t>> words = data_.state();
  words["trainer.generator"] = generator_words(gen_);
  words["trainer.step"] = {std::uint64_t(step_)};
  metadata["step"] = std::to_string(step_);
  io::save_safetensors_with_words(path, tensors, words, metadata);
}

std::map<std::string, std::string> FlowTrainer::load_checkpoint(const std::string& path) {
  io::LoadedCheckpoint ckpt = io::load_safetensors_with_words(path);
  nn::StateDict model_state, ema_state, optim_state;
  // The tensors stay on the host as loaded: each load_state_dict copies them into its own tensors,
  // which sit on the training device (and the optimiser's float64 step counters could not move to
  // a float32-only CUDA device anyway).
  for (auto& [name, t] : ckpt.tensors) {
    if (name.rfind("model.", 0) == 0)
      model_state[name.substr(6)] = t;
    else if (name.rfind("ema.", 0) == 0)
      ema_state[name.substr(4)] = t;
    else if (name.rfind("optim.", 0) == 0)
      optim_state[name.substr(6)] = t;
    else
      throw FormatError(cat(path, ": unexpected tensor \"", name, "\" in a training checkpoint"));
  }
  model_.load_state_dict(model_state);
  if (ema_) {
    FM_CHECK(!ema_state.empty(), FormatError, path, ": checkpoint has no EMA weights but the config uses an EMA");
    ema_->load_state_dict(ema_state);
  }
  optimizer_.load_state_dict(optim_state);
  auto gen_words = ckpt.words.find("trainer.generator");
  auto step_words = ckpt.words.find("trainer.step");
  FM_CHECK(gen_words != ckpt.words.end() && step_words != ckpt.words.end() && step_words->second.size() == 1,
           FormatError, path, ": missing trainer.generator or trainer.step");
  set_generator_words(gen_, gen_words->second);
  step_ = std::int64_t(step_words->second[0]);
  data_.load_state(ckpt.words);
  return ckpt.metadata;
}

}  // namespace fm::flow
