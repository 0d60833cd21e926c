// nn/unet_blocks.cpp — DownBlock, MidBlock, UpBlock of seed 002's U-Net (see unet_blocks.h).
#include "nn/unet_blocks.h"

#include "core/ops.h"
#include "nn/activation.h"

namespace fm::nn {

std::shared_ptr<Sequential> make_norm_act_conv(int in_channels, int out_channels,
                                              const BlockOptions& options, Generator& gen) {
  auto sequence = std::make_shared<Sequential>();
  sequence->push_back(std::make_shared<GroupNorm>(options.groups, in_channels));
  sequence->push_back(std::make_shared<SiLU>());
  sequence->push_back(std::make_shared<Conv2d>(in_channels, out_channels, 3, 1, 1, gen));
  sequence->set_fuse_group_norm_silu(options.fuse_group_norm_silu);
  return sequence;
}

std::shared_ptr<Sequential> make_time_layer(int out_channels, const BlockOptions& options, Generator& gen) {
  auto sequence = std::make_shared<Sequential>();
  sequence->push_back(std::make_shared<SiLU>());
  sequence->push_back(std::make_shared<Linear>(options.time_emb_dim, out_channels, gen));
  return sequence;
}

Tensor resnet_forward(Sequential& conv_first, Sequential& time_layer, Sequential& conv_second,
                      Conv2d& residual_conv, const Tensor& x, const Tensor& t_emb) {
  Tensor out = conv_first.forward(x);
  Tensor time = time_layer.forward(t_emb);  // [N, C]
  // The time embedding is float32; bfloat16 activations take it rounded ([N, C]: a few values).
  out = out + time.to(out.dtype()).reshape({time.size(0), time.size(1), 1, 1});
  out = conv_second.forward(out);
  return out + residual_conv.forward(x);
}

Tensor attention_forward(GroupNorm& norm, MultiheadSelfAttention& attention, const Tensor& x) {
  const std::int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  // The seed normalises the [B, C, H·W] view, then attends over the H·W pixels as tokens.
  Tensor tokens = norm.forward(x.reshape({batch, channels, height * width})).transpose(1, 2);
  Tensor attended = attention.forward(tokens);  // [B, H·W, C]
  return x + attended.transpose(1, 2).reshape({batch, channels, height, width});
}

// ---------------------------------------------------------------- DownBlock
DownBlock::DownBlock(int in_channels, int out_channels, bool down_sample, bool attend,
                     const BlockOptions& options, Generator& gen)
    : Module("DownBlock") {
  // Construction order = the seed's __init__ order (it fixes the order of random draws).
  resnet_conv_first = register_module("resnet_conv_first", make_norm_act_conv(in_channels, out_channels, options, gen));
  t_emb_layers = register_module("t_emb_layers", make_time_layer(out_channels, options, gen));
  resnet_conv_second = register_module("resnet_conv_second", make_norm_act_conv(out_channels, out_channels, options, gen));
  if (attend) {
    attention_norms = register_module("attention_norms", std::make_shared<GroupNorm>(options.groups, out_channels));
    attentions = register_module("attentions", std::make_shared<MultiheadSelfAttention>(out_channels, options.num_heads, gen));
  }
  residual_input_conv = register_module("residual_input_conv", std::make_shared<Conv2d>(in_channels, out_channels, 1, 1, 0, gen));
  if (down_sample)
    down_sample_conv = register_module("down_sample_conv", std::make_shared<Conv2d>(out_channels, out_channels, 4, 2, 1, gen));
}

Tensor DownBlock::forward(const Tensor& x, const Tensor& t_emb) {
  Tensor out = resnet_forward(*resnet_conv_first, *t_emb_layers, *resnet_conv_second, *residual_input_conv, x, t_emb);
  if (attentions) out = attention_forward(*attention_norms, *attentions, out);
  if (down_sample_conv) out = down_sample_conv->forward(out);
  return out;
}

// ---------------------------------------------------------------- MidBlock
MidBlock::MidBlock(int in_channels, int out_channels, const BlockOptions& options, Generator& gen)
    : Module("MidBlock") {
  resnet_convs = register_module("resnet_convs", std::make_shared<ModuleList<Sequential>>());
  resnet_convs->push_back(make_norm_act_conv(in_channels, out_channels, options, gen));
  for (int i = 0; i < 3; ++i) resnet_convs->push_back(make_norm_act_conv(out_channels, out_channels, options, gen));
  t_emb_layers = register_module("t_emb_layers", std::make_shared<ModuleList<Sequential>>());
  for (int i = 0; i < 2; ++i) t_emb_layers->push_back(make_time_layer(out_channels, options, gen));
  attention_norms = register_module("attention_norms", std::make_shared<GroupNorm>(options.groups, out_channels));
  attentions = register_module("attentions", std::make_shared<MultiheadSelfAttention>(out_channels, options.num_heads, gen));
  residual_input_conv = register_module("residual_input_conv", std::make_shared<ModuleList<Conv2d>>());
  residual_input_conv->push_back(std::make_shared<Conv2d>(in_channels, out_channels, 1, 1, 0, gen));
  residual_input_conv->push_back(std::make_shared<Conv2d>(out_channels, out_channels, 1, 1, 0, gen));
}

Tensor MidBlock::forward(const Tensor& x, const Tensor& t_emb) {
  Tensor out = resnet_forward((*resnet_convs)[0], (*t_emb_layers)[0], (*resnet_convs)[1],
                              (*residual_input_conv)[0], x, t_emb);
  out = attention_forward(*attention_norms, *attentions, out);
  return resnet_forward((*resnet_convs)[2], (*t_emb_layers)[1], (*resnet_convs)[3],
                        (*residual_input_conv)[1], out, t_emb);
}

// ---------------------------------------------------------------- UpBlock
UpBlock::UpBlock(int in_channels, int out_channels, bool up_sample, bool attend,
                 const BlockOptions& options, Generator& gen)
    : Module("UpBlock") {
  FM_CHECK(in_channels % 2 == 0, ValueError, "UpBlock: in_channels ", in_channels,
           " must be even (half come from below, half from the skip connection)");
  resnet_conv_first = register_module("resnet_conv_first", make_norm_act_conv(in_channels, out_channels, options, gen));
  t_emb_layers = register_module("t_emb_layers", make_time_layer(out_channels, options, gen));
  resnet_conv_second = register_module("resnet_conv_second", make_norm_act_conv(out_channels, out_channels, options, gen));
  if (attend) {
    attention_norms = register_module("attention_norms", std::make_shared<GroupNorm>(options.groups, out_channels));
    attentions = register_module("attentions", std::make_shared<MultiheadSelfAttention>(out_channels, options.num_heads, gen));
  }
  residual_input_conv = register_module("residual_input_conv", std::make_shared<Conv2d>(in_channels, out_channels, 1, 1, 0, gen));
  if (up_sample)
    up_sample_conv = register_module("up_sample_conv",
                                     std::make_shared<ConvTranspose2d>(in_channels / 2, in_channels / 2, 4, 2, 1, gen));
}

Tensor UpBlock::forward(const Tensor& x, const Tensor& skip, const Tensor& t_emb) {
  Tensor up = up_sample_conv ? up_sample_conv->forward(x) : x;
  FM_CHECK(up.dim() == 4 && skip.dim() == 4 && up.size(0) == skip.size(0) && up.size(2) == skip.size(2) &&
               up.size(3) == skip.size(3),
           ShapeError, "UpBlock: up-sampled input ", shape_str(up.shape()), " and skip connection ",
           shape_str(skip.shape()), " differ in batch or spatial size");
  Tensor joined = concat({up, skip}, 1);
  Tensor out = resnet_forward(*resnet_conv_first, *t_emb_layers, *resnet_conv_second, *residual_input_conv, joined, t_emb);
  if (attentions) out = attention_forward(*attention_norms, *attentions, out);
  return out;
}

}  // namespace fm::nn
