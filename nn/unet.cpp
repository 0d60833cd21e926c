// nn/unet.cpp — the U-Net: building its modules from a UNetConfig, and the forward pass (see unet.h).
#include "nn/unet.h"

#include "core/ops.h"
#include "nn/class_embedding.h"

namespace fm::nn {

UNet::UNet(const UNetConfig& config, Generator& gen) : VelocityModel("UNet"), config_(config) {
  config_.validate();
  const auto& down = config_.down_channels;
  const auto& mid = config_.mid_channels;
  BlockOptions options{config_.time_emb_dim, config_.num_heads, config_.groups, config_.fuse_group_norm_silu};
  time_embedding = std::make_shared<SinusoidalTimeEmbedding>(config_.time_emb_dim, config_.time_scale);
  // Construction order = the PyTorch module's __init__ order (fixes the order of random draws).
  t_proj = register_module("t_proj", make_time_projection(config_.time_emb_dim, config_.time_emb_dim,
                                                          config_.time_emb_dim, gen));
  conv_in = register_module("conv_in", std::make_shared<Conv2d>(config_.in_channels, down[0], 3, 1, 1, gen));
  downs = register_module("downs", std::make_shared<ModuleList<DownBlock>>());
  for (std::size_t i = 0; i + 1 < down.size(); ++i)
    downs->push_back(std::make_shared<DownBlock>(down[i], down[i + 1], config_.down_sample[i],
                                                 config_.attention[i], options, gen));
  mids = register_module("mids", std::make_shared<ModuleList<MidBlock>>());
  for (std::size_t i = 0; i + 1 < mid.size(); ++i)
    mids->push_back(std::make_shared<MidBlock>(mid[i], mid[i + 1], options, gen));
  ups = register_module("ups", std::make_shared<ModuleList<UpBlock>>());
  for (std::size_t level = down.size() - 1; level-- > 0;) {
    int out = level == 0 ? config_.final_channels : down[level - 1];
    ups->push_back(std::make_shared<UpBlock>(down[level] * 2, out, config_.down_sample[level],
                                             config_.attention[level], options, gen));
  }
  norm_out = register_module("norm_out", std::make_shared<GroupNorm>(config_.groups, config_.final_channels));
  conv_out = register_module("conv_out", std::make_shared<Conv2d>(config_.final_channels,
                                                                  config_.resolved_out_channels(), 3, 1, 1, gen));
  // Drawn last, so every other parameter takes the same draws as in an unconditional model.
  if (config_.num_classes > 0) {
    class_embedding = make_class_embedding_table(config_.num_classes, config_.time_emb_dim, gen);
    register_parameter("class_embedding", &class_embedding);
  }
}

Tensor UNet::forward(const Tensor& x, const Tensor& t) { return forward_labelled(x, t, ClassLabelsRef{}); }

Tensor UNet::forward(const Tensor& x, const Tensor& t, const std::vector<std::int32_t>& labels) {
  return forward_labelled(x, t, ClassLabelsRef{&labels, nullptr});
}

Tensor UNet::forward(const Tensor& x, const Tensor& t, const RowIndex& labels) {
  return forward_labelled(x, t, ClassLabelsRef{nullptr, &labels});
}

Tensor UNet::forward_labelled(const Tensor& x, const Tensor& t, ClassLabelsRef labels) {
  FM_CHECK(config_.num_classes > 0 || labels.size() == 0, ConfigError, "UNet: this model is unconditional "
           "(model.num_classes = 0) but was given ", labels.size(), " class labels");
  FM_CHECK(x.defined() && x.dim() == 4 && x.size(1) == config_.in_channels, ShapeError, "UNet: input ",
           x.defined() ? shape_str(x.shape()) : "undefined", ", expected [N, ", config_.in_channels, ", H, W]");
  const std::int64_t multiple = std::int64_t(1) << config_.downsample_count();
  FM_CHECK(x.size(2) % multiple == 0 && x.size(3) % multiple == 0, ShapeError, "UNet: input ",
           shape_str(x.shape()), " has H×W = ", x.size(2), "×", x.size(3), ", which must be divisible by ",
           multiple, " (the image is halved ", config_.downsample_count(), " times and doubled back)");
  Tensor time = expand_time(t, x, "UNet");
  Tensor t_emb = t_proj->forward(time_embedding->forward(time));
  if (config_.num_classes > 0) t_emb = t_emb + class_embedding_rows(class_embedding, labels, x.size(0), "UNet");

  // bfloat16 activations: the image is rounded once on the way in; every layer after takes and gives
  // bfloat16 with its float32 parameters (the time embedding, added per block, is converted there).
  Tensor out = conv_in->forward(config_.bfloat16_activations ? x.to(DType::BFloat16) : x);
  std::vector<Tensor> skips;
  for (const auto& block : *downs) {
    skips.push_back(out);
    out = block->forward(out, t_emb);
  }
  for (const auto& block : *mids) out = block->forward(out, t_emb);
  for (const auto& block : *ups) {
    Tensor skip = skips.back();
    skips.pop_back();
    out = block->forward(out, skip, t_emb);
  }
  out = config_.fuse_group_norm_silu ? norm_out->forward_with_silu(out) : silu(norm_out->forward(out));
  return conv_out->forward(out).to(x.dtype());  // the velocity in the input's dtype
}

}  // namespace fm::nn
