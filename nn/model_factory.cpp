// nn/model_factory.cpp — "type" → architecture (see model_factory.h).
#include "nn/model_factory.h"

#include "core/error.h"
#include "nn/config_json.h"
#include "nn/mlp.h"
#include "nn/unet.h"

namespace fm::nn {

std::shared_ptr<VelocityModel> make_velocity_model(const nlohmann::json& config, Generator& gen,
                                                   const std::string& prefix) {
  FM_CHECK(config.is_object(), ConfigError, prefix, ": expected a JSON object, got ", json_excerpt(config));
  std::string type = "unet";
  if (config.contains("type")) {
    const auto& value = config.at("type");
    FM_CHECK(value.is_string(), ConfigError, prefix, ".type: expected \"unet\" or \"mlp\", got ", json_excerpt(value));
    type = value.get<std::string>();
  }
  if (type == "unet") return std::make_shared<UNet>(UNetConfig::from_json(config, prefix), gen);
  if (type == "mlp") return std::make_shared<VelocityMLP>(MLPConfig::from_json(config, prefix), gen);
  throw ConfigError(cat(prefix, ".type: expected \"unet\" or \"mlp\", got \"", type, "\""));
}

}  // namespace fm::nn
