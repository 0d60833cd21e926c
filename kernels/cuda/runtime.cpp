// kernels/cuda/runtime.cpp — device probing, the one stream, the caching allocator, library handles,
// and the counting of what reaches the device (kernels/runtime_counters.h): every wait, every
// cudaMalloc, every copy between host and device passes through a function of this file.
//
// Nothing runs at static-initialisation time: the first call to any function here is the first CUDA
// call of the process, so CPU-only runs never touch the driver.
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/library_handles.h"
#include "kernels/runtime.h"
#include "kernels/runtime_counters.h"

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
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
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
  if (cudaGetDeviceProperties(&prop, device) == cudaSuccess) s.name = prop.name;
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

CudaStream cuda_stream() { return ready_state().stream; }

cublasHandle_t cublas_handle() {
  DeviceState& s = ready_state();
  std::lock_guard<std::mutex> lock(state_mutex());
  if (!s.cublas) {
    FM_CUBLAS_CHECK(cublasCreate(&s.cublas));
    FM_CUBLAS_CHECK(cublasSetStream(s.cublas, s.stream));
    // Plain FP32 math (no TF32) so results match the CPU reference to float precision.
    FM_CUBLAS_CHECK(cublasSetMathMode(s.cublas, CUBLAS_DEFAULT_MATH));
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

void* cuda_malloc(std::size_t bytes) {
  ready_state();
  if (bytes == 0) bytes = 1;
  CachingAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  counters::add(counters::cells.allocator_requests);
  std::size_t size = a.direct ? bytes : round_block(bytes);
  void* ptr = nullptr;
  auto it = a.direct ? a.free_blocks.end() : a.free_blocks.lower_bound(size);
  // Reuse a cached block only if it is not much larger than asked (avoids pinning huge blocks).
  if (it != a.free_blocks.end() && it->first <= size + size / 4 + 4096) {
    size = it->first;
    ptr = it->second;
    a.free_blocks.erase(it);
  } else {
    counters::add(counters::cells.device_allocations);
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err != cudaSuccess && !a.free_blocks.empty()) {
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
  a.in_use -= it->second;
  if (a.direct) {
    // Kernels may still be reading this buffer on the stream; wait before handing it back.
    counters::synchronization();
    cudaStreamSynchronize(state().stream);
    cudaFree(ptr);
  } else {
    // Safe without a sync: every kernel runs on the one stream, so a later user of this block is
    // ordered after all earlier work that touched it.
    // Inserted before blocks of the same size, so the next request of that size gets the most
    // recently freed block (likely still in L2), and a free-then-allocate pair reuses its block.
    a.free_blocks.emplace_hint(a.free_blocks.lower_bound(it->second), it->second, ptr);
  }
  a.live_blocks.erase(it);
}

std::size_t cuda_bytes_in_use() { return allocator().in_use; }
std::size_t cuda_peak_bytes() { return allocator().peak; }
void cuda_reset_peak() { allocator().peak = allocator().in_use; }

// No wait after the copy: `src` is pageable host memory (nothing in the project pins any), and for
// such a source cudaMemcpyAsync returns only once it has taken the bytes (into its staging buffer),
// so the caller may free or overwrite `src` at once; the copy is ordered before later work on the
// one stream. (With pinned memory this would not hold: the copy could still be reading.)
void cuda_copy_to_device(void* dst, const void* src, std::size_t bytes) {
  cudaStream_t s = cuda_stream();
  counters::host_to_device(bytes);
  FM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s));
}
void cuda_copy_to_host(void* dst, const void* src, std::size_t bytes) {
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
  counters::synchronization();
  FM_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
}

}  // namespace fm::kernels
