// kernels/cuda/runtime.cpp — device probing, the one stream, the caching allocator (with the pools of
// captured graphs, kernels/cuda/graph_memory.h), library handles, and the counting of what reaches the device (kernels/runtime_counters.h): every wait, every
// cudaMalloc, every copy between host and device passes through a function of this file.
//
// Nothing runs at static-initialisation time: the first call to any function here is the first CUDA
// call of the process, so CPU-only runs never touch the driver.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/graph_memory.h"
#include "kernels/cuda/library_handles.h"
#include "kernels/runtime.h"
#include "kernels/runtime_counters.h"

// A captured graph's blocks (kernels/cuda/graph_memory.h).
struct fm::kernels::graph_memory::Pool {
  // Blocks this capture allocated and then freed (its temporaries): its later allocations may reuse
  // them, in the same order at every replay. A block made before the capture and freed during it is
  // never reused by the capture: a replay may still read it after a reuse would have overwritten it.
  std::multimap<std::size_t, void*> reusable;  // size -> pointer
};

namespace fm::cuda_detail {
const char* cublas_status_string(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "unknown cuBLAS status";
  }
}
}  // namespace fm::cuda_detail

namespace fm::kernels {
namespace {

struct DeviceState {
  bool probed = false;
  bool available = false;
  int count = 0;  // devices visible
  std::string name = "none";
  int compute_major = 0;  // the device's compute capability, major part
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  void* cublas_workspace = nullptr;  // cuBLAS's, for the life of the process
  cudnnHandle_t cudnn = nullptr;
};

DeviceState& state() {
  static DeviceState s;
  return s;
}
std::mutex& state_mutex() {
  static std::mutex m;
  return m;
}

int g_requested_device = 0;  // cuda_use_device

void probe_locked() {
  DeviceState& s = state();
  if (s.probed) return;
  s.probed = true;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();  // clear the sticky "no device" error so later probes stay clean
    return;
  }
  s.count = count;
  const int device = g_requested_device % count;
#ifndef FM_CUDA_EMULATOR
  // The main thread's current device; every stream, handle and allocation below is made on it. Device
  // 0 is CUDA's default already: a single process never calls this (it would create a context early).
  if (device != 0) FM_CUDA_CHECK(cudaSetDevice(device));
#endif
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) == cudaSuccess) {
    s.name = prop.name;
    s.compute_major = prop.major;
  }
  s.available = true;
}

DeviceState& ready_state() {
  std::lock_guard<std::mutex> lock(state_mutex());
  probe_locked();
  DeviceState& s = state();
  if (!s.available) throw DeviceError("CUDA: no CUDA device is available on this machine");
  if (!s.stream) FM_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  return s;
}

// ---- caching allocator ----------------------------------------------------------------------
// Block sizes are rounded up (512 B below 1 MiB, 2 MiB above) so a freed block fits the next
// request of a similar size; blocks are never returned to the driver while the process runs.
struct CachingAllocator {
  std::mutex mutex;
  std::multimap<std::size_t, void*> free_blocks;  // size -> pointer
  std::map<void*, std::size_t> live_blocks;       // pointer -> size
  std::size_t in_use = 0, peak = 0;
  bool direct = false;
  // Graphs: a block that a captured graph's replays use is owned by that graph (by every such graph)
  // and, once no tensor holds it, waits in held_blocks until its last owner is released.
  graph_memory::Pool* capturing = nullptr;                       // the graph being captured, if any
  std::map<void*, std::vector<graph_memory::Pool*>> graph_owners;  // block -> the graphs that use it
  std::map<void*, std::size_t> held_blocks;                      // freed, still owned: block -> size
  std::vector<void*> deferred_frees;  // direct allocator: to cudaFree once no capture is running
  CachingAllocator() {
    const char* env = std::getenv("FM_CUDA_ALLOCATOR");
    direct = env && std::strcmp(env, "direct") == 0;
  }
};
CachingAllocator& allocator() {
  static CachingAllocator a;
  return a;
}
std::size_t round_block(std::size_t bytes) {
  const std::size_t small = 512, large = std::size_t(2) << 20;
  if (bytes < (std::size_t(1) << 20)) return (bytes + small - 1) / small * small;
  return (bytes + large - 1) / large * large;
}

}  // namespace

void cuda_use_device(int index) {
  std::lock_guard<std::mutex> lock(state_mutex());
  FM_CHECK(!state().probed || g_requested_device == index, DeviceError, "cuda_use_device(", index,
           "): the device was already chosen (", g_requested_device, "); call it before any CUDA use");
  g_requested_device = index < 0 ? 0 : index;
}

int cuda_device_count() {
  std::lock_guard<std::mutex> lock(state_mutex());
  probe_locked();
  return state().count;
}

bool cuda_available() {
  std::lock_guard<std::mutex> lock(state_mutex());
  probe_locked();
  return state().available;
}

bool cuda_emulated() {
#ifdef FM_CUDA_EMULATOR
  return true;
#else
  return false;
#endif
}

const char* cuda_device_name() {
  std::lock_guard<std::mutex> lock(state_mutex());
  probe_locked();
  return state().name.c_str();
}

int cuda_compute_capability_major() {
  std::lock_guard<std::mutex> lock(state_mutex());
  probe_locked();
  return state().compute_major;
}

CudaStream cuda_stream() { return ready_state().stream; }

cublasHandle_t cublas_handle() {
  DeviceState& s = ready_state();
  std::lock_guard<std::mutex> lock(state_mutex());
  if (!s.cublas) {
    FM_CUBLAS_CHECK(cublasCreate(&s.cublas));
    FM_CUBLAS_CHECK(cublasSetStream(s.cublas, s.stream));
    // Plain FP32 math (no TF32) so results match the CPU reference to float precision.
    FM_CUBLAS_CHECK(cublasSetMathMode(s.cublas, CUBLAS_DEFAULT_MATH));
    // A workspace of its own, made once: cuBLAS then allocates nothing per call, and picks the same
    // algorithms whether its calls run eagerly or are recorded in a graph (kernels/cuda/graph.cpp).
    // 32 MiB is what NVIDIA advises for Hopper.
    constexpr std::size_t kWorkspaceBytes = std::size_t(32) << 20;
    FM_CUDA_CHECK(cudaMalloc(&s.cublas_workspace, kWorkspaceBytes));
    FM_CUBLAS_CHECK(cublasSetWorkspace(s.cublas, s.cublas_workspace, kWorkspaceBytes));
  }
  return s.cublas;
}

cudnnHandle_t cudnn_handle() {
  DeviceState& s = ready_state();
  std::lock_guard<std::mutex> lock(state_mutex());
  if (!s.cudnn) {
    FM_CUDNN_CHECK(cudnnCreate(&s.cudnn));
    FM_CUDNN_CHECK(cudnnSetStream(s.cudnn, s.stream));
  }
  return s.cudnn;
}

namespace {

// Takes a cached block of at least `size` bytes from `blocks`, if one is not much larger (a huge
// block kept for a small request would pin memory); nullptr otherwise. `size` becomes the block's.
void* take_cached(std::multimap<std::size_t, void*>& blocks, std::size_t& size) {
  auto it = blocks.lower_bound(size);
  if (it == blocks.end() || it->first > size + size / 4 + 4096) return nullptr;
  size = it->first;
  void* ptr = it->second;
  blocks.erase(it);
  return ptr;
}

// Inserted before blocks of the same size, so the next request of that size gets the most recently
// freed block (likely still in L2), and a free-then-allocate pair reuses its block.
void put_cached(std::multimap<std::size_t, void*>& blocks, std::size_t size, void* ptr) {
  blocks.emplace_hint(blocks.lower_bound(size), size, ptr);
}

// Frees a block for good (the direct allocator, a released graph's blocks under it). Kernels may
// still be reading it on the stream: wait first.
void free_now(void* ptr) {
  counters::direct_free_wait();
  cudaStreamSynchronize(state().stream);
  cudaFree(ptr);
}

bool owned_by(const std::vector<graph_memory::Pool*>& owners, const graph_memory::Pool* pool) {
  return std::find(owners.begin(), owners.end(), pool) != owners.end();
}

// A block no tensor and no graph holds any more: back to the cache, or (direct allocator) to the
// driver, once no capture is running (a free would wait for the device, which a capture forbids).
void give_back_locked(CachingAllocator& a, void* ptr, std::size_t size) {
  if (!a.direct) put_cached(a.free_blocks, size, ptr);
  else if (a.capturing) a.deferred_frees.push_back(ptr);
  else free_now(ptr);
}

}  // namespace

void* cuda_malloc(std::size_t bytes) {
  ready_state();
  if (bytes == 0) bytes = 1;
  CachingAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  counters::add(counters::cells.allocator_requests);
  std::size_t size = a.direct ? bytes : round_block(bytes);
  void* ptr = nullptr;
  // A capture first reuses its own temporaries, as every replay will; the direct allocator only a
  // block of exactly the size asked (so the guard page still sits right behind the buffer).
  if (a.capturing) {
    auto& reusable = a.capturing->reusable;
    if (!a.direct) {
      ptr = take_cached(reusable, size);
    } else if (auto it = reusable.find(size); it != reusable.end()) {
      ptr = it->second;
      reusable.erase(it);
    }
    if (ptr) a.held_blocks.erase(ptr);
  }
  if (!a.direct && !ptr) ptr = take_cached(a.free_blocks, size);
  if (!ptr) {
    counters::add(counters::cells.device_allocations);
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err != cudaSuccess && !a.free_blocks.empty() && !a.capturing) {
      // Out of memory: give the cache back to the driver and try once more.
      cudaGetLastError();
      for (auto& [block_size, block] : a.free_blocks) cudaFree(block);
      a.free_blocks.clear();
      err = cudaMalloc(&ptr, size);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      throw DeviceError(cat("cuda_malloc: cannot allocate ", size, " bytes on the GPU (",
                            cudaGetErrorString(err), "); ", a.in_use, " bytes in use"));
    }
  }
  if (a.capturing) {
    std::vector<graph_memory::Pool*>& owners = a.graph_owners[ptr];
    if (!owned_by(owners, a.capturing)) owners.push_back(a.capturing);
  }
  a.live_blocks[ptr] = size;
  a.in_use += size;
  if (a.in_use > a.peak) a.peak = a.in_use;
  return ptr;
}

void cuda_free(void* ptr) {
  if (!ptr) return;
  CachingAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  auto it = a.live_blocks.find(ptr);
  if (it == a.live_blocks.end()) return;
  const std::size_t size = it->second;
  a.in_use -= size;
  a.live_blocks.erase(it);
  auto owned = a.graph_owners.find(ptr);
  if (a.capturing) {
    if (owned != a.graph_owners.end() && owned_by(owned->second, a.capturing)) {
      // A temporary of this capture: its later allocations may take it (see Pool::reusable).
      a.capturing->reusable.emplace(size, ptr);
    } else {
      // Made before the capture, freed during it: the replays read it, so the graph keeps it.
      if (owned == a.graph_owners.end()) owned = a.graph_owners.emplace(ptr, std::vector<graph_memory::Pool*>{}).first;
      owned->second.push_back(a.capturing);
    }
  }
  if (owned != a.graph_owners.end()) {
    a.held_blocks[ptr] = size;  // a replay writes or reads it: nobody else gets it
    return;
  }
  // Safe without a sync in the cache: every kernel runs on the one stream, so a later user of this
  // block is ordered after all earlier work that touched it.
  give_back_locked(a, ptr, size);
}

namespace graph_memory {

Pool* create_pool() { return new Pool; }

void begin_capture(Pool* pool) {
  CachingAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.capturing = pool;
}
// Called once the stream's capture has ended (deferred frees wait for the device).
void end_capture() {
  CachingAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.capturing = nullptr;
  // After the capture, its temporaries are simply the graph's blocks (held_blocks): no later
  // capture of another graph may reuse them.
  // Frees put off while the capture ran (direct allocator) can wait for the device now.
  for (void* ptr : a.deferred_frees) free_now(ptr);
  a.deferred_frees.clear();
}
Pool* capturing() {
  CachingAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  return a.capturing;
}

void release(Pool* pool) {
  if (!pool) return;
  CachingAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  if (a.capturing == pool) a.capturing = nullptr;
  // Stream order makes handing blocks to the cache safe even with a replay still running.
  for (auto it = a.graph_owners.begin(); it != a.graph_owners.end();) {
    std::vector<Pool*>& owners = it->second;
    owners.erase(std::remove(owners.begin(), owners.end(), pool), owners.end());
    if (!owners.empty()) {
      ++it;
      continue;
    }
    // No graph uses the block any more: a tensor may still hold it (it is an ordinary block now),
    // or it is free and goes back.
    if (auto held = a.held_blocks.find(it->first); held != a.held_blocks.end()) {
      give_back_locked(a, held->first, held->second);
      a.held_blocks.erase(held);
    }
    it = a.graph_owners.erase(it);
  }
  delete pool;
}

void refuse_during_capture(const char* what) {
  cudaGraph_t partial = nullptr;
  cudaStreamEndCapture(state().stream, &partial);
  if (partial) cudaGraphDestroy(partial);
  cudaGetLastError();  // the capture's "invalidated" error is reported below, in words
  end_capture();       // the pool stays with its CudaGraph, which releases it
  throw DeviceError(cat(what, " inside a CUDA graph capture: captured work may not wait for the device or "
                        "read host memory (do it before begin_capture or after end_capture); the capture "
                        "was abandoned"));
}

}  // namespace graph_memory

bool cuda_allocator_direct() { return allocator().direct; }
std::size_t cuda_bytes_in_use() { return allocator().in_use; }
std::size_t cuda_peak_bytes() { return allocator().peak; }
void cuda_reset_peak() { allocator().peak = allocator().in_use; }

// No wait after the copy: `src` is pageable host memory (nothing in the project pins any), and for
// such a source cudaMemcpyAsync returns only once it has taken the bytes (into its staging buffer),
// so the caller may free or overwrite `src` at once; the copy is ordered before later work on the
// one stream. (With pinned memory this would not hold: the copy could still be reading.)
void cuda_copy_to_device(void* dst, const void* src, std::size_t bytes) {
  if (graph_memory::capturing()) graph_memory::refuse_during_capture("a copy from the host");
  cudaStream_t s = cuda_stream();
  counters::host_to_device(bytes);
  FM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s));
}
void cuda_copy_to_host(void* dst, const void* src, std::size_t bytes) {
  if (graph_memory::capturing()) graph_memory::refuse_during_capture("a copy to the host");
  cudaStream_t s = cuda_stream();
  counters::device_to_host(bytes);
  counters::synchronization();
  FM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s));
  FM_CUDA_CHECK(cudaStreamSynchronize(s));
}
void cuda_copy_device_to_device(void* dst, const void* src, std::size_t bytes) {
  FM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream()));
}
void cuda_memset_zero(void* dst, std::size_t bytes) {
  FM_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, cuda_stream()));
}
void cuda_synchronize() {
  if (!cuda_available()) return;
  if (graph_memory::capturing()) graph_memory::refuse_during_capture("cuda_synchronize");
  counters::synchronization();
  FM_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
}

}  // namespace fm::kernels
