// flow/trainer.h — the flow-matching training loop shared by the 2-D MLP and the U-Net.
//
// One step: draw a batch x1 from the data, noise x0 ~ N(0, I) and times t, regress the model's
// velocity on the path's target (flow/loss.h), backpropagate, clip, step the optimiser at the
// scheduled learning rate, update the EMA. Everything random in step s is drawn from the Philox
// streams of the run's seed at step s, per sample index (flow/step_noise.h), so a run is a pure
// function of its config and seed; the checkpoint (flow/checkpoint_format.h) stores the seed, the
// step, the data position, the optimiser and the EMA, so a resumed run continues bitwise where it
// stopped.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/random.h"
#include "flow/checkpoint_format.h"
#include "flow/loss.h"
#include "flow/path.h"
#include "flow/time_sampler.h"
#include "flow/training_data.h"
#include "nn/ema.h"
#include "nn/lr_schedule.h"
#include "nn/optim.h"
#include "nn/velocity_model.h"

namespace fm::flow {

struct TrainerOptions {
  std::int64_t batch_size = 256;
  double grad_clip = 0.0;  // 0: off
  int loss_bins = 5;       // loss per t-bin in the statistics
  Device device = Device::CPU;
};

struct StepStats {
  std::int64_t step = 0;   // steps completed after this one
  double loss = 0;
  double grad_norm = 0;    // before clipping
  double lr = 0;
  std::vector<double> loss_by_t_bin;
};

class FlowTrainer {
 public:
  FlowTrainer(nn::VelocityModel& model, nn::Optimizer& optimizer, nn::LRSchedule schedule, nn::EMA* ema,
              TrainingData& data, std::shared_ptr<const AffineProbabilityPath> path,
              std::shared_ptr<const TimeSampler> time_sampler, std::uint64_t seed, TrainerOptions options);

  StepStats train_step();
  std::int64_t step() const { return step_; }
  std::uint64_t seed() const { return seed_; }

  // Checkpoint (the layout of flow/checkpoint_format.h): weights, EMA, optimiser, step, seed and
  // data state, and `metadata` (the run's config), written atomically as safetensors.
  void save_checkpoint(const std::string& path, std::map<std::string, std::string> metadata) const;
  // Restores everything save_checkpoint wrote; returns the file's metadata.
  std::map<std::string, std::string> load_checkpoint(const std::string& path);

 private:
  nn::VelocityModel& model_;
  nn::Optimizer& optimizer_;
  nn::LRSchedule schedule_;
  nn::EMA* ema_;
  TrainingData& data_;
  std::shared_ptr<const AffineProbabilityPath> path_;
  std::shared_ptr<const TimeSampler> time_sampler_;
  TrainerOptions options_;
  std::uint64_t seed_;
  std::int64_t step_ = 0;

  TrainingStateRefs checkpointed_state() const { return {model_, ema_, optimizer_, data_}; }
};

}  // namespace fm::flow
