// tests/test_core_take_rows.cpp — RowIndex and take_rows (core/ops.h), the gather a device-resident
// training set serves its batches with:
//   * on the CPU, rows index[first … first + count) of a table of any trailing shape, as a hand loop;
//   * on CUDA, the same bits as the CPU, and a gather copies nothing from the host (the index was
//     uploaded once, when it was made);
//   * a bad index is refused when the RowIndex is made, naming it and the row count; a range past
//     the index, a table smaller than the index was checked against, or another device are refused;
//   * take_labels: a batch's labels through an order, with label dropout at each sample's Philox
//     place, as a hand loop over philox_uniform_at; on CUDA the same bits, also with the position and
//     the Philox step read from device words (a recorded step); bad arguments refused.
#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "core/ops.h"
#include "core/random.h"
#include "kernels/runtime.h"
#include "test_util.h"

using namespace fm;

namespace {

// The reference: out row i = table row rows[first + i], by plain loops over the host values.
std::vector<double> hand_gather(const Tensor& table, const std::vector<std::int32_t>& rows, std::int64_t first,
                                std::int64_t count) {
  const std::vector<double> values = table.to_vector();
  const std::int64_t row_size = table.numel() / table.size(0);
  std::vector<double> out;
  for (std::int64_t i = first; i < first + count; ++i)
    for (std::int64_t k = 0; k < row_size; ++k) out.push_back(values[std::size_t(rows[std::size_t(i)] * row_size + k)]);
  return out;
}

// The reference of take_labels: labels[order[first + i]], or the null class where sample
// first_sample + i's uniform (element 0 at the dropout's place) is below the probability.
std::vector<std::int32_t> hand_labels(const std::vector<std::int32_t>& labels, const std::vector<std::int32_t>& order,
                                      std::int64_t first, std::int64_t count, const LabelDropout& dropout) {
  std::vector<std::int32_t> out;
  for (std::int64_t i = 0; i < count; ++i) {
    const bool dropped = philox_uniform_at(dropout.key, dropout.step, dropout.first_sample + i, 0) < dropout.probability;
    out.push_back(dropped ? dropout.null_class : labels[std::size_t(order[std::size_t(first + i)])]);
  }
  return out;
}

// Sixty examples of 10 classes, a shuffled order, a batch of 40 from position 12 (first sample 3).
struct LabelCase {
  std::vector<std::int32_t> labels, order;
  LabelDropout dropout;
  LabelCase() {
    for (int i = 0; i < 60; ++i) labels.push_back((7 * i + 3) % 10);
    for (int i = 0; i < 60; ++i) order.push_back((37 * i + 11) % 60);
    dropout = LabelDropout{0.3, 10, PhiloxKey{2024, 7}, 19, 3, nullptr};
  }
};

std::vector<std::int32_t> to_host(const RowIndex& index) {
  std::vector<std::int32_t> out(std::size_t(index.size()));
  if (index.device() == Device::CPU) std::copy(index.data(), index.data() + index.size(), out.begin());
  else kernels::cuda_copy_to_host(out.data(), index.data(), out.size() * sizeof(std::int32_t));
  return out;
}

}  // namespace

TEST_CASE("take_labels gathers a batch's labels and drops them at their Philox places (CPU)", "[core][gather]") {
  const LabelCase c;
  const RowIndex labels(c.labels, 10, Device::CPU), order(c.order, 60, Device::CPU);
  RowIndex out(std::vector<std::int32_t>(40, 0), 11, Device::CPU);
  take_labels(out, labels, order, 12, c.dropout);
  const std::vector<std::int32_t> got = to_host(out), expected = hand_labels(c.labels, c.order, 12, 40, c.dropout);
  REQUIRE(got == expected);
  // Both kinds occur: some labels dropped, some kept.
  const auto dropped = std::count(got.begin(), got.end(), 10);
  REQUIRE(dropped > 0);
  REQUIRE(dropped < 40);
  // Probability 0 keeps every label.
  LabelDropout none = c.dropout;
  none.probability = 0;
  take_labels(out, labels, order, 12, none);
  const std::vector<std::int32_t> kept = to_host(out);
  REQUIRE(kept == hand_labels(c.labels, c.order, 12, 40, none));
  REQUIRE(std::count(kept.begin(), kept.end(), 10) == 0);
  // Refused: a range past the order, labels not below the null class, an output of other classes, a
  // probability outside [0, 1), a step read from the device on the CPU.
  REQUIRE_THROWS_WITH(take_labels(out, labels, order, 30, c.dropout), Catch::Contains("rows [30, 70)"));
  LabelDropout low = c.dropout;
  low.null_class = 9;
  REQUIRE_THROWS_AS(take_labels(out, labels, order, 0, low), ValueError);
  LabelDropout certain = c.dropout;
  certain.probability = 1;
  REQUIRE_THROWS_WITH(take_labels(out, labels, order, 0, certain), Catch::Contains("expected a number in [0, 1)"));
  const std::uint32_t word = 0;
  LabelDropout from_device = c.dropout;
  from_device.step_on_device = &word;
  REQUIRE_THROWS_AS(take_labels(out, labels, order, 0, from_device), DeviceError);
}

TEST_CASE("take_labels on CUDA gives the CPU's bits with the position and step read from the device", "[core][gather][gpu]") {
  FM_REQUIRE_GPU();
  const LabelCase c;
  const RowIndex labels(c.labels, 10, Device::CUDA), order(c.order, 60, Device::CUDA);
  RowIndex out(std::vector<std::int32_t>(40, 0), 11, Device::CUDA);
  take_labels(out, labels, order, 12, c.dropout);
  REQUIRE(to_host(out) == hand_labels(c.labels, c.order, 12, 40, c.dropout));
  // Position 17 and step 23 from device words; the host's arguments (position 0, step 19) ignored.
  const std::int64_t position = 17;
  const std::uint32_t step = 23;
  auto* words = static_cast<char*>(kernels::cuda_malloc(16));
  kernels::cuda_copy_to_device(words, &position, 8);
  kernels::cuda_copy_to_device(words + 8, &step, 4);
  LabelDropout from_device = c.dropout;
  from_device.step_on_device = reinterpret_cast<const std::uint32_t*>(words + 8);
  take_labels(out, labels, order, 0, from_device, reinterpret_cast<const std::int64_t*>(words));
  LabelDropout at_23 = c.dropout;
  at_23.step = 23;
  const std::vector<std::int32_t> got = to_host(out);
  kernels::cuda_free(words);
  REQUIRE(got == hand_labels(c.labels, c.order, 17, 40, at_23));
  REQUIRE(got != hand_labels(c.labels, c.order, 0, 40, c.dropout));
}

TEST_CASE("take_rows gathers rows of any trailing shape as a hand loop does (CPU)", "[core][gather]") {
  Generator gen(11);
  const std::vector<std::int32_t> rows = {6, 0, 3, 3, 1, 5, 2};  // repeats allowed
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (const Shape& shape : {Shape{7}, Shape{7, 5}, Shape{7, 1, 3, 2}}) {
      INFO(dtype_name(dtype) << " table " << shape_str(shape));
      const Tensor table = randn(shape, gen).to(dtype);
      const RowIndex index(rows, 7, Device::CPU);
      REQUIRE(index.size() == 7);
      const Tensor out = take_rows(table, index, 2, 4);
      Shape expected_shape = shape;
      expected_shape[0] = 4;
      REQUIRE(out.shape() == expected_shape);
      REQUIRE(out.dtype() == dtype);
      REQUIRE(out.to_vector() == hand_gather(table, rows, 2, 4));
      REQUIRE(take_rows(table, index, 0, 7).to_vector() == hand_gather(table, rows, 0, 7));
      REQUIRE(take_rows(table, index, 7, 0).size(0) == 0);  // an empty range at the end
    }
  }
  // Data only: a table that requires grad gives rows with no history.
  Tensor weights = randn({4, 3}, gen);
  weights.set_requires_grad();
  REQUIRE_FALSE(take_rows(weights, RowIndex({1, 2}, 4, Device::CPU), 0, 2).requires_grad());
}

TEST_CASE("RowIndex refuses an index outside the table, take_rows a range past the index", "[core][gather]") {
  REQUIRE_THROWS_WITH(RowIndex({0, 2, 7}, 7, Device::CPU),
                      Catch::Contains("index 7 at position 2") && Catch::Contains("7 rows"));
  REQUIRE_THROWS_AS(RowIndex({-1}, 7, Device::CPU), ValueError);
  const RowIndex index({0, 1, 2}, 3, Device::CPU);
  const Tensor table = Tensor::zeros({3, 2});
  REQUIRE_THROWS_WITH(take_rows(table, index, 2, 2), Catch::Contains("rows [2, 4) of an index of 3"));
  REQUIRE_THROWS_AS(take_rows(table, index, -1, 1), ValueError);
  // The index was checked against 3 rows: a 2-row table could be read past its end.
  REQUIRE_THROWS_WITH(take_rows(Tensor::zeros({2, 2}), index, 0, 1), Catch::Contains("checked against 3 rows"));
  REQUIRE(take_rows(Tensor::zeros({5, 2}), index, 0, 3).shape() == Shape{3, 2});  // a larger one is fine
  REQUIRE_THROWS_AS(take_rows(Tensor(), index, 0, 1), Error);
}

TEST_CASE("take_rows on CUDA gives the CPU's bits and copies nothing from the host", "[core][gather][gpu]") {
  FM_REQUIRE_GPU();
  Generator gen(12);
  // Awkward sizes: one-element rows, rows that are not a multiple of a block, a single row, a table
  // bigger than the index's range.
  for (const Shape& shape : {Shape{1000}, Shape{300, 37}, Shape{61, 1, 7, 9}, Shape{1, 5}}) {
    INFO("table " << shape_str(shape));
    const std::int64_t table_rows = shape[0];
    std::vector<std::int32_t> rows;
    for (std::int64_t i = 0; i < 2 * table_rows + 3; ++i) rows.push_back(std::int32_t((i * 7 + 3) % table_rows));
    const Tensor table = randn(shape, gen);
    const Tensor device_table = table.to(Device::CUDA);
    const RowIndex host_index(rows, table_rows, Device::CPU);
    const kernels::RuntimeCounters before_upload = kernels::runtime_counters();
    const RowIndex device_index(rows, table_rows, Device::CUDA);
    const kernels::RuntimeCounters upload = kernels::runtime_counters() - before_upload;
    REQUIRE(upload.host_to_device_copies == 1);
    REQUIRE(upload.host_to_device_bytes == rows.size() * sizeof(std::int32_t));
    REQUIRE(device_index.device() == Device::CUDA);
    for (std::int64_t first : {std::int64_t(0), std::int64_t(3), table_rows}) {
      const std::int64_t count = std::int64_t(rows.size()) - first - 1;
      const kernels::RuntimeCounters before = kernels::runtime_counters();
      const Tensor on_device = take_rows(device_table, device_index, first, count);
      const kernels::RuntimeCounters gather = kernels::runtime_counters() - before;
      REQUIRE(gather.host_to_device_copies == 0);
      REQUIRE(gather.synchronizations == 0);
      REQUIRE(on_device.device() == Device::CUDA);
      REQUIRE(on_device.to_vector() == take_rows(table, host_index, first, count).to_vector());
      REQUIRE(on_device.to_vector() == hand_gather(table, rows, first, count));
    }
  }
  // The table and the index must be on one device.
  const RowIndex host_index({0}, 1, Device::CPU);
  REQUIRE_THROWS_AS(take_rows(Tensor::zeros({1, 2}, DType::Float32, Device::CUDA), host_index, 0, 1), DeviceError);
  REQUIRE_THROWS_WITH(RowIndex({0, 3}, 3, Device::CUDA), Catch::Contains("index 3 at position 1"));
}
