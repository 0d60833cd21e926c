// flow/checkpoint_format.h — the training checkpoint's layout, in one place: what a checkpoint holds
// and under which names. FlowTrainer writes and restores it (flow/trainer.h); tools/ reads the model
// or EMA weights and the step back out of it (tools/checkpoint_model.cpp).
//
// One safetensors file, written atomically (core/io/tensor_io.h's safetensors with 64-bit words):
//   tensors   "model.<name>"  the model's state_dict
//             "ema.<name>"    the EMA's shadow weights (only when the run uses an EMA)
//             "optim.<name>"  the optimiser's state (Adam's moments and step counters)
//   words     "trainer.generator"  the trainer's Generator (core/random.h's generator_words)
//             "trainer.step"       the number of steps completed
//             the TrainingData's own words (its permutation, position and epoch)
//   metadata  "step", and whatever the caller adds (fmtrain: "config", the run's resolved config)
// Everything random in a step comes from that generator and that data order, so a run resumed from
// a checkpoint continues bitwise where it stopped.
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
inline const std::string kCheckpointGeneratorKey = "trainer.generator";
inline const std::string kCheckpointStepKey = "trainer.step";

// The parts of a training run that a checkpoint holds (references into the trainer).
struct TrainingStateRefs {
  nn::Module& model;
  nn::EMA* ema;  // null when the run has no EMA
  nn::Optimizer& optimizer;
  TrainingData& data;
};

// Writes every part, the generator, the step and `metadata` (plus "step") to `path`.
void save_training_checkpoint(const std::string& path, const TrainingStateRefs& state, const Generator& gen,
                              std::int64_t step, std::map<std::string, std::string> metadata);

struct RestoredTraining {
  std::int64_t step = 0;
  std::map<std::string, std::string> metadata;
};
// Restores everything save_training_checkpoint wrote into `state` and `gen`. Throws fm::FormatError
// for a tensor outside the three prefixes, missing EMA weights when `state` has an EMA, or missing
// generator/step words.
RestoredTraining load_training_checkpoint(const std::string& path, const TrainingStateRefs& state, Generator& gen);

// The tensors whose names start with `prefix`, with the prefix removed (a state_dict to load).
nn::StateDict tensors_with_prefix(const io::NamedTensors& tensors, const std::string& prefix);

}  // namespace fm::flow
