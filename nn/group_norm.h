// nn/group_norm.h — GroupNorm (Wu & He 2018; torch.nn.GroupNorm) with an affine weight (ones) and
// bias (zeros) per channel.
//
// Layer: nn/ (uses core/ only). forward() is fm::group_norm; forward_with_silu() is
// silu(group_norm(x)), run as the fused fm::group_norm_silu op — every U-Net residual branch starts
// with GroupNorm → SiLU, and fusing saves a full read and write of the activation. Sequential picks
// the fused path automatically when a SiLU follows (nn/module.h).
#pragma once
#include "nn/module.h"

namespace fm::nn {

class GroupNorm : public Layer {
 public:
  // PyTorch's default eps is 1e-5.
  GroupNorm(int groups, int channels, double eps = 1e-5);
  Tensor forward(const Tensor& x) override;  // x [N, C, *]
  bool has_fused_silu() const override { return true; }
  Tensor forward_with_silu(const Tensor& x) override;

  int groups() const { return groups_; }
  int channels() const { return channels_; }
  Tensor weight, bias;

 private:
  void check_input(const Tensor& x) const;
  int groups_, channels_;
  double eps_;
};

}  // namespace fm::nn
