// kernels/cuda_emulator/cudnn_unavailable.cpp — the cuDNN baseline in the emulator build: absent.
//
// cuDNN's kernels are closed, so there is nothing to emulate: each entry point of
// kernels/cuda/conv2d_cudnn.cpp throws, and cudnn_available() says false so the tests skip their
// cuDNN parts visibly.
#include "core/error.h"
#include "cudnn.h"
#include "kernels/conv2d.h"

const char* cudnnGetErrorString(cudnnStatus_t status) {
  return status == CUDNN_STATUS_SUCCESS ? "CUDNN_STATUS_SUCCESS"
                                        : "CUDNN_STATUS_NOT_SUPPORTED (no cuDNN in the emulator)";
}
cudnnStatus_t cudnnCreate(cudnnHandle_t*) { return CUDNN_STATUS_NOT_SUPPORTED; }
cudnnStatus_t cudnnSetStream(cudnnHandle_t, cudaStream_t) { return CUDNN_STATUS_NOT_SUPPORTED; }

#include "kernels/runtime.h"

namespace fm::kernels {
bool cudnn_available() { return false; }

namespace {
[[noreturn]] void no_cudnn(const char* function) {
  throw DeviceError(cat(function, ": cuDNN is not available in the CUDA emulator build"));
}
}  // namespace

void conv2d_forward_cudnn_with(CudnnAlgorithms, const float*, const float*, const float*, float*,
                               const Conv2dParams&) {
  no_cudnn("conv2d_forward_cudnn");
}
void conv2d_backward_input_cudnn_with(CudnnAlgorithms, const float*, const float*, float*, const Conv2dParams&) {
  no_cudnn("conv2d_backward_input_cudnn");
}
void conv2d_backward_weight_cudnn_with(CudnnAlgorithms, const float*, const float*, float*, float*,
                                       const Conv2dParams&) {
  no_cudnn("conv2d_backward_weight_cudnn");
}
void conv_transpose2d_forward_cudnn_with(CudnnAlgorithms, const float*, const float*, const float*, float*,
                                         const ConvTranspose2dParams&) {
  no_cudnn("conv_transpose2d_forward_cudnn");
}
void conv_transpose2d_backward_input_cudnn_with(CudnnAlgorithms, const float*, const float*, float*,
                                                const ConvTranspose2dParams&) {
  no_cudnn("conv_transpose2d_backward_input_cudnn");
}
void conv_transpose2d_backward_weight_cudnn_with(CudnnAlgorithms, const float*, const float*, float*, float*,
                                                 const ConvTranspose2dParams&) {
  no_cudnn("conv_transpose2d_backward_weight_cudnn");
}
}  // namespace fm::kernels
