// nn/attention.cpp — multi-head self-attention (see attention.h).
#include "nn/attention.h"

#include "core/ops.h"
#include "core/ops_nn.h"
#include "nn/init.h"

namespace fm::nn {

MultiheadSelfAttention::MultiheadSelfAttention(int embed_dim, int num_heads, Generator& gen)
    : Layer("MultiheadSelfAttention"), embed_dim_(embed_dim), num_heads_(num_heads) {
  FM_CHECK(embed_dim > 0 && num_heads > 0 && embed_dim % num_heads == 0, ValueError,
           "MultiheadSelfAttention: embed_dim ", embed_dim, " is not divisible by num_heads ",
           num_heads, " (each head gets embed_dim / num_heads channels)");
  // torch.nn.MultiheadAttention builds out_proj (a default-initialised Linear) first, then resets:
  // Xavier-uniform in-projection, zero in-projection bias, zero out_proj bias. Same draw order here.
  out_proj = std::make_shared<Linear>(embed_dim, embed_dim, gen);
  in_proj_weight = init::xavier_uniform({3 * std::int64_t(embed_dim), embed_dim}, gen);
  in_proj_bias = Tensor::zeros({3 * std::int64_t(embed_dim)});
  out_proj->bias.zero_();
  register_parameter("in_proj_weight", &in_proj_weight);
  register_parameter("in_proj_bias", &in_proj_bias);
  register_module("out_proj", out_proj);
}

Tensor MultiheadSelfAttention::forward(const Tensor& x) {
  FM_CHECK(x.defined() && x.dim() == 3 && x.size(2) == embed_dim_, ShapeError,
           "MultiheadSelfAttention(E=", embed_dim_, ", heads=", num_heads_, "): input ",
           x.defined() ? shape_str(x.shape()) : "undefined", ", expected [batch, tokens, ", embed_dim_, "]");
  const std::int64_t batch = x.size(0), tokens = x.size(1);
  const std::int64_t head_dim = embed_dim_ / num_heads_;
  Tensor qkv = linear(x, in_proj_weight, in_proj_bias);  // [B, L, 3E]
  // [B, L, 3, H, D] → [3, B, H, L, D]: one copy, after which q, k and v are contiguous slices,
  // handed to the attention as one tensor (its backward then writes one gradient, slice by slice).
  Tensor heads = qkv.reshape({batch, tokens, 3, num_heads_, head_dim}).permute({2, 0, 3, 1, 4}).contiguous();
  Tensor attended = scaled_dot_product_attention_packed(heads);  // [B, H, L, D], x's dtype
  Tensor merged = attended.permute({0, 2, 1, 3}).reshape({batch, tokens, std::int64_t(embed_dim_)});
  return out_proj->forward(merged);
}

}  // namespace fm::nn
