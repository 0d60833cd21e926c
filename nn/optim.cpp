// nn/optim.cpp — SGD, Adam, AdamW, clip_grad_norm (see optim.h for the formulas).
#include "nn/optim.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops_optim.h"
#include "nn/ema.h"

namespace fm::nn {

// ---------------------------------------------------------------- Optimizer
Optimizer::Optimizer(Module& module) : lr_(0), module_(&module) {
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

// Σ over the parameters with a gradient of sum(square(grad)), added as tensors in parameter order:
// the norm clip_grad_norm has always computed. Undefined when no parameter has a gradient.
Tensor sum_of_squares_by_tensor_ops(const std::vector<Tensor>& parameters) {
  NoGradGuard no_grad;
  Tensor total_squares;
  for (const Tensor& parameter : parameters) {
    Tensor grad = parameter.grad();
    if (!grad.defined()) continue;
    Tensor squares = sum(square(grad));
    if (total_squares.defined() && squares.dtype() != total_squares.dtype()) squares = squares.to(total_squares.dtype());
    total_squares = total_squares.defined() ? total_squares + squares : squares;
  }
  return total_squares;
}

// Calls fm::fused_step once per run of consecutive parameters with equal group_of(k) (parameters
// without a gradient, or at another Adam step count, need other scalars). Usually one run: the
// whole model in one pass.
template <typename GroupOf, typename HyperparametersOf>
void fused_step_by_runs(const FlatParameters& layout, const FusedStepBuffers& buffers, GroupOf group_of,
                        HyperparametersOf hyperparameters_of) {
  std::size_t k = 0;
  while (k < layout.size()) {
    const auto group = group_of(k);
    std::size_t end = k + 1;
    while (end < layout.size() && group_of(end) == group) ++end;
    const std::int64_t begin = layout.offset(k);
    fused_step(buffers, begin, layout.offset(end - 1) + layout.numel(end - 1) - begin, hyperparameters_of(k));
    k = end;
  }
}

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

// ---------------------------------------------------------------- the fused step
const FlatParameters* Optimizer::fused_layout() const {
  const FlatParameters* layout = module_ ? module_->flat_parameters() : nullptr;
  if (layout && !layout->gradients_home()) layout->move_gradients_home();
  return layout;
}

void Optimizer::set_extras(const FusedExtras& extras, FusedStepHyperparameters& hyper, FusedStepBuffers& buffers) {
  buffers.per_step = extras.per_step;
  hyper.clip = extras.clip;
  hyper.clip_scale = extras.clip_scale;
  if (extras.clip_sum_of_squares.defined()) {
    hyper.clip_on_device = true;
    hyper.clip_max_norm = extras.clip_max_norm;
    buffers.clip_sum_of_squares = extras.clip_sum_of_squares;
  }
}

double GradNorm::value() const {
  // √ in double of the float sum, as clip_grad_norm computes it from item().
  return sum_of_squares_.defined() ? std::sqrt(sum_of_squares_.item()) : host_value_;
}

int GradNorm::queue(HostReadback& readback) const {
  return sum_of_squares_.defined() ? readback.add(sum_of_squares_) : readback.add_doubles(&host_value_, 1, false);
}

double GradNorm::value_in(const HostReadback& readback, int region) const {
  const double read = readback.value(region);
  return sum_of_squares_.defined() ? std::sqrt(read) : read;  // value()'s arithmetic on the same bits
}

double Optimizer::clip_step_and_update_ema(Module& model, double max_norm, EMA* ema) {
  return clip_step_and_update_ema_async(model, max_norm, ema).value();
}

bool Optimizer::step_scalars_ahead(const Module& model, const EMA* ema, std::int64_t ahead, double lr,
                                   StepScalars& row) const {
  // The conditions under which clip_step_and_update_ema_async runs the fused pass on CUDA.
  if (&model != module_ || (ema && &ema->model() != module_)) return false;
  const FlatParameters* layout = module_->flat_parameters();
  if (!layout || layout->values().device() != Device::CUDA || !rule_scalars_ahead(*layout, ahead, lr, row)) return false;
  // The shadows already in the flat buffer: copying them in is work of one step, not of every replay.
  if (ema && !ema->shadows_in(*layout)) return false;
  // The EMA's scalars as fused_update converts them (EMA::current_decay() of that update).
  const double decay = ema ? ema->decay_at(ema->num_updates() + ahead) : 0.0;
  row.ema_decay = float(decay);
  row.ema_one_minus_decay = float(ema ? 1.0 - decay : 0.0);
  return true;
}

void Optimizer::count_replayed_update(EMA* ema) {
  const FlatParameters* layout = fused_layout();
  FM_CHECK(layout, ValueError, "count_replayed_update: the optimiser has no fused pass to have replayed");
  count_replayed_rule_update(*layout, +1);
  if (ema) ema->count_update();
}

void Optimizer::uncount_recorded_update(EMA* ema) {
  const FlatParameters* layout = fused_layout();
  FM_CHECK(layout, ValueError, "uncount_recorded_update: the optimiser has no fused pass to take back");
  count_replayed_rule_update(*layout, -1);
  if (ema) ema->set_num_updates(ema->num_updates() - 1);
}

GradNorm Optimizer::clip_step_and_update_ema_async(Module& model, double max_norm, EMA* ema,
                                                   const StepScalars* per_step) {
  const FlatParameters* layout = &model == module_ && (!ema || &ema->model() == module_) ? fused_layout() : nullptr;
  FM_CHECK(!per_step || (layout && layout->values().device() == Device::CUDA), ValueError,
           "clip_step_and_update_ema: per-step scalars from the device need the fused pass on CUDA (the optimiser "
           "built on this model, flattened, on CUDA)");
  if (!layout) {  // the reference: three calls, one tensor op after another
    const double norm = clip_grad_norm(model, max_norm);
    step();
    if (ema) ema->update();
    return GradNorm(norm);
  }
  FM_CHECK(max_norm > 0, ValueError, "clip_grad_norm: max_norm must be positive, got ", max_norm);
  NoGradGuard no_grad;
  // The norm: a read-only pass, per parameter and combined in clip_grad_norm's order (same bits).
  bool any_gradient = false;
  double norm = 0.0;
  if (layout->values().device() == Device::CPU) {
    norm_offsets_.clear();
    norm_counts_.clear();
    for (std::size_t k = 0; k < layout->size(); ++k)
      if (has_grad(*layout, k)) {
        norm_offsets_.push_back(layout->offset(k));
        norm_counts_.push_back(layout->numel(k));
      }
    any_gradient = !norm_offsets_.empty();
    if (any_gradient)
      norm = std::sqrt(segment_sum_of_squares(layout->grads(), norm_offsets_, norm_counts_, norm_scratch_));
  } else {
    // The squared norm stays on the device: the kernel decides the clip from it (no host sync). It is
    // summed over the flat gradient in two launches (one more per gap left by a parameter without a
    // gradient), whatever the number of parameters: the ranges of adjacent parameters are merged.
    // Not the bits of clip_grad_norm's per-parameter float sums: the squares are summed in double
    // and rounded once (core/ops_optim.h, device_sum_of_squares).
    norm_offsets_.clear();
    norm_counts_.clear();
    for (std::size_t k = 0; k < layout->size(); ++k) {
      if (!has_grad(*layout, k)) continue;
      if (!norm_offsets_.empty() && norm_offsets_.back() + norm_counts_.back() == layout->offset(k))
        norm_counts_.back() += layout->numel(k);
      else {
        norm_offsets_.push_back(layout->offset(k));
        norm_counts_.push_back(layout->numel(k));
      }
    }
    Tensor total_squares;
    if (!norm_offsets_.empty()) total_squares = device_sum_of_squares(layout->grads(), norm_offsets_, norm_counts_);
    FusedExtras extras;
    extras.ema = ema;
    extras.per_step = per_step;
    if (total_squares.defined() && std::isfinite(max_norm)) {
      extras.clip_sum_of_squares = total_squares;
      extras.clip_max_norm = max_norm;
    }
    fused_update(*layout, extras);
    return total_squares.defined() ? GradNorm(total_squares) : GradNorm(0.0);
  }
  // The update pass: clip (as clip_grad_norm decides), the rule, the EMA.
  FusedExtras extras;
  extras.ema = ema;
  // (kernels/optimizer.h's clip_decision makes the same decision on the device.)
  if (any_gradient && std::isfinite(norm)) {
    const double coefficient = max_norm / (norm + 1e-6);
    extras.clip = coefficient < 1.0;
    extras.clip_scale = coefficient;
  }
  fused_update(*layout, extras);
  return GradNorm(norm);
}

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
  if (const FlatParameters* layout = fused_layout()) return fused_update(*layout, {});
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

void SGD::fused_update(const FlatParameters& layout, const FusedExtras& extras) {
  NoGradGuard no_grad;
  const bool has_momentum = options_.momentum != 0;
  FusedStepBuffers buffers;
  buffers.param = layout.values();
  buffers.grad = layout.grads();
  if (has_momentum) {
    flat_momentum_.bind(layout);
    buffers.momentum = flat_momentum_.flat();
    first_momentum_step_.assign(layout.size(), 0);
    for (std::size_t k = 0; k < layout.size(); ++k) {
      if (!has_grad(layout, k)) continue;
      if (Tensor* buffer = momentum_at_.find(momentum_buffers_, layout, k)) {
        flat_momentum_.home(k, *buffer, /*zero_missing=*/false);
      } else {  // the kernel writes the first buffer (the gradient)
        first_momentum_step_[k] = 1;
        momentum_at_.find_or_insert(momentum_buffers_, layout, k, flat_momentum_.view(k));
      }
    }
  }
  if (extras.ema) buffers.shadow = extras.ema->flat_shadows(layout);
  FusedStepHyperparameters hyper;
  set_extras(extras, hyper, buffers);
  hyper.rule = FusedUpdateRule::SGD;
  hyper.weight_decay = options_.weight_decay != 0;
  hyper.weight_decay_value = options_.weight_decay;
  hyper.has_momentum = has_momentum;
  hyper.nesterov = options_.nesterov;
  hyper.momentum = options_.momentum;
  hyper.one_minus_dampening = 1.0 - options_.dampening;
  hyper.lr = lr_;
  if (extras.ema) {
    hyper.ema = true;
    hyper.ema_decay = extras.ema->current_decay();
    hyper.ema_one_minus_decay = 1.0 - hyper.ema_decay;
  }
  // Groups: no gradient (-1), later step (0), first momentum step (1).
  auto group_of = [&](std::size_t k) {
    return !has_grad(layout, k) ? -1 : has_momentum && first_momentum_step_[k] ? 1 : 0;
  };
  auto hyperparameters_of = [&](std::size_t k) {
    FusedStepHyperparameters h = hyper;
    const int group = group_of(k);
    if (group < 0) h.rule = FusedUpdateRule::None;
    h.first_momentum_step = group == 1;
    return h;
  };
  fused_step_by_runs(layout, buffers, group_of, hyperparameters_of);
  if (extras.ema) extras.ema->count_update();
}

bool SGD::rule_scalars_ahead(const FlatParameters& layout, std::int64_t, double lr, StepScalars& row) const {
  // One row serves the pass unless a parameter is at its first momentum step (another group) or its
  // buffer is not yet in the flat state buffer (that copy is work of one step, not of every replay).
  if (options_.momentum != 0) {
    if (!flat_momentum_.bound_to(layout)) return false;
    for (std::size_t k = 0; k < layout.size(); ++k) {
      if (!has_grad(layout, k)) continue;
      const Tensor* buffer = momentum_at_.find(momentum_buffers_, layout, k);
      if (!buffer || buffer->impl() != flat_momentum_.view(k).impl()) return false;
    }
  }
  row.lr = float(lr);
  row.decoupled_factor = row.neg_step_size = row.inverse_sqrt_bias2 = 0;
  return true;
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
  momentum_at_.forget();
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
  if (const FlatParameters* layout = fused_layout()) return fused_update(*layout, {});
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

void Adam::fused_update(const FlatParameters& layout, const FusedExtras& extras) {
  NoGradGuard no_grad;
  flat_exp_avg_.bind(layout);
  flat_exp_avg_sq_.bind(layout);
  step_of_.assign(layout.size(), -1);  // -1: no gradient, the parameter and its state stay as they are
  for (std::size_t k = 0; k < layout.size(); ++k) {
    if (!has_grad(layout, k)) continue;
    ParameterState& state = state_at_.find_or_insert(state_, layout, k);
    flat_exp_avg_.home(k, state.exp_avg, /*zero_missing=*/true);  // a first step starts from zeros
    flat_exp_avg_sq_.home(k, state.exp_avg_sq, /*zero_missing=*/true);
    state.step += 1;
    step_of_[k] = state.step;
  }
  FusedStepBuffers buffers;
  buffers.param = layout.values();
  buffers.grad = layout.grads();
  buffers.exp_avg = flat_exp_avg_.flat();
  buffers.exp_avg_sq = flat_exp_avg_sq_.flat();
  if (extras.ema) buffers.shadow = extras.ema->flat_shadows(layout);
  const double beta1 = options_.beta1, beta2 = options_.beta2, weight_decay = options_.weight_decay;
  FusedStepHyperparameters hyper;
  set_extras(extras, hyper, buffers);
  hyper.rule = FusedUpdateRule::Adam;
  hyper.weight_decay = weight_decay != 0;
  hyper.decoupled = decoupled_weight_decay_;
  hyper.weight_decay_value = weight_decay;
  hyper.decoupled_factor = 1.0 - lr_ * weight_decay;
  hyper.one_minus_beta1 = 1.0 - beta1;
  hyper.beta2 = beta2;
  hyper.one_minus_beta2 = 1.0 - beta2;
  hyper.eps = options_.eps;
  if (extras.ema) {
    hyper.ema = true;
    hyper.ema_decay = extras.ema->current_decay();
    hyper.ema_one_minus_decay = 1.0 - hyper.ema_decay;
  }
  auto group_of = [&](std::size_t k) { return step_of_[k]; };
  auto hyperparameters_of = [&](std::size_t k) {
    FusedStepHyperparameters h = hyper;
    if (step_of_[k] < 0) {
      h.rule = FusedUpdateRule::None;
      return h;
    }
    std::tie(h.inverse_sqrt_bias2, h.neg_step_size) = bias_corrected(step_of_[k], lr_);
    return h;
  };
  fused_step_by_runs(layout, buffers, group_of, hyperparameters_of);
  if (extras.ema) extras.ema->count_update();
}

std::pair<double, double> Adam::bias_corrected(std::int64_t t, double lr) const {
  // The scalars of the per-parameter code, computed the same way in double.
  const double bias_correction1 = 1.0 - std::pow(options_.beta1, double(t));
  const double bias_correction2 = 1.0 - std::pow(options_.beta2, double(t));
  const double step_size = lr / bias_correction1;
  return {1.0 / std::sqrt(bias_correction2), -step_size};  // x / b is affine(x, 1/b, 0)
}

bool Adam::rule_scalars_ahead(const FlatParameters& layout, std::int64_t ahead, double lr, StepScalars& row) const {
  // One row serves the pass when every parameter with a gradient is at the same step count (one
  // group), and its moments already live in the flat state buffers: a first step's zeroing or a
  // loaded state's copy into them is work of that step alone, not of every replay.
  if (!flat_exp_avg_.bound_to(layout) || !flat_exp_avg_sq_.bound_to(layout)) return false;
  std::int64_t count = -1;
  for (std::size_t k = 0; k < layout.size(); ++k) {
    if (!has_grad(layout, k)) continue;
    const ParameterState* state = state_at_.find(state_, layout, k);
    if (!state || state->exp_avg.impl() != flat_exp_avg_.view(k).impl() ||
        state->exp_avg_sq.impl() != flat_exp_avg_sq_.view(k).impl())
      return false;
    if (count >= 0 && state->step != count) return false;
    count = state->step;
  }
  if (count < 0) return false;  // no gradient at all: nothing to update
  const auto [inverse_sqrt_bias2, neg_step_size] = bias_corrected(count + 1 + ahead, lr);
  row.inverse_sqrt_bias2 = float(inverse_sqrt_bias2);
  row.neg_step_size = float(neg_step_size);
  row.decoupled_factor = float(1.0 - lr * options_.weight_decay);
  row.lr = float(lr);
  return true;
}

void Adam::count_replayed_rule_update(const FlatParameters& layout, int by) {
  for (std::size_t k = 0; k < layout.size(); ++k)
    if (has_grad(layout, k)) state_at_.find_or_insert(state_, layout, k).step += by;
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
    // Bounded too: a count past 2^53 (found by fuzz/fuzz_checkpoint) cannot come from training, and one
    // past 2^63 would not even convert to the counter (undefined behaviour).
    constexpr double kMaxStep = 9007199254740992.0;  // 2^53, every whole number below it exact in a double
    FM_CHECK(std::isfinite(step) && step >= 0 && step <= kMaxStep && step == std::floor(step), ValueError,
             "Adam.load_state_dict: key '", name, ".step' holds ", step,
             ", expected a whole number in [0, 2^53] (a count of optimiser steps)");
    ParameterState s;
    s.exp_avg = copy_like(fields.at("exp_avg"), parameters.at(name));
    s.exp_avg_sq = copy_like(fields.at("exp_avg_sq"), parameters.at(name));
    s.step = std::int64_t(step);
    loaded[name] = s;
  }
  state_ = std::move(loaded);
  state_at_.forget();
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
  Tensor total_squares = sum_of_squares_by_tensor_ops(parameters);
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
