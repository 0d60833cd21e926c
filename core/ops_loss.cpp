// core/ops_loss.cpp — loss functions built from the primitive ops (their gradients come for free).
#include "core/ops.h"
#include "core/tensor_internal.h"

namespace fm {

Tensor mse_loss(const Tensor& prediction, const Tensor& target) {
  internal::check_same_dtype_device("mse_loss", {&prediction, &target});
  FM_CHECK(prediction.shape() == target.shape(), ShapeError, "mse_loss: prediction ",
           shape_str(prediction.shape()), " and target ", shape_str(target.shape()), " differ");
  return mean(square(sub(prediction, target)));
}

}  // namespace fm
