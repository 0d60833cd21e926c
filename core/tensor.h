// core/tensor.h — the Tensor: a typed, shaped, strided view onto shared storage, plus the autograd
// bookkeeping (requires_grad, the accumulated gradient, the node that produced it).
//
// A Tensor is a cheap handle (a shared pointer to TensorImpl). Views (reshape, permute, transpose,
// narrow, expand, unsqueeze) share storage and only change shape/strides/offset; contiguous() and
// clone() copy. Element (i0, i1, ...) lives at storage[offset + Σ ik·stride_k] (strides in elements).
// Differentiable operations are free functions in core/ops.h; the operators here forward to them.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace fm {

using Shape = std::vector<std::int64_t>;
std::string shape_str(const Shape& shape);  // "[256, 1, 28, 28]"
std::int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);

// A block of memory on one device, freed when the last Tensor using it goes away.
class Storage {
 public:
  Storage(std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_;
};

struct Node;
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories ----
  // The elements of empty() are not initialised: for outputs a kernel writes in full.
  static Tensor empty(Shape shape, DType dtype = DType::Float32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::CPU);
  static Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::CPU);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32,
                     Device device = Device::CPU);
  static Tensor scalar(double value, DType dtype = DType::Float32, Device device = Device::CPU);
  // Copies host values (converted to dtype) into a new tensor of the given shape.
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape,
                            DType dtype = DType::Float32, Device device = Device::CPU);
  static Tensor from_floats(const std::vector<float>& values, const Shape& shape,
                            Device device = Device::CPU);
  static Tensor arange(std::int64_t n, DType dtype = DType::Float32, Device device = Device::CPU);

  // ---- metadata ----
  // (The accessors every op calls are inline, below TensorImpl: a tiny op calls them dozens of times.)
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;
  std::int64_t size(int dim) const;  // negative dims count from the end
  int dim() const;
  std::int64_t numel() const;
  std::int64_t offset() const;
  DType dtype() const;
  Device device() const;
  bool is_cuda() const { return device() == Device::CUDA; }
  bool is_contiguous() const;
  std::string describe() const;  // "float32 cuda [256, 32, 28, 28]"

  // Pointer to element (0, 0, ...) — storage data plus offset. Checks dtype.
  template <typename T> T* data() const;
  void* raw_data() const;
  const std::shared_ptr<Storage>& storage() const;

  // ---- views (share storage; differentiable) ----
  Tensor view(const Shape& shape) const;     // requires a contiguous tensor; one dim may be -1
  Tensor reshape(const Shape& shape) const;  // view if possible, else copies
  Tensor permute(const std::vector<int>& dims) const;
  Tensor transpose(int dim0, int dim1) const;
  Tensor narrow(int dim, std::int64_t start, std::int64_t length) const;
  Tensor expand(const Shape& shape) const;  // size-1 dims broadcast with stride 0
  Tensor unsqueeze(int dim) const;
  Tensor squeeze(int dim) const;
  Tensor flatten(int start_dim = 0, int end_dim = -1) const;

  // ---- copies ----
  Tensor contiguous() const;  // self if already contiguous
  Tensor clone() const;       // always a fresh contiguous copy (differentiable)
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  // Host copy of the elements in logical (row-major) order.
  std::vector<double> to_vector() const;
  std::vector<float> to_float_vector() const;
  double item() const;  // one-element tensors only

  // ---- in-place (not recorded by autograd; for optimisers, initialisation, data loading) ----
  Tensor& copy_(const Tensor& source);  // shapes must match (or broadcast); devices may differ
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }

  // ---- autograd ----
  bool requires_grad() const;
  Tensor& set_requires_grad(bool enabled = true);  // leaves only
  Tensor grad() const;                              // undefined until a backward reaches it
  void set_grad(const Tensor& grad) const;
  void zero_grad() const;  // drops the accumulated gradient
  void backward() const;   // from a one-element tensor
  void backward(const Tensor& grad_output) const;
  Tensor detach() const;  // same storage, no history
  bool is_leaf() const;
  const std::shared_ptr<Node>& grad_fn() const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;
  std::int64_t offset = 0;
  DType dtype = DType::Float32;
  Device device = Device::CPU;
  bool requires_grad = false;
  Tensor grad;                    // accumulated gradient (leaves, or retained)
  std::shared_ptr<Node> grad_fn;  // the op that produced this tensor, if recorded
};

// Throws fm::Error "<accessor>: called on an undefined tensor" (out of line: the message is built
// only when it is thrown).
[[noreturn]] void throw_undefined_tensor(const char* accessor);

inline const Shape& Tensor::shape() const {
  if (!impl_) throw_undefined_tensor("shape");
  return impl_->shape;
}
inline const Shape& Tensor::strides() const {
  if (!impl_) throw_undefined_tensor("strides");
  return impl_->strides;
}
inline DType Tensor::dtype() const {
  if (!impl_) throw_undefined_tensor("dtype");
  return impl_->dtype;
}
inline Device Tensor::device() const {
  if (!impl_) throw_undefined_tensor("device");
  return impl_->device;
}
inline bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }

// Arithmetic operators (defined in core/ops_elementwise.cpp; all broadcast and are differentiable).
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);

}  // namespace fm
