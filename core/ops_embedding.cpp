// core/ops_embedding.cpp — embedding(table, indices): row indices[i] of table [rows, dim] as row i
// of the result [count, dim], differentiable in the table (a class label's learned vector).
//
// The op that docs/03_ops_and_kernels.md §3.7 ("Quick start: adding an op") walks through: checks, a kernel
// call per pass through dispatch_kernel, and the backward recorded beside the forward. Indices live
// in a host vector, like cross_entropy's labels, and go to the device once per call as a RowIndex
// (core/ops.h) that the backward pass shares; or they are a RowIndex already (a recorded step's labels).
#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops_nn.h"
#include "core/tensor_internal.h"
#include "kernels/embedding.h"

namespace fm {

Tensor embedding(const Tensor& table_in, const std::vector<std::int32_t>& indices) {
  internal::check_dim("embedding", table_in, 2, "table", "(rows, dim)");
  // Each index is checked once, by the RowIndex, against the table's rows (the error names this op).
  // On CUDA the indices go to the device here, once per call; the backward pass shares them.
  return embedding_by_index(table_in, RowIndex(indices, table_in.size(0), table_in.device(), "embedding"));
}

Tensor embedding_by_index(const Tensor& table_in, const RowIndex& indices) {
  internal::check_dim("embedding", table_in, 2, "table", "(rows, dim)");
  FM_CHECK(indices.device() == table_in.device(), DeviceError, "embedding: table ", table_in.describe(),
           " and indices on ", device_name(indices.device()), " (expected both on one device)");
  FM_CHECK(indices.table_rows() <= table_in.size(0), ValueError, "embedding: the indices were checked against ",
           indices.table_rows(), " rows, but table ", table_in.describe(), " has fewer");
  const int rows = int(table_in.size(0)), dim = int(table_in.size(1)), count = int(indices.size());
  Tensor table = table_in.detach().contiguous();
  Tensor out = Tensor::empty({count, dim}, table.dtype(), table.device());
  dispatch_kernel(
      "embedding", table.device(), table.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::embedding_forward_cpu<T>(table.data<T>(), indices.data(), out.data<T>(), count, rows, dim);
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::embedding_forward_cuda(table.data<T>(), indices.data(), out.data<T>(), count, rows, dim);
      });
  // d out[i, :] / d table[r, :] = [indices[i] = r]: the gradient scatter-adds the rows of g. (The
  // copy of the RowIndex shares its buffer: the backward reads the indices the forward read.)
  return record_op(out, "embedding", {table_in}, [=](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor dtable = Tensor::empty({rows, dim}, g.dtype(), g.device());
    dispatch_kernel(
        "embedding", g.device(), g.dtype(),
        [&](auto type) {
          using T = element_type<decltype(type)>;
          kernels::embedding_backward_cpu<T>(g.data<T>(), indices.data(), dtable.data<T>(), count, rows, dim);
        },
        [&](auto type) {
          using T = element_type<decltype(type)>;
          kernels::embedding_backward_cuda(g.data<T>(), indices.data(), dtable.data<T>(), count, rows, dim);
        });
    return std::vector<Tensor>{dtable};
  });
}

}  // namespace fm
