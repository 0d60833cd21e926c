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

GuidanceLabels::GuidanceLabels(double weight, int num_classes, Device device)
    : weight_(weight), num_classes_(num_classes), device_(device) {
  FM_CHECK(num_classes >= 1, ValueError, "classifier-free guidance: the model has ", num_classes,
           " classes, expected a class-conditional model (at least 1 class)");
  FM_CHECK(std::isfinite(weight), ValueError, "classifier-free guidance: weight ", weight, ", expected a finite number");
}

void GuidanceLabels::check(const std::vector<std::int32_t>& labels) const {
  for (std::size_t i = 0; i < labels.size(); ++i)
    FM_CHECK(labels[i] >= 0 && labels[i] <= num_classes_, ValueError, "classifier-free guidance: label ", labels[i],
             " (sample ", i, ") out of range, expected 0..", num_classes_ - 1, " or the null class ", num_classes_);
}

void GuidanceLabels::set(const std::vector<std::int32_t>& labels) {
  check(labels);
  std::vector<std::int32_t> both = labels;
  if (weight_ != 0.0) both.insert(both.end(), labels.size(), num_classes_);  // [y; ∅]
  const std::int64_t n = std::int64_t(labels.size());
  auto found = buffers_.find(n);
  if (found == buffers_.end())
    found = buffers_.emplace(n, RowIndex(both, num_classes_ + 1, device_)).first;
  else
    found->second.overwrite(both);
  current_ = &found->second;
  batch_ = n;
}

const RowIndex& GuidanceLabels::batch_labels() const {
  FM_CHECK(current_ != nullptr, ValueError, "classifier-free guidance: no labels were set for the batch");
  return *current_;
}

ModelFn classifier_free_guidance(ConditionalModelFn model, std::shared_ptr<const GuidanceLabels> labels) {
  FM_CHECK(static_cast<bool>(model), ValueError, "classifier-free guidance: the model is empty");
  FM_CHECK(labels != nullptr, ValueError, "classifier-free guidance: no labels");
  return [model = std::move(model), labels = std::move(labels)](const Tensor& x_t, const Tensor& t) {
    const std::int64_t n = x_t.dim() >= 1 ? x_t.size(0) : -1;
    FM_CHECK(n == labels->batch(), ShapeError, "classifier-free guidance: x_t has shape ", shape_str(x_t.shape()),
             " but ", labels->batch(), " labels were given, expected one label per sample");
    FM_CHECK(x_t.device() == labels->device(), DeviceError, "classifier-free guidance: x_t is ", x_t.describe(),
             " but the labels are on ", device_name(labels->device()), " (expected one device)");
    const double weight = labels->weight();
    if (weight == 0.0) return model(x_t, t, labels->batch_labels());  // no null branch: the conditional output
    // One forward on [x; x] with labels [y; ∅] (times [t; t], or the shared one-element t as is).
    const Tensor times = t.numel() == 1 && n != 1 ? t : concat({t, t}, 0);
    const Tensor out = model(concat({x_t, x_t}, 0), times, labels->batch_labels());
    Shape expected = x_t.shape();
    expected[0] = 2 * n;
    FM_CHECK(out.shape() == expected, ShapeError, "classifier-free guidance: the model returned ",
             shape_str(out.shape()), " for the stacked batch, expected ", shape_str(expected));
    return combine_guidance(out.narrow(0, 0, n), out.narrow(0, n, n), weight);
  };
}

ModelFn classifier_free_guidance(ConditionalModelFn model, std::vector<std::int32_t> labels, double weight,
                                 int num_classes) {
  FM_CHECK(static_cast<bool>(model), ValueError, "classifier-free guidance: the model is empty");
  // Checked now on the host; held on the device of the first x_t (made again if a call moves devices).
  struct Held {
    ConditionalModelFn model;
    std::vector<std::int32_t> labels;
    std::shared_ptr<GuidanceLabels> buffer;
    ModelFn guided;
  };
  auto held = std::make_shared<Held>();
  held->buffer = std::make_shared<GuidanceLabels>(weight, num_classes, Device::CPU);
  held->buffer->set(labels);
  held->guided = classifier_free_guidance(model, held->buffer);
  held->model = std::move(model);
  held->labels = std::move(labels);
  return [held](const Tensor& x_t, const Tensor& t) {
    if (x_t.defined() && x_t.device() != held->buffer->device()) {
      held->buffer = std::make_shared<GuidanceLabels>(held->buffer->weight(), held->buffer->num_classes(), x_t.device());
      held->buffer->set(held->labels);
      held->guided = classifier_free_guidance(held->model, held->buffer);
    }
    return held->guided(x_t, t);
  };
}

VelocityField guided_velocity_field(ConditionalModelFn model, std::shared_ptr<const GuidanceLabels> labels,
                                    Parameterization output, std::shared_ptr<const AffineProbabilityPath> path) {
  return velocity_field_from_model(classifier_free_guidance(std::move(model), std::move(labels)), output,
                                   std::move(path));
}

VelocityField guided_velocity_field(ConditionalModelFn model, std::vector<std::int32_t> labels, double weight,
                                    int num_classes, Parameterization output,
                                    std::shared_ptr<const AffineProbabilityPath> path) {
  return velocity_field_from_model(classifier_free_guidance(std::move(model), std::move(labels), weight, num_classes),
                                   output, std::move(path));
}

}  // namespace fm::flow
