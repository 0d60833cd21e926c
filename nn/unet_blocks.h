// nn/unet_blocks.h — the three building blocks of seed 002's U-Net (itself trimmed from
// explainingai-code/DDPM-Pytorch): DownBlock, MidBlock, UpBlock.
//
// Layer: nn/ (uses core/ only). Member names are the seed's attribute names, so parameter names match
// the PyTorch module's state_dict one for one. Every block is built from two pieces:
//   ResNet part     out = conv_second(conv_first(x) + SiLU→Linear(t_emb)[:, :, None, None]) + Conv1x1(x)
//                   with conv_* = GroupNorm(groups) → SiLU → Conv3x3 (the time embedding is added
//                   between the two convolutions, per channel)
//   attention part  out = out + MHA(GroupNorm(out) viewed as [B, H·W, C]) back in [B, C, H, W]
// DownBlock: ResNet → attention (if attend) → 4×4 stride-2 conv (if down_sample).
// MidBlock:  ResNet → attention → ResNet (always attends).
// UpBlock:   4×4 stride-2 ConvTranspose (if up_sample) → concat the skip on channels → ResNet →
//            attention (if attend). The seed: "only downsample AFTER you do everything", and the
//            reverse on the way up.
#pragma once
#include <memory>

#include "core/random.h"
#include "nn/attention.h"
#include "nn/conv.h"
#include "nn/group_norm.h"
#include "nn/linear.h"
#include "nn/module.h"

namespace fm::nn {

// Settings every block shares.
struct BlockOptions {
  int time_emb_dim = 128;
  int num_heads = 4;
  int groups = 8;
  bool fuse_group_norm_silu = true;
};

// GroupNorm(groups, in) → SiLU → Conv2d(in, out, 3, padding 1): the seed's resnet_conv_* Sequential.
std::shared_ptr<Sequential> make_norm_act_conv(int in_channels, int out_channels,
                                              const BlockOptions& options, Generator& gen);
// SiLU → Linear(time_emb_dim, out): the seed's t_emb_layers Sequential.
std::shared_ptr<Sequential> make_time_layer(int out_channels, const BlockOptions& options, Generator& gen);

// The ResNet part: conv_first, time injection, conv_second, 1×1 residual.
Tensor resnet_forward(Sequential& conv_first, Sequential& time_layer, Sequential& conv_second,
                      Conv2d& residual_conv, const Tensor& x, const Tensor& t_emb);
// The attention part with its residual add.
Tensor attention_forward(GroupNorm& norm, MultiheadSelfAttention& attention, const Tensor& x);

class DownBlock : public Module {
 public:
  DownBlock(int in_channels, int out_channels, bool down_sample, bool attend,
            const BlockOptions& options, Generator& gen);
  Tensor forward(const Tensor& x, const Tensor& t_emb);

  std::shared_ptr<Sequential> resnet_conv_first, t_emb_layers, resnet_conv_second;
  std::shared_ptr<GroupNorm> attention_norms;            // null without attention
  std::shared_ptr<MultiheadSelfAttention> attentions;    // null without attention
  std::shared_ptr<Conv2d> residual_input_conv;
  std::shared_ptr<Conv2d> down_sample_conv;              // null: identity (no down-sampling)
};

class MidBlock : public Module {
 public:
  MidBlock(int in_channels, int out_channels, const BlockOptions& options, Generator& gen);
  Tensor forward(const Tensor& x, const Tensor& t_emb);

  std::shared_ptr<ModuleList<Sequential>> resnet_convs;        // 4: first/second of two ResNets
  std::shared_ptr<ModuleList<Sequential>> t_emb_layers;        // 2
  std::shared_ptr<GroupNorm> attention_norms;
  std::shared_ptr<MultiheadSelfAttention> attentions;
  std::shared_ptr<ModuleList<Conv2d>> residual_input_conv;     // 2
};

class UpBlock : public Module {
 public:
  // in_channels counts the channels after concatenation: the incoming tensor has in_channels / 2,
  // and so does the skip connection.
  UpBlock(int in_channels, int out_channels, bool up_sample, bool attend, const BlockOptions& options,
          Generator& gen);
  Tensor forward(const Tensor& x, const Tensor& skip, const Tensor& t_emb);

  std::shared_ptr<Sequential> resnet_conv_first, t_emb_layers, resnet_conv_second;
  std::shared_ptr<GroupNorm> attention_norms;
  std::shared_ptr<MultiheadSelfAttention> attentions;
  std::shared_ptr<Conv2d> residual_input_conv;
  std::shared_ptr<ConvTranspose2d> up_sample_conv;  // null: identity
};

}  // namespace fm::nn
