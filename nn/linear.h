// nn/linear.h — the fully connected layer y = x·Wᵀ + b (torch.nn.Linear).
//
// Layer: nn/ (uses core/ only). Weight [out, in], bias [out], PyTorch default initialisation
// (nn/init.h). The product itself is core's linear() (core/ops.h), which the attention block's
// packed in-projection also calls.
#pragma once
#include <cstdint>

#include "core/random.h"
#include "nn/module.h"

namespace fm::nn {

class Linear : public Layer {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, Generator& gen, bool bias = true);
  Tensor forward(const Tensor& x) override;

  std::int64_t in_features() const { return in_features_; }
  std::int64_t out_features() const { return out_features_; }
  Tensor weight, bias;  // bias is undefined when built without one

 private:
  std::int64_t in_features_, out_features_;
};

}  // namespace fm::nn
