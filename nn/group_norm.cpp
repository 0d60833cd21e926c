// nn/group_norm.cpp — GroupNorm layer (see group_norm.h).
#include "nn/group_norm.h"

#include "core/ops_nn.h"

namespace fm::nn {

GroupNorm::GroupNorm(int groups, int channels, double eps)
    : Layer("GroupNorm"), groups_(groups), channels_(channels), eps_(eps) {
  FM_CHECK(groups > 0 && channels > 0 && channels % groups == 0, ValueError, "GroupNorm: ",
           channels, " channels cannot be split into ", groups,
           " groups (channels must be a positive multiple of groups)");
  FM_CHECK(eps > 0, ValueError, "GroupNorm: eps must be positive, got ", eps);
  weight = Tensor::ones({channels});  // torch.nn.GroupNorm.reset_parameters: ones / zeros
  bias = Tensor::zeros({channels});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

void GroupNorm::check_input(const Tensor& x) const {
  FM_CHECK(x.defined() && x.dim() >= 2 && x.size(1) == channels_, ShapeError, "GroupNorm(",
           groups_, ", ", channels_, "): input ", x.defined() ? shape_str(x.shape()) : "undefined",
           ", expected [N, ", channels_, ", ...]");
}

Tensor GroupNorm::forward(const Tensor& x) {
  check_input(x);
  return group_norm(x, groups_, weight, bias, eps_);
}

Tensor GroupNorm::forward_with_silu(const Tensor& x) {
  check_input(x);
  return group_norm_silu(x, groups_, weight, bias, eps_);
}

}  // namespace fm::nn
