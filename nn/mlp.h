// nn/mlp.h — the velocity network for 2-D toy data (seed 003: (x, t) → 3 hidden layers of 64 with
// GELU → 2 outputs), with width, depth, activation and the way t enters made configurable.
//
// Layer: nn/ (uses core/ only). Input features are x concatenated with a time feature:
//   time_input = "raw":         the single column t (seed 003 appends t to the position)
//   time_input = "sinusoidal":  the seed-002 sinusoid of time_scale·t with time_embedding_dim features
// Parameter names: net.0.weight, net.0.bias, net.2.weight, ... (a Sequential of Linear/activation).
// Without grad mode (sampling, evaluation) forward runs the layers as core's mlp_inference(), one
// fused pass on the CPU, bitwise the same numbers as the Sequential.
// Class-conditional (num_classes > 0): a learned table class_embedding [num_classes + 1,
// class_embedding_dim] (nn/class_embedding.h; the last row is the null class) and the sample's row is
// concatenated after the time feature: input = [x, time feature, class row]. num_classes = 0 (the
// default) builds exactly the unconditional network of before: same parameters, same numbers.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/ops.h"
#include "core/random.h"
#include "nn/class_embedding.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/time_embedding.h"
#include "nn/velocity_model.h"

namespace fm::nn {

struct MLPConfig {
  int data_dim = 2;
  int hidden_width = 64;
  int hidden_layers = 3;
  std::string activation = "gelu";       // silu | gelu | relu | tanh
  // raw | sinusoidal. "raw" is the default: on the 2-D moons (3000 Adam steps of batch 256, lr 1e-3,
  // two seeds) it reached a lower held-out flow-matching loss (0.983 vs 0.987 for the sinusoid with
  // time_scale 1, 0.985 with 100, 1.01 with 1000) and Euler samples closer to the data (mean
  // nearest-neighbour distance 0.060 vs 0.064 / 0.068 / 0.10).
  std::string time_input = "raw";
  int time_embedding_dim = 16;  // features of the sinusoid (even); used with "sinusoidal"
  double time_scale = 1.0;      // t is multiplied by this before the sinusoid (seed 002: 1)
  int num_classes = 0;           // 0: unconditional; else labels 0 … num_classes − 1 (+ the null class)
  int class_embedding_dim = 16;  // width of a class's learned vector (used when num_classes > 0)

  int input_features() const {
    return data_dim + (time_input == "raw" ? 1 : time_embedding_dim) + (num_classes > 0 ? class_embedding_dim : 0);
  }
  void validate(const std::string& prefix = "model") const;
  // Unknown keys and bad values → fm::ConfigError naming the key; an optional "type" must be "mlp".
  static MLPConfig from_json(const nlohmann::json& json, const std::string& prefix = "model");
  // num_classes and class_embedding_dim appear only for a conditional model, so an unconditional
  // model's JSON (and the checkpoints and run folders that store it) is what it was before.
  nlohmann::json to_json() const;
};

class VelocityMLP : public VelocityModel {
 public:
  VelocityMLP(const MLPConfig& config, Generator& gen);
  // x [N, data_dim], t as in VelocityModel → velocity [N, data_dim]
  Tensor forward(const Tensor& x, const Tensor& t) override;
  // labels: one per sample (0 … num_classes, num_classes = null), or empty = null class for all.
  Tensor forward(const Tensor& x, const Tensor& t, const std::vector<std::int32_t>& labels) override;
  Tensor forward(const Tensor& x, const Tensor& t, const RowIndex& labels) override;
  using VelocityModel::forward;
  int num_classes() const override { return config_.num_classes; }
  nlohmann::json config_json() const override { return config_.to_json(); }
  const MLPConfig& config() const { return config_; }

  std::shared_ptr<Sequential> net;
  Tensor class_embedding;  // [num_classes + 1, class_embedding_dim]; undefined when unconditional

 private:
  // Both labelled forwards: the labels from the host or the device (nn/class_embedding.h).
  Tensor forward_labelled(const Tensor& x, const Tensor& t, ClassLabelsRef labels);
  MLPConfig config_;
  std::shared_ptr<SinusoidalTimeEmbedding> time_embedding_;  // null for "raw"
  std::vector<std::shared_ptr<Linear>> linears_;              // net's Linear layers, in order
  Activation activation_kind_;
};

}  // namespace fm::nn
