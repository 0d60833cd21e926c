// flow/guidance.h — classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion
// Guidance"; for flows: Zheng et al. 2023, "Guided Flows"): a class-conditional network, asked once
// with the wanted labels y and once with the null class ∅, combined into one prediction
//
//   p_w(x, t | y) = (1 + w)·p(x, t, y) − w·p(x, t, ∅)
//
// w = 0 is plain conditional sampling, w > 0 pushes samples towards what distinguishes class y from
// the unconditional data (higher fidelity to the class, less diversity).
//
// Sits in flow/ beside flow/model_fn.h: the result is an ordinary ModelFn (x_t, t[N]), so the solvers
// and velocity_field_from_model need not know about labels. Why batched: both branches run as ONE
// forward pass on the stacked batch [x; x] with labels [y; ∅] and times [t; t], then the output is
// split in halves. One call of twice the batch keeps the matrix products large (on a GPU one launch
// sequence instead of two; on the CPU the same FLOPs in bigger blocks), and the two branches see
// exactly the same x and t by construction.
//
// Which prediction is combined. A network may predict the velocity, x1 or x0 (flow/path.h). Every
// conversion to a velocity is affine in the prediction with coefficients that depend only on (x_t, t):
// v = a·x_t + b·p (flow/path.h's ConversionCoefficients). So, with (1 + w) − w = 1,
//   (1 + w)·(a·x_t + b·p_y) − w·(a·x_t + b·p_∅) = a·x_t + b·((1 + w)·p_y − w·p_∅):
// combining the predictions and then converting equals converting each and then combining (up to
// rounding). We combine first and convert once, in the one conversion place (velocity_field_from_model
// with the path): half the conversions, and guidance needs no knowledge of the parameterisation.
// tests/test_flow_guidance.cpp checks the identity on x1- and x0-predicting models.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "core/ops.h"
#include "core/tensor.h"
#include "flow/model_fn.h"
#include "flow/path.h"
#include "flow/solver.h"

namespace fm::flow {

// A class-conditional network's forward pass: x_t [N, ...], t [N] (or one element shared by the
// batch), labels (N class indices in a RowIndex on x_t's device, num_classes = the null class) → a
// prediction of x_t's shape. (nn::VelocityModel::forward(x, t, const RowIndex&) is one.)
using ConditionalModelFn = std::function<Tensor(const Tensor& x_t, const Tensor& t, const RowIndex& labels)>;

// (1 + w)·conditional − w·unconditional (same shapes). w = 0 returns `conditional` itself.
Tensor combine_guidance(const Tensor& conditional, const Tensor& unconditional, double weight);

// The labels a guided model reads, set by the host before each batch it samples: y itself for w = 0,
// [y; ∅] (the batch's labels, then as many null classes) otherwise, held on `device`.
// Why a buffer the host refills rather than labels fixed in the field: a chunked sampler runs one
// field over every chunk, and a solve recorded once as a graph (flow/captured_solve.h) reads the
// buffer it was recorded with at every replay. So there is one buffer per batch size, kept while the
// object lives and overwritten in place (one small copy queued on the stream, after the work that
// read the previous labels): the last, shorter chunk gets a buffer of its own and leaves the
// recorded one alone.
// ValueError for num_classes < 1 or a non-finite weight (construction), a label outside
// [0, num_classes] (set; the null class num_classes is allowed: that sample is then unconditional,
// whatever w), or batch_labels() before any set().
class GuidanceLabels {
 public:
  GuidanceLabels(double weight, int num_classes, Device device);
  void set(const std::vector<std::int32_t>& labels);  // the next batch's y (N labels)
  void check(const std::vector<std::int32_t>& labels) const;  // set()'s range check alone (labels up front)
  const RowIndex& batch_labels() const;                // N labels for w = 0, else 2N
  std::int64_t batch() const { return batch_; }        // N of the last set()
  double weight() const { return weight_; }
  int num_classes() const { return num_classes_; }
  Device device() const { return device_; }

 private:
  double weight_;
  int num_classes_;
  Device device_;
  std::map<std::int64_t, RowIndex> buffers_;  // by batch size N
  const RowIndex* current_ = nullptr;
  std::int64_t batch_ = 0;
};

// The guided ModelFn reading its labels from `labels` when called: x_t [N, ...] (N = labels->batch())
// runs `model` once on [x_t; x_t] with labels [y; ∅], times [t; t], and combines the halves. With
// weight 0 the null branch is skipped: one forward on x_t with y, returned unchanged (bitwise the
// conditional prediction, at half the cost). ValueError for an empty model or labels (construction);
// ShapeError when x_t's batch is not labels->batch() or the model's output is not twice x_t's shape,
// DeviceError when x_t is not on the labels' device (call).
ModelFn classifier_free_guidance(ConditionalModelFn model, std::shared_ptr<const GuidanceLabels> labels);
// The same for one fixed batch of labels (checked at construction), held on the device of the first x_t.
ModelFn classifier_free_guidance(ConditionalModelFn model, std::vector<std::int32_t> labels, double weight,
                                 int num_classes);

// The solver-facing field of a guided model: classifier_free_guidance, then velocity_field_from_model
// (which converts an x1 / x0 prediction to a velocity through `path`).
VelocityField guided_velocity_field(ConditionalModelFn model, std::shared_ptr<const GuidanceLabels> labels,
                                    Parameterization output = Parameterization::Velocity,
                                    std::shared_ptr<const AffineProbabilityPath> path = nullptr);
VelocityField guided_velocity_field(ConditionalModelFn model, std::vector<std::int32_t> labels, double weight,
                                    int num_classes, Parameterization output = Parameterization::Velocity,
                                    std::shared_ptr<const AffineProbabilityPath> path = nullptr);

}  // namespace fm::flow
