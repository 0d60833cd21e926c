// kernels/cuda_emulator/runtime_api.cpp — the CUDA runtime calls the project makes, on host memory.
//
// Device memory is host memory laid out to catch the mistakes a GPU run would: each buffer is
// poisoned with NaN bytes (0xff) when allocated, so reading an element nobody wrote turns results
// into NaN; it ends exactly at an inaccessible guard page (rounded to CUDA's 256-byte alignment),
// so reading or writing past its end stops the program at the faulting access; the up to 255 bytes
// of alignment slack before the guard page are checked on cudaFree for writes that landed there.
// Copies check that their device side lies inside one live buffer. There is one device and one
// stream, and all work runs synchronously at launch, or is recorded while the stream captures a
// graph (graph_capture.cpp).
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "cuda_runtime.h"
#include "emulator_state.h"

namespace fm_emu {
namespace {

struct Allocation {
  void* mapping;
  std::size_t mapping_bytes, bytes, slack;
};

struct RuntimeState {
  std::mutex mutex;
  std::map<const char*, Allocation> allocations;  // by start address
  std::map<const void*, int> shared_limits;
  cudaError_t last_error = cudaSuccess;
  std::string last_error_reason;
  std::size_t bytes_in_use = 0;
};
RuntimeState& runtime() {
  static RuntimeState r;
  return r;
}

constexpr std::size_t kAlignment = 256;  // what cudaMalloc guarantees
constexpr std::size_t kEmulatedMemory = std::size_t(80) << 30;

// True when [p, p + bytes) lies inside one live allocation.
bool inside_allocation(const void* p, std::size_t bytes) {
  RuntimeState& r = runtime();
  std::lock_guard<std::mutex> lock(r.mutex);
  const char* c = static_cast<const char*>(p);
  auto it = r.allocations.upper_bound(c);
  if (it == r.allocations.begin()) return false;
  --it;
  return c >= it->first && c + bytes <= it->first + it->second.bytes;
}

}  // namespace

// An empty range at p: inside a buffer or at its end.
bool device_address(const void* p) { return inside_allocation(p, 0); }

namespace {

cudaError_t fail(cudaError_t error, const std::string& why) {
  record_launch_error(error, why);
  return error;
}

cudaError_t check_copy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  const bool dst_on_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_on_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (bytes == 0) return cudaSuccess;
  if (dst_on_device && !inside_allocation(dst, bytes))
    return fail(cudaErrorInvalidValue, "copy destination is not inside one device buffer");
  if (src_on_device && !inside_allocation(src, bytes))
    return fail(cudaErrorInvalidValue, "copy source is not inside one device buffer");
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

}  // namespace

void record_launch_error(cudaError_t error, const std::string& why) {
  RuntimeState& r = runtime();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.last_error = error;
  r.last_error_reason = why;
}

int dynamic_shared_opt_in(const void* kernel) {
  RuntimeState& r = runtime();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.shared_limits.find(kernel);
  return it == r.shared_limits.end() ? -1 : it->second;
}

int max_dynamic_shared(const void* kernel) {
  const int opt_in = dynamic_shared_opt_in(kernel);
  return opt_in < 0 ? 48 * 1024 : opt_in;
}

cudaError_t set_max_dynamic_shared(const void* kernel, int bytes) {
  if (bytes < 0 || bytes > 227 * 1024) return fail(cudaErrorInvalidValue, "shared memory limit");
  RuntimeState& r = runtime();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.shared_limits[kernel] = bytes;
  return cudaSuccess;
}

}  // namespace fm_emu

using fm_emu::runtime;

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument (emulator)";
    case cudaErrorMemoryAllocation: return "out of memory (emulator)";
    case cudaErrorInvalidConfiguration:
      // The reason is more use than the code; it stays valid until the next error is recorded.
      return runtime().last_error_reason.empty() ? "invalid configuration argument"
                                                 : runtime().last_error_reason.c_str();
    case cudaErrorInvalidDevicePointer: return "invalid device pointer (emulator)";
    case cudaErrorIllegalState: return "operation not permitted in this state, e.g. a capture begun twice (emulator)";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing (emulator)";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture (emulator)";
    default: return "unknown error (emulator)";
  }
}

cudaError_t cudaGetLastError() {
  auto& r = runtime();
  std::lock_guard<std::mutex> lock(r.mutex);
  const cudaError_t e = r.last_error;
  r.last_error = cudaSuccess;
  return e;
}

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
// The numbers of the GPU the kernels are tuned for, so launch sizes computed from them match.
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
  std::memset(prop, 0, sizeof(*prop));
  std::snprintf(prop->name, sizeof(prop->name), "CUDA emulator (host CPU, H100 limits)");
  prop->totalGlobalMem = fm_emu::kEmulatedMemory;
  prop->multiProcessorCount = 132;
  prop->major = 9;
  prop->minor = 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int) {
  if (attr != cudaDevAttrMultiProcessorCount) return cudaErrorInvalidValue;
  *value = 132;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* version) {
  *version = 0;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* version) {
  *version = 0;
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes) {
  *total_bytes = fm_emu::kEmulatedMemory;
  *free_bytes = fm_emu::kEmulatedMemory - runtime().bytes_in_use;
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  static int the_stream;  // any distinct non-null handle
  *stream = reinterpret_cast<cudaStream_t>(&the_stream);
  return cudaSuccess;
}
// Kernels and copies ran when they were issued, so there is never anything to wait for; while the
// stream captures, waiting is an error that invalidates the capture, as on a GPU.
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  return fm_emu::refuse_while_capturing() ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  return fm_emu::refuse_while_capturing() ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) { return stream ? cudaSuccess : cudaErrorInvalidValue; }

// An event is a heap cell, so that creating and destroying them pairs up (a leak shows under ASan) and
// a destroyed or never-created event is refused by looking it up.
namespace {
std::mutex& events_mutex() {
  static std::mutex m;
  return m;
}
std::set<void*>& live_events() {
  static std::set<void*> events;
  return events;
}
bool event_alive(cudaEvent_t event) {
  std::lock_guard<std::mutex> lock(events_mutex());
  return live_events().count(event) != 0;
}
}  // namespace

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  if (!event) return cudaErrorInvalidValue;
  if (fm_emu::refuse_while_capturing()) return cudaErrorStreamCaptureUnsupported;
  void* cell = new char(0);
  std::lock_guard<std::mutex> lock(events_mutex());
  live_events().insert(cell);
  *event = static_cast<cudaEvent_t>(cell);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  if (fm_emu::refuse_while_capturing()) return cudaErrorStreamCaptureUnsupported;
  return event_alive(event) ? cudaSuccess : cudaErrorInvalidValue;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t event, unsigned) {
  if (fm_emu::refuse_while_capturing()) return cudaErrorStreamCaptureUnsupported;
  return event_alive(event) ? cudaSuccess : cudaErrorInvalidValue;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  std::lock_guard<std::mutex> lock(events_mutex());
  if (!live_events().erase(event)) return cudaErrorInvalidValue;
  delete static_cast<char*>(static_cast<void*>(event));
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, std::size_t bytes) {
  using namespace fm_emu;
  const std::size_t page = page_size();
  const std::size_t aligned = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  const std::size_t data_pages = (aligned + page - 1) / page * page;
  const std::size_t mapping_bytes = data_pages + page;  // + the guard page
  void* mapping = mmap(nullptr, mapping_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) return fail(cudaErrorMemoryAllocation, "mmap failed");
  char* guard = static_cast<char*>(mapping) + data_pages;
  mprotect(guard, page, PROT_NONE);
  char* start = guard - aligned;
  std::memset(start, kPoison, aligned);
  auto& r = runtime();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.allocations[start] = Allocation{mapping, mapping_bytes, bytes, aligned - bytes};
  r.bytes_in_use += bytes;
  *ptr = start;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  using namespace fm_emu;
  if (!ptr) return cudaSuccess;
  if (refuse_while_capturing()) return cudaErrorStreamCaptureUnsupported;
  auto& r = runtime();
  Allocation a;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.allocations.find(static_cast<const char*>(ptr));
    if (it == r.allocations.end()) return cudaErrorInvalidDevicePointer;
    a = it->second;
    r.allocations.erase(it);
    r.bytes_in_use -= a.bytes;
  }
  const unsigned char* slack = static_cast<const unsigned char*>(ptr) + a.bytes;
  for (std::size_t i = 0; i < a.slack; ++i) {
    if (slack[i] != kPoison) {
      // Memory corruption: a GPU would report an illegal address; there is no caller to return to
      // (this runs from destructors), so stop here with the evidence.
      std::fprintf(stderr,
                   "CUDA emulator: a kernel wrote byte %zu past the end of a %zu-byte buffer\n",
                   i + 1, a.bytes);
      std::abort();
    }
  }
  munmap(a.mapping, a.mapping_bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  if (fm_emu::refuse_while_capturing()) return cudaErrorStreamCaptureUnsupported;
  return fm_emu::check_copy(dst, src, bytes, kind);
}
// While the stream captures, the copy is recorded: its buffers are checked now and again at each
// replay (a buffer freed since then is an error at the replay).
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t) {
  if (!fm_emu::stream_capturing()) return fm_emu::check_copy(dst, src, bytes, kind);
  const bool dst_on_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_on_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (bytes && ((dst_on_device && !fm_emu::inside_allocation(dst, bytes)) ||
                (src_on_device && !fm_emu::inside_allocation(src, bytes))))
    return fm_emu::fail(cudaErrorInvalidValue, "captured copy is not inside device buffers");
  fm_emu::run_or_record([=] { fm_emu::check_copy(dst, src, bytes, kind); });
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t bytes, cudaStream_t) {
  if (bytes && !fm_emu::inside_allocation(dst, bytes))
    return fm_emu::fail(cudaErrorInvalidValue, "memset outside a device buffer");
  fm_emu::run_or_record([=] {
    if (bytes && !fm_emu::inside_allocation(dst, bytes)) {
      fm_emu::fail(cudaErrorInvalidValue, "replayed memset outside a device buffer");
      return;
    }
    std::memset(dst, value, bytes);
  });
  return cudaSuccess;
}
