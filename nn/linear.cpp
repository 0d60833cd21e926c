// nn/linear.cpp — Linear layer (see linear.h).
#include "nn/linear.h"

#include "core/ops.h"
#include "nn/init.h"

namespace fm::nn {

Linear::Linear(std::int64_t in_features, std::int64_t out_features, Generator& gen, bool with_bias)
    : Layer("Linear"), in_features_(in_features), out_features_(out_features) {
  FM_CHECK(in_features > 0 && out_features > 0, ValueError, "Linear: sizes must be positive, got ",
           in_features, " -> ", out_features);
  // Weight first, then bias: the same draw order as torch.nn.Linear.reset_parameters().
  weight = init::default_weight({out_features, in_features}, gen);
  register_parameter("weight", &weight);
  if (with_bias) {
    bias = init::default_bias(out_features, in_features, gen);
    register_parameter("bias", &bias);
  }
}

Tensor Linear::forward(const Tensor& x) {
  FM_CHECK(x.dim() >= 2 && x.size(-1) == in_features_, ShapeError, "Linear(", in_features_, " -> ",
           out_features_, "): input ", shape_str(x.shape()), ", expected [..., ", in_features_, "]");
  return linear(x, weight, bias);
}

}  // namespace fm::nn
