// nn/unet.h — the image velocity model: seed 002's U-Net (trimmed from explainingai-code/DDPM-Pytorch),
// configurable through UNetConfig (nn/unet_config.h).
//
// Layer: nn/ (uses core/ only). Data flow for the default config on 28×28 Fashion-MNIST:
//   t [N] → sinusoidal(128) → t_proj (Linear → SiLU → Linear) → t_emb [N, 128], given to every block
//   x [N,1,28,28] → conv_in 3×3 → 32@28² ─ skip ──────────────────────────────────────────┐
//     downs.0 (32→64, down)        → 64@14² ─ skip ─────────────────────────────┐          │
//     downs.1 (64→128, attn, down) → 128@7²                                      │          │
//     mids.0 (128→64, attn)        → 64@7²                                       │          │
//     ups.0 (ConvT 64→64 up, concat skip → 128 → 32, attn) → 32@14² ←───────────┘          │
//     ups.1 (ConvT 32→32 up, concat skip → 64 → 16)        → 16@28² ←──────────────────────┘
//   → norm_out GroupNorm(8, 16) → SiLU → conv_out 3×3 → velocity [N,1,28,28]
// Down block i uses down_sample[i] and attention[i]; its mirror up block uses the same two flags.
// Class-conditional (num_classes > 0): class_embedding [num_classes + 1, time_emb_dim] (last row = the
// null class, nn/class_embedding.h) and t_emb = t_proj(sinusoid(t)) + class_embedding[label], the
// sum every block receives. Added after t_proj, as ADM does (Dhariwal & Nichol 2021, guided-diffusion's
// emb + label_emb(y)): t_proj keeps seeing only the sinusoid it was designed for, the class shifts
// the embedding by a learned vector of its own scale, and each block's SiLU → Linear of t_emb mixes
// time and class nonlinearly. num_classes = 0 builds exactly the unconditional network.
// bfloat16 activations (model.activations = "bfloat16"): x is rounded to bfloat16 before conv_in and
// every activation after it is bfloat16 (half the memory traffic); the parameters stay float32 (the
// convolutions, GroupNorms and Linear layers take bfloat16 inputs with float32 weights), t_emb stays
// float32 and is rounded where each block adds it, attention runs on bfloat16 q, k, v (its softmax
// and sums in float), and the velocity comes back in x's dtype.
// Parameter names equal the PyTorch module's state_dict keys (t_proj.0.weight, downs.1.attentions.
// in_proj_weight, ...), so weights move between the two.
#pragma once
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/random.h"
#include "nn/class_embedding.h"
#include "nn/conv.h"
#include "nn/group_norm.h"
#include "nn/module.h"
#include "nn/time_embedding.h"
#include "nn/unet_blocks.h"
#include "nn/unet_config.h"
#include "nn/velocity_model.h"

namespace fm::nn {

class UNet : public VelocityModel {
 public:
  UNet(const UNetConfig& config, Generator& gen);
  // x [N, in_channels, H, W] with H and W divisible by 2^downsample_count(); t as in VelocityModel.
  Tensor forward(const Tensor& x, const Tensor& t) override;
  // labels: one per sample (0 … num_classes, num_classes = null), or empty = null class for all.
  Tensor forward(const Tensor& x, const Tensor& t, const std::vector<std::int32_t>& labels) override;
  Tensor forward(const Tensor& x, const Tensor& t, const RowIndex& labels) override;
  using VelocityModel::forward;
  int num_classes() const override { return config_.num_classes; }
  nlohmann::json config_json() const override { return config_.to_json(); }
  const UNetConfig& config() const { return config_; }

  std::shared_ptr<SinusoidalTimeEmbedding> time_embedding;  // no parameters
  std::shared_ptr<Sequential> t_proj;
  std::shared_ptr<Conv2d> conv_in;
  std::shared_ptr<ModuleList<DownBlock>> downs;
  std::shared_ptr<ModuleList<MidBlock>> mids;
  std::shared_ptr<ModuleList<UpBlock>> ups;
  std::shared_ptr<GroupNorm> norm_out;
  std::shared_ptr<Conv2d> conv_out;
  Tensor class_embedding;  // [num_classes + 1, time_emb_dim]; undefined when unconditional

 private:
  // Both labelled forwards: the labels from the host or the device (nn/class_embedding.h).
  Tensor forward_labelled(const Tensor& x, const Tensor& t, ClassLabelsRef labels);
  UNetConfig config_;
};

}  // namespace fm::nn
