// tools/checkpoint_model.cpp — model + config from a checkpoint (see checkpoint_model.h; the
// checkpoint's layout is flow/checkpoint_format.h).
#include "tools/checkpoint_model.h"

#include "core/io/tensor_io.h"
#include "flow/checkpoint_format.h"
#include "tools/run_setup.h"

namespace fm::tools {

CheckpointModel load_checkpoint_model(const std::string& path, Device device, const std::string& weights) {
  FM_CHECK(is_weights_choice(weights), ConfigError, "--weights: got \"", weights, "\", expected auto, ema or raw");
  io::LoadedCheckpoint ckpt = io::load_safetensors_with_words(path);
  auto config_text = ckpt.metadata.find("config");
  FM_CHECK(config_text != ckpt.metadata.end(), FormatError, path,
           ": no \"config\" in the metadata; is this a checkpoint written by fmtrain?");
  CheckpointModel out;
  try {
    // The same depth-limited parser as a config file: the text comes from outside too.
    out.config = resolve_config(parse_config_text(config_text->second, "not a valid config"));
  } catch (const ConfigError& e) {  // the messages name the key, not the file it came from
    throw FormatError(cat(path, ": the config in the metadata: ", e.what()));
  }
  Generator gen(0);  // the initial values are overwritten by the checkpoint's weights
  out.model = build_model(out.config, gen);
  nn::StateDict ema_state = flow::tensors_with_prefix(ckpt.tensors, flow::kCheckpointEmaPrefix);
  // Asked for by name, EMA weights that are not there are an error: falling back would evaluate
  // another model than the one asked for.
  FM_CHECK(weights != "ema" || !ema_state.empty(), ConfigError, "--weights ema: ", path,
           " holds no EMA weights (its run had train.ema_decay = 0); expected --weights raw or auto");
  out.ema_weights = weights != "raw" && !ema_state.empty();
  nn::StateDict state = out.ema_weights ? ema_state : nn::StateDict{};
  // EMA shadows cover parameters only; buffers (if any) come from the raw model state.
  nn::StateDict raw_part;
  for (const auto& [name, t] : flow::tensors_with_prefix(ckpt.tensors, flow::kCheckpointModelPrefix))
    if (!state.count(name)) raw_part[name] = t;
  if (out.ema_weights) flow::require_finite_weights(ema_state, path, flow::kCheckpointEmaPrefix);
  flow::require_finite_weights(raw_part, path, flow::kCheckpointModelPrefix);
  state.insert(raw_part.begin(), raw_part.end());
  try {
    out.model->load_state_dict(state);
  } catch (const ValueError& e) {  // a missing, extra or misshapen tensor: name the file too
    throw FormatError(cat(path, ": ", e.what()));
  }
  out.model->to(device);
  out.model->eval();
  out.metadata = ckpt.metadata;
  auto step = ckpt.words.find(flow::kCheckpointStepKey);
  if (step != ckpt.words.end() && step->second.size() == 1) out.step = std::int64_t(step->second[0]);
  return out;
}

}  // namespace fm::tools
