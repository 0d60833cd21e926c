// kernels/runtime_counters.cpp — runtime_counters() and friends (kernels/runtime.h): the same in
// every build; in a CPU-only build nothing ever increments them, so they read zero.
#include "kernels/runtime_counters.h"

#include "kernels/runtime.h"

namespace fm::kernels {

RuntimeCounters runtime_counters() {
  const counters::Cells& c = counters::cells;
  auto load = [](const std::atomic<std::uint64_t>& cell) { return cell.load(std::memory_order_relaxed); };
  RuntimeCounters r;
  r.kernel_launches = load(c.kernel_launches);
  r.library_calls = load(c.library_calls);
  r.synchronizations = load(c.synchronizations);
  r.device_allocations = load(c.device_allocations);
  r.allocator_requests = load(c.allocator_requests);
  r.host_to_device_copies = load(c.host_to_device_copies);
  r.host_to_device_bytes = load(c.host_to_device_bytes);
  r.device_to_host_copies = load(c.device_to_host_copies);
  r.device_to_host_bytes = load(c.device_to_host_bytes);
  r.direct_free_waits = load(c.direct_free_waits);
  r.graph_replays = load(c.graph_replays);
  return r;
}

void reset_runtime_counters() {
  counters::Cells& c = counters::cells;
  for (std::atomic<std::uint64_t>* cell :
       {&c.kernel_launches, &c.library_calls, &c.synchronizations, &c.device_allocations, &c.allocator_requests,
        &c.host_to_device_copies, &c.host_to_device_bytes, &c.device_to_host_copies, &c.device_to_host_bytes,
        &c.direct_free_waits, &c.graph_replays})
    cell->store(0, std::memory_order_relaxed);
}

RuntimeCounters operator-(const RuntimeCounters& a, const RuntimeCounters& b) {
  RuntimeCounters d;
  d.kernel_launches = a.kernel_launches - b.kernel_launches;
  d.library_calls = a.library_calls - b.library_calls;
  d.synchronizations = a.synchronizations - b.synchronizations;
  d.device_allocations = a.device_allocations - b.device_allocations;
  d.allocator_requests = a.allocator_requests - b.allocator_requests;
  d.host_to_device_copies = a.host_to_device_copies - b.host_to_device_copies;
  d.host_to_device_bytes = a.host_to_device_bytes - b.host_to_device_bytes;
  d.device_to_host_copies = a.device_to_host_copies - b.device_to_host_copies;
  d.device_to_host_bytes = a.device_to_host_bytes - b.device_to_host_bytes;
  d.direct_free_waits = a.direct_free_waits - b.direct_free_waits;
  d.graph_replays = a.graph_replays - b.graph_replays;
  return d;
}

void count_kernel_launch() { counters::add(counters::cells.kernel_launches); }
void count_library_call() { counters::add(counters::cells.library_calls); }

}  // namespace fm::kernels
