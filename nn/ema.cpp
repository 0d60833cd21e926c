// nn/ema.cpp — exponential moving average of parameters (see ema.h).
#include "nn/ema.h"

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops_optim.h"

namespace fm::nn {

EMA::EMA(Module& model, double decay, bool warmup) : model_(&model), decay_(decay), warmup_(warmup) {
  FM_CHECK(decay >= 0 && decay <= 1, ValueError, "EMA: decay must lie in [0, 1], got ", decay);
  NoGradGuard no_grad;
  for (const auto& [name, parameter] : model.named_parameters()) shadows_[name] = parameter.detach().clone();
}

double EMA::decay_at(std::int64_t update) const {
  if (!warmup_) return decay_;
  return std::min(decay_, (1.0 + double(update)) / (10.0 + double(update)));
}

void EMA::set_num_updates(std::int64_t count) {
  FM_CHECK(count >= 0, ValueError, "EMA: num_updates must be >= 0, got ", count);
  num_updates_ = count;
}

const Tensor& EMA::flat_shadows(const FlatParameters& layout) {
  flat_shadows_.bind(layout);
  for (std::size_t k = 0; k < layout.size(); ++k) {
    Tensor* shadow = shadow_at_.find(shadows_, layout, k);
    FM_CHECK(shadow, ValueError, "EMA.update: the model has a parameter '", layout.name(k),
             "' that the EMA was not built with");
    flat_shadows_.home(k, *shadow, /*zero_missing=*/false);
  }
  return flat_shadows_.flat();
}

void EMA::update() {
  NoGradGuard no_grad;
  const double decay = current_decay();
  if (const FlatParameters* flat = model_->flat_parameters()) {  // one pass over the flat buffers
    FusedStepBuffers buffers;
    buffers.param = flat->values();
    buffers.shadow = flat_shadows(*flat);
    FusedStepHyperparameters hyper;
    hyper.ema = true;
    hyper.ema_decay = decay;
    hyper.ema_one_minus_decay = 1.0 - decay;
    fused_step(buffers, 0, flat->total(), hyper);
    ++num_updates_;
    return;
  }
  for (const auto& [name, parameter] : model_->named_parameters()) {
    auto found = shadows_.find(name);
    FM_CHECK(found != shadows_.end(), ValueError, "EMA.update: the model has a parameter '", name,
             "' that the EMA was not built with");
    found->second = found->second * decay + parameter.detach() * (1.0 - decay);
  }
  ++num_updates_;
}

void EMA::swap() {
  NoGradGuard no_grad;
  // Values exchanged in place: each shadow stays the tensor it was — a view of the flat shadow
  // buffer once the fused pass made one, which a recorded training step keeps updating.
  for (const auto& [name, parameter] : model_->named_parameters()) {
    Tensor& shadow = shadows_.at(name);
    Tensor live = parameter.detach().clone();
    Tensor param = parameter;
    param.copy_(shadow);
    shadow.copy_(live);
  }
}

bool EMA::shadows_in(const FlatParameters& layout) const {
  if (!flat_shadows_.bound_to(layout)) return false;
  for (std::size_t k = 0; k < layout.size(); ++k) {
    const Tensor* shadow = shadow_at_.find(shadows_, layout, k);
    if (!shadow || shadow->impl() != flat_shadows_.view(k).impl()) return false;
  }
  return true;
}

void EMA::copy_to(Module& model) const {
  StateDict state = model.state_dict();
  for (const auto& [name, shadow] : shadows_) state[name] = shadow;
  model.load_state_dict(state);
}

StateDict EMA::state_dict() const {
  NoGradGuard no_grad;
  StateDict state;
  for (const auto& [name, shadow] : shadows_) state[name] = shadow.clone();
  return state;
}

void EMA::load_state_dict(const StateDict& state) {
  for (const auto& [name, shadow] : shadows_) {
    auto found = state.find(name);
    FM_CHECK(found != state.end(), ValueError, "EMA.load_state_dict: missing key '", name, "' (expected shape ",
             shape_str(shadow.shape()), ")");
    FM_CHECK(found->second.defined() && found->second.shape() == shadow.shape(), ValueError,
             "EMA.load_state_dict: key '", name, "' has shape ",
             found->second.defined() ? shape_str(found->second.shape()) : "undefined", " in the state dict but ",
             shape_str(shadow.shape()), " in the EMA");
  }
  for (const auto& [name, tensor] : state)
    FM_CHECK(shadows_.count(name), ValueError, "EMA.load_state_dict: unexpected key '", name, "'");
  for (auto& [name, shadow] : shadows_) {
    Tensor copy = Tensor::empty(shadow.shape(), shadow.dtype(), shadow.device());
    copy.copy_(state.at(name));
    shadow = copy;
  }
}

void EMA::to(Device device) {
  for (auto& [name, shadow] : shadows_) shadow = shadow.to(device);
}

}  // namespace fm::nn
