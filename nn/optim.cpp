// nn/optim.cpp — SGD, Adam, AdamW, clip_grad_norm (see optim.h for the formulas).
#include "nn/optim.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/autograd.h"
#include "core/ops.h"

namespace fm::nn {

// ---------------------------------------------------------------- Optimizer
Optimizer::Optimizer(Module& module) : lr_(0) {
  Module* source = &module;
  parameter_source_ = [source] { return source->named_parameters(); };
}

Optimizer::Optimizer(std::vector<NamedTensor> parameters) : lr_(0) {
  std::set<std::string> names;
  for (const auto& [name, tensor] : parameters) {
    FM_CHECK(tensor.defined() && tensor.is_leaf(), ValueError, "optimizer: parameter '", name,
             "' must be a defined leaf tensor");
    FM_CHECK(names.insert(name).second, ValueError, "optimizer: parameter name '", name, "' appears twice");
  }
  parameter_source_ = [parameters] { return parameters; };
}

std::vector<NamedTensor> Optimizer::current_parameters() const { return parameter_source_(); }

void Optimizer::set_lr(double lr) {
  FM_CHECK(std::isfinite(lr) && lr >= 0, ValueError, "optimizer: learning rate must be finite and >= 0, got ", lr);
  lr_ = lr;
}

void Optimizer::zero_grad() {
  for (auto& [name, tensor] : current_parameters()) tensor.zero_grad();
}

std::map<std::string, std::map<std::string, Tensor>> Optimizer::split_state(
    const StateDict& state, const std::vector<std::string>& tensor_fields,
    const std::vector<std::string>& scalar_fields, const char* who) const {
  std::map<std::string, Tensor> parameters;
  for (const auto& [name, tensor] : current_parameters()) parameters[name] = tensor;
  std::map<std::string, std::map<std::string, Tensor>> split;
  for (const auto& [key, tensor] : state) {
    std::size_t dot = key.rfind('.');
    std::string name = dot == std::string::npos ? "" : key.substr(0, dot);
    std::string field = dot == std::string::npos ? key : key.substr(dot + 1);
    bool is_tensor_field = std::find(tensor_fields.begin(), tensor_fields.end(), field) != tensor_fields.end();
    bool is_scalar_field = std::find(scalar_fields.begin(), scalar_fields.end(), field) != scalar_fields.end();
    FM_CHECK(is_tensor_field || is_scalar_field, ValueError, who, ".load_state_dict: unexpected key '", key,
             "' (unknown field '", field, "')");
    auto parameter = parameters.find(name);
    FM_CHECK(parameter != parameters.end(), ValueError, who, ".load_state_dict: unexpected key '", key,
             "' (no parameter called '", name, "')");
    FM_CHECK(tensor.defined(), ValueError, who, ".load_state_dict: key '", key, "' holds an undefined tensor");
    Shape expected = is_tensor_field ? parameter->second.shape() : Shape{};
    FM_CHECK(tensor.shape() == expected || (is_scalar_field && tensor.numel() == 1), ValueError, who,
             ".load_state_dict: key '", key, "' has shape ", shape_str(tensor.shape()), " but ",
             shape_str(expected), " is expected");
    split[name][field] = tensor;
  }
  const std::size_t field_count = tensor_fields.size() + scalar_fields.size();
  for (const auto& [name, fields] : split) {
    if (fields.size() == field_count) continue;
    for (const auto* list : {&tensor_fields, &scalar_fields})
      for (const auto& field : *list)
        FM_CHECK(fields.count(field), ValueError, who, ".load_state_dict: missing key '", name, ".", field,
                 "' (the other state of parameter '", name, "' is present)");
  }
  return split;
}

namespace {

// A private copy of a loaded state tensor on the parameter's device and dtype.
Tensor copy_like(const Tensor& source, const Tensor& parameter) {
  Tensor out = Tensor::empty(parameter.shape(), parameter.dtype(), parameter.device());
  out.copy_(source.reshape(parameter.shape()));
  return out;
}

// A private copy for export (later steps must not change an exported state dict).
Tensor snapshot(const Tensor& t) {
  NoGradGuard no_grad;
  return t.detach().clone();
}

}  // namespace

// ---------------------------------------------------------------- SGD
SGD::SGD(Module& module, SGDOptions options) : Optimizer(module), options_(options) { check_options(); }
SGD::SGD(std::vector<NamedTensor> parameters, SGDOptions options)
    : Optimizer(std::move(parameters)), options_(options) {
  check_options();
}

void SGD::check_options() {
  set_lr(options_.lr);
  FM_CHECK(options_.momentum >= 0 && options_.dampening >= 0 && options_.weight_decay >= 0, ValueError,
           "SGD: momentum, dampening and weight_decay must be >= 0, got ", options_.momentum, ", ",
           options_.dampening, ", ", options_.weight_decay);
  FM_CHECK(!options_.nesterov || (options_.momentum > 0 && options_.dampening == 0), ValueError,
           "SGD: Nesterov momentum needs momentum > 0 and dampening 0");
}

void SGD::step() {
  NoGradGuard no_grad;
  for (auto& [name, parameter] : current_parameters()) {
    Tensor grad = parameter.grad();
    if (!grad.defined()) continue;
    Tensor value = parameter.detach();
    if (options_.weight_decay != 0) grad = grad + value * options_.weight_decay;
    if (options_.momentum != 0) {
      auto found = momentum_buffers_.find(name);
      Tensor buffer;
      if (found == momentum_buffers_.end())
        buffer = grad.clone();  // PyTorch: the first buffer is the gradient itself
      else
        buffer = found->second * options_.momentum + grad * (1.0 - options_.dampening);
      momentum_buffers_[name] = buffer;
      grad = options_.nesterov ? grad + buffer * options_.momentum : buffer;
    }
    parameter.copy_(value - grad * lr_);
  }
}

StateDict SGD::state_dict() const {
  StateDict state;
  for (const auto& [name, buffer] : momentum_buffers_) state[name + ".momentum_buffer"] = snapshot(buffer);
  return state;
}

void SGD::load_state_dict(const StateDict& state) {
  auto split = split_state(state, {"momentum_buffer"}, {}, "SGD");
  std::map<std::string, Tensor> parameters;
  for (const auto& [name, tensor] : current_parameters()) parameters[name] = tensor;
  std::map<std::string, Tensor> loaded;
  for (const auto& [name, fields] : split) loaded[name] = copy_like(fields.at("momentum_buffer"), parameters.at(name));
  momentum_buffers_ = std::move(loaded);
}

// ---------------------------------------------------------------- Adam / AdamW
Adam::Adam(Module& module, AdamOptions options) : Optimizer(module), options_(options) { check_options(); }
Adam::Adam(std::vector<NamedTensor> parameters, AdamOptions options)
    : Optimizer(std::move(parameters)), options_(options) {
  check_options();
}

void Adam::check_options() {
  set_lr(options_.lr);
  FM_CHECK(options_.beta1 >= 0 && options_.beta1 < 1 && options_.beta2 >= 0 && options_.beta2 < 1, ValueError,
           "Adam: betas must lie in [0, 1), got ", options_.beta1, ", ", options_.beta2);
  FM_CHECK(options_.eps >= 0 && options_.weight_decay >= 0, ValueError,
           "Adam: eps and weight_decay must be >= 0, got ", options_.eps, ", ", options_.weight_decay);
}

void Adam::step() {
  NoGradGuard no_grad;
  const double beta1 = options_.beta1, beta2 = options_.beta2, eps = options_.eps;
  const double weight_decay = options_.weight_decay;
  for (auto& [name, parameter] : current_parameters()) {
    Tensor grad = parameter.grad();
    if (!grad.defined()) continue;
    Tensor value = parameter.detach();
    ParameterState& state = state_[name];
    if (!state.exp_avg.defined()) {
      state.exp_avg = Tensor::zeros(value.shape(), value.dtype(), value.device());
      state.exp_avg_sq = Tensor::zeros(value.shape(), value.dtype(), value.device());
    }
    if (weight_decay != 0) {
      if (decoupled_weight_decay_)
        value = value * (1.0 - lr_ * weight_decay);  // AdamW: shrink θ itself, outside the moments
      else
        grad = grad + value * weight_decay;  // Adam: L2 through the gradient
    }
    state.step += 1;
    state.exp_avg = state.exp_avg + (grad - state.exp_avg) * (1.0 - beta1);  // torch: lerp_(g, 1 − β1)
    state.exp_avg_sq = state.exp_avg_sq * beta2 + (grad * grad) * (1.0 - beta2);
    const double bias_correction1 = 1.0 - std::pow(beta1, double(state.step));
    const double bias_correction2 = 1.0 - std::pow(beta2, double(state.step));
    const double step_size = lr_ / bias_correction1;
    Tensor denominator = sqrt(state.exp_avg_sq) / std::sqrt(bias_correction2) + eps;
    parameter.copy_(value + (state.exp_avg / denominator) * (-step_size));
  }
}

StateDict Adam::state_dict() const {
  StateDict state;
  for (const auto& [name, s] : state_) {
    if (!s.exp_avg.defined()) continue;
    state[name + ".exp_avg"] = snapshot(s.exp_avg);
    state[name + ".exp_avg_sq"] = snapshot(s.exp_avg_sq);
    state[name + ".step"] = Tensor::scalar(double(s.step), DType::Float64);
  }
  return state;
}

void Adam::load_state_dict(const StateDict& state) {
  auto split = split_state(state, {"exp_avg", "exp_avg_sq"}, {"step"}, decoupled_weight_decay_ ? "AdamW" : "Adam");
  std::map<std::string, Tensor> parameters;
  for (const auto& [name, tensor] : current_parameters()) parameters[name] = tensor;
  std::map<std::string, ParameterState> loaded;
  for (const auto& [name, fields] : split) {
    double step = fields.at("step").item();
    FM_CHECK(std::isfinite(step) && step >= 0 && step == std::floor(step), ValueError,
             "Adam.load_state_dict: key '", name, ".step' holds ", step, ", expected a non-negative whole number");
    ParameterState s;
    s.exp_avg = copy_like(fields.at("exp_avg"), parameters.at(name));
    s.exp_avg_sq = copy_like(fields.at("exp_avg_sq"), parameters.at(name));
    s.step = std::int64_t(step);
    loaded[name] = s;
  }
  state_ = std::move(loaded);
}

AdamW::AdamW(Module& module, AdamOptions options) : Adam(module, options) { decoupled_weight_decay_ = true; }
AdamW::AdamW(std::vector<NamedTensor> parameters, AdamOptions options) : Adam(std::move(parameters), options) {
  decoupled_weight_decay_ = true;
}

// ---------------------------------------------------------------- clipping
double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm) {
  FM_CHECK(max_norm > 0, ValueError, "clip_grad_norm: max_norm must be positive, got ", max_norm);
  NoGradGuard no_grad;
  // Sum of squares on the gradients' device, one host read at the end (not one per parameter).
  Tensor total_squares;
  for (const Tensor& parameter : parameters) {
    Tensor grad = parameter.grad();
    if (!grad.defined()) continue;
    Tensor squares = sum(square(grad));
    if (total_squares.defined() && squares.dtype() != total_squares.dtype()) squares = squares.to(total_squares.dtype());
    total_squares = total_squares.defined() ? total_squares + squares : squares;
  }
  if (!total_squares.defined()) return 0.0;
  const double norm = std::sqrt(total_squares.item());
  if (!std::isfinite(norm)) return norm;
  const double coefficient = max_norm / (norm + 1e-6);
  if (coefficient < 1.0)
    for (const Tensor& parameter : parameters) {
      Tensor grad = parameter.grad();
      if (grad.defined()) parameter.set_grad(grad * coefficient);
    }
  return norm;
}

double clip_grad_norm(Module& module, double max_norm) { return clip_grad_norm(module.parameters(), max_norm); }

}  // namespace fm::nn
