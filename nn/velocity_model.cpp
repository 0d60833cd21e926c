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

Tensor VelocityModel::forward(const Tensor& x, const Tensor& t, const RowIndex& labels) {
  // The labels read back to the host. While a graph is recorded that read is refused (DeviceError),
  // so a recorded training step or solve that tries this falls back to eager ones (flow/trainer.cpp,
  // flow/captured_solve.cpp); eagerly it costs one copy and a wait.
  return forward(x, t, labels.to_vector());
}

}  // namespace fm::nn
