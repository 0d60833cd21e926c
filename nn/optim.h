// nn/optim.h — optimisers (SGD with momentum, Adam, AdamW), global-norm gradient clipping, and the
// export/import of optimiser state for checkpoints.
//
// Layer: nn/ (uses core/ only). Every update runs under NoGradGuard with Tensor ops and writes the
// parameter in place with copy_, so the same code updates CPU and CUDA parameters and every handle
// to a parameter (the model's, the EMA's) sees the new values. The formulas follow PyTorch's
// single-tensor implementations step for step (torch/optim/{sgd,adam,adamw}.py), so the numbers match
// torch.optim up to floating-point rounding:
//   Adam (Kingma & Ba 2015):  g ← g + λθ (L2, if weight_decay);  t ← t + 1
//       m ← m + (1−β1)(g − m);  v ← β2·v + (1−β2)·g²
//       θ ← θ − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε)
//   AdamW (Loshchilov & Hutter 2019): θ ← θ·(1 − lr·λ) first (decoupled decay), then Adam without L2.
//   SGD: g ← g + λθ;  with momentum μ: b ← g on the first step, else b ← μ·b + (1−dampening)·g;
//       g ← g + μ·b (Nesterov) or g ← b;  θ ← θ − lr·g
// Parameters without a gradient are skipped (their state does not advance), as in PyTorch.
//
// Parameters are read by name on every step: either from a Module (so a model moved with to() after
// the optimiser was built is still the one updated; its state must then be moved too) or from a
// fixed list. State keys are "<parameter name>.<field>": exp_avg, exp_avg_sq, step (Adam/AdamW),
// momentum_buffer (SGD); step is a float64 CPU scalar, the rest live with the parameter.
//
// The fused step: when the module was flattened (Module::flatten_parameters), step() runs as one
// pass over the flat buffers (kernels/optimizer.h) with the state tensors kept as views of flat
// state buffers, and clip_step_and_update_ema() folds the gradient clipping and the EMA update into
// that same pass. The numbers are those of the per-parameter code below, bit for bit (the kernel
// replays its Tensor ops element by element; tests/test_nn_fused_optim.cpp compares them), and a
// step allocates no tensor memory on the CPU. One exception, on CUDA only: the global gradient norm
// is one two-stage reduction over the flat gradient summed in double (two launches instead of about
// three per parameter tensor), within 2⁻²⁴ relative of the float64 norm rather than the bits of the
// per-parameter float sums (tests/test_nn_grad_norm_cuda.cpp); everything after it is the same bits. The per-parameter code stays the reference and runs
// whenever the module is not flat (or the optimiser was given a list of tensors).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/ops_optim.h"
#include "nn/flat_parameters.h"
#include "nn/module.h"

namespace fm::nn {

class EMA;

// The global gradient norm a step measured (before clipping). A CPU step has it as a number; a CUDA
// step leaves it on the device as the float sum of squares, read by value() (a host sync) only when
// someone asks, e.g. at a log step. (The fused CUDA step sums the squares in two launches, in double,
// rounded once to float: within float rounding of the float64 norm, not the bits of the
// per-parameter float sums; the CPU's fused norm is those bits. core/ops_optim.h.)
class GradNorm {
 public:
  GradNorm() = default;  // no gradient: 0
  explicit GradNorm(double norm) : host_value_(norm) {}
  explicit GradNorm(Tensor sum_of_squares) : sum_of_squares_(std::move(sum_of_squares)) {}
  double value() const;
  // value() through a HostReadback shared with other values (one copy back for them all): queue()
  // before the readback's read(), value_in() after, with the index queue() returned.
  int queue(HostReadback& readback) const;
  double value_in(const HostReadback& readback, int region) const;

 private:
  double host_value_ = 0.0;
  Tensor sum_of_squares_;  // defined: the norm is √ of this one-element device tensor
};

class Optimizer {
 public:
  // The module must outlive the optimiser.
  explicit Optimizer(Module& module);
  explicit Optimizer(std::vector<NamedTensor> parameters);
  virtual ~Optimizer() = default;
  // Not copied: a copy would share the module and point into the original's state (EntriesByPosition).
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  virtual void step() = 0;
  void zero_grad();  // drops every parameter's gradient

  double lr() const { return lr_; }
  void set_lr(double lr);  // e.g. from an LRSchedule before each step

  // The end of a training step: exactly
  //     norm = clip_grad_norm(model, max_norm); step(); if (ema) ema->update(); return norm;
  // (max_norm = INFINITY measures without clipping). When this optimiser was built on `model`, the
  // model is flat and the EMA (if any) follows it, it runs as one fused pass with the same results.
  double clip_step_and_update_ema(Module& model, double max_norm, EMA* ema);
  // The same, without waiting for the device: on CUDA the fused kernel decides the clip from the norm
  // on the device, and the norm is returned unread (GradNorm::value() reads it). On CUDA the fused
  // pass is three launches whatever the number of parameter tensors (the norm's two stages, the
  // update), plus one per extra run of parameters that need other scalars or have no gradient.
  // per_step (CUDA, the fused pass only): the pass reads its step-dependent scalars (learning rate,
  // bias corrections, EMA decay) from that device row instead of its launch arguments, so that it can
  // be recorded in a CUDA graph and replayed (flow/trainer.cpp). The host's bookkeeping (Adam's step
  // counts, the EMA's update count) advances as for any step.
  GradNorm clip_step_and_update_ema_async(Module& model, double max_norm, EMA* ema,
                                          const StepScalars* per_step = nullptr);

  // ---- for a recorded step, whose fused pass is replayed without the host
  // The row of scalars the fused pass of clip_step_and_update_ema_async(model, ·, ema) will use `ahead`
  // passes after the next one (0: the next), at learning rate lr: written to `row` (begins_epoch
  // untouched). False, `row` unspecified, when that pass would not run from one row, or would first
  // copy state into the flat buffers (work of one step that a recording would repeat every replay):
  // not the fused CUDA pass; parameters at different Adam step counts; an SGD parameter at its first
  // momentum step; Adam moments, SGD momenta or EMA shadows not yet in their flat buffers.
  bool step_scalars_ahead(const Module& model, const EMA* ema, std::int64_t ahead, double lr, StepScalars& row) const;
  // A replay ran the recorded pass: advances what the host keeps (Adam's step counts, the EMA's
  // update count) as running the pass would have. uncount_recorded_update takes that back for a pass
  // whose recording was abandoned before it ever ran.
  void count_replayed_update(EMA* ema);
  void uncount_recorded_update(EMA* ema);

  // name → tensor (copies, safe to keep); see the header comment for the keys.
  virtual StateDict state_dict() const = 0;
  // Replaces the state. Every key must name a known parameter and field, each parameter's fields
  // must be all present or all absent (absent: no step taken yet), shapes must match the parameter.
  // Errors are fm::ValueError naming the key. Tensors are copied onto each parameter's device/dtype.
  virtual void load_state_dict(const StateDict& state) = 0;

 protected:
  std::vector<NamedTensor> current_parameters() const;
  // Checks key structure/shapes for the given per-parameter fields (scalar fields are [] shaped) and
  // returns, per parameter name, its field → tensor entries.
  std::map<std::string, std::map<std::string, Tensor>> split_state(
      const StateDict& state, const std::vector<std::string>& tensor_fields,
      const std::vector<std::string>& scalar_fields, const char* who) const;

  double lr_;

  // ---- the fused path ----
  // What the fused pass adds to the update rule.
  struct FusedExtras {
    bool clip = false;
    double clip_scale = 1.0;
    // Defined: clip is decided on the device from this squared norm with clip_max_norm (CUDA).
    Tensor clip_sum_of_squares;
    double clip_max_norm = 0.0;
    EMA* ema = nullptr;
    const StepScalars* per_step = nullptr;  // see clip_step_and_update_ema_async
  };
  // Puts the extras' clipping and per-step row into the fused step's hyperparameters and buffers.
  static void set_extras(const FusedExtras& extras, FusedStepHyperparameters& hyper, FusedStepBuffers& buffers);
  // The module's flat layout when the fused path can run (gradients moved into their homes), else null.
  const FlatParameters* fused_layout() const;
  // One pass over `layout`: clip, this optimiser's rule, the EMA.
  virtual void fused_update(const FlatParameters& layout, const FusedExtras& extras) = 0;
  // This rule's part of step_scalars_ahead (lr and, for Adam, the bias corrections and decay factor),
  // and of count_replayed_update.
  virtual bool rule_scalars_ahead(const FlatParameters& layout, std::int64_t ahead, double lr,
                                  StepScalars& row) const = 0;
  virtual void count_replayed_rule_update(const FlatParameters&, int /*by: +1 or −1*/) {}
  static bool has_grad(const FlatParameters& layout, std::size_t k) {
    return layout.parameter(k).impl()->grad.defined();
  }

 private:
  std::function<std::vector<NamedTensor>()> parameter_source_;
  Module* module_ = nullptr;  // set when built on a module
  // Per-step scratch of the fused gradient norm, kept so that a step allocates nothing.
  std::vector<std::int64_t> norm_offsets_, norm_counts_;
  std::vector<double> norm_scratch_;
};

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(Module& module, SGDOptions options = {});
  SGD(std::vector<NamedTensor> parameters, SGDOptions options = {});
  void step() override;
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;
  const SGDOptions& options() const { return options_; }

 private:
  void check_options();
  void fused_update(const FlatParameters& layout, const FusedExtras& extras) override;
  bool rule_scalars_ahead(const FlatParameters& layout, std::int64_t ahead, double lr,
                          StepScalars& row) const override;
  SGDOptions options_;
  std::map<std::string, Tensor> momentum_buffers_;
  EntriesByPosition<Tensor> momentum_at_;  // momentum_buffers_ by the flat layout's positions
  FlatState flat_momentum_;
  std::vector<char> first_momentum_step_;  // per parameter, for the fused pass
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // Adam: L2 added to the gradient; AdamW: decoupled
};

class Adam : public Optimizer {
 public:
  Adam(Module& module, AdamOptions options = {});
  Adam(std::vector<NamedTensor> parameters, AdamOptions options = {});
  void step() override;
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;
  const AdamOptions& options() const { return options_; }

 protected:
  bool decoupled_weight_decay_ = false;  // true for AdamW

 private:
  void check_options();
  struct ParameterState {
    Tensor exp_avg, exp_avg_sq;
    std::int64_t step = 0;
  };
  void fused_update(const FlatParameters& layout, const FusedExtras& extras) override;
  bool rule_scalars_ahead(const FlatParameters& layout, std::int64_t ahead, double lr,
                          StepScalars& row) const override;
  void count_replayed_rule_update(const FlatParameters& layout, int by) override;
  // Adam's bias-corrected scalars at step count t (1 for the first step), in double as the
  // per-parameter code computes them: {1/√(1 − β2^t), −lr/(1 − β1^t)}.
  std::pair<double, double> bias_corrected(std::int64_t t, double lr) const;
  AdamOptions options_;
  std::map<std::string, ParameterState> state_;
  EntriesByPosition<ParameterState> state_at_;  // state_ by the flat layout's positions
  FlatState flat_exp_avg_, flat_exp_avg_sq_;
  std::vector<std::int64_t> step_of_;  // per parameter, for the fused pass
};

// PyTorch's AdamW defaults to weight_decay = 0.01.
class AdamW : public Adam {
 public:
  static AdamOptions default_options() {
    AdamOptions options;
    options.weight_decay = 1e-2;
    return options;
  }
  AdamW(Module& module, AdamOptions options = default_options());
  AdamW(std::vector<NamedTensor> parameters, AdamOptions options = default_options());
};

// Scales all gradients together so their global L2 norm is at most max_norm (coefficient
// max_norm / (norm + 1e-6), as torch.nn.utils.clip_grad_norm_). Gradients are replaced through
// set_grad, never scaled in place: a gradient tensor may share storage with another tensor.
// Returns the norm before clipping. A non-finite norm is returned and the gradients are left alone
// (the caller decides whether to skip the step).
double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm);
double clip_grad_norm(Module& module, double max_norm);

}  // namespace fm::nn
