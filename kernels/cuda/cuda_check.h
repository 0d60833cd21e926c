// kernels/cuda/cuda_check.h — checked CUDA, cuBLAS and cuDNN calls.
//
// Every runtime/library call and every kernel launch in the project goes through these macros, so a
// failure reports the file, the line and CUDA's own message instead of surfacing later as garbage.
// They throw fm::DeviceError (core/error.h) so the tools can print one line and exit 2.
#pragma once
#include <cublas_v2.h>
#include <cstddef>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "core/error.h"
#include "kernels/runtime.h"

namespace fm::cuda_detail {
[[noreturn]] inline void fail(const char* what, const char* msg, const char* file, int line) {
  throw ::fm::DeviceError(::fm::cat(what, " failed at ", file, ":", line, ": ", msg));
}
const char* cublas_status_string(cublasStatus_t status);
}  // namespace fm::cuda_detail

#define FM_CUDA_CHECK(call)                                                                      \
  do {                                                                                           \
    cudaError_t fm_err_ = (call);                                                                \
    if (fm_err_ != cudaSuccess)                                                                  \
      ::fm::cuda_detail::fail(#call, cudaGetErrorString(fm_err_), __FILE__, __LINE__);           \
  } while (0)

// After every <<<...>>> launch (exactly one per launch that ran): catches bad launch configurations
// immediately, and counts the launch (kernels/runtime.h's runtime_counters; the emulator's test
// checks that the count equals the grids it ran, so a launch without this check shows up).
#define FM_CUDA_CHECK_LAUNCH()                                                                   \
  do {                                                                                           \
    cudaError_t fm_err_ = cudaGetLastError();                                                    \
    if (fm_err_ != cudaSuccess)                                                                  \
      ::fm::cuda_detail::fail("kernel launch", cudaGetErrorString(fm_err_), __FILE__, __LINE__); \
    ::fm::kernels::count_kernel_launch();                                                        \
  } while (0)

#define FM_CUBLAS_CHECK(call)                                                                    \
  do {                                                                                           \
    cublasStatus_t fm_st_ = (call);                                                              \
    if (fm_st_ != CUBLAS_STATUS_SUCCESS)                                                         \
      ::fm::cuda_detail::fail(#call, ::fm::cuda_detail::cublas_status_string(fm_st_), __FILE__,  \
                              __LINE__);                                                         \
  } while (0)

namespace fm::kernels {
// A kernel that uses more than 48 KB of dynamic shared memory must opt in, once, to the most it
// will ask for (cudaFuncAttributeMaxDynamicSharedMemorySize is a ceiling, not a size).
template <typename Kernel>
void allow_dynamic_shared_memory(Kernel kernel, std::size_t max_bytes) {
  if (max_bytes > 48 * 1024)
    FM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(max_bytes)));
}
}  // namespace fm::kernels

#define FM_CUDNN_CHECK(call)                                                                     \
  do {                                                                                           \
    cudnnStatus_t fm_st_ = (call);                                                               \
    if (fm_st_ != CUDNN_STATUS_SUCCESS)                                                          \
      ::fm::cuda_detail::fail(#call, cudnnGetErrorString(fm_st_), __FILE__, __LINE__);           \
  } while (0)
