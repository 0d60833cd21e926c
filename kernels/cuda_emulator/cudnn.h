// kernels/cuda_emulator/cudnn.h — just enough of cuDNN's names for the emulator build to compile
// kernels/cuda/cuda_check.h and runtime.cpp. cuDNN itself is not emulated: cudnnCreate fails, and
// the emulator build replaces kernels/cuda/conv2d_cudnn.cpp with cudnn_unavailable.cpp.
#pragma once
#include "cuda_runtime.h"

enum cudnnStatus_t { CUDNN_STATUS_SUCCESS = 0, CUDNN_STATUS_NOT_SUPPORTED = 9 };
struct cudnnContext;
using cudnnHandle_t = cudnnContext*;

const char* cudnnGetErrorString(cudnnStatus_t status);
cudnnStatus_t cudnnCreate(cudnnHandle_t* handle);
cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream);
