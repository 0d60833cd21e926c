// nn/activation.h — parameter-free activation layers, so they can sit in a Sequential and keep the
// PyTorch index numbering of the layers around them.
//
// Layer: nn/ (uses core/ only). The math is in core/ops.h (silu, gelu (exact erf form, PyTorch's
// default), relu, tanh). parse_activation maps a config string to a layer.
#pragma once
#include <memory>
#include <string>

#include "core/ops.h"
#include "nn/module.h"

namespace fm::nn {

class SiLU : public Layer {
 public:
  SiLU() : Layer("SiLU") {}
  Tensor forward(const Tensor& x) override;
};

class GELU : public Layer {
 public:
  GELU() : Layer("GELU") {}
  Tensor forward(const Tensor& x) override;
};

class ReLU : public Layer {
 public:
  ReLU() : Layer("ReLU") {}
  Tensor forward(const Tensor& x) override;
};

class Tanh : public Layer {
 public:
  Tanh() : Layer("Tanh") {}
  Tensor forward(const Tensor& x) override;
};

// "silu" | "gelu" | "relu" | "tanh"; anything else throws fm::ConfigError naming `config_key`.
std::shared_ptr<Layer> make_activation(const std::string& name, const std::string& config_key);
bool is_known_activation(const std::string& name);
// The same names as core's Activation (for the fused core::mlp_inference); throws like make_activation.
Activation activation_kind(const std::string& name, const std::string& config_key);

}  // namespace fm::nn
