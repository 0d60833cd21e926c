// core/ops_shape.cpp — joining tensors. concat copies each input into its slice of the output; the
// gradient of each input is the matching slice of the output's gradient.
#include "core/autograd.h"
#include "core/ops.h"
#include "core/tensor_internal.h"

namespace fm {

Tensor concat(const std::vector<Tensor>& tensors, int dim) {
  FM_CHECK(!tensors.empty(), ValueError, "concat: no tensors given");
  const Tensor& first = tensors[0];
  internal::check_defined("concat", first, "tensor 0");
  dim = internal::normalize_dim("concat", dim, first.dim());
  Shape out_shape = first.shape();
  out_shape[dim] = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    internal::check_same_dtype_device("concat", {&first, &t});
    FM_CHECK(t.dim() == first.dim(), ShapeError, "concat: tensor ", i, " has shape ",
             shape_str(t.shape()), ", tensor 0 has ", shape_str(first.shape()));
    for (int d = 0; d < t.dim(); ++d)
      FM_CHECK(d == dim || t.size(d) == first.size(d), ShapeError, "concat: tensor ", i, " has shape ",
               shape_str(t.shape()), ", expected ", shape_str(first.shape()), " except in dim ", dim);
    out_shape[dim] += t.size(dim);
  }
  Tensor out = Tensor::empty(out_shape, first.dtype(), first.device());
  std::vector<std::int64_t> starts;
  std::int64_t start = 0;
  {
    for (const Tensor& t : tensors) {
      starts.push_back(start);
      internal::copy_same_device(t.detach(), out.narrow(dim, start, t.size(dim)));
      start += t.size(dim);
    }
  }
  std::vector<std::int64_t> lengths;
  for (const Tensor& t : tensors) lengths.push_back(t.size(dim));
  return record_op(out, "concat", tensors, [=](const Tensor& g) {
    std::vector<Tensor> grads;
    for (std::size_t i = 0; i < starts.size(); ++i)
      grads.push_back(g.narrow(dim, starts[i], lengths[i]).contiguous());
    return grads;
  });
}

}  // namespace fm
