// kernels/runtime.h — the device runtime seen from C++ code that must also build without CUDA.
//
// Nothing here touches CUDA until it is called: test discovery and CPU-only runs start on a machine
// that has the toolkit but no GPU. In a CPU-only build (no FM_WITH_CUDA) cuda_available() is false and
// the allocation functions throw.
#pragma once
#include <cstddef>
#include <cstdint>

// cudaStream_t is `struct CUstream_st*`; naming it here keeps cuda_runtime.h out of CPU-only code.
struct CUstream_st;

namespace fm::kernels {

using CudaStream = CUstream_st*;

// True when the build has CUDA and at least one device answers. The first call probes the driver.
bool cuda_available();
// Human-readable name of device 0 ("NVIDIA H100 80GB HBM3"), or "none".
const char* cuda_device_name();

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
// Bytes currently handed out / the most ever handed out at once (for peak-memory reports).
std::size_t cuda_bytes_in_use();
std::size_t cuda_peak_bytes();
void cuda_reset_peak();

// Copies between host and device (or device to device) on cuda_stream(); blocking.
void cuda_copy_to_device(void* dst, const void* src, std::size_t bytes);
void cuda_copy_to_host(void* dst, const void* src, std::size_t bytes);
void cuda_copy_device_to_device(void* dst, const void* src, std::size_t bytes);
void cuda_memset_zero(void* dst, std::size_t bytes);
void cuda_synchronize();

}  // namespace fm::kernels
