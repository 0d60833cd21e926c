// nn/flat_parameters.h — a model's parameters in one flat buffer, their gradients in another, and
// flat buffers for per-parameter optimiser state laid out the same way.
//
// Layer: nn/ (uses core/ only). Module::flatten_parameters() builds one of these. Parameter k
// (in named_parameters() order) becomes elements [offset(k), offset(k) + numel(k)) of values():
// its TensorImpl is re-pointed at the flat storage, so every existing handle to the parameter (the
// layers' members, a test's copy, the optimiser's list) keeps working and sees the flat memory — the
// same move as PyTorch's `param.data = flat[a:b].view_as(param)`. Its gradient's home
// (core/gradient_home.h) is the same slice of grads(): backward() writes gradients there, so the
// optimiser, the gradient norm and the EMA run over the whole model in one pass
// (kernels/optimizer.h) instead of a dozen tensor ops per parameter.
//
// One device and one dtype per model (flatten refuses a mix). Values and gradients are unchanged by
// flattening. If a parameter slot is later replaced (a child's to(), a hand-made assignment) the
// layout is no longer intact() and callers fall back to their per-parameter code.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace fm::nn {

class FlatParameters {
 public:
  // slots: (full name, pointer to the module's member) in named_parameters() order.
  explicit FlatParameters(std::vector<std::pair<std::string, Tensor*>> slots);
  ~FlatParameters();  // unregisters the gradient homes (the values stay where they are)
  FlatParameters(const FlatParameters&) = delete;
  FlatParameters& operator=(const FlatParameters&) = delete;

  std::size_t size() const { return parameters_.size(); }
  const std::string& name(std::size_t k) const { return names_[k]; }
  const Tensor& parameter(std::size_t k) const { return parameters_[k]; }
  const std::vector<Tensor>& parameters() const { return parameters_; }
  std::int64_t offset(std::size_t k) const { return offsets_[k]; }
  std::int64_t numel(std::size_t k) const { return counts_[k]; }
  std::int64_t total() const { return total_; }
  const Tensor& values() const { return values_; }  // [total]
  const Tensor& grads() const { return grads_; }    // [total]
  // The gradient home of parameter k: a view of grads().
  const Tensor& gradient_home(std::size_t k) const { return homes_[k]; }
  // A number no other layout in this process has: optimiser state built for one layout is rebuilt
  // for the next (after Module::to, for instance).
  std::uint64_t id() const { return id_; }

  // True while every module slot still holds the flattened parameter, and that still lives in
  // values(). Cheap (pointer comparisons): callers check it before each step.
  bool intact() const;
  // True when some parameter has a gradient that is not its home (one set by hand with set_grad,
  // e.g. by clip_grad_norm): move_gradients_home() then copies it in.
  bool gradients_home() const;
  void move_gradients_home() const;

 private:
  std::vector<std::string> names_;
  std::vector<Tensor*> slots_;
  std::vector<Tensor> parameters_;
  std::vector<Tensor> homes_;
  std::vector<std::int64_t> offsets_, counts_;
  std::int64_t total_ = 0;
  Tensor values_, grads_;
  std::uint64_t id_;
};

// A per-parameter state tensor (Adam's moments, SGD's momentum, an EMA shadow) kept in one flat
// buffer laid out like a FlatParameters: the owner keeps its per-parameter Tensors (its state dict
// is unchanged) and makes each of them a view of this buffer with home().
class FlatState {
 public:
  // Binds to `layout` (a zero buffer) unless already bound to it.
  void bind(const FlatParameters& layout);
  bool bound_to(const FlatParameters& layout) const { return layout_id_ == layout.id() && flat_.defined(); }
  const Tensor& flat() const { return flat_; }
  const Tensor& view(std::size_t k) const { return views_[k]; }
  // Makes `entry` the view of parameter k: its values are copied in if it is another tensor; an
  // undefined entry becomes the view with its values left as they are (zero_missing: set to 0).
  void home(std::size_t k, Tensor& entry, bool zero_missing);

 private:
  std::uint64_t layout_id_ = 0;
  Tensor flat_;
  std::vector<Tensor> views_;
};

// The entries of a name-keyed map (an optimiser's per-parameter state, an EMA's shadows) by a
// layout's positions: a replayed training step checks and counts them every step (nn/optim.cpp,
// step_scalars_ahead), and walking remembered pointers costs far less than looking every name up
// again (108 lookups of long, alike names per pass for the seed U-Net). Pointers into a std::map
// stay valid while their entry lives, and std::map never moves an entry: the owner calls forget()
// when it replaces the whole map (a loaded state), and never erases one entry alone.
template <typename Value>
class EntriesByPosition {
 public:
  // Entry k, looked up by name (then remembered) when not yet known; null when the map has none.
  Value* find(std::map<std::string, Value>& map, const FlatParameters& layout, std::size_t k) {
    follow(layout);
    if (!entries_[k]) {
      const auto found = map.find(layout.name(k));
      if (found != map.end()) entries_[k] = &found->second;
    }
    return entries_[k];
  }
  // The same from a const owner: what is remembered, else a lookup that is not remembered.
  const Value* find(const std::map<std::string, Value>& map, const FlatParameters& layout, std::size_t k) const {
    if (layout_id_ == layout.id() && entries_[k]) return entries_[k];
    const auto found = map.find(layout.name(k));
    return found == map.end() ? nullptr : &found->second;
  }
  // Entry k, inserted as `value` when the map has none.
  Value& find_or_insert(std::map<std::string, Value>& map, const FlatParameters& layout, std::size_t k,
                        Value value = Value{}) {
    if (Value* known = find(map, layout, k)) return *known;
    entries_[k] = &map.emplace(layout.name(k), std::move(value)).first->second;
    return *entries_[k];
  }
  void forget() {
    layout_id_ = 0;
    entries_.clear();
  }

 private:
  void follow(const FlatParameters& layout) {
    if (layout_id_ == layout.id()) return;
    layout_id_ = layout.id();
    entries_.assign(layout.size(), nullptr);
  }
  std::uint64_t layout_id_ = 0;  // FlatParameters ids start at 1 (flat_parameters.cpp)
  std::vector<Value*> entries_;
};

}  // namespace fm::nn
