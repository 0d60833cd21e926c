// tests/test_device_checks.cpp — the device-side checks (FM_DEVICE_CHECK, kernels/cuda/common.cuh)
// of the kernels that read a position when they run: a recorded training step's batch gather
// (take_rows) and label lookup (take_labels) read the batch's place from a device word, the
// step-scalar table's selector reads its next row's index, and a lookup reads the indices a recorded
// step wrote. The host checked what it planned; a replay reads whatever the words hold. A value out
// of range must stop the kernel rather than read or write outside a buffer.
//
// Each case first runs the kernel with a good value from device memory (the bits the host path
// gives), then writes a bad one there and requires the trap. On a GPU a trap ends the CUDA context,
// so every later GPU case of the process would fail: the bad halves run on the CUDA emulator only,
// which reports a trap as an exception naming the thread (kernels/cuda_emulator/cuda_runtime.h). On
// a GPU the good halves run and the case says the traps were not tried.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/ops.h"
#include "core/ops_nn.h"
#include "core/ops_optim.h"
#include "core/random.h"
#include "kernels/runtime.h"
#include "test_util.h"

using namespace fm;

namespace {

// A device word holding `value` (freed with the struct).
struct DeviceWord {
  explicit DeviceWord(std::int64_t value) : address(static_cast<std::int64_t*>(kernels::cuda_malloc(8))) { set(value); }
  ~DeviceWord() { kernels::cuda_free(address); }
  DeviceWord(const DeviceWord&) = delete;
  DeviceWord& operator=(const DeviceWord&) = delete;
  void set(std::int64_t value) { kernels::cuda_copy_to_device(address, &value, sizeof value); }
  std::int64_t* address;
};

// The trap as the emulator reports it; on a GPU the bad values are not tried (see the header).
#ifdef FM_CUDA_EMULATOR
#define REQUIRE_DEVICE_TRAP(expression) REQUIRE_THROWS_WITH((expression), Catch::Contains("__trap()"))
constexpr bool kTrapsTried = true;
#else
#define REQUIRE_DEVICE_TRAP(expression) (void)0
constexpr bool kTrapsTried = false;
#endif

void say_if_traps_untried() {
  if (!kTrapsTried)
    WARN("on a GPU the out-of-range halves are not run: a trap would end the CUDA context for the "
         "rest of the process (they run on the CUDA emulator)");
}

std::vector<std::int32_t> to_host(const RowIndex& index) {
  std::vector<std::int32_t> out(std::size_t(index.size()));
  kernels::cuda_copy_to_host(out.data(), index.data(), out.size() * sizeof(std::int32_t));
  return out;
}

}  // namespace

TEST_CASE("take_rows stops at a device position past its index", "[core][gather][gpu]") {
  FM_REQUIRE_GPU();
  Generator gen(3);
  const Tensor table = randn({10, 3}, gen);
  const std::vector<std::int32_t> rows = {4, 9, 0, 2, 7, 1, 8, 3, 6, 5};
  const RowIndex host_index(rows, 10, Device::CPU), device_index(rows, 10, Device::CUDA);
  const Tensor device_table = table.to(Device::CUDA);
  DeviceWord position(6);  // rows 6..9: the last four of the index
  REQUIRE(take_rows(device_table, device_index, 0, 4, position.address).to_vector() ==
          take_rows(table, host_index, 6, 4).to_vector());
  for (std::int64_t bad : {std::int64_t(7), std::int64_t(-1), std::int64_t(1) << 40}) {
    INFO("device position " << bad);
    position.set(bad);  // 7: rows 7..10, one past the index's end
    REQUIRE_DEVICE_TRAP(take_rows(device_table, device_index, 0, 4, position.address));
  }
  say_if_traps_untried();
}

TEST_CASE("take_rows and the class lookup stop at an index outside their table", "[core][gather][gpu]") {
  FM_REQUIRE_GPU();
  Generator gen(4);
  const Tensor table = randn({5, 2}, gen).to(Device::CUDA);
  const RowIndex index({1, 3, 4}, 5, Device::CUDA);
  REQUIRE(take_rows(table, index, 0, 3).shape() == Shape{3, 2});
  REQUIRE(embedding_by_index(table, index).shape() == Shape{3, 2});
#ifdef FM_CUDA_EMULATOR
  // What a replay could find in a buffer a recorded step writes (its labels): 5 is no row of the table.
  const std::int32_t bad = 5;
  kernels::cuda_copy_to_device(const_cast<std::int32_t*>(index.data()) + 1, &bad, sizeof bad);
  REQUIRE_DEVICE_TRAP(take_rows(table, index, 0, 3));
  REQUIRE_DEVICE_TRAP(embedding_by_index(table, index));
#endif
  say_if_traps_untried();
}

TEST_CASE("take_labels stops at a device position past the epoch's order", "[core][gather][gpu]") {
  FM_REQUIRE_GPU();
  std::vector<std::int32_t> labels, order;
  for (int i = 0; i < 30; ++i) labels.push_back(i % 7), order.push_back((i * 11 + 5) % 30);
  const RowIndex device_labels(labels, 7, Device::CUDA), device_order(order, 30, Device::CUDA);
  RowIndex out(std::vector<std::int32_t>(8, 0), 8, Device::CUDA);
  LabelDropout no_dropout;
  no_dropout.null_class = 7;  // probability 0: every label is looked up through the order
  DeviceWord position(22);    // the last 8 of the 30
  take_labels(out, device_labels, device_order, 0, no_dropout, position.address);
  std::vector<std::int32_t> expected;
  for (int i = 22; i < 30; ++i) expected.push_back(labels[std::size_t(order[std::size_t(i)])]);
  REQUIRE(to_host(out) == expected);
  for (std::int64_t bad : {std::int64_t(23), std::int64_t(-3)}) {
    INFO("device position " << bad);
    position.set(bad);
    REQUIRE_DEVICE_TRAP(take_labels(out, device_labels, device_order, 0, no_dropout, position.address));
  }
  say_if_traps_untried();
}

TEST_CASE("the step-scalar table stops when more rows are selected than were uploaded", "[core][optim][gpu]") {
  FM_REQUIRE_GPU();
  StepScalarsTable table(4);
  std::vector<StepScalars> rows(2);
  rows[0].lr = 0.5f, rows[0].philox_step = 10, rows[0].batch_start = 64;
  rows[1].lr = 0.25f, rows[1].philox_step = 11, rows[1].batch_start = 128;
  table.upload(rows);  // two rows of a table with room for four
  for (const StepScalars& row : rows) {
    table.select_next();
    StepScalars current;
    kernels::cuda_copy_to_host(&current, table.current(), sizeof current);
    REQUIRE(std::memcmp(&current, &row, sizeof current) == 0);
  }
  REQUIRE_DEVICE_TRAP(table.select_next());  // a third replay without a new plan
  table.upload(rows);  // a new plan starts again at its first row
  table.select_next();
  StepScalars current;
  kernels::cuda_copy_to_host(&current, table.current(), sizeof current);
  REQUIRE(std::memcmp(&current, &rows[0], sizeof current) == 0);
  say_if_traps_untried();
}
