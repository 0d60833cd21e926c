// nn/velocity_model.cpp — time-argument normalisation shared by the velocity models.
#include "nn/velocity_model.h"

namespace fm::nn {

Tensor expand_time(const Tensor& t, const Tensor& x, const char* who) {
  FM_CHECK(t.defined() && x.defined() && x.dim() >= 1, ShapeError, who, ": x and t must be defined and x needs a batch dim");
  FM_CHECK(t.dtype() == x.dtype() && t.device() == x.device(), DTypeError, who, ": t is ", t.describe(),
           " but x is ", x.describe(), "; they must share dtype and device");
  const std::int64_t batch = x.size(0);
  if (t.numel() == 1 && t.dim() <= 1) return t.reshape({1}).expand({batch});
  if (t.dim() == 1 && t.size(0) == batch) return t;
  if (t.dim() == 2 && t.size(0) == batch && t.size(1) == 1) return t.reshape({batch});
  throw ShapeError(cat(who, ": t has shape ", shape_str(t.shape()), ", expected [", batch, "], [",
                       batch, ", 1], [1] or [] for a batch of ", batch));
}

Tensor VelocityModel::forward(const Tensor& x, const Tensor& t, const std::vector<std::int32_t>& labels) {
  FM_CHECK(labels.empty(), ConfigError, "this model is unconditional (model.num_classes = 0) but was given ",
           labels.size(), " class labels");
  return forward(x, t);
}

Tensor VelocityModel::forward(const Tensor&, const Tensor&, const RowIndex& labels) {
  // DeviceError: a recorded training step that tries this falls back to eager steps (flow/trainer.cpp).
  throw DeviceError(cat("this model takes its class labels from the host only (model.num_classes = ", num_classes(),
                        "), not ", labels.size(), " labels from the device"));
}

}  // namespace fm::nn
