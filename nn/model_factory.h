// nn/model_factory.h — builds a velocity model from the "model" object of a run config, so the
// trainer, the sampler and checkpoint loading need not know which architectures exist.
//
// Layer: nn/ (uses core/ only). {"type": "unet", ...UNetConfig keys} or {"type": "mlp", ...MLPConfig
// keys}; "type" defaults to "unet". model->config_json() gives back a config that rebuilds the same
// architecture (store it next to a checkpoint).
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/random.h"
#include "nn/velocity_model.h"

namespace fm::nn {

// Throws fm::ConfigError naming the key (under `prefix`) for an unknown type or a bad setting.
std::shared_ptr<VelocityModel> make_velocity_model(const nlohmann::json& config, Generator& gen,
                                                   const std::string& prefix = "model");

}  // namespace fm::nn
