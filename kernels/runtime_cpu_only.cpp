// kernels/runtime_cpu_only.cpp — the device runtime of a CPU-only build: no device, every device
// request fails with a clear message. The CUDA build compiles kernels/cuda/runtime.cpp instead.
#ifndef FM_WITH_CUDA
#include "core/error.h"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {
[[noreturn]] void no_cuda(const char* what) {
  throw DeviceError(cat(what, ": this build has no CUDA backend (configured with FM_CUDA=OFF)"));
}
}  // namespace
bool cuda_available() { return false; }
const char* cuda_device_name() { return "none"; }
int cuda_compute_capability_major() { return 0; }
void cuda_use_device(int) {}
int cuda_device_count() { return 0; }
bool cudnn_available() { return false; }
bool cuda_emulated() { return false; }
CudaStream cuda_stream() { no_cuda("cuda_stream"); }
void* cuda_malloc(std::size_t) { no_cuda("cuda_malloc"); }
void cuda_free(void*) {}
bool cuda_allocator_direct() { return false; }
std::size_t cuda_bytes_in_use() { return 0; }
std::size_t cuda_peak_bytes() { return 0; }
void cuda_reset_peak() {}
void cuda_copy_to_device(void*, const void*, std::size_t) { no_cuda("cuda_copy_to_device"); }
void cuda_copy_to_host(void*, const void*, std::size_t) { no_cuda("cuda_copy_to_host"); }
void cuda_copy_device_to_device(void*, const void*, std::size_t) { no_cuda("cuda_copy"); }
void cuda_memset_zero(void*, std::size_t) { no_cuda("cuda_memset_zero"); }
void cuda_synchronize() {}
struct CudaGraph::Impl {};
CudaGraph::CudaGraph() = default;
CudaGraph::~CudaGraph() = default;
void CudaGraph::begin_capture() { no_cuda("CudaGraph::begin_capture"); }
void CudaGraph::end_capture() { no_cuda("CudaGraph::end_capture"); }
void CudaGraph::replay() { no_cuda("CudaGraph::replay"); }
void CudaGraph::abandon() {}
bool CudaGraph::captured() const { return false; }
bool CudaGraph::capturing() const { return false; }
std::size_t CudaGraph::operations() const { return 0; }
}  // namespace fm::kernels
#endif
