// kernels/cuda/library_handles.h — the process-wide cuBLAS and cuDNN handles, created on first use
// and bound to fm::kernels::cuda_stream().
#pragma once
#include <cublas_v2.h>
#include <cudnn.h>

namespace fm::kernels {
cublasHandle_t cublas_handle();
cudnnHandle_t cudnn_handle();
}  // namespace fm::kernels
