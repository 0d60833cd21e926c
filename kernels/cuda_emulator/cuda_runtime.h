// kernels/cuda_emulator/cuda_runtime.h — the CUDA vocabulary our kernels use, for a host compiler.
//
// The emulator build (cmake -DFM_CUDA_EMULATOR=ON) compiles kernels/cuda/*.cu with g++ and puts this
// directory first on the include path, so `#include <cuda_runtime.h>` lands here instead of in the
// toolkit. It lets the CUDA kernels' *logic* be tested on a machine without a GPU: every thread of a
// block runs as a fiber (kernels/cuda_emulator/scheduler.cpp) that pauses at __syncthreads() and at
// warp shuffles, device memory is host memory with a guard page behind each buffer, and cuBLAS's one
// GEMM is a reference loop. What it checks: indexing, tile edges, barriers, shuffles, launch limits,
// reliance on a thread or block order, host pointers passed to kernels.
// The kernel files are also compiled with UBSan (out-of-bounds __shared__ tiles, misaligned float4).
// What it cannot check: speed, the GPU's memory model, races that need real concurrency, cuDNN.
//
// Kernel launches: `k<<<grid, block, shared, stream>>>(args)` is not C++, so the build rewrites each
// launch to `k | ::fm_emu::Launch{grid, block, shared, stream}(args)` (cmake/cuda_emulator.cmake);
// operator| below then runs the grid, or, while the stream is capturing a graph
// (cudaStreamBeginCapture, kernels/cuda_emulator/graph_capture.cpp), records it to run at replay.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- qualifiers: meaningful only to nvcc ---------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __grid_constant__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// A __shared__ array is one per block; blocks run one after another, so a function-local static is
// exactly one per block. The build follows each declaration with fm_emu::register_static_shared(),
// so the scheduler can fill it with NaN bytes at the start of every later block: shared memory
// starts as garbage on a GPU too. (Dynamic `extern __shared__` arrays are rewritten, see top.)
#define __shared__ static

// ---- vector types and built-in variables ---------------------------------------------------------
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

// Set by the scheduler before it resumes a thread's fiber.
inline uint3 threadIdx{0, 0, 0};
inline uint3 blockIdx{0, 0, 0};
inline dim3 blockDim;
inline dim3 gridDim;
constexpr int warpSize = 32;

// CUDA's global min/max overloads (device code has them without <algorithm>).
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> min(A a, B b) {
  return b < a ? std::common_type_t<A, B>(b) : std::common_type_t<A, B>(a);
}
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> max(A a, B b) {
  return a < b ? std::common_type_t<A, B>(b) : std::common_type_t<A, B>(a);
}

template <typename T>
inline T __ldg(const T* p) {
  return *p;
}

// ---- runtime API (the subset the project calls) --------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorLaunchFailure = 719,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorIllegalState = 401,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
constexpr unsigned cudaStreamNonBlocking = 1;
constexpr unsigned cudaEventDisableTiming = 2;

struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct CUevent_st;
using cudaEvent_t = CUevent_st*;
struct CUgraph_st;
struct CUgraphExec_st;
struct CUgraphNode_st;
using cudaGraph_t = CUgraph_st*;
using cudaGraphExec_t = CUgraphExec_st*;
using cudaGraphNode_t = CUgraphNode_st*;
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1,
                             cudaStreamCaptureModeRelaxed = 2 };
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone = 0, cudaStreamCaptureStatusActive = 1,
                               cudaStreamCaptureStatusInvalidated = 2 };

struct cudaDeviceProp {
  char name[256];
  std::size_t totalGlobalMem;
  int multiProcessorCount;
  int major, minor;
};

const char* cudaGetErrorString(cudaError_t error);
cudaError_t cudaGetLastError();
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaRuntimeGetVersion(int* version);
cudaError_t cudaDriverGetVersion(int* version);
cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaDeviceSynchronize();
// Events (kernels/nccl_comm.h orders its communication stream with them). Work runs when issued, in
// one order, so an event is always complete and a wait on one has nothing to wait for: these check
// their arguments and count the events alive, nothing more. Not supported while capturing.
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaMalloc(void** ptr, std::size_t bytes);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t bytes, cudaStream_t stream = nullptr);
// Graphs (kernels/cuda_emulator/graph_capture.cpp): work issued while the stream captures is recorded
// in order; a launch of the instantiated graph runs the recorded work again, in that order.
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status);
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, std::size_t* count);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);

namespace fm_emu {
// True while the stream captures: stream work (launches, async copies and memsets, cuBLAS calls) is
// recorded, not run. A synchronising call during the capture invalidates it, as on a GPU.
bool stream_capturing();
// Runs `work` now, or records it into the graph being captured.
void run_or_record(std::function<void()> work);
}  // namespace fm_emu

namespace fm_emu {
// The opt-in to more than 48 KiB of dynamic shared memory, remembered per kernel.
cudaError_t set_max_dynamic_shared(const void* kernel, int bytes);
}  // namespace fm_emu
template <typename Kernel>
cudaError_t cudaFuncSetAttribute(Kernel* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  return fm_emu::set_max_dynamic_shared(reinterpret_cast<const void*>(kernel), value);
}

// ---- synchronisation inside a block ---------------------------------------------------------------
namespace fm_emu {
// Pause this thread until every thread of the block that has not exited reaches a __syncthreads.
void block_barrier();
// Exchange 8-byte slots among the lanes named in `mask` (all must call it): writes `value` as this
// lane's slot, waits for the others, returns the slot of warp lane `source_lane`.
std::uint64_t warp_exchange(unsigned mask, std::uint64_t value, int source_lane);
// This thread's lane (0..31) within its warp.
int lane_id();
// Stop the running kernel with a fault naming this thread and `what` (an illegal use that a GPU would
// punish with undefined results or an error, e.g. a misaligned WMMA pointer); the launch then fails.
[[noreturn]] void device_fault(const char* what);
// Dynamic shared memory of the running block (poisoned with NaN bytes at every block start; it ends
// at a guard page, so an access past the launch's size faults).
void* dynamic_shared_memory();
// Picks another family of thread and block orders (what FM_EMU_SEED sets at start-up); returns the
// seed it replaces.
std::uint64_t set_schedule_seed(std::uint64_t seed);
// Turns the shared-memory race check on or off (what FM_EMU_RACECHECK=1 sets at start-up): two
// threads of a block changing the same shared byte between two __syncthreads() then stop the launch
// with an exception naming both. Returns the previous setting.
bool set_race_check(bool on);
// A static __shared__ variable of the running kernel, poisoned at the start of each later block.
void register_static_shared(void* address, std::size_t bytes);

template <typename T>
T shuffle_from(unsigned mask, T value, int source_lane) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  std::uint64_t slot = 0;
  std::memcpy(&slot, &value, sizeof(T));
  const std::uint64_t got = warp_exchange(mask, slot, source_lane);
  T result;
  std::memcpy(&result, &got, sizeof(T));
  return result;
}
template <typename T>
T* dynamic_shared() {
  return static_cast<T*>(dynamic_shared_memory());
}
}  // namespace fm_emu

inline void __syncthreads() { fm_emu::block_barrier(); }
// A GPU stops the kernel (the launch fails with cudaErrorLaunchFailure and the context with it); the
// emulator reports it as a fault naming the thread, so a test can see a device-side check fire.
[[noreturn]] inline void __trap() { fm_emu::device_fault("__trap(): a device-side check failed"); }

// The CUDA rules: lanes are grouped in segments of `width`; a source outside the caller's segment
// (shfl_down past its end, shfl_xor beyond it) returns the caller's own value.
template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = warpSize) {
  const int lane = fm_emu::lane_id();
  const int segment = lane / width * width;
  int source = lane ^ lane_mask;
  if (source < segment || source >= segment + width) source = lane;
  return fm_emu::shuffle_from(mask, value, source);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = warpSize) {
  const int lane = fm_emu::lane_id();
  const int segment = lane / width * width;
  int source = lane + int(delta);
  if (source >= segment + width) source = lane;
  return fm_emu::shuffle_from(mask, value, source);
}

// ---- kernel launches -------------------------------------------------------------------------------
namespace fm_emu {

struct LaunchConfig {
  dim3 grid, block;
  std::size_t shared_bytes = 0;
  cudaStream_t stream = nullptr;
};

inline dim3 to_dim3(dim3 d) { return d; }
template <typename Int, typename = std::enable_if_t<std::is_integral_v<Int>>>
dim3 to_dim3(Int n) {
  // A negative or too-large count becomes an invalid configuration at launch, as on the GPU.
  return dim3(n < 0 || std::uint64_t(n) > 0xffffffffull ? 0u : unsigned(n));
}

// Runs `thread_body` once per thread of every block of the grid (see scheduler.cpp); records
// cudaErrorInvalidConfiguration instead when the configuration would not launch on an H100.
void run_grid(const LaunchConfig& config, const void* kernel, void (*thread_body)(void* context),
              void* context);
// During a capture: checks the configuration now (a bad one fails at the launch, as on the GPU) and
// records `run` (which calls run_grid) for the replays.
void record_grid(const LaunchConfig& config, const void* kernel, std::function<void()> run);
// Grids run so far by this process (launches that started): the test of the runtime's launch
// counter (kernels/runtime.h) holds the two equal over a training step.
std::uint64_t grids_run();
// True when p points into a live device buffer or one past its end (runtime_api.cpp).
bool device_address(const void* p);

// A kernel's pointer arguments must be null or device addresses: a host pointer handed to a kernel
// faults on a GPU (cudaErrorIllegalAddress), while here host and "device" memory share one address
// space and it would quietly work. A struct argument is looked into when it says what pointers it
// carries: a member `device_pointers()` returning them (the conv passes' Params, GemmArgs,
// FusedStepArgs); C++ cannot list a struct's members by itself. Throws, naming the argument (counted
// from 1) and, in a struct, the pointer's place in device_pointers(), as a kernel fault does.
inline void check_device_pointer(const void* p, const std::string& what) {
  if (p != nullptr && !device_address(p))
    throw std::logic_error("CUDA emulator: " + what +
                           " is a pointer outside every device buffer (a host address?): on a GPU the kernel "
                           "would fault with an illegal address");
}

template <typename... Params>
void check_pointer_arguments(const std::tuple<Params...>& params) {
  int position = 0;
  std::apply(
      [&](const auto&... value) {
        auto check = [&](const auto& v) {
          ++position;
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_pointer_v<T> && !std::is_function_v<std::remove_pointer_t<T>>) {
            check_device_pointer(v, "kernel argument " + std::to_string(position));
          } else if constexpr (requires { v.device_pointers(); }) {
            int member = 0;
            for (const void* p : v.device_pointers())
              check_device_pointer(p, "kernel argument " + std::to_string(position) + " (a struct), its pointer " +
                                          std::to_string(++member) + " in device_pointers(),");
          }
        };
        (check(value), ...);
      },
      params);
}

template <typename... Args>
struct BoundLaunch {
  LaunchConfig config;
  std::tuple<Args...> args;
};

struct Launch {
  LaunchConfig config;
  template <typename Grid, typename Block, typename Shared = std::size_t>
  Launch(Grid grid, Block block, Shared shared_bytes = 0, cudaStream_t stream = nullptr)
      : config{to_dim3(grid), to_dim3(block), std::size_t(shared_bytes), stream} {}
  template <typename... Args>
  BoundLaunch<std::decay_t<Args>...> operator()(Args&&... args) const {
    return {config, std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...)};
  }
};

template <typename... Params>
struct KernelCall {
  void (*kernel)(Params...);
  std::tuple<Params...> params;
  static void run_thread(void* self) {
    auto* call = static_cast<KernelCall*>(self);
    std::apply(call->kernel, call->params);  // each thread gets its own copy of the arguments
  }
};

// `kernel | Launch{...}(args...)`: the arguments convert to the kernel's parameter types once, as
// they do when nvcc packs them for the launch.
// While the stream captures, the converted arguments are kept with the recorded launch (a graph's
// kernel node holds its parameter values, not references to the caller's variables).
template <typename... Params, typename... Args>
void operator|(void (*kernel)(Params...), BoundLaunch<Args...>&& launch) {
  using Call = KernelCall<Params...>;
  const void* kernel_id = reinterpret_cast<const void*>(kernel);
  if (stream_capturing()) {
    auto call = std::make_shared<Call>(
        Call{kernel, std::make_from_tuple<std::tuple<Params...>>(std::move(launch.args))});
    check_pointer_arguments(call->params);
    const LaunchConfig config = launch.config;
    record_grid(config, kernel_id, [call, config, kernel_id] {
      check_pointer_arguments(call->params);  // again at each replay: a buffer may have been freed since
      run_grid(config, kernel_id, &Call::run_thread, call.get());
    });
    return;
  }
  Call call{kernel, std::make_from_tuple<std::tuple<Params...>>(std::move(launch.args))};
  check_pointer_arguments(call.params);
  run_grid(launch.config, kernel_id, &Call::run_thread, &call);
}

}  // namespace fm_emu
