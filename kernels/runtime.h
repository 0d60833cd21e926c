// kernels/runtime.h — the device runtime seen from C++ code that must also build without CUDA.
//
// Nothing here touches CUDA until it is called: test discovery and CPU-only runs start on a machine
// that has the toolkit but no GPU. In a CPU-only build (no FM_WITH_CUDA) cuda_available() is false and
// the allocation functions throw.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

// cudaStream_t is `struct CUstream_st*`; naming it here keeps cuda_runtime.h out of CPU-only code.
struct CUstream_st;

namespace fm::kernels {

using CudaStream = CUstream_st*;

// True when the build has CUDA and at least one device answers. The first call probes the driver.
bool cuda_available();
// Human-readable name of the device in use ("NVIDIA H100 80GB HBM3"), or "none".
const char* cuda_device_name();
// The major compute capability of the device in use (9 on an H100), 0 when there is none.
int cuda_compute_capability_major();
// Picks the GPU this process uses: device `index` modulo the number of devices (a data-parallel rank
// passes its rank on the machine, core/distributed.h). Call before the first CUDA use; default 0.
void cuda_use_device(int index);
// How many CUDA devices this process sees (0 in a CPU-only build or without a GPU).
int cuda_device_count();

// True in the CUDA emulator build (cmake -DFM_CUDA_EMULATOR=ON): the "device" is the host CPU running
// our kernels thread by thread, for tests. It works, but far too slowly to train on.
bool cuda_emulated();

// True when the cuDNN baseline can run: a CUDA build with a device. False in a CPU-only build and in
// the CUDA emulator build (cmake -DFM_CUDA_EMULATOR=ON), which runs our kernels but has no cuDNN.
bool cudnn_available();

// The stream every op and kernel launches on (one stream: ops run in program order).
CudaStream cuda_stream();

// Device memory through a caching allocator: freed blocks are kept in per-size free lists and
// reused, because cudaMalloc/cudaFree synchronise the device and are slow inside a training loop.
// Set FM_CUDA_ALLOCATOR=direct to bypass the cache (so compute-sanitizer sees every buffer).
void* cuda_malloc(std::size_t bytes);
void cuda_free(void* ptr);
// True when FM_CUDA_ALLOCATOR=direct bypasses the cache (every request is a cudaMalloc).
bool cuda_allocator_direct();
// Bytes currently handed out / the most ever handed out at once (for peak-memory reports).
std::size_t cuda_bytes_in_use();
std::size_t cuda_peak_bytes();
void cuda_reset_peak();

// Copies between host and device (or device to device) on cuda_stream(). A copy to the host blocks
// until the data is there (a synchronisation). A copy to the device does not wait for the device:
// it is queued behind the work already on the stream, and the source may be reused as soon as the
// call returns (CUDA stages a pageable host buffer before cudaMemcpyAsync returns; the project
// allocates no pinned host memory), so feeding a batch to the device costs the step no sync.
void cuda_copy_to_device(void* dst, const void* src, std::size_t bytes);
void cuda_copy_to_host(void* dst, const void* src, std::size_t bytes);
void cuda_copy_device_to_device(void* dst, const void* src, std::size_t bytes);
void cuda_memset_zero(void* dst, std::size_t bytes);
void cuda_synchronize();

// ---- captured work: CUDA Graphs (kernels/cuda/graph.cpp) ----
// Work issued on cuda_stream() between begin_capture() and end_capture() is recorded, not run;
// replay() then runs all of it again (the same kernels, arguments and buffers) as one graph launch,
// so the host's cost per kernel (a few microseconds each, hundreds per training step) is paid once.
// The recording may not wait for the device or read the host: a copy to the host, cuda_synchronize
// or a copy from the host during a capture throws DeviceError and abandons the capture (the stream
// stays usable). Memory: a buffer allocated or freed during the capture belongs to the graph until
// the graph is destroyed or captured again, because every replay writes into it: nothing else is
// handed that memory meanwhile. A buffer made before the capture that the recorded work touches
// (parameters, gradients, the input batch) must outlive the graph: that is the caller's part.
class CudaGraph {
 public:
  CudaGraph();
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;
  void begin_capture();      // a graph captured before is dropped first
  void end_capture();        // throws if the capture was abandoned or never begun
  void replay();             // throws unless a capture ended
  void abandon();            // ends a capture in progress, keeping nothing; no-op otherwise
  bool captured() const;     // a capture ended and can be replayed
  bool capturing() const;    // between begin_capture and end_capture
  std::size_t operations() const;  // the recorded kernels, copies, memsets, library calls
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// ---- counters: what the device runtime did (issue 14: a steady-state training step should launch
// few kernels, never wait for the device, never reach cudaMalloc, copy nothing between log points).
// Counted by the process since the last reset, on every thread (relaxed atomics: a count, not an
// ordering). A CPU-only build counts nothing (all zero). `fmbench step` prints them per step.
struct RuntimeCounters {
  std::uint64_t kernel_launches = 0;     // our kernels (every FM_CUDA_CHECK_LAUNCH after a <<<...>>>)
  std::uint64_t library_calls = 0;       // cuBLAS and cuDNN compute calls (each launches kernels of its own)
  std::uint64_t synchronizations = 0;    // the program made the host wait for the device: a copy to
                                         // the host, cuda_synchronize
  std::uint64_t device_allocations = 0;  // cudaMalloc calls: the caching allocator's misses
  std::uint64_t allocator_requests = 0;  // cuda_malloc calls, served from the cache or not
  std::uint64_t host_to_device_copies = 0, host_to_device_bytes = 0;
  std::uint64_t device_to_host_copies = 0, device_to_host_bytes = 0;
  // Frees that waited for the device because FM_CUDA_ALLOCATOR=direct (the test and sanitizer
  // setting: every buffer its own allocation). Counted apart from `synchronizations`, so a count of
  // the program's waits reads the same under either allocator.
  std::uint64_t direct_free_waits = 0;
  // Launches of captured graphs (CudaGraph::replay). A launch recorded during a capture is counted
  // in kernel_launches once, when it is recorded, and not again at each replay.
  std::uint64_t graph_replays = 0;
};
RuntimeCounters runtime_counters();
void reset_runtime_counters();
// Field by field a − b: what happened between two snapshots (b taken first).
RuntimeCounters operator-(const RuntimeCounters& a, const RuntimeCounters& b);

// Called by FM_CUDA_CHECK_LAUNCH (kernels/cuda/cuda_check.h) after every launch that started, and by
// the cuBLAS/cuDNN wrappers after each compute call: the one place each kind is counted.
void count_kernel_launch();
void count_library_call();

}  // namespace fm::kernels
