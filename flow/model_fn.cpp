// flow/model_fn.cpp — from a network (x_t, t[N]) to a solver's v(x, t).
#include "flow/model_fn.h"

#include "core/error.h"

namespace fm::flow {

VelocityField velocity_field_from_model(ModelFn model, Parameterization output,
                                        std::shared_ptr<const AffineProbabilityPath> path) {
  FM_CHECK(static_cast<bool>(model), ValueError, "velocity_field_from_model: the model is empty");
  FM_CHECK(output == Parameterization::Velocity || path != nullptr, ValueError,
           "velocity_field_from_model: a model predicting ", parameterization_name(output),
           " needs a path to convert its output to a velocity");
  return [model = std::move(model), output, path = std::move(path)](const Tensor& x, double t) {
    FM_CHECK(x.dim() >= 1, ShapeError, "velocity_field_from_model: x has shape ",
             shape_str(x.shape()), ", expected [N, ...]");
    Tensor times = Tensor::full({x.size(0)}, t, x.dtype(), x.device());
    Tensor prediction = model(x, times);
    if (output == Parameterization::Velocity) return prediction;
    return path->convert(prediction, output, Parameterization::Velocity, x, t);
  };
}

}  // namespace fm::flow
