// nn/module.cpp — parameter/buffer/child registries, state dicts, placement (see module.h).
#include "nn/module.h"

#include <set>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "nn/activation.h"
#include "nn/flat_parameters.h"

namespace fm::nn {

// ---------------------------------------------------------------- registration
void Module::check_new_name(const std::string& name) const {
  FM_CHECK(!name.empty(), ValueError, type_name_, ": cannot register an empty name");
  FM_CHECK(name.find('.') == std::string::npos, ValueError, type_name_, ": name '", name,
           "' contains '.', which separates nested module names");
  auto taken = [&](const auto& list) {
    for (const auto& entry : list)
      if (entry.first == name) return true;
    return false;
  };
  FM_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_), ValueError, type_name_,
           ": name '", name, "' is already registered");
}

void Module::register_parameter(const std::string& name, Tensor* slot) {
  check_new_name(name);
  FM_CHECK(slot && slot->defined(), ValueError, type_name_, ": parameter '", name, "' is undefined");
  FM_CHECK(slot->is_leaf(), ValueError, type_name_, ": parameter '", name,
           "' must be a leaf tensor (detach it first)");
  slot->set_requires_grad(true);
  parameters_.push_back({name, slot});
}

void Module::register_buffer(const std::string& name, Tensor* slot) {
  check_new_name(name);
  FM_CHECK(slot && slot->defined(), ValueError, type_name_, ": buffer '", name, "' is undefined");
  buffers_.push_back({name, slot});
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check_new_name(name);
  FM_CHECK(child != nullptr, ValueError, type_name_, ": child module '", name, "' is null");
  children_.push_back({name, std::move(child)});
}

// ---------------------------------------------------------------- traversal
void Module::collect_slots(const std::string& prefix, bool parameters, bool buffers,
                           std::vector<std::pair<std::string, Tensor*>>& out) const {
  if (parameters)
    for (const auto& [name, slot] : parameters_) out.push_back({prefix + name, slot});
  if (buffers)
    for (const auto& [name, slot] : buffers_) out.push_back({prefix + name, slot});
  for (const auto& [name, child] : children_)
    child->collect_slots(prefix + name + ".", parameters, buffers, out);
}

std::vector<NamedTensor> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", true, false, slots);
  std::vector<NamedTensor> out;
  out.reserve(slots.size());
  for (const auto& [name, slot] : slots) out.push_back({name, *slot});
  return out;
}

std::vector<NamedTensor> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", false, true, slots);
  std::vector<NamedTensor> out;
  for (const auto& [name, slot] : slots) out.push_back({name, *slot});
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, tensor] : named_parameters()) out.push_back(tensor);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  return children_;
}

std::int64_t Module::parameter_count() const {
  std::int64_t total = 0;
  for (const auto& [name, tensor] : named_parameters()) total += tensor.numel();
  return total;
}

// ---------------------------------------------------------------- state
StateDict Module::state_dict() const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", true, true, slots);
  StateDict state;
  for (const auto& [name, slot] : slots) state[name] = slot->detach();
  return state;
}

void Module::load_state_dict(const StateDict& state) {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", true, true, slots);
  // Check everything first: a half-loaded model is worse than a refused load.
  std::set<std::string> expected;
  for (const auto& [name, slot] : slots) {
    expected.insert(name);
    auto found = state.find(name);
    FM_CHECK(found != state.end(), ValueError, "load_state_dict (", type_name_, "): missing key '",
             name, "' (expected shape ", shape_str(slot->shape()), ")");
    FM_CHECK(found->second.defined(), ValueError, "load_state_dict (", type_name_, "): key '", name,
             "' holds an undefined tensor");
    FM_CHECK(found->second.shape() == slot->shape(), ValueError, "load_state_dict (", type_name_,
             "): key '", name, "' has shape ", shape_str(found->second.shape()),
             " in the state dict but ", shape_str(slot->shape()), " in the model");
  }
  for (const auto& [name, tensor] : state)
    FM_CHECK(expected.count(name), ValueError, "load_state_dict (", type_name_, "): unexpected key '",
             name, "' (shape ", shape_str(tensor.shape()), "); the model has no such parameter or buffer");
  NoGradGuard no_grad;
  for (const auto& [name, slot] : slots) slot->copy_(state.at(name));
}

// ---------------------------------------------------------------- mode, placement, gradients
void Module::train(bool training) {
  training_ = training;
  for (auto& [name, child] : children_) child->train(training);
}

void Module::convert_slots(Device device, DType dtype) {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", true, false, slots);
  for (auto& [name, slot] : slots) {
    if (slot->device() == device && slot->dtype() == dtype) continue;
    // detach first so the conversion records no history: the result is a fresh leaf.
    Tensor converted = slot->detach();
    if (converted.device() == Device::CUDA) converted = converted.to(Device::CPU);
    converted = converted.to(dtype).to(device).detach();
    converted.set_requires_grad(true);
    *slot = converted;
  }
  slots.clear();
  collect_slots("", false, true, slots);
  for (auto& [name, slot] : slots) {
    if (slot->device() == device && slot->dtype() == dtype) continue;
    Tensor converted = slot->detach();
    if (converted.device() == Device::CUDA) converted = converted.to(Device::CPU);
    *slot = converted.to(dtype).to(device).detach();
  }
}

// A flattened module is flattened again at its new place (the old flat buffers are let go first,
// so their gradient homes are unregistered before the slots change).
void Module::to(Device device) {
  const bool was_flat = flat_ != nullptr;
  if (was_flat && device != this->device()) flat_.reset();
  convert_slots(device, dtype());
  if (was_flat && !flat_) flatten_parameters();
}
void Module::to(DType dtype) {
  const bool was_flat = flat_ != nullptr;
  if (was_flat && dtype != this->dtype()) flat_.reset();
  convert_slots(device(), dtype);
  if (was_flat && !flat_) flatten_parameters();
}

void Module::flatten_parameters() {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", true, false, slots);
  if (slots.empty()) return;
  flat_.reset();  // unregister the old layout's gradient homes first
  flat_ = std::make_shared<FlatParameters>(std::move(slots));
}

const FlatParameters* Module::flat_parameters() const {
  return flat_ && flat_->intact() ? flat_.get() : nullptr;
}

Device Module::device() const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", true, true, slots);
  return slots.empty() ? Device::CPU : slots.front().second->device();
}

DType Module::dtype() const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", true, true, slots);
  return slots.empty() ? DType::Float32 : slots.front().second->dtype();
}

void Module::zero_grad() {
  for (auto& [name, tensor] : named_parameters()) tensor.zero_grad();
}

// ---------------------------------------------------------------- Layer, Sequential
Tensor Layer::forward_with_silu(const Tensor& x) { return silu(forward(x)); }

Sequential::Sequential(std::vector<std::shared_ptr<Layer>> layers) : Layer("Sequential") {
  for (auto& layer : layers) push_back(std::move(layer));
}

void Sequential::push_back(std::shared_ptr<Layer> layer) {
  register_module(std::to_string(layers_.size()), layer);
  layers_.push_back(std::move(layer));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor out = x;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    bool next_is_silu = i + 1 < layers_.size() && dynamic_cast<SiLU*>(layers_[i + 1].get());
    if (fuse_silu_ && next_is_silu && layers_[i]->has_fused_silu()) {
      out = layers_[i]->forward_with_silu(out);  // one pass instead of two (core/ops_nn.h)
      ++i;
    } else {
      out = layers_[i]->forward(out);
    }
  }
  return out;
}

}  // namespace fm::nn
