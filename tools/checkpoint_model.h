// tools/checkpoint_model.h — rebuilding a trained model from a checkpoint alone: the run's config
// travels in the checkpoint's metadata, the weights (raw or EMA) in its tensors.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "nn/velocity_model.h"
#include "tools/config.h"

namespace fm::tools {

struct CheckpointModel {
  Json config;  // the resolved config of the run that wrote the checkpoint
  std::unique_ptr<nn::VelocityModel> model;
  std::int64_t step = 0;
  bool ema_weights = false;  // whether the EMA weights were loaded
  std::map<std::string, std::string> metadata;  // the checkpoint's __metadata__ (config, data.normalization, ...)
};

// weights: "auto" (the EMA weights when the run kept them, else the raw ones), "ema" (the EMA
// weights; ConfigError naming the file when it holds none), or "raw".
CheckpointModel load_checkpoint_model(const std::string& path, Device device, const std::string& weights = "auto");
// The words `weights` takes, for --weights' checks and help.
inline bool is_weights_choice(const std::string& weights) {
  return weights == "auto" || weights == "ema" || weights == "raw";
}

}  // namespace fm::tools
