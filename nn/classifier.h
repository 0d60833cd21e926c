// nn/classifier.h — a small convolutional image classifier whose penultimate layer serves as the
// feature space for the Fréchet distance (flow/frechet.h): our stand-in for Inception-v3 in FID,
// trained on Fashion-MNIST in a few CPU minutes instead of downloaded.
//
// Layer: nn/ (uses core/ only). Built from the engine's own layers; parameter names follow the
// modules (body.0.weight, ..., features.weight, head.weight) as torch.nn would name the same model:
//
//   body      Conv2d(in → c1, 3×3, s1, p1) → GroupNorm → SiLU          28×28
//             Conv2d(c1 → c2, 4×4, s2, p1) → GroupNorm → SiLU          14×14
//             Conv2d(c2 → c3, 4×4, s2, p1) → GroupNorm → SiLU           7×7
//   features  flatten → Linear(c3·7·7 → feature_dim)                  the "features" (pre-activation)
//   head      SiLU → Linear(feature_dim → classes)                     logits
//
// Why the features are taken before the SiLU: the Fréchet distance summarises each feature set by
// a Gaussian, and a linear layer's output (a sum over thousands of inputs) is closer to Gaussian
// than its SiLU, which folds the negative half onto a spike near 0. Why flatten rather than global
// average pooling: on 28×28 images the position of a stroke matters (a sandal's straps, a bag's
// handle), and pooling it away costs accuracy that flatten keeps for a 3136×128 matrix.
// Inputs are images in [-1, 1] (flow/training_data.h's pixel_to_unit), the range samples live in.
#pragma once
#include <memory>

#include <nlohmann/json.hpp>

#include "core/random.h"
#include "nn/linear.h"
#include "nn/module.h"

namespace fm::nn {

struct ClassifierConfig {
  int in_channels = 1;
  int image_size = 28;  // square images; must be divisible by 4 (two stride-2 convolutions)
  int stem_channels = 16;
  int middle_channels = 32;
  int last_channels = 64;
  int groups = 8;  // GroupNorm groups; must divide each channel count
  int feature_dim = 128;
  int classes = 10;

  // Throws fm::ConfigError naming the key ("classifier.groups: ...") for an inconsistent config.
  void validate(const std::string& prefix = "classifier") const;
  // Unknown keys and bad values → fm::ConfigError naming the key; an optional "type" must be
  // "conv_classifier".
  static ClassifierConfig from_json(const nlohmann::json& json, const std::string& prefix = "classifier");
  nlohmann::json to_json() const;
};

class ConvClassifier : public Module {
 public:
  ConvClassifier(const ClassifierConfig& config, Generator& gen);

  struct Output {
    Tensor features;  // [N, feature_dim]
    Tensor logits;    // [N, classes]
  };
  // x [N, in_channels, image_size, image_size] → features and logits in one pass.
  Output forward(const Tensor& x);
  Tensor logits(const Tensor& x) { return forward(x).logits; }
  // Only the feature part of the network (skips the head).
  Tensor features(const Tensor& x);

  const ClassifierConfig& config() const { return config_; }

  std::shared_ptr<Sequential> body;
  std::shared_ptr<Linear> feature_layer;  // registered as "features"
  std::shared_ptr<Linear> head;

 private:
  void check_input(const Tensor& x) const;
  ClassifierConfig config_;
};

}  // namespace fm::nn
