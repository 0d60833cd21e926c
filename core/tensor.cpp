// core/tensor.cpp — Storage, Tensor factories and metadata, views and copies.
//
// Views record their backward here too (reshape's gradient is a reshape, permute's is the inverse
// permutation, narrow's scatters into zeros, expand's sums over the broadcast dims).
#include "core/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <sstream>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/host_allocator.h"
#include "core/ops.h"
#include "core/tensor_internal.h"
#include "kernels/elementwise.h"
#include "kernels/runtime.h"

namespace fm {

// ---------------------------------------------------------------- shapes
std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << "[";
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  std::int64_t stride = 1;
  for (int d = int(shape.size()) - 1; d >= 0; --d) {
    strides[d] = stride;
    stride *= std::max<std::int64_t>(shape[d], 1);
  }
  return strides;
}

// ---------------------------------------------------------------- storage
Storage::Storage(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (device == Device::CPU) {
    data_ = host_memory::allocate(bytes);  // 64-byte aligned, from the block cache
  } else {
    data_ = kernels::cuda_malloc(bytes);
  }
}

Storage::~Storage() {
  if (device_ == Device::CPU)
    host_memory::release(data_, bytes_);
  else
    kernels::cuda_free(data_);
}

// ---------------------------------------------------------------- factories
namespace {
std::shared_ptr<TensorImpl> new_impl(Shape shape, DType dtype, Device device) {
  for (auto s : shape)
    FM_CHECK(s >= 0, ShapeError, "tensor: negative size in shape ", shape_str(shape));
  if (device == Device::CUDA)
    FM_CHECK(dtype != DType::Float64, DTypeError,
             "tensor: CUDA tensors are float32 or bfloat16, got float64");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(std::size_t(shape_numel(shape)) * dtype_size(dtype), device);
  impl->strides = contiguous_strides(shape);
  impl->shape = std::move(shape);  // taken by value: an op's freshly computed shape is moved, not copied
  impl->dtype = dtype;
  impl->device = device;
  return impl;
}

// A new impl that views `base`'s storage with a different shape/strides/offset.
Tensor make_view(const Tensor& base, Shape shape, Shape strides, std::int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  impl->device = base.device();
  return Tensor(impl);
}
}  // namespace

Tensor Tensor::empty(Shape shape, DType dtype, Device device) {
  return Tensor(new_impl(std::move(shape), dtype, device));
}
Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}
Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}
Tensor Tensor::scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dtype,
                           Device device) {
  FM_CHECK(std::int64_t(values.size()) == shape_numel(shape), ShapeError, "from_vector: ",
           values.size(), " values do not fill shape ", shape_str(shape));
  Tensor host = empty(shape, dtype, Device::CPU);
  dispatch_kernel<CpuTypesWithBf16>(
      "from_vector", Device::CPU, dtype,
      [&](auto type) {
        using T = element_type<decltype(type)>;
        T* p = host.data<T>();
        for (std::size_t i = 0; i < values.size(); ++i) p[i] = T(values[i]);  // one rounding each
      },
      [](auto) {});
  return device == Device::CPU ? host : host.to(device);
}

Tensor Tensor::from_floats(const std::vector<float>& values, const Shape& shape, Device device) {
  FM_CHECK(std::int64_t(values.size()) == shape_numel(shape), ShapeError, "from_floats: ",
           values.size(), " values do not fill shape ", shape_str(shape));
  Tensor host = empty(shape, DType::Float32, Device::CPU);
  std::copy(values.begin(), values.end(), host.data<float>());
  return device == Device::CPU ? host : host.to(device);
}

Tensor Tensor::arange(std::int64_t n, DType dtype, Device device) {
  std::vector<double> values(std::size_t(std::max<std::int64_t>(n, 0)));
  std::iota(values.begin(), values.end(), 0.0);
  return from_vector(values, {n}, dtype, device);
}

// ---------------------------------------------------------------- metadata
void throw_undefined_tensor(const char* accessor) {
  throw Error(cat(accessor, ": called on an undefined tensor"));
}
#define FM_REQUIRE_DEFINED(op)              \
  do {                                      \
    if (!impl_) throw_undefined_tensor(op); \
  } while (0)

int Tensor::dim() const { return int(shape().size()); }
std::int64_t Tensor::size(int d) const { return shape()[internal::normalize_dim("size", d, dim())]; }
std::int64_t Tensor::numel() const { return shape_numel(shape()); }
std::int64_t Tensor::offset() const { FM_REQUIRE_DEFINED("offset"); return impl_->offset; }
const std::shared_ptr<Storage>& Tensor::storage() const { FM_REQUIRE_DEFINED("storage"); return impl_->storage; }

bool Tensor::is_contiguous() const {
  const Shape& s = shape();
  const Shape& st = strides();
  std::int64_t expected = 1;
  for (int d = int(s.size()) - 1; d >= 0; --d) {
    if (s[d] != 1 && st[d] != expected) return false;
    expected *= s[d];
  }
  return true;
}

std::string Tensor::describe() const {
  if (!impl_) return "undefined";
  return cat(dtype_name(dtype()), " ", device_name(device()), " ", shape_str(shape()));
}

void* Tensor::raw_data() const {
  FM_REQUIRE_DEFINED("data");
  return static_cast<char*>(impl_->storage->data()) + impl_->offset * dtype_size(impl_->dtype);
}

template <typename T>
T* Tensor::data() const {
  FM_REQUIRE_DEFINED("data");
  FM_CHECK(impl_->dtype == dtype_of<T>::value, DTypeError, "data<", dtype_name(dtype_of<T>::value),
           ">: tensor is ", dtype_name(impl_->dtype));
  return static_cast<T*>(raw_data());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template bf16* Tensor::data<bf16>() const;

// ---------------------------------------------------------------- views
Tensor Tensor::view(const Shape& requested) const {
  FM_CHECK(is_contiguous(), ShapeError, "view: tensor ", describe(),
           " is not contiguous; use reshape() (which copies) instead");
  Shape shape = requested;
  int infer = -1;
  std::int64_t known = 1;
  for (int d = 0; d < int(shape.size()); ++d) {
    if (shape[d] == -1) {
      FM_CHECK(infer < 0, ShapeError, "view: more than one -1 in ", shape_str(requested));
      infer = d;
    } else {
      known *= shape[d];
    }
  }
  if (infer >= 0) {
    FM_CHECK(known > 0 && numel() % known == 0, ShapeError, "view: cannot view ", describe(), " as ",
             shape_str(requested));
    shape[infer] = numel() / known;
  }
  FM_CHECK(shape_numel(shape) == numel(), ShapeError, "view: cannot view ", describe(), " as ",
           shape_str(requested), " (", numel(), " elements vs ", shape_numel(shape), ")");
  Shape view_strides = contiguous_strides(shape);
  Tensor out = make_view(*this, std::move(shape), std::move(view_strides), offset());
  if (!needs_grad(*this)) return out;
  Shape input_shape = this->shape();
  return record_op(out, "view", {*this}, [input_shape](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(input_shape)};
  });
}

Tensor Tensor::reshape(const Shape& shape) const {
  return is_contiguous() ? view(shape) : contiguous().view(shape);
}

Tensor Tensor::permute(const std::vector<int>& dims) const {
  FM_CHECK(int(dims.size()) == dim(), ShapeError, "permute: got ", dims.size(), " dims for ",
           describe());
  Shape new_shape(dims.size()), new_strides(dims.size());
  std::vector<int> inverse(dims.size(), -1);
  for (int i = 0; i < int(dims.size()); ++i) {
    int d = internal::normalize_dim("permute", dims[i], dim());
    FM_CHECK(inverse[d] < 0, ShapeError, "permute: dim ", d, " repeated");
    inverse[d] = i;
    new_shape[i] = shape()[d];
    new_strides[i] = strides()[d];
  }
  Tensor out = make_view(*this, std::move(new_shape), std::move(new_strides), offset());
  if (!needs_grad(*this)) return out;
  return record_op(out, "permute", {*this}, [inverse](const Tensor& g) {
    return std::vector<Tensor>{g.permute(inverse)};
  });
}

Tensor Tensor::transpose(int dim0, int dim1) const {
  std::vector<int> order(dim());
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[internal::normalize_dim("transpose", dim0, dim())],
            order[internal::normalize_dim("transpose", dim1, dim())]);
  return permute(order);
}

Tensor Tensor::narrow(int d, std::int64_t start, std::int64_t length) const {
  d = internal::normalize_dim("narrow", d, dim());
  FM_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d], ShapeError, "narrow: range [",
           start, ", ", start + length, ") outside dim ", d, " of ", describe());
  Shape new_shape = shape();
  new_shape[d] = length;
  Tensor out = make_view(*this, std::move(new_shape), strides(), offset() + start * strides()[d]);
  if (!needs_grad(*this)) return out;
  Shape input_shape = shape();
  DType dt = dtype();
  Device dev = device();
  return record_op(out, "narrow", {*this}, [=](const Tensor& g) {
    Tensor full = Tensor::zeros(input_shape, dt, dev);
    full.narrow(d, start, length).copy_(g);
    return std::vector<Tensor>{full};
  });
}

Tensor Tensor::expand(const Shape& target) const {
  FM_CHECK(target.size() >= shape().size(), ShapeError, "expand: cannot expand ", describe(), " to ",
           shape_str(target));
  Shape new_strides(target.size(), 0);
  std::size_t lead = target.size() - shape().size();
  for (std::size_t i = 0; i < target.size(); ++i) {
    if (i < lead) continue;
    std::int64_t s = shape()[i - lead];
    if (s == target[i]) {
      new_strides[i] = strides()[i - lead];
    } else {
      FM_CHECK(s == 1, ShapeError, "expand: cannot expand ", describe(), " to ", shape_str(target));
    }
  }
  Tensor out = make_view(*this, target, std::move(new_strides), offset());
  if (!needs_grad(*this)) return out;
  Shape input_shape = shape();
  return record_op(out, "expand", {*this}, [input_shape](const Tensor& g) {
    return std::vector<Tensor>{sum_to_shape(g, input_shape)};
  });
}

Tensor Tensor::unsqueeze(int d) const {
  d = internal::normalize_dim("unsqueeze", d, dim() + 1);
  Shape s = shape();
  s.insert(s.begin() + d, 1);
  return reshape(s);
}

Tensor Tensor::squeeze(int d) const {
  d = internal::normalize_dim("squeeze", d, dim());
  FM_CHECK(shape()[d] == 1, ShapeError, "squeeze: dim ", d, " of ", describe(), " is not 1");
  Shape s = shape();
  s.erase(s.begin() + d);
  return reshape(s);
}

Tensor Tensor::flatten(int start_dim, int end_dim) const {
  if (dim() == 0) return reshape({1});
  start_dim = internal::normalize_dim("flatten", start_dim, dim());
  end_dim = internal::normalize_dim("flatten", end_dim, dim());
  Shape s;
  for (int d = 0; d < start_dim; ++d) s.push_back(shape()[d]);
  std::int64_t merged = 1;
  for (int d = start_dim; d <= end_dim; ++d) merged *= shape()[d];
  s.push_back(merged);
  for (int d = end_dim + 1; d < dim(); ++d) s.push_back(shape()[d]);
  return reshape(s);
}

// ---------------------------------------------------------------- copies
Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  internal::copy_same_device(*this, out);
  if (!needs_grad(*this)) return out;
  return record_op(out, "clone", {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  Tensor src = contiguous().detach();
  Tensor out;
  if (target == Device::CUDA) {
    FM_CHECK(dtype() != DType::Float64, DTypeError, "to(cuda): ", describe(),
             " cannot move to CUDA (CUDA tensors are float32 or bfloat16); convert with "
             "to(DType::Float32) first");
    out = empty(shape(), dtype(), Device::CUDA);
    kernels::cuda_copy_to_device(out.raw_data(), src.raw_data(), std::size_t(numel()) * dtype_size(dtype()));
  } else {
    out = empty(shape(), dtype(), Device::CPU);
    kernels::cuda_copy_to_host(out.raw_data(), src.raw_data(), std::size_t(numel()) * dtype_size(dtype()));
  }
  Device from = device();
  return record_op(out, "to_device", {*this}, [from](const Tensor& g) {
    return std::vector<Tensor>{g.to(from)};
  });
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  FM_CHECK(device() == Device::CPU || target != DType::Float64, DTypeError, "to(float64): ", describe(),
           " is on CUDA, which has no float64 tensors; move it to the CPU first");
  Tensor out = empty(shape(), target, device());
  internal::convert_same_device(*this, out);
  DType from = dtype();
  return record_op(out, "to_dtype", {*this}, [from](const Tensor& grad) {
    return std::vector<Tensor>{grad.to(from)};
  });
}

std::vector<double> Tensor::to_vector() const {
  Tensor host = detach().to(Device::CPU).contiguous();
  std::vector<double> values(std::size_t(host.numel()));
  dispatch_kernel<CpuTypesWithBf16>(
      "to_vector", Device::CPU, host.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        const T* p = host.data<T>();
        for (std::size_t i = 0; i < values.size(); ++i) values[i] = double(compute_t<T>(p[i]));  // exact
      },
      [](auto) {});
  return values;
}

std::vector<float> Tensor::to_float_vector() const {
  Tensor host = detach().to(Device::CPU).to(DType::Float32).contiguous();
  const float* p = host.data<float>();
  return std::vector<float>(p, p + host.numel());
}

double Tensor::item() const {
  FM_CHECK(numel() == 1, ShapeError, "item: tensor ", describe(), " has ", numel(), " elements, expected 1");
  return to_vector()[0];
}

Tensor& Tensor::copy_(const Tensor& source) {
  FM_REQUIRE_DEFINED("copy_");
  internal::check_defined("copy_", source, "source");
  Tensor src = source.detach();
  if (src.device() != device()) {
    // Convert where the type conversion exists (float64 lives only on the host), move across
    // devices contiguous, then strided-copy in place.
    if (src.device() == Device::CUDA) src = src.to(Device::CPU);
    if (src.dtype() != dtype()) src = src.to(dtype());
    src = src.to(device());
  }
  if (src.dtype() != dtype())
    internal::convert_same_device(src, *this);  // converts and copies in one pass
  else
    internal::copy_same_device(src, *this);
  return *this;
}

Tensor& Tensor::fill_(double value) {
  FM_REQUIRE_DEFINED("fill_");
  auto g = internal::make_geometry(shape(), strides(), strides());
  dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>(
      "fill_", device(), dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::fill_cpu(data<T>(), g, value);
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::fill_cuda(data<T>(), g, value);
      });
  return *this;
}

// ---------------------------------------------------------------- autograd accessors
Tensor& Tensor::set_requires_grad(bool enabled) {
  FM_REQUIRE_DEFINED("set_requires_grad");
  FM_CHECK(!impl_->grad_fn, AutogradError,
           "set_requires_grad: only leaf tensors can change requires_grad (this one came from ",
           impl_->grad_fn->op_name, ")");
  impl_->requires_grad = enabled;
  return *this;
}

Tensor Tensor::grad() const { FM_REQUIRE_DEFINED("grad"); return impl_->grad; }
void Tensor::set_grad(const Tensor& g) const { FM_REQUIRE_DEFINED("set_grad"); impl_->grad = g; }
void Tensor::zero_grad() const { FM_REQUIRE_DEFINED("zero_grad"); impl_->grad = Tensor(); }
bool Tensor::is_leaf() const { return !impl_ || !impl_->grad_fn; }
const std::shared_ptr<Node>& Tensor::grad_fn() const { FM_REQUIRE_DEFINED("grad_fn"); return impl_->grad_fn; }

Tensor Tensor::detach() const {
  FM_REQUIRE_DEFINED("detach");
  return make_view(*this, shape(), strides(), offset());
}

}  // namespace fm
