// flow/checkpoint_format.h — the training checkpoint's layout, in one place: what a checkpoint holds
// and under which names. FlowTrainer writes and restores it (flow/trainer.h); tools/ reads the model
// or EMA weights and the step back out of it (tools/checkpoint_model.cpp).
//
// One safetensors file, written atomically (core/io/tensor_io.h's safetensors with 64-bit words):
//   tensors   "model.<name>"  the model's state_dict
//             "ema.<name>"    the EMA's shadow weights (only when the run uses an EMA)
//             "optim.<name>"  the optimiser's state (Adam's moments and step counters)
//   words     "trainer.seed"       the seed of the run's Philox noise streams (flow/step_noise.h)
//             "trainer.step"       the number of steps completed
//             the TrainingData's own words (its position and epoch)
//   metadata  "step", and whatever the caller adds (fmtrain: "config", the run's resolved config)
// Everything random in a step is a function of (seed, step, sample index) — and, for image data, of
// (seed, epoch) and the position in the epoch — so a run resumed from a checkpoint continues bitwise
// where it stopped. Checkpoints of older versions stored a xoshiro256** generator's state under
// "trainer.generator" instead; their weights still load (tools/checkpoint_model.h), but a training run
// cannot continue from them (a FormatError says so).
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "core/io/tensor_io.h"
#include "core/random.h"
#include "flow/training_data.h"
#include "nn/ema.h"
#include "nn/module.h"
#include "nn/optim.h"

namespace fm::flow {

// Tensor name prefixes and word keys (see the table above).
inline const std::string kCheckpointModelPrefix = "model.";
inline const std::string kCheckpointEmaPrefix = "ema.";
inline const std::string kCheckpointOptimizerPrefix = "optim.";
inline const std::string kCheckpointSeedKey = "trainer.seed";
inline const std::string kCheckpointOldGeneratorKey = "trainer.generator";  // older versions: refused
inline const std::string kCheckpointStepKey = "trainer.step";

// The parts of a training run that a checkpoint holds (references into the trainer).
struct TrainingStateRefs {
  nn::Module& model;
  nn::EMA* ema;  // null when the run has no EMA
  nn::Optimizer& optimizer;
  TrainingData& data;
};

// Writes every part, the noise seed, the step and `metadata` (plus "step") to `path`.
void save_training_checkpoint(const std::string& path, const TrainingStateRefs& state, std::uint64_t seed,
                              std::int64_t step, std::map<std::string, std::string> metadata);

struct RestoredTraining {
  std::uint64_t seed = 0;
  std::int64_t step = 0;
  std::map<std::string, std::string> metadata;
};
// Restores everything save_training_checkpoint wrote into `state` and returns the seed and step.
// Throws fm::FormatError for a checkpoint of the older generator format, a tensor outside the three
// prefixes, missing EMA weights when `state` has an EMA, or missing seed/step words.
RestoredTraining load_training_checkpoint(const std::string& path, const TrainingStateRefs& state);

// The tensors whose names start with `prefix`, with the prefix removed (a state_dict to load).
nn::StateDict tensors_with_prefix(const io::NamedTensors& tensors, const std::string& prefix);

// FormatError naming the file and the tensor when a weight is NaN or infinite (a checkpoint saved from a
// run that had diverged, or damaged): sampling from it would give NaN everywhere, training from it
// would report a divergence of its own. `prefix` is how the names were stored ("ema." for the EMA's).
void require_finite_weights(const nn::StateDict& state, const std::string& path, const std::string& prefix);

}  // namespace fm::flow
