// nn/module.h — the Module base class every layer and model derives from, plus the two containers
// (Sequential, ModuleList) the seed U-Net is assembled from.
//
// Layer: nn/ (uses core/ only). A Module owns named parameters (leaf Tensors with requires_grad),
// named buffers (state that is saved but not trained) and named child modules. Names join with '.'
// exactly as PyTorch's state_dict does ("downs.1.attentions.in_proj_weight"), so a checkpoint written
// from a StateDict can be loaded into the same architecture written in PyTorch.
//
// Parameters live in member Tensors of the concrete layer; the Module records a pointer to each
// member slot. That is why modules are neither copyable nor movable (the pointers would dangle) and
// why children are held by std::shared_ptr. to(Device) / to(DType) replace the Tensors in those
// slots (handles taken before the move keep pointing at the old tensors), so move the model first and
// then build its optimiser and EMA: their state is allocated next to the parameters they saw.
// flatten_parameters() moves all parameters into one flat buffer (nn/flat_parameters.h), so that the
// optimiser, gradient clipping and the EMA run over the whole model in one pass.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace fm::nn {

class FlatParameters;

using NamedTensor = std::pair<std::string, Tensor>;
// name → tensor; the same type core/io/tensor_io.h saves and loads (fm::io::NamedTensors).
using StateDict = std::map<std::string, Tensor>;

class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = delete;
  Module& operator=(Module&&) = delete;

  // "Linear", "UNet", ...: used in error messages and summaries.
  const std::string& type_name() const { return type_name_; }

  // ---- parameters, buffers, children (registration order, depth first) ----
  std::vector<Tensor> parameters() const;
  std::vector<NamedTensor> named_parameters() const;
  std::vector<NamedTensor> named_buffers() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  std::int64_t parameter_count() const;  // total number of parameter elements

  // ---- state ----
  // Parameters and buffers by full name. The tensors are detached views sharing the module's storage
  // (nothing is copied): clone them for a snapshot that later training must not change.
  StateDict state_dict() const;
  // Copies every entry into the matching parameter or buffer (converting dtype and device as
  // needed). All checks run before anything is copied, so a failed load leaves the module unchanged:
  // every name must be present, no extra names are allowed, shapes must be equal. Errors are
  // fm::ValueError naming the key and, for shapes, both shapes.
  void load_state_dict(const StateDict& state);

  // ---- mode, placement, gradients ----
  void train(bool training = true);  // recursive
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Moves (or converts) every parameter and buffer. Parameters stay leaves with requires_grad;
  // accumulated gradients are dropped. A float64 model cannot move to CUDA (core/ rule).
  void to(Device device);
  void to(DType dtype);
  Device device() const;  // of the first parameter or buffer (CPU when there is none)
  DType dtype() const;
  void zero_grad();  // drops every parameter's gradient (PyTorch's set_to_none=True)

  // ---- one flat buffer for all parameters (nn/flat_parameters.h) ----
  // Moves every parameter (values and any gradient) into one flat buffer and their future gradients
  // into another; the parameters stay the same tensors (handles keep working). Needs one dtype and
  // one device. to() keeps a flattened module flat. Call it on the model the optimiser is built on.
  void flatten_parameters();
  // The flat layout while it is intact (no slot replaced since), else null.
  const FlatParameters* flat_parameters() const;

 protected:
  // Records `*slot` as a parameter called `name` and marks it requires_grad. The slot must be a
  // member of the derived class (it is read and replaced through this pointer later).
  void register_parameter(const std::string& name, Tensor* slot);
  void register_buffer(const std::string& name, Tensor* slot);
  template <typename ModuleType>
  std::shared_ptr<ModuleType> register_module(const std::string& name,
                                              std::shared_ptr<ModuleType> child) {
    add_child(name, child);
    return child;
  }

 private:
  void check_new_name(const std::string& name) const;
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  // Visits every parameter / buffer slot with its full name.
  void collect_slots(const std::string& prefix, bool parameters, bool buffers,
                     std::vector<std::pair<std::string, Tensor*>>& out) const;
  void convert_slots(Device device, DType dtype);

  std::string type_name_;
  bool training_ = true;
  std::vector<std::pair<std::string, Tensor*>> parameters_;
  std::vector<std::pair<std::string, Tensor*>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::shared_ptr<FlatParameters> flat_;  // set by flatten_parameters()
};

// A Module with one tensor in and one tensor out (Linear, Conv2d, GroupNorm, activations, ...).
class Layer : public Module {
 public:
  using Module::Module;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
  // silu(forward(x)). A layer with a fused op for it (GroupNorm → fm::group_norm_silu) overrides
  // this and says so, and Sequential then runs "this layer, SiLU" as one call.
  virtual bool has_fused_silu() const { return false; }
  virtual Tensor forward_with_silu(const Tensor& x);
};

// Layers applied in order, named "0", "1", ... like torch.nn.Sequential (parameter-free layers such
// as SiLU still take an index, so the names match PyTorch's). A GroupNorm directly followed by a
// SiLU runs as the fused fm::group_norm_silu op unless fusion is switched off (any layer with
// has_fused_silu() is treated the same way).
class Sequential : public Layer {
 public:
  Sequential() : Layer("Sequential") {}
  explicit Sequential(std::vector<std::shared_ptr<Layer>> layers);
  void push_back(std::shared_ptr<Layer> layer);
  std::size_t size() const { return layers_.size(); }
  const std::shared_ptr<Layer>& operator[](std::size_t index) const { return layers_.at(index); }
  void set_fuse_group_norm_silu(bool enabled) { fuse_silu_ = enabled; }
  Tensor forward(const Tensor& x) override;

 private:
  std::vector<std::shared_ptr<Layer>> layers_;
  bool fuse_silu_ = true;
};

// Modules of one kind named "0", "1", ... (torch.nn.ModuleList); the owner decides how to call them.
template <typename ModuleType>
class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}
  std::shared_ptr<ModuleType> push_back(std::shared_ptr<ModuleType> module) {
    register_module(std::to_string(items_.size()), module);
    items_.push_back(module);
    return module;
  }
  std::size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  ModuleType& operator[](std::size_t index) const { return *items_.at(index); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<std::shared_ptr<ModuleType>> items_;
};

}  // namespace fm::nn
