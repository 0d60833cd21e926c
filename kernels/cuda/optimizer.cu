// kernels/cuda/optimizer.cu — the fused optimiser step, in-place gradient accumulation and the
// trainer's running loss sums, and the global squared gradient norm (two-stage, deterministic) on the GPU
// (see kernels/optimizer.h).
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
  if (args.per_step) {  // a recorded step: this step's scalars from the device (kernels/optimizer.h)
    const StepScalars& row = *args.per_step;
    args.lr = row.lr;
    args.decoupled_factor = row.decoupled_factor;
    args.neg_step_size = row.neg_step_size;
    args.inverse_sqrt_bias2 = row.inverse_sqrt_bias2;
    args.ema_decay = row.ema_decay;
    args.ema_one_minus_decay = row.ema_one_minus_decay;
  }
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

__global__ void accumulate_loss_kernel(double* slots, const float* loss, bool begins_epoch,
                                       const StepScalars* per_step) {
  accumulate_loss_slots(slots, double(*loss), per_step ? per_step->begins_epoch != 0 : begins_epoch);
}

__global__ void select_step_scalars_kernel(StepScalars* current, std::int64_t* index, const std::int64_t* rows,
                                           const StepScalars* table) {
  FM_DEVICE_CHECK(*index >= 0 && *index < *rows);
  *current = table[*index];
  *index = *index + 1;
}

// Block b sums the squares of its slice [b·per_block, min((b + 1)·per_block, count)); thread t takes
// elements t, t + kNormThreads, … of the slice; then the tree. All in double (kernels/optimizer.h).
__global__ void sum_of_squares_partials_kernel(const float* grad, std::int64_t count, std::int64_t per_block,
                                               double* partials) {
  __shared__ double partial[kNormThreads];
  const std::int64_t begin = blockIdx.x * per_block;
  const std::int64_t end = begin + per_block < count ? begin + per_block : count;
  double acc = 0.0;
  for (std::int64_t i = begin + threadIdx.x; i < end; i += kNormThreads) {
    const double g = double(grad[i]);
    acc += g * g;  // the product is exact, so a fused multiply-add rounds the same
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int width = kNormThreads / 2; width > 0; width /= 2) {
    if (int(threadIdx.x) < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = partial[0];
}

__global__ void sum_partials_kernel(const double* partials, std::int64_t count, float* out) {
  __shared__ double partial[kNormThreads];
  double acc = 0.0;
  for (std::int64_t i = threadIdx.x; i < count; i += kNormThreads) acc += partials[i];
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int width = kNormThreads / 2; width > 0; width /= 2) {
    if (int(threadIdx.x) < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = float(partial[0]);
}

}  // namespace

void sum_of_squares_partials_cuda(const float* grad, std::int64_t count, double* partials) {
  if (count == 0) return;
  const std::int64_t blocks = norm_blocks(count);
  const std::int64_t per_block = (count + blocks - 1) / blocks;
  sum_of_squares_partials_kernel<<<unsigned(blocks), kNormThreads, 0, cuda_stream()>>>(grad, count, per_block,
                                                                                      partials);
  FM_CUDA_CHECK_LAUNCH();
}

void sum_partials_cuda(const double* partials, std::int64_t count, float* out) {
  sum_partials_kernel<<<1, kNormThreads, 0, cuda_stream()>>>(partials, count, out);
  FM_CUDA_CHECK_LAUNCH();
}

void accumulate_loss_cuda(double* slots, const float* loss, bool begins_epoch, const StepScalars* per_step) {
  accumulate_loss_kernel<<<1, 1, 0, cuda_stream()>>>(slots, loss, begins_epoch, per_step);
  FM_CUDA_CHECK_LAUNCH();
}

void select_step_scalars_cuda(StepScalars* current, std::int64_t* index, const std::int64_t* rows,
                              const StepScalars* table) {
  select_step_scalars_kernel<<<1, 1, 0, cuda_stream()>>>(current, index, rows, table);
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
