// kernels/runtime_counters.h — the cells behind fm::kernels::runtime_counters() (kernels/runtime.h),
// for the code that counts: the CUDA runtime (kernels/cuda/runtime.cpp) and the launch and library
// checks. Anyone else reads the counters through runtime_counters().
//
// One relaxed atomic per counter: the increments come from whatever thread launches or copies, and
// a counter needs no ordering with the work it counts. A relaxed increment costs a few nanoseconds,
// nothing beside a kernel launch (microseconds) or a copy.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace fm::kernels::counters {

struct Cells {
  std::atomic<std::uint64_t> kernel_launches{0}, library_calls{0}, synchronizations{0}, device_allocations{0},
      allocator_requests{0}, host_to_device_copies{0}, host_to_device_bytes{0}, device_to_host_copies{0},
      device_to_host_bytes{0}, direct_free_waits{0},
      graph_replays{0};
};
inline Cells cells;

inline void add(std::atomic<std::uint64_t>& cell, std::uint64_t n = 1) { cell.fetch_add(n, std::memory_order_relaxed); }

inline void synchronization() { add(cells.synchronizations); }
inline void direct_free_wait() { add(cells.direct_free_waits); }
inline void host_to_device(std::size_t bytes) {
  add(cells.host_to_device_copies);
  add(cells.host_to_device_bytes, bytes);
}
inline void device_to_host(std::size_t bytes) {
  add(cells.device_to_host_copies);
  add(cells.device_to_host_bytes, bytes);
}

}  // namespace fm::kernels::counters
