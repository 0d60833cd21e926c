// core/tensor_internal.cpp — argument checks, broadcasting and copy dispatch shared by core ops.
#include "core/tensor_internal.h"

#include <algorithm>
#include <type_traits>

#include "core/dispatch.h"
#include "kernels/elementwise.h"
#include "kernels/runtime.h"

namespace fm::internal {

void check_defined(const char* op, const Tensor& t, const char* what) {
  FM_CHECK(t.defined(), Error, op, ": ", what, " is an undefined tensor");
}

void check_same_dtype_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    FM_CHECK(t->defined(), Error, op, ": an input is an undefined tensor");
    if (!first) {
      first = t;
      continue;
    }
    FM_CHECK(t->device() == first->device(), DeviceError, op, ": inputs on different devices (",
             first->describe(), " and ", t->describe(), ")");
    FM_CHECK(t->dtype() == first->dtype(), DTypeError, op, ": inputs of different dtypes (",
             first->describe(), " and ", t->describe(), ")");
  }
}

void check_dim(const char* op, const Tensor& t, int expected_dims, const char* what,
               const char* layout) {
  check_defined(op, t, what);
  FM_CHECK(t.dim() == expected_dims, ShapeError, op, ": ", what, " has ", t.dim(), " dims ",
           shape_str(t.shape()), ", expected ", expected_dims, " ", layout);
}

int normalize_dim(const char* op, int dim, int ndim) {
  int d = dim < 0 ? dim + ndim : dim;
  FM_CHECK(d >= 0 && d < std::max(ndim, 1), ShapeError, op, ": dim ", dim, " out of range for ",
           ndim, "-d tensor");
  return d;
}

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  std::size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::int64_t sa = i < n - a.size() ? 1 : a[i - (n - a.size())];
    std::int64_t sb = i < n - b.size() ? 1 : b[i - (n - b.size())];
    FM_CHECK(sa == sb || sa == 1 || sb == 1, ShapeError, op, ": shapes ", shape_str(a), " and ",
             shape_str(b), " do not broadcast");
    out[i] = sa == 1 ? sb : sa;
  }
  return out;
}

Shape broadcast_strides(const Tensor& t, const Shape& out_shape) {
  Shape strides(out_shape.size(), 0);
  std::size_t lead = out_shape.size() - t.shape().size();
  for (std::size_t i = lead; i < out_shape.size(); ++i)
    strides[i] = t.shape()[i - lead] == 1 ? 0 : t.strides()[i - lead];
  return strides;
}

namespace {
void check_geometry_dims(const Shape& sizes) {
  FM_CHECK(int(sizes.size()) <= kernels::kMaxDims, ShapeError, "elementwise: ", sizes.size(),
           " dims, at most ", kernels::kMaxDims, " supported");
}
// After the size-1 dims are dropped: a scalar is one element, and an empty tensor has numel() == 0.
void finish_geometry(kernels::ElementwiseGeometry& g, const Shape& sizes) {
  if (g.ndim == 0) {
    g.ndim = 1;
    g.sizes[0] = 1;
  }
  for (auto s : sizes)
    if (s == 0) g.sizes[0] = 0;
}
}  // namespace

kernels::ElementwiseGeometry make_geometry(const Shape& sizes, const Shape& out_strides,
                                           const Shape& a_strides, const Shape& b_strides) {
  check_geometry_dims(sizes);
  kernels::ElementwiseGeometry g;
  // Drop size-1 dims: they contribute nothing and keep the index arithmetic short.
  for (std::size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 1) continue;
    g.sizes[g.ndim] = sizes[d];
    g.out_strides[g.ndim] = out_strides[d];
    g.a_strides[g.ndim] = a_strides[d];
    g.b_strides[g.ndim] = b_strides.empty() ? 0 : b_strides[d];
    ++g.ndim;
  }
  finish_geometry(g, sizes);
  return g;
}

kernels::ElementwiseGeometry broadcast_geometry(const Tensor& y, const Tensor& a, const Tensor& b) {
  const Shape& sizes = y.shape();
  check_geometry_dims(sizes);
  const std::size_t n = sizes.size();
  const std::size_t lead_a = n - a.shape().size(), lead_b = n - b.shape().size();
  // An operand's stride over output dim d (right-aligned; 0 where it is broadcast), as broadcast_strides.
  auto stride_of = [&](const Tensor& t, std::size_t lead, std::size_t d) -> std::int64_t {
    return d < lead || t.shape()[d - lead] == 1 ? 0 : t.strides()[d - lead];
  };
  kernels::ElementwiseGeometry g;
  for (std::size_t d = 0; d < n; ++d) {  // size-1 dims dropped, as in make_geometry
    if (sizes[d] == 1) continue;
    g.sizes[g.ndim] = sizes[d];
    g.out_strides[g.ndim] = y.strides()[d];
    g.a_strides[g.ndim] = stride_of(a, lead_a, d);
    g.b_strides[g.ndim] = stride_of(b, lead_b, d);
    ++g.ndim;
  }
  finish_geometry(g, sizes);
  return g;
}

void copy_same_device(const Tensor& src, const Tensor& dst) {
  FM_CHECK(src.device() == dst.device() && src.dtype() == dst.dtype(), Error,
           "copy: internal dtype/device mismatch");
  Shape out = broadcast_shapes("copy_", src.shape(), dst.shape());
  FM_CHECK(out == dst.shape(), ShapeError, "copy_: source ", src.describe(),
           " does not fit destination ", dst.describe());
  auto g = make_geometry(dst.shape(), dst.strides(), broadcast_strides(src, dst.shape()));
  dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>(
      "copy_", dst.device(), dst.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::unary_cpu(kernels::UnaryOp::Identity, src.data<T>(), dst.data<T>(), g, 1, 0);
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::unary_cuda(kernels::UnaryOp::Identity, src.data<T>(), dst.data<T>(), g, 1, 0);
      });
}

void convert_same_device(const Tensor& src, const Tensor& dst) {
  FM_CHECK(src.device() == dst.device(), Error, "convert: internal device mismatch");
  // Its callers (to(dtype), copy_) send equal types to copy_same_device instead, so the CUDA side
  // has no same-type conversion kernels to build.
  FM_CHECK(src.dtype() != dst.dtype(), Error, "convert: internal: equal dtypes are a copy, not a conversion");
  Shape out = broadcast_shapes("copy_", src.shape(), dst.shape());
  FM_CHECK(out == dst.shape(), ShapeError, "copy_: source ", src.describe(),
           " does not fit destination ", dst.describe());
  auto g = make_geometry(dst.shape(), dst.strides(), broadcast_strides(src, dst.shape()));
  // Two dispatches, one per side: the outer picks the source's element type, the inner the
  // destination's.
  auto convert = [&](auto from_type) {
    using From = element_type<decltype(from_type)>;
    dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>(
        "to(dtype)", dst.device(), dst.dtype(),
        [&](auto to_type) {
          using To = element_type<decltype(to_type)>;
          kernels::convert_cpu(src.data<From>(), dst.data<To>(), g);
        },
        [&](auto to_type) {
          using To = element_type<decltype(to_type)>;
          if constexpr (!std::is_same_v<From, double> && !std::is_same_v<From, To>)
            kernels::convert_cuda(src.data<From>(), dst.data<To>(), g);
        });
  };
  dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>("to(dtype)", src.device(), src.dtype(), convert, convert);
}

}  // namespace fm::internal
