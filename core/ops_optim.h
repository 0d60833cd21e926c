// core/ops_optim.h — in-place operations for optimisers over flat buffers (not recorded by autograd):
// the fused step (clip + SGD/Adam/AdamW + EMA in one pass), the per-parameter sums of squares of a
// flat gradient, and adding a gradient into the buffer it accumulates in.
//
// Layer: core/ (the nn/ optimisers call these; the kernels are kernels/optimizer.h). Hyperparameters
// arrive in double, as the Tensor ops of nn/optim.cpp receive them, and are converted to the element
// type here exactly as an affine op converts its scale and shift, so the fused step computes the
// same bits as those ops (the formulas are listed in kernels/optimizer.h).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace fm {

enum class FusedUpdateRule { None, SGD, Adam };

struct FusedStepHyperparameters {
  bool clip = false;  // g ← clip_scale·g (written back to the gradient buffer)
  double clip_scale = 1.0;
  FusedUpdateRule rule = FusedUpdateRule::None;
  bool weight_decay = false;  // Adam L2 or SGD decay with weight_decay_value
  double weight_decay_value = 0.0;
  bool decoupled = false;  // AdamW: θ ← decoupled_factor·θ
  double decoupled_factor = 1.0;
  double one_minus_beta1 = 0, beta2 = 0, one_minus_beta2 = 0, inverse_sqrt_bias2 = 0, eps = 0, neg_step_size = 0;
  bool has_momentum = false, first_momentum_step = false, nesterov = false;
  double momentum = 0, one_minus_dampening = 0, lr = 0;
  bool ema = false;  // e ← ema_decay·e + ema_one_minus_decay·θ
  double ema_decay = 0, ema_one_minus_decay = 0;
};

// Flat, contiguous, one-dimensional buffers of one dtype and device, element i of each belonging
// to the same parameter element. A buffer the step does not use may be undefined.
struct FusedStepBuffers {
  Tensor param, grad, exp_avg, exp_avg_sq, momentum, shadow;
};

// Runs the fused step on elements [begin, begin + count) of the buffers. CPU (float, double) and
// CUDA (float).
void fused_step(const FusedStepBuffers& buffers, std::int64_t begin, std::int64_t count,
                const FusedStepHyperparameters& hyper);

// The squared L2 norm of a set of segments of a flat CPU gradient, computed as clip_grad_norm's
// Tensor ops compute it: per segment sum(square(g)) (float squares summed in double, rounded to the
// element type), then those sums added in segment order in the element type. `scratch` holds one
// double per segment (kept by the caller so a step allocates nothing). Returns the total as double.
double segment_sum_of_squares(const Tensor& flat_grad, const std::vector<std::int64_t>& offsets,
                              const std::vector<std::int64_t>& counts, std::vector<double>& scratch);

// dst ← dst + src, elementwise (same shape, dtype and device; dst contiguous).
void add_into(const Tensor& dst, const Tensor& src);

}  // namespace fm
