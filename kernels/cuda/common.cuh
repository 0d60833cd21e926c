// kernels/cuda/common.cuh — the small helpers every file of kernels/cuda/ would otherwise write
// again: checked calls, launch arithmetic, the device's SM count, alignment tests and warp
// reductions. One home for each, so a fix (or a faster version) reaches every kernel at once; the
// same role as llm.c's dev/cuda/common.h.
//
// What lives here, and what does not:
//   * FM_CUDA_CHECK and friends stay in kernels/cuda/cuda_check.h, their one home, which the host
//     .cpp files of this folder (cuBLAS, cuDNN, the runtime) include on their own; this header
//     includes it, so a .cu file needs only this one.
//   * Only code that two or more kernel files share as it is. The block reductions stay with their
//     kernels: group_norm_naive.cu adds the warp totals in another order (other bits),
//     activation.cu's leaves the total in thread 0 alone while group_norm.cu's hands it to every
//     thread, and a __shared__ array in a header would escape the emulator's per-block poisoning
//     (cmake/cuda_emulator.cmake rewrites only the .cu files).
//
// Everything is inline (or a template): the header is included by several .cu files, and the CUDA
// emulator (cmake/cuda_emulator.cmake) compiles it for the CPU as ordinary C++.
#pragma once
#include <cstdint>

#include "kernels/cuda/cuda_check.h"

namespace fm::kernels {

// ---- device side: checks of what the host could not check --------------------------------------

// A recorded training step reads some positions when its kernels run (the batch's place in the
// epoch's order, the row of the step-scalar table): the host checked the values it planned, but a
// replay reads whatever the device words hold. A kernel that finds such a value out of range stops
// (__trap(): the launch fails with cudaErrorLaunchFailure, the context with it, and the next
// synchronisation throws) instead of reading or writing outside its buffers. One comparison a
// thread; the emulator reports the trap with the thread that hit it (tests/test_device_checks.cpp).
#define FM_DEVICE_CHECK(condition) \
  do {                             \
    if (!(condition)) __trap();    \
  } while (0)

// ---- host side: launch arithmetic -----------------------------------------------------------

// ⌈a / b⌉ for a ≥ 0, b > 0: the blocks (or tiles, or chunks) needed to cover a items b at a time.
inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// The current device's streaming multiprocessor count (132 on an H100 SXM), asked once and cached:
// grid sizes are chosen to fill every SM a few times over.
inline int device_multiprocessor_count() {
  static const int count = [] {
    int device = 0, sms = 0;
    FM_CUDA_CHECK(cudaGetDevice(&device));
    FM_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    return sms;
  }();
  return count;
}

// The TF32 and bfloat16 tensor cores start with Ampere (compute capability 8.0): the kernels that use
// them stop with __trap() on an older GPU, so their host sides call this first and refuse by name.
// The capability is the one the runtime read when it probed the process's device (kernels/runtime.h).
inline void require_tensor_cores(const char* op) {
  const int major = cuda_compute_capability_major();
  FM_CHECK(major >= 8, DeviceError, op, ": needs the TF32/bfloat16 tensor cores of compute capability 8.0 or newer; "
           "this GPU is ", major, ".x (use precision fp32, and model.activations \"float32\")");
}

// float4 loads and stores need 16-byte aligned addresses (a GPU faults otherwise); the vectorised
// kernels run only when every pointer they touch passes this.
inline bool is_aligned_16(const void* p) {
  return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0;
}

// ---- device side: warp reductions -----------------------------------------------------------

// All 32 lanes take part in the shuffles below.
constexpr unsigned kFullMask = 0xffffffffu;

// Sum and max over each aligned group of kLanes lanes (the whole warp by default; kLanes a power
// of two ≤ 32) by an xor butterfly. Every lane of the group ends with the same bits: at each step
// two partners add the same two values.
template <int kLanes = 32>
__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = kLanes / 2; offset > 0; offset /= 2)
    value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}
template <int kLanes = 32>
__device__ __forceinline__ float warp_max(float value) {
  for (int offset = kLanes / 2; offset > 0; offset /= 2)
    value = fmaxf(value, __shfl_xor_sync(kFullMask, value, offset));
  return value;
}

}  // namespace fm::kernels
