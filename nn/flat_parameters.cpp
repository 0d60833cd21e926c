// nn/flat_parameters.cpp — flat parameter, gradient and state buffers (see flat_parameters.h).
#include "nn/flat_parameters.h"

#include <atomic>

#include "core/autograd.h"
#include "core/gradient_home.h"

namespace fm::nn {
namespace {

std::uint64_t next_layout_id() {
  static std::atomic<std::uint64_t> counter{0};
  return ++counter;
}

// Elements [offset, offset + numel(shape)) of a flat buffer, shaped like a parameter.
Tensor slice_of(const Tensor& flat, std::int64_t offset, const Shape& shape) {
  return flat.narrow(0, offset, shape_numel(shape)).view(shape).detach();
}

}  // namespace

FlatParameters::FlatParameters(std::vector<std::pair<std::string, Tensor*>> slots) : id_(next_layout_id()) {
  FM_CHECK(!slots.empty(), ValueError, "flatten_parameters: the module has no parameters");
  const Tensor& first = *slots.front().second;
  for (const auto& [name, slot] : slots) {
    FM_CHECK(slot->dtype() == first.dtype() && slot->device() == first.device(), ValueError,
             "flatten_parameters: parameter '", name, "' is ", slot->describe(), " but '", slots.front().first,
             "' is ", first.describe(), " (one flat buffer holds one dtype on one device)");
    names_.push_back(name);
    slots_.push_back(slot);
    parameters_.push_back(*slot);
    offsets_.push_back(total_);
    counts_.push_back(slot->numel());
    total_ += slot->numel();
  }
  NoGradGuard no_grad;
  values_ = Tensor::empty({total_}, first.dtype(), first.device());
  grads_ = Tensor::zeros({total_}, first.dtype(), first.device());
  for (std::size_t k = 0; k < parameters_.size(); ++k) {
    Tensor& parameter = parameters_[k];
    Tensor value_slice = slice_of(values_, offsets_[k], parameter.shape());
    value_slice.copy_(parameter.detach());
    // Re-point the parameter itself at its slice (shape unchanged, now contiguous in the flat buffer).
    TensorImpl* impl = parameter.impl();
    impl->storage = values_.storage();
    impl->offset = values_.offset() + offsets_[k];
    impl->strides = contiguous_strides(impl->shape);
    homes_.push_back(slice_of(grads_, offsets_[k], parameter.shape()));
    if (parameter.grad().defined()) {
      homes_[k].copy_(parameter.grad());
      parameter.set_grad(homes_[k]);
    }
    set_gradient_home(parameter, homes_[k]);
  }
}

FlatParameters::~FlatParameters() {
  // Only our own homes: a later layout (a parent module flattened after a child) may have replaced them.
  for (std::size_t k = 0; k < parameters_.size(); ++k)
    if (fm::gradient_home(parameters_[k]).impl() == homes_[k].impl()) clear_gradient_home(parameters_[k]);
}

bool FlatParameters::intact() const {
  for (std::size_t k = 0; k < parameters_.size(); ++k) {
    const TensorImpl* impl = parameters_[k].impl();
    if (slots_[k]->impl() != impl || impl->storage != values_.storage() ||
        impl->offset != values_.offset() + offsets_[k])
      return false;
  }
  return true;
}

bool FlatParameters::gradients_home() const {
  for (std::size_t k = 0; k < parameters_.size(); ++k) {
    const Tensor& grad = parameters_[k].impl()->grad;
    if (grad.defined() && grad.impl() != homes_[k].impl()) return false;
  }
  return true;
}

void FlatParameters::move_gradients_home() const {
  NoGradGuard no_grad;
  for (std::size_t k = 0; k < parameters_.size(); ++k) {
    Tensor grad = parameters_[k].grad();
    Tensor home = homes_[k];
    if (!grad.defined() || grad.impl() == home.impl()) continue;
    home.copy_(grad);
    parameters_[k].set_grad(home);
  }
}

void FlatState::bind(const FlatParameters& layout) {
  if (bound_to(layout)) return;
  NoGradGuard no_grad;
  flat_ = Tensor::zeros({layout.total()}, layout.values().dtype(), layout.values().device());
  views_.clear();
  for (std::size_t k = 0; k < layout.size(); ++k)
    views_.push_back(slice_of(flat_, layout.offset(k), layout.parameter(k).shape()));
  layout_id_ = layout.id();
}

void FlatState::home(std::size_t k, Tensor& entry, bool zero_missing) {
  Tensor& view = views_[k];
  if (entry.defined() && entry.impl() == view.impl()) return;
  NoGradGuard no_grad;
  if (entry.defined())
    view.copy_(entry);
  else if (zero_missing)
    view.zero_();
  entry = view;
}

}  // namespace fm::nn
