// core/ops_reduce.cpp — sum and mean over dimensions.
//
// All reductions use one kernel, "sum the rows of a contiguous matrix": the kept dims are moved to
// the front and the reduced dims to the back (a permuted contiguous copy when needed), so the
// reduced elements of each output are one contiguous row. The gradient of a sum is the incoming
// gradient broadcast back over the reduced dims.
#include <algorithm>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/tensor_internal.h"
#include "kernels/reduce.h"

namespace fm {

Tensor sum(const Tensor& x, std::vector<int> dims, bool keepdim) {
  internal::check_defined("sum", x, "input");
  const int ndim = x.dim();
  std::vector<bool> reduced(std::size_t(std::max(ndim, 1)), false);
  for (int& d : dims) {
    d = internal::normalize_dim("sum", d, ndim);
    reduced[d] = true;
  }
  std::vector<int> order;
  Shape kept_shape, keepdim_shape;
  std::int64_t rows = 1, cols = 1;
  for (int d = 0; d < ndim; ++d)
    if (!reduced[d]) {
      order.push_back(d);
      kept_shape.push_back(x.size(d));
      rows *= x.size(d);
    }
  for (int d = 0; d < ndim; ++d) {
    keepdim_shape.push_back(reduced[d] ? 1 : x.size(d));
    if (reduced[d]) {
      order.push_back(d);
      cols *= x.size(d);
    }
  }
  Tensor y = Tensor::empty(keepdim ? keepdim_shape : kept_shape, x.dtype(), x.device());
  // Kept dims first, reduced dims last: each output's elements become one contiguous row. A
  // contiguous x whose reduced dims are already the trailing ones is that matrix as it is.
  bool in_order = true;
  for (std::size_t i = 0; i < order.size(); ++i) in_order = in_order && order[i] == int(i);
  auto permuted = [&]() -> Tensor {
    if (in_order && x.is_contiguous()) return x;
    return (ndim == 0 ? x.detach() : x.detach().permute(order)).contiguous();
  };
  // The reduced dims are the leading ones of a contiguous tensor (Σ over the batch): the CPU sums
  // down the columns in place, with the same bits as the row sums of the transposed copy.
  std::size_t leading = 0;
  while (leading < reduced.size() && int(leading) < ndim && reduced[leading]) ++leading;
  bool reduced_after = false;
  for (int d = int(leading); d < ndim; ++d) reduced_after = reduced_after || reduced[std::size_t(d)];
  const bool reduces_leading = x.is_contiguous() && leading > 0 && int(leading) < ndim && !reduced_after;
  dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>(
      "sum", x.device(), x.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        if (reduces_leading) {
          kernels::sum_leading_cpu(x.data<T>(), y.data<T>(), cols, rows);
        } else {
          Tensor source = permuted();
          kernels::sum_rows_cpu(source.data<T>(), y.data<T>(), rows, cols);
        }
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        Tensor source = permuted();
        kernels::sum_rows_cuda(source.data<T>(), y.data<T>(), rows, cols);
      });
  if (!needs_grad(x)) return y;
  Shape input_shape = x.shape();
  return record_op(y, "sum", {x}, [=](const Tensor& g) {
    // A broadcast view (stride 0 over the reduced dims), not a copy: the ops that consume it read
    // strided inputs, and a leaf's gradient is made contiguous when it is stored (Tensor::backward).
    return std::vector<Tensor>{g.reshape(keepdim_shape).expand(input_shape)};
  });
}

Tensor sum(const Tensor& x) {
  std::vector<int> all(std::size_t(x.dim()));
  for (int d = 0; d < x.dim(); ++d) all[d] = d;
  return sum(x, all, false);
}

Tensor mean(const Tensor& x, std::vector<int> dims, bool keepdim) {
  std::int64_t count = 1;
  for (int d : dims) count *= x.size(d);
  FM_CHECK(count > 0, ShapeError, "mean: reducing over zero elements of ", x.describe());
  return affine(sum(x, dims, keepdim), 1.0 / double(count), 0.0);
}

Tensor mean(const Tensor& x) {
  FM_CHECK(x.numel() > 0, ShapeError, "mean: tensor ", x.describe(), " is empty");
  return affine(sum(x), 1.0 / double(x.numel()), 0.0);
}

}  // namespace fm
