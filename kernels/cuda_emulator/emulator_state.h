// kernels/cuda_emulator/emulator_state.h — what the emulator's scheduler and runtime share.
#pragma once
#include <string>

#include "cuda_runtime.h"

namespace fm_emu {
// A launch that would not start on the GPU: remembered for the next cudaGetLastError().
void record_launch_error(cudaError_t error, const std::string& why);
// The dynamic shared memory a kernel has been allowed (cudaFuncSetAttribute), 48 KiB by default.
int max_dynamic_shared(const void* kernel);
// A call that waits for the device (a synchronisation, a blocking copy, cudaFree) made while the
// stream captures: invalidates the capture and returns true (the caller then fails with
// cudaErrorStreamCaptureUnsupported, as on a GPU); false when nothing is being captured.
bool refuse_while_capturing();
}  // namespace fm_emu
