// flow/checkpoint_format.cpp — writing and restoring a training checkpoint (see checkpoint_format.h).
#include "flow/checkpoint_format.h"

#include <cmath>

#include "core/error.h"

namespace fm::flow {

namespace {
bool starts_with(const std::string& name, const std::string& prefix) { return name.rfind(prefix, 0) == 0; }
}  // namespace

void require_finite_weights(const nn::StateDict& state, const std::string& path, const std::string& prefix) {
  for (const auto& [name, tensor] : state) {
    const std::vector<double> values = tensor.to_vector();
    for (std::size_t i = 0; i < values.size(); ++i)
      FM_CHECK(std::isfinite(values[i]), FormatError, path, ": tensor \"", prefix, name, "\" holds ", values[i],
               " at element ", i, "; expected finite weights (was it saved from a run that had diverged?)");
  }
}

nn::StateDict tensors_with_prefix(const io::NamedTensors& tensors, const std::string& prefix) {
  nn::StateDict out;
  for (const auto& [name, t] : tensors)
    if (starts_with(name, prefix)) out[name.substr(prefix.size())] = t;
  return out;
}

void save_training_checkpoint(const std::string& path, const TrainingStateRefs& state, std::uint64_t seed,
                              std::int64_t step, std::map<std::string, std::string> metadata) {
  io::NamedTensors tensors;
  for (const auto& [name, t] : state.model.state_dict()) tensors[kCheckpointModelPrefix + name] = t;
  if (state.ema)
    for (const auto& [name, t] : state.ema->state_dict()) tensors[kCheckpointEmaPrefix + name] = t;
  for (const auto& [name, t] : state.optimizer.state_dict()) tensors[kCheckpointOptimizerPrefix + name] = t;
  std::map<std::string, std::vector<std::uint64_t>> words = state.data.state();
  words[kCheckpointSeedKey] = {seed};
  words[kCheckpointStepKey] = {std::uint64_t(step)};
  metadata["step"] = std::to_string(step);
  io::save_safetensors_with_words(path, tensors, words, metadata);
}

RestoredTraining load_training_checkpoint(const std::string& path, const TrainingStateRefs& state) {
  io::LoadedCheckpoint ckpt = io::load_safetensors_with_words(path);
  // Checked first: everything else in such a file may load, but its noise cannot be continued.
  FM_CHECK(!ckpt.words.count(kCheckpointOldGeneratorKey), FormatError, path,
           ": written by an older version whose training noise came from a xoshiro256** generator (",
           kCheckpointOldGeneratorKey, "); training noise is now Philox by (seed, step), so this run cannot be "
           "resumed bitwise: start a new run (the weights still load for sampling)");
  // The tensors stay on the host as loaded: each load_state_dict copies them into its own tensors,
  // which sit on the training device (and the optimiser's float64 step counters could not move to
  // a float32-only CUDA device anyway).
  for (const auto& [name, t] : ckpt.tensors)
    if (!starts_with(name, kCheckpointModelPrefix) && !starts_with(name, kCheckpointEmaPrefix) &&
        !starts_with(name, kCheckpointOptimizerPrefix))
      throw FormatError(cat(path, ": unexpected tensor \"", name, "\" in a training checkpoint"));
  try {  // a missing, extra or misshapen tensor (another model's checkpoint): name the file too
    const nn::StateDict model_state = tensors_with_prefix(ckpt.tensors, kCheckpointModelPrefix);
    require_finite_weights(model_state, path, kCheckpointModelPrefix);
    state.model.load_state_dict(model_state);
    if (state.ema) {
      nn::StateDict ema_state = tensors_with_prefix(ckpt.tensors, kCheckpointEmaPrefix);
      FM_CHECK(!ema_state.empty(), FormatError, path, ": checkpoint has no EMA weights but the config uses an EMA");
      require_finite_weights(ema_state, path, kCheckpointEmaPrefix);
      state.ema->load_state_dict(ema_state);
    }
    state.optimizer.load_state_dict(tensors_with_prefix(ckpt.tensors, kCheckpointOptimizerPrefix));
  } catch (const ValueError& e) {
    throw FormatError(cat(path, ": ", e.what()));
  }
  auto seed_words = ckpt.words.find(kCheckpointSeedKey);
  auto step_words = ckpt.words.find(kCheckpointStepKey);
  FM_CHECK(seed_words != ckpt.words.end() && seed_words->second.size() == 1 && step_words != ckpt.words.end() &&
               step_words->second.size() == 1,
           FormatError, path, ": missing ", kCheckpointSeedKey, " or ", kCheckpointStepKey);
  // A count of steps, checked as the word it is stored in (one past 2^63 would turn negative); the
  // bound is the largest exact in a double, far beyond any run (the noise's counter holds 2^32).
  const std::uint64_t step_word = step_words->second[0];
  FM_CHECK(step_word <= (std::uint64_t(1) << 53), FormatError, path, ": ", kCheckpointStepKey, " is ", step_word,
           ", expected a count of steps (at most 2^53)");
  try {
    state.data.load_state(ckpt.words);
  } catch (const FormatError& e) {  // the data's own words: name the file too
    throw FormatError(cat(path, ": ", e.what()));
  }
  return {seed_words->second[0], std::int64_t(step_word), ckpt.metadata};
}

}  // namespace fm::flow
