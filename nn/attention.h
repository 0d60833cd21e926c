// nn/attention.h — multi-head self-attention, equivalent to torch.nn.MultiheadAttention(E, H,
// batch_first=True) called with query = key = value (Vaswani et al. 2017, "Attention is all you need").
//
// Layer: nn/ (uses core/ only). Parameters and names match PyTorch's module, so weights transfer:
//   in_proj_weight [3E, E] (rows: W_q, W_k, W_v), in_proj_bias [3E], out_proj.weight [E, E], out_proj.bias [E]
// forward(x [B, L, E]):  [q k v] = x·W_inᵀ + b_in, split into H heads of D = E/H →
//   fm::scaled_dot_product_attention_packed on [3, B, H, L, D] (softmax(q·kᵀ/√D)·v for the stacked q, k, v)
//   → merge heads → out_proj.
// No dropout and no mask: the U-Net attends over all H·W pixels of a feature map.
#pragma once
#include <memory>

#include "core/random.h"
#include "nn/linear.h"
#include "nn/module.h"

namespace fm::nn {

class MultiheadSelfAttention : public Layer {
 public:
  MultiheadSelfAttention(int embed_dim, int num_heads, Generator& gen);
  Tensor forward(const Tensor& x) override;  // [B, L, E] → [B, L, E]

  int embed_dim() const { return embed_dim_; }
  int num_heads() const { return num_heads_; }
  Tensor in_proj_weight, in_proj_bias;
  std::shared_ptr<Linear> out_proj;

 private:
  int embed_dim_, num_heads_;
};

}  // namespace fm::nn
