// kernels/cuda/optimizer.cu — the fused optimiser step, in-place gradient accumulation and the
// trainer's running loss sums on the GPU (see kernels/optimizer.h).
//
// One thread per element of the flat range, running the same fused_step_element as the CPU loop.
// When the clip is decided on the device (args.clip_sum_of_squares), every thread computes the same
// decision from the squared norm, so the host never waits to read the norm.
// The arguments travel by value in the kernel's parameter space (no copy to the device first). The
// formulas are "a·x + b" chains where either b = 0 or a = 1, so an FMA that nvcc forms from them
// rounds exactly like the separate multiply and add: the result equals the CPU's bit for bit.
#include "kernels/cuda/common.cuh"
#include "kernels/optimizer.h"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

constexpr int kThreads = 256;

__global__ void fused_step_kernel(FusedStepArgs<float> args) {
  const std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (i >= args.count) return;
  bool clip = args.clip;
  float clip_scale = args.clip_scale;
  if (args.clip_sum_of_squares) {
    // Every thread reads the same word and computes the same decision (in double, as the host
    // would): cheaper than a launch of its own, and no thread waits for another.
    const ClipDecision decision = clip_decision(sqrt(double(*args.clip_sum_of_squares)), args.clip_max_norm);
    clip = decision.clip;
    clip_scale = float(decision.coefficient);
  }
  fused_step_element(args, i, clip, clip_scale);  // the flags are the same for every thread: no divergence
}

__global__ void add_into_kernel(float* dst, const float* src, std::int64_t count) {
  const std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (i >= count) return;
  dst[i] = dst[i] + src[i];
}

__global__ void accumulate_loss_kernel(double* slots, const float* loss, bool begins_epoch) {
  accumulate_loss_slots(slots, double(*loss), begins_epoch);
}

}  // namespace

void accumulate_loss_cuda(double* slots, const float* loss, bool begins_epoch) {
  accumulate_loss_kernel<<<1, 1, 0, cuda_stream()>>>(slots, loss, begins_epoch);
  FM_CUDA_CHECK_LAUNCH();
}

void fused_step_cuda(const FusedStepArgs<float>& args) {
  if (args.count == 0) return;
  const unsigned blocks = unsigned(ceil_div(args.count, kThreads));
  fused_step_kernel<<<blocks, kThreads, 0, cuda_stream()>>>(args);
  FM_CUDA_CHECK_LAUNCH();
}

void add_into_cuda(float* dst, const float* src, std::int64_t count) {
  if (count == 0) return;
  const unsigned blocks = unsigned(ceil_div(count, kThreads));
  add_into_kernel<<<blocks, kThreads, 0, cuda_stream()>>>(dst, src, count);
  FM_CUDA_CHECK_LAUNCH();
}

}  // namespace fm::kernels
