// nn/unet_config.h — the U-Net's architecture as data: UNetConfig, its validation, and its JSON form
// (the "model" section of a config file and of a checkpoint's metadata).
//
// Layer: nn/ (uses core/ and nn/config_json.h only). Kept apart from nn/unet.h so that reading or
// checking a config needs none of the model's modules; nn/unet.h builds the network from it.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fm::nn {

struct UNetConfig {
  int in_channels = 1;
  int out_channels = 0;                         // 0: same as in_channels
  std::vector<int> down_channels{32, 64, 128};  // conv_in output, then each down block's output
  std::vector<int> mid_channels{128, 64};       // mid block i maps mid[i] → mid[i+1]
  int time_emb_dim = 128;
  std::vector<bool> down_sample{true, true};    // per down block (mirrored by the up blocks)
  std::vector<bool> attention{false, true};     // per down block (mirrored by the up blocks)
  int num_heads = 4;
  int groups = 8;                               // GroupNorm groups everywhere
  int final_channels = 16;                      // last up block's output (the seed's hard-coded 16)
  double time_scale = 1.0;                      // t is multiplied by this before the sinusoid (seed: 1)
  bool fuse_group_norm_silu = true;             // GroupNorm → SiLU as one op (same numbers)
  int num_classes = 0;                          // 0: unconditional; else class labels (nn/unet.h)
  // The dtype of the activations between the layers: float32, or bfloat16 (half the bytes; the
  // parameters, the time embedding and the output stay float32; nn/unet.h). JSON "activations".
  bool bfloat16_activations = false;

  int resolved_out_channels() const { return out_channels == 0 ? in_channels : out_channels; }
  int downsample_count() const;  // how many times the image is halved
  // Throws fm::ConfigError naming the key (under `prefix`) for any inconsistent setting.
  void validate(const std::string& prefix = "model") const;
  // Unknown keys and bad values → fm::ConfigError ("model.down_channels: expected an array of
  // positive integers, got ..."). An optional "type" key must be "unet". The result is validated.
  static UNetConfig from_json(const nlohmann::json& json, const std::string& prefix = "model");
  // Two levels of 4 and 8 channels with attention in the lower one: every kind of block, small enough
  // for gradchecks, the CUDA emulator and `fmbench step`.
  static UNetConfig tiny();
  // Every field, plus "type": "unet"; num_classes only when > 0 and activations only when bfloat16, so
  // an unconditional float32 model's JSON (stored in checkpoints and run folders) is what it was
  // before those keys existed.
  nlohmann::json to_json() const;
};

}  // namespace fm::nn
