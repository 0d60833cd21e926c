// flow/model_fn.h — a trained network as flow/ sees it (ModelFn: a plain function of (x_t, t[N])),
// and the adapter that turns it into the VelocityField the ODE solvers integrate.
//
// Sits in flow/ between nn/ (the networks, nn::VelocityModel, which take (x_t, t[N])) and
// flow/solver.h (which wants v(x, t) with one scalar t for the whole batch). A ModelFn is a callable,
// not a Module: the loss and the solvers need only the forward pass, so tests can pass a lambda.
#pragma once
#include <functional>
#include <memory>

#include "core/tensor.h"
#include "flow/path.h"
#include "flow/solver.h"

namespace fm::flow {

// A model's forward pass: state x_t [N, ...] and times t [N] (x_t's dtype and device) → output of
// x_t's shape (a velocity, or an x1/x0 prediction; see velocity_field_from_model).
using ModelFn = std::function<Tensor(const Tensor& x_t, const Tensor& t)>;

// The solver-facing field of a model: t becomes a [N] tensor filled with the solver's time (x's
// dtype and device). A model trained to predict x1 (data) or x0 (noise) is converted to a velocity
// through `path` (required then; flow/path.h's conversions, which clamp t near the ends).
VelocityField velocity_field_from_model(ModelFn model, Parameterization output = Parameterization::Velocity,
                                        std::shared_ptr<const AffineProbabilityPath> path = nullptr);

}  // namespace fm::flow
