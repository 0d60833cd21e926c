// kernels/optimizer.h — the fused optimiser step over flat buffers: gradient clipping, one update rule
// (SGD, Adam/AdamW) and the EMA of the weights in a single pass over memory.
//
// The parameters, gradients and optimiser state of a whole model sit in flat buffers at the same
// offsets (nn/flat_parameters.h), so one loop visits element i of each buffer once instead of a dozen
// tensor ops each reading and writing the whole model. The arithmetic per element is exactly the
// chain of Tensor ops nn/optim.cpp and nn/ema.cpp perform, in the same order and the same precision
// (element type T; the double hyperparameters converted to T as an affine op converts them), so
// the results are the same bits (tests/test_nn_fused_optim.cpp). Each "a·x + b" below is written as
// kernels/elementwise_math.h writes UnaryOp::Affine, so a compiler that contracts it into an FMA does
// so in both places. The formulas, element by element (g gradient, θ parameter):
//   clip      g ← c·g + 0                                     (when clipping scales)
//   SGD       g ← g + (λ·θ + 0)                               (weight decay λ)
//             b ← g (first step) or (μ·b + 0) + ((1−d)·g + 0);   g ← g + (μ·b + 0) (Nesterov) or b
//             θ ← θ − (lr·g + 0)
//   Adam      g ← g + (λ·θ + 0)  (L2)   or   θ' ← (1−lr·λ)·θ + 0  (AdamW)
//             m ← m + ((1−β1)·(g − m) + 0);   v ← (β2·v + 0) + ((1−β2)·g² + 0)
//             θ ← θ' + (−s·(m / (1·((1/√bc2)·√v + 0) + ε)) + 0)
//   EMA       e ← (δ·e + 0) + ((1−δ)·θ + 0)
//
// Layer: kernels/ (plain functions over pointers). CPU: kernels/cpu/optimizer.cpp (float, double;
// OpenMP over elements). CUDA: kernels/cuda/optimizer.cu (float, device pointers, one thread per
// element, on cuda_stream()).
#pragma once
#include <array>
#include <cstdint>

#include "kernels/elementwise_math.h"

namespace fm::kernels {

enum class UpdateRule { None, SGD, Adam };

// The scalars of a training step that change from one step to the next, as a recorded step (a CUDA
// graph, flow/trainer.cpp) reads them from device memory: its launches cannot take new arguments,
// so each replay first copies its step's row of a table the host uploaded ahead of time into one
// fixed row (select_step_scalars_cuda), and the kernels below read that row in place of the matching
// launch arguments. Each value is what the launch argument would have been (the host's double
// converted to float), so a replayed step computes the bits of an eager one.
struct StepScalars {
  float lr = 0;                  // SGD
  float decoupled_factor = 0;    // AdamW: 1 − lr·λ
  float neg_step_size = 0;       // Adam: −lr / (1 − β1^t)
  float inverse_sqrt_bias2 = 0;  // Adam: 1 / √(1 − β2^t)
  float ema_decay = 0, ema_one_minus_decay = 0;
  std::int32_t begins_epoch = 0;  // the step's batch began a data epoch (accumulate_loss)
  std::uint32_t philox_step = 0;  // the step in its random numbers' Philox places (kernels/random.h)
  std::int64_t batch_start = 0;   // where the step's batch starts in its epoch's order (take_rows)
};

// Everything the update of one range needs. Pointers are to the range's first element; a buffer a
// rule does not use may be null. The scalars are already of the element type.
template <typename T>
struct FusedStepArgs {
  T* param = nullptr;
  T* grad = nullptr;        // read; written back scaled when clipping scales
  T* exp_avg = nullptr;     // Adam m
  T* exp_avg_sq = nullptr;  // Adam v
  T* momentum = nullptr;    // SGD b
  T* shadow = nullptr;      // EMA e (null: no EMA)
  std::int64_t count = 0;

  bool clip = false;
  T clip_scale = 0;
  // Clipping decided on the device (CUDA): when set, each thread takes clip and clip_scale from
  // clip_decision(√(*clip_sum_of_squares), clip_max_norm) instead, so the host need not read the norm.
  const T* clip_sum_of_squares = nullptr;
  double clip_max_norm = 0;
  UpdateRule rule = UpdateRule::None;  // None: the parameter is left alone (no gradient)
  bool weight_decay = false;           // Adam L2 / SGD
  T weight_decay_value = 0;
  bool decoupled = false;  // AdamW
  T decoupled_factor = 0;  // 1 − lr·λ
  T one_minus_beta1 = 0, beta2 = 0, one_minus_beta2 = 0, inverse_sqrt_bias2 = 0, eps = 0, neg_step_size = 0;
  bool has_momentum = false, first_momentum_step = false, nesterov = false;
  T momentum_value = 0, one_minus_dampening = 0, lr = 0;
  T ema_decay = 0, ema_one_minus_decay = 0;
  // CUDA only: when set, lr, decoupled_factor, neg_step_size, inverse_sqrt_bias2 and the EMA's two
  // scalars are read from this device row instead (a recorded step).
  const StepScalars* per_step = nullptr;

  // What this struct points to, for the CUDA emulator's check that each is a device address when
  // the struct is a kernel's argument (kernels/cuda_emulator/cuda_runtime.h).
  std::array<const void*, 8> device_pointers() const {
    return {param, grad, exp_avg, exp_avg_sq, momentum, shadow, clip_sum_of_squares, per_step};
  }
};

// a·x + b, exactly as UnaryOp::Affine computes it.
template <typename T>
FM_HOST_DEVICE T affine_scalar(T x, T a, T b) {
  return apply_unary(UnaryOp::Affine, x, a, b);
}

// clip_grad_norm's rule (nn/optim.h): scale every gradient by max_norm / (norm + 1e-6) when that is
// below 1; a non-finite norm leaves the gradients alone. In double, as the host computes it.
struct ClipDecision {
  bool clip;
  double coefficient;
};
FM_HOST_DEVICE ClipDecision clip_decision(double norm, double max_norm) {
  const double coefficient = max_norm / (norm + 1e-6);
  const bool finite = norm >= 0.0 && norm <= 1.7976931348623157e308;  // false for NaN and ∞
  return {finite && coefficient < 1.0, coefficient};
}

// ---- the formulas, stage by stage. The GPU runs all stages for one element per thread
// (fused_step_element); the CPU runs each stage over a chunk of elements, a loop the compiler
// vectorises (kernels/cpu/optimizer.cpp). Both call these functions, so the arithmetic is written once.
template <typename T>
FM_HOST_DEVICE T clip_stage(T g, const FusedStepArgs<T>& a) {
  return affine_scalar(g, a.clip_scale, T(0));
}
// Adam's L2 term and SGD's weight decay: g + λθ.
template <typename T>
FM_HOST_DEVICE T weight_decay_stage(T g, T theta, const FusedStepArgs<T>& a) {
  return g + affine_scalar(theta, a.weight_decay_value, T(0));
}
// SGD momentum after the first step: μ·b + (1 − dampening)·g.
template <typename T>
FM_HOST_DEVICE T momentum_stage(T b, T g, const FusedStepArgs<T>& a) {
  return affine_scalar(b, a.momentum_value, T(0)) + affine_scalar(g, a.one_minus_dampening, T(0));
}
template <typename T>
FM_HOST_DEVICE T nesterov_stage(T g, T b, const FusedStepArgs<T>& a) {
  return g + affine_scalar(b, a.momentum_value, T(0));
}
template <typename T>
FM_HOST_DEVICE T sgd_update_stage(T theta, T g, const FusedStepArgs<T>& a) {
  return theta - affine_scalar(g, a.lr, T(0));
}
// AdamW's decoupled decay: (1 − lr·λ)·θ.
template <typename T>
FM_HOST_DEVICE T decoupled_decay_stage(T theta, const FusedStepArgs<T>& a) {
  return affine_scalar(theta, a.decoupled_factor, T(0));
}
// Adam's moments (updated in m and v) and the new parameter.
template <typename T>
FM_HOST_DEVICE T adam_stage(T theta, T g, T& m, T& v, const FusedStepArgs<T>& a) {
  m = m + affine_scalar(g - m, a.one_minus_beta1, T(0));
  v = affine_scalar(v, a.beta2, T(0)) + affine_scalar(g * g, a.one_minus_beta2, T(0));
  const T denominator =
      affine_scalar(affine_scalar(apply_unary(UnaryOp::Sqrt, v, T(0), T(0)), a.inverse_sqrt_bias2, T(0)), T(1), a.eps);
  return theta + affine_scalar(m / denominator, a.neg_step_size, T(0));
}
template <typename T>
FM_HOST_DEVICE T ema_stage(T shadow, T theta, const FusedStepArgs<T>& a) {
  return affine_scalar(shadow, a.ema_decay, T(0)) + affine_scalar(theta, a.ema_one_minus_decay, T(0));
}

// One element of the fused step, all stages in order (the CUDA kernel's body; the CPU runs the same
// stages chunk by chunk).
// `clip` and `clip_scale` are a.clip and a.clip_scale, or what the device decided (fused_step_kernel).
template <typename T>
FM_HOST_DEVICE void fused_step_element(const FusedStepArgs<T>& a, std::int64_t i, bool clip, T clip_scale) {
  T theta = a.param[i];
  if (a.rule != UpdateRule::None) {
    T g = a.grad[i];
    if (clip) {
      g = affine_scalar(g, clip_scale, T(0));  // clip_stage with this scale
      a.grad[i] = g;
    }
    if (a.rule == UpdateRule::SGD) {
      if (a.weight_decay) g = weight_decay_stage(g, theta, a);
      if (a.has_momentum) {
        const T b = a.first_momentum_step ? g : momentum_stage(a.momentum[i], g, a);
        a.momentum[i] = b;
        g = a.nesterov ? nesterov_stage(g, b, a) : b;
      }
      theta = sgd_update_stage(theta, g, a);
    } else {
      if (a.weight_decay) {
        if (a.decoupled)
          theta = decoupled_decay_stage(theta, a);
        else
          g = weight_decay_stage(g, theta, a);
      }
      theta = adam_stage(theta, g, a.exp_avg[i], a.exp_avg_sq[i], a);
    }
    a.param[i] = theta;
  }
  if (a.shadow) a.shadow[i] = ema_stage(a.shadow[i], theta, a);
}
template <typename T>
FM_HOST_DEVICE void fused_step_element(const FusedStepArgs<T>& a, std::int64_t i) {
  fused_step_element(a, i, a.clip, a.clip_scale);
}

template <typename T>
void fused_step_cpu(const FusedStepArgs<T>& args);
void fused_step_cuda(const FusedStepArgs<float>& args);

// sums[k] = Σ_i g² over segment k: the squares (in T) summed in double in index order, then rounded
// to T — what fm::sum(fm::square(g)) computes on the CPU — and stored as double (exactly).
// Segments are [offsets[k], offsets[k] + counts[k]).
template <typename T>
void segment_sum_of_squares_cpu(const T* grad, const std::int64_t* offsets, const std::int64_t* counts,
                                int segments, double* sums);

// The trainer's running loss statistics (core/ops_optim.h, LossAccumulator): float64 slots where the
// loss was computed, so a step adds its loss without the host reading it. With l = double(loss):
//   slots[0] = l (the last loss);  slots[1] += l (the sum since the caller last restarted it);
//   a step that begins an epoch: slots[3] = slots[2] (the finished epoch's sum), slots[2] = l;
//   any other step: slots[2] += l.
// The same double additions in the same order as a host loop over item() values: the same bits.
enum LossSlot { kLossLast = 0, kLossSinceRestart = 1, kLossEpoch = 2, kLossFinishedEpoch = 3, kLossSlotCount = 4 };
FM_HOST_DEVICE void accumulate_loss_slots(double* slots, double loss, bool begins_epoch) {
  slots[kLossLast] = loss;
  slots[kLossSinceRestart] = slots[kLossSinceRestart] + loss;
  if (begins_epoch) {
    slots[kLossFinishedEpoch] = slots[kLossEpoch];
    slots[kLossEpoch] = loss;
  } else {
    slots[kLossEpoch] = slots[kLossEpoch] + loss;
  }
}
template <typename T>
void accumulate_loss_cpu(double* slots, const T* loss, bool begins_epoch);
// One thread, one launch. With per_step set, its begins_epoch replaces the argument (a recorded step).
void accumulate_loss_cuda(double* slots, const float* loss, bool begins_epoch, const StepScalars* per_step = nullptr);

// *current ← table[*index]; *index ← *index + 1 (one thread, one launch; device pointers). The first
// launch of a recorded step: the replay's row of the table uploaded for the steps ahead. *rows is how
// many rows the last upload wrote: an index at or past it (more replays than planned rows) stops the
// kernel (FM_DEVICE_CHECK, kernels/cuda/common.cuh) rather than reading a stale or unwritten row.
void select_step_scalars_cuda(StepScalars* current, std::int64_t* index, const std::int64_t* rows,
                              const StepScalars* table);

// ---- the global squared gradient norm on CUDA, in two launches whatever the number of parameters
// (clip_step_and_update_ema on the device, nn/optim.h). A deterministic two-stage reduction:
//   stage 1 (one launch per contiguous range of the flat gradient; one range when every parameter
//     has a gradient): block b sums double(g)·double(g) over its fixed slice of the range in double,
//     each thread over a fixed stride, then a fixed shared-memory tree; partials[b] ← that sum;
//   stage 2 (one launch, one block): the partials summed in a fixed order in double, rounded once
//     to float into *out (the one-element squared norm the fused step decides its clip from).
// How a range is cut into blocks depends only on its length (norm_blocks), never on the device, so
// the bits are the same on every GPU and every run. Why double: a float's square is exact in double
// (24 + 24 bits < 53), so the only roundings are the double additions (relative error below
// n·2⁻⁵³, ~1e-10 for 10⁶ elements) and the final one to float (2⁻²⁴): the result is the exact
// squared norm to float precision, closer to it than the per-parameter float sums it replaces — but
// not their bits (tests/test_nn_grad_norm_cuda.cpp bounds it against the CPU float64 norm). Double
// costs nothing that matters here: the pass reads each gradient once and is bound by memory.
constexpr int kNormThreads = 256;
constexpr std::int64_t kNormElementsPerBlock = 8 * kNormThreads;
constexpr std::int64_t kNormMaxBlocks = 1024;
// Stage 1's blocks for a range of `count` elements (≥ 1 when count > 0), and each block's slice.
inline std::int64_t norm_blocks(std::int64_t count) {
  const std::int64_t blocks = (count + kNormElementsPerBlock - 1) / kNormElementsPerBlock;
  return blocks < kNormMaxBlocks ? blocks : kNormMaxBlocks;
}
// partials[b] for b < norm_blocks(count): the squares of grad[0, count) by block, in double.
void sum_of_squares_partials_cuda(const float* grad, std::int64_t count, double* partials);
// *out = float(Σ partials[0, count)), one block, fixed order.
void sum_partials_cuda(const double* partials, std::int64_t count, float* out);

// dst[i] = dst[i] + src[i]: a gradient added into the buffer it accumulates in.
template <typename T>
void add_into_cpu(T* dst, const T* src, std::int64_t count);
void add_into_cuda(float* dst, const float* src, std::int64_t count);

}  // namespace fm::kernels
