// core/ops_nn.h — the image and sequence ops the U-Net stands on, as differentiable Tensor ops.
//
// Layouts follow PyTorch: images NCHW; conv weight [out, in, kh, kw]; transposed-conv weight
// [in, out, kh, kw]; attention tensors [batch, heads, tokens, head_dim]. On CUDA each op runs either
// the project's own kernels or the library (cuDNN / cuBLAS), chosen at run time (core/kernel_choice.h).
#pragma once
#include <cstdint>
#include <vector>

#include "core/ops.h"
#include "core/tensor.h"

namespace fm {

// bias may be an undefined Tensor (no bias).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int stride, int padding);
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int stride,
                        int padding);

// GroupNorm over [N, C, *] (any trailing spatial dims), affine weight/bias of shape [C].
Tensor group_norm(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias, double eps);
// silu(group_norm(x)) in one pass (the U-Net's "GroupNorm → SiLU" pair).
Tensor group_norm_silu(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias,
                       double eps);

// softmax(q·kᵀ / √head_dim)·v over [B, H, L, D] tensors.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v);
// The same with q, k, v stacked in one [3, B, H, L, D] tensor (an attention layer's split
// projection): the same values, and one [3, B, H, L, D] gradient written slice by slice, where
// three narrow()s would each make a zero-filled one that backward() then sums.
Tensor scaled_dot_product_attention_packed(const Tensor& qkv);

// Rows indices[i] of table [rows, dim] stacked into [indices.size(), dim]; differentiable in the
// table. Every index must lie in [0, rows).
Tensor embedding(const Tensor& table, const std::vector<std::int32_t>& indices);
// embedding() with indices already where the table is (a RowIndex, core/ops.h; checked when it was made
// or overwritten against at most the table's rows): nothing is copied from the host, so a recorded
// training step looks up each step's labels from one buffer that the host refills between replays.
Tensor embedding_by_index(const Tensor& table, const RowIndex& indices);

// Mean cross-entropy of logits [N, classes] against integer labels (one per row).
Tensor cross_entropy(const Tensor& logits, const std::vector<std::int32_t>& labels);

}  // namespace fm
