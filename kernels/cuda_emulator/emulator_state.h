// kernels/cuda_emulator/emulator_state.h — what the emulator's scheduler and runtime share.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <string>

#include "cuda_runtime.h"

namespace fm_emu {
// A launch that would not start on the GPU: remembered for the next cudaGetLastError().
void record_launch_error(cudaError_t error, const std::string& why);
// The dynamic shared memory a kernel has been allowed (cudaFuncSetAttribute), 48 KiB by default.
int max_dynamic_shared(const void* kernel);
// What cudaFuncSetAttribute last allowed the kernel, or -1 if it was never called for it.
int dynamic_shared_opt_in(const void* kernel);
// A call that waits for the device (a synchronisation, a blocking copy, cudaFree) made while the
// stream captures: invalidates the capture and returns true (the caller then fails with
// cudaErrorStreamCaptureUnsupported, as on a GPU); false when nothing is being captured.
bool refuse_while_capturing();
// FM_EMU_LAUNCH_LOG: notes the launch of `kernel` with `config` once per distinct block size and
// dynamic shared size (launch_log.cpp, for tools/kernel_preflight.py). Does nothing when unset.
void log_launch(const void* kernel, const LaunchConfig& config);

// What fresh device and shared memory is filled with: every float made of these bytes is a NaN.
constexpr unsigned char kPoison = 0xff;
// The page size: guard pages (after each device buffer and after dynamic shared memory) are whole pages.
inline std::size_t page_size() {
  static const std::size_t bytes = std::size_t(sysconf(_SC_PAGESIZE));
  return bytes;
}
}  // namespace fm_emu
