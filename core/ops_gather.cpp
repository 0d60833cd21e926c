// core/ops_gather.cpp — RowIndex and take_rows (see core/ops.h): a batch gathered from a table that
// stays on its device, through row indices that were uploaded once.
//
// No new kernel: gathering rows is the embedding lookup (kernels/embedding.h, out[i, d] =
// table[index[i], d]) with dim = the size of one row, so take_rows reuses embedding_forward_*. What
// differs from embedding() is where the indices live: embedding() copies its host indices to the
// device on every call (a few labels); a RowIndex is on the device already, so a call copies nothing.
// take_labels gathers a batch's class labels likewise (an index of labels, through the epoch order)
// and applies the label dropout in the same pass (kernels/labels.h); toy_labels makes the labels of
// fresh 2-D toy points the same way, from their draws (kernels/toy_law.h).
#include <algorithm>
#include <climits>

#include "core/dispatch.h"
#include "core/ops.h"
#include "core/tensor_internal.h"
#include "kernels/embedding.h"
#include "kernels/labels.h"
#include "kernels/runtime.h"

namespace fm {

namespace {
void check_rows(const std::vector<std::int32_t>& rows, std::int64_t table_rows, const char* what) {
  // The kernels index with int: a larger table or list would overflow them.
  FM_CHECK(table_rows >= 0 && table_rows <= INT_MAX && std::int64_t(rows.size()) <= INT_MAX, ValueError, what, ": ",
           rows.size(), " indices into ", table_rows, " rows, expected at most ", INT_MAX, " of each");
  for (std::size_t i = 0; i < rows.size(); ++i)
    FM_CHECK(rows[i] >= 0 && rows[i] < table_rows, ValueError, what, ": index ", rows[i], " at position ", i,
             " outside the table's ", table_rows, " rows");
}
}  // namespace

RowIndex::RowIndex(const std::vector<std::int32_t>& rows, std::int64_t table_rows, Device device, const char* what)
    : size_(std::int64_t(rows.size())), table_rows_(table_rows), device_(device) {
  check_rows(rows, table_rows, what);
  if (rows.empty()) return;
  if (device == Device::CPU) {
    auto host = std::make_shared<std::vector<std::int32_t>>(rows);
    rows_ = std::shared_ptr<const std::int32_t>(host, host->data());  // shares the vector's lifetime
  } else {
    const std::size_t bytes = rows.size() * sizeof(std::int32_t);
    auto* buffer = static_cast<std::int32_t*>(kernels::cuda_malloc(bytes));
    rows_ = std::shared_ptr<const std::int32_t>(buffer, [](const std::int32_t* p) {
      kernels::cuda_free(const_cast<std::int32_t*>(p));
    });
    // Queued on the stream like every kernel, so the gathers that read it come after it.
    kernels::cuda_copy_to_device(buffer, rows.data(), bytes);
  }
}

const std::int32_t* RowIndex::data() const { return rows_.get(); }

void RowIndex::overwrite(const std::vector<std::int32_t>& rows) {
  FM_CHECK(std::int64_t(rows.size()) == size_, ValueError, "RowIndex::overwrite: ", rows.size(),
           " indices, expected the ", size_, " the buffer holds");
  check_rows(rows, table_rows_, "RowIndex::overwrite");
  if (rows.empty()) return;
  // The buffer is this index's own (made by the constructor); const only to the gathers that read it.
  auto* buffer = const_cast<std::int32_t*>(rows_.get());
  if (device_ == Device::CPU)
    std::copy(rows.begin(), rows.end(), buffer);
  else
    kernels::cuda_copy_to_device(buffer, rows.data(), rows.size() * sizeof(std::int32_t));
}

std::vector<std::int32_t> RowIndex::to_vector() const {
  std::vector<std::int32_t> rows(static_cast<std::size_t>(size_));
  if (rows.empty()) return rows;
  if (device_ == Device::CPU)
    std::copy(rows_.get(), rows_.get() + size_, rows.begin());
  else
    kernels::cuda_copy_to_host(rows.data(), rows_.get(), rows.size() * sizeof(std::int32_t));
  return rows;
}

Tensor take_rows(const Tensor& table_in, const RowIndex& index, std::int64_t first, std::int64_t count,
                 const std::int64_t* first_on_device) {
  internal::check_defined("take_rows", table_in, "table");
  FM_CHECK(!first_on_device || index.device() == Device::CUDA, DeviceError,
           "take_rows: a position read from device memory is for CUDA tables (a recorded step)");
  FM_CHECK(table_in.dim() >= 1, ShapeError, "take_rows: table ", table_in.describe(),
           " has no rows (expected [rows, ...])");
  FM_CHECK(table_in.device() == index.device(), DeviceError, "take_rows: table ", table_in.describe(),
           " and an index on ", device_name(index.device()), " (expected both on one device)");
  FM_CHECK(first >= 0 && count >= 0 && first + count <= index.size(), ValueError, "take_rows: rows [", first, ", ",
           first + count, ") of an index of ", index.size());
  FM_CHECK(table_in.size(0) >= index.table_rows(), ShapeError, "take_rows: the index was checked against ",
           index.table_rows(), " rows, but table ", table_in.describe(), " has fewer");
  // contiguous() is the table itself when it already is (a data set: no copy per call).
  const Tensor table = table_in.detach().contiguous();
  const std::int64_t row_size = table.size(0) == 0 ? 0 : table.numel() / table.size(0);
  FM_CHECK(row_size <= INT_MAX, ShapeError, "take_rows: rows of ", row_size, " elements, expected at most ",
           INT_MAX);
  Shape shape = table.shape();
  shape[0] = count;
  Tensor out = Tensor::empty(shape, table.dtype(), table.device());
  if (count == 0 || row_size == 0) return out;
  const std::int32_t* rows = first_on_device ? index.data() : index.data() + first;
  const int table_rows = int(index.table_rows());  // every index is below it (checked at construction)
  dispatch_kernel(
      "take_rows", table.device(), table.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::embedding_forward_cpu<T>(table.data<T>(), rows, out.data<T>(), int(count), table_rows,
                                          int(row_size));
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::embedding_forward_cuda(table.data<T>(), rows, out.data<T>(), int(count), table_rows, int(row_size),
                                        first_on_device, index.size());
      });
  return out;
}

void take_labels(RowIndex& out, const RowIndex& labels, const RowIndex& index, std::int64_t first,
                 const LabelDropout& dropout, const std::int64_t* first_on_device) {
  const std::int64_t count = out.size();
  FM_CHECK(out.device() == labels.device() && out.device() == index.device(), DeviceError,
           "take_labels: labels on ", device_name(labels.device()), ", an index on ", device_name(index.device()),
           " and the output on ", device_name(out.device()), " (expected one device)");
  FM_CHECK(!(first_on_device || dropout.step_on_device) || out.device() == Device::CUDA, DeviceError,
           "take_labels: a position or step read from device memory is for CUDA (a recorded step)");
  FM_CHECK(first >= 0 && first + count <= index.size(), ValueError, "take_labels: rows [", first, ", ", first + count,
           ") of an index of ", index.size());
  FM_CHECK(index.table_rows() <= labels.size(), ValueError, "take_labels: the index was checked against ",
           index.table_rows(), " rows, but there are ", labels.size(), " labels");
  FM_CHECK(dropout.null_class >= 0 && labels.table_rows() <= dropout.null_class &&
               out.table_rows() == std::int64_t(dropout.null_class) + 1,
           ValueError, "take_labels: labels below ", labels.table_rows(), ", null class ", dropout.null_class,
           " and an output checked against ", out.table_rows(),
           " classes (expected labels below the null class, the output's classes = null class + 1)");
  FM_CHECK(dropout.probability >= 0 && dropout.probability < 1, ValueError, "take_labels: dropout probability ",
           dropout.probability, ", expected a number in [0, 1)");
  FM_CHECK(dropout.step >= 0 && dropout.step < (std::int64_t(1) << 32) && dropout.first_sample >= 0 &&
               dropout.first_sample + count <= (std::int64_t(1) << 32),
           ValueError, "take_labels: step ", dropout.step, " and samples [", dropout.first_sample, ", ",
           dropout.first_sample + count, ") outside the Philox counter's [0, 2^32)");
  FM_CHECK(count <= INT_MAX, ValueError, "take_labels: ", count, " labels, expected at most ", INT_MAX);
  FM_CHECK(count == 0 || (out.data() != labels.data() && out.data() != index.data()), ValueError,
           "take_labels: the output shares its buffer with the labels or the index (expected a buffer of its own)");
  if (count == 0) return;
  const kernels::PhiloxPlace place{dropout.key.seed, dropout.key.stream, std::uint32_t(dropout.step),
                                   std::uint32_t(dropout.first_sample), dropout.step_on_device};
  if (out.device() == Device::CPU) {
    kernels::batch_labels_cpu(out.data_to_write(), labels.data(), index.data(), first, int(count), dropout.probability,
                              dropout.null_class, place);
    return;
  }
#ifdef FM_WITH_CUDA
  kernels::batch_labels_cuda(out.data_to_write(), labels.data(), labels.size(), index.data(), index.size(), first,
                             first_on_device, int(count), dropout.probability, dropout.null_class, place);
#else
  throw DeviceError("take_labels: this build has no CUDA kernels (configure with the CUDA toolkit)");
#endif
}

void toy_labels(RowIndex& out, const ToyLaw& law, std::int32_t num_classes, PhiloxKey key, std::int64_t step,
                std::int64_t first_sample, const std::uint32_t* step_on_device, const LabelDropout& dropout) {
  const std::int64_t count = out.size();
  FM_CHECK(!(step_on_device || dropout.step_on_device) || out.device() == Device::CUDA, DeviceError,
           "toy_labels: a step read from device memory is for CUDA (a recorded step)");
  FM_CHECK(num_classes >= 1 && dropout.null_class >= num_classes && out.table_rows() == std::int64_t(dropout.null_class) + 1,
           ValueError, "toy_labels: ", num_classes, " classes, null class ", dropout.null_class,
           " and an output checked against ", out.table_rows(),
           " classes (expected the null class at or past the classes, the output's classes = null class + 1)");
  FM_CHECK(dropout.probability >= 0 && dropout.probability < 1, ValueError, "toy_labels: dropout probability ",
           dropout.probability, ", expected a number in [0, 1)");
  const std::int64_t limit = std::int64_t(1) << 32;
  FM_CHECK(step >= 0 && step < limit && dropout.step >= 0 && dropout.step < limit && first_sample >= 0 &&
               first_sample + count <= limit && dropout.first_sample >= 0 && dropout.first_sample + count <= limit,
           ValueError, "toy_labels: steps ", step, " and ", dropout.step, ", samples [", first_sample, ", ",
           first_sample + count, ") and [", dropout.first_sample, ", ", dropout.first_sample + count,
           ") outside the Philox counter's [0, 2^32)");
  if (count == 0) return;
  const kernels::PhiloxPlace place{key.seed, key.stream, std::uint32_t(step), std::uint32_t(first_sample), step_on_device};
  const kernels::PhiloxPlace dropout_place{dropout.key.seed, dropout.key.stream, std::uint32_t(dropout.step),
                                           std::uint32_t(dropout.first_sample), dropout.step_on_device};
  if (out.device() == Device::CPU) {
    kernels::toy_labels_cpu(out.data_to_write(), count, place, law, dropout.probability, dropout.null_class, dropout_place);
    return;
  }
#ifdef FM_WITH_CUDA
  kernels::toy_labels_cuda(out.data_to_write(), count, place, law, dropout.probability, dropout.null_class, dropout_place);
#else
  throw DeviceError("toy_labels: this build has no CUDA kernels (configure with the CUDA toolkit)");
#endif
}

}  // namespace fm
