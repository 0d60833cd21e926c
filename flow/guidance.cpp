// flow/guidance.cpp — classifier-free guidance as a ModelFn (see guidance.h for the formula, why the
// two branches share one forward, and why the predictions are combined before any conversion).
#include "flow/guidance.h"

#include <cmath>
#include <utility>

#include "core/error.h"
#include "core/ops.h"

namespace fm::flow {

Tensor combine_guidance(const Tensor& conditional, const Tensor& unconditional, double weight) {
  if (weight == 0.0) return conditional;
  FM_CHECK(conditional.shape() == unconditional.shape(), ShapeError, "classifier-free guidance: conditional output ",
           shape_str(conditional.shape()), " and unconditional output ", shape_str(unconditional.shape()),
           " differ, expected the same shape");
  return conditional * (1.0 + weight) - unconditional * weight;
}

ModelFn classifier_free_guidance(ConditionalModelFn model, std::vector<std::int32_t> labels, double weight,
                                 int num_classes) {
  FM_CHECK(static_cast<bool>(model), ValueError, "classifier-free guidance: the model is empty");
  FM_CHECK(num_classes >= 1, ValueError, "classifier-free guidance: the model has ", num_classes,
           " classes, expected a class-conditional model (at least 1 class)");
  FM_CHECK(std::isfinite(weight), ValueError, "classifier-free guidance: weight ", weight, ", expected a finite number");
  for (std::size_t i = 0; i < labels.size(); ++i)
    FM_CHECK(labels[i] >= 0 && labels[i] <= num_classes, ValueError, "classifier-free guidance: label ", labels[i],
             " (sample ", i, ") out of range, expected 0..", num_classes - 1, " or the null class ", num_classes);
  return [model = std::move(model), labels = std::move(labels), weight, num_classes](const Tensor& x_t,
                                                                                    const Tensor& t) {
    const std::int64_t n = x_t.dim() >= 1 ? x_t.size(0) : -1;
    FM_CHECK(n == std::int64_t(labels.size()), ShapeError, "classifier-free guidance: x_t has shape ",
             shape_str(x_t.shape()), " but ", labels.size(), " labels were given, expected one label per sample");
    if (weight == 0.0) return model(x_t, t, labels);  // no null branch: exactly the conditional output
    // One forward on [x; x] with labels [y; ∅] (times [t; t], or the shared one-element t as is).
    std::vector<std::int32_t> both = labels;
    both.insert(both.end(), labels.size(), num_classes);
    const Tensor times = t.numel() == 1 && n != 1 ? t : concat({t, t}, 0);
    const Tensor out = model(concat({x_t, x_t}, 0), times, both);
    Shape expected = x_t.shape();
    expected[0] = 2 * n;
    FM_CHECK(out.shape() == expected, ShapeError, "classifier-free guidance: the model returned ",
             shape_str(out.shape()), " for the stacked batch, expected ", shape_str(expected));
    return combine_guidance(out.narrow(0, 0, n), out.narrow(0, n, n), weight);
  };
}

VelocityField guided_velocity_field(ConditionalModelFn model, std::vector<std::int32_t> labels, double weight,
                                    int num_classes, Parameterization output,
                                    std::shared_ptr<const AffineProbabilityPath> path) {
  return velocity_field_from_model(classifier_free_guidance(std::move(model), std::move(labels), weight, num_classes),
                                   output, std::move(path));
}

}  // namespace fm::flow
