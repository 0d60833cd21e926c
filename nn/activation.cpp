// nn/activation.cpp — activation layers (see activation.h).
#include "nn/activation.h"

#include "core/ops.h"

namespace fm::nn {

Tensor SiLU::forward(const Tensor& x) { return silu(x); }
Tensor GELU::forward(const Tensor& x) { return gelu(x); }
Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor Tanh::forward(const Tensor& x) { return tanh(x); }

bool is_known_activation(const std::string& name) {
  return name == "silu" || name == "gelu" || name == "relu" || name == "tanh";
}

Activation activation_kind(const std::string& name, const std::string& config_key) {
  if (name == "silu") return Activation::Silu;
  if (name == "gelu") return Activation::Gelu;
  if (name == "relu") return Activation::Relu;
  if (name == "tanh") return Activation::Tanh;
  throw ConfigError(cat(config_key, ": unknown activation '", name,
                        "', expected one of \"silu\", \"gelu\", \"relu\", \"tanh\""));
}

std::shared_ptr<Layer> make_activation(const std::string& name, const std::string& config_key) {
  if (name == "silu") return std::make_shared<SiLU>();
  if (name == "gelu") return std::make_shared<GELU>();
  if (name == "relu") return std::make_shared<ReLU>();
  if (name == "tanh") return std::make_shared<Tanh>();
  throw ConfigError(cat(config_key, ": unknown activation '", name,
                        "', expected one of \"silu\", \"gelu\", \"relu\", \"tanh\""));
}

}  // namespace fm::nn
