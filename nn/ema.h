// nn/ema.h — exponential moving average of a model's parameters (Polyak averaging), the weights
// image generators usually sample with.
//
// Layer: nn/ (uses core/ only). After each optimiser step, update() moves every shadow copy towards
// the live parameter:  shadow ← decay·shadow + (1 − decay)·θ.  With warm-up on, the decay used at
// update n (counting from 0) is min(decay, (1 + n)/(10 + n)), so early shadows are not dominated by
// the random initialisation. For sampling, swap the shadows into the model (ScopedEMAWeights does
// it for a scope and swaps back), or copy them in for good with copy_to().
//
// When the model is flattened (Module::flatten_parameters) the shadows live in one flat buffer laid
// out like the parameters and update() is one pass over it; the optimiser's fused step
// (Optimizer::clip_step_and_update_ema) folds that pass into its own. The numbers are the same.
#pragma once
#include <cstdint>
#include <map>

#include "nn/flat_parameters.h"
#include "nn/module.h"

namespace fm::nn {

class EMA {
 public:
  // Shadows start as copies of the model's current parameters. The model must outlive the EMA.
  explicit EMA(Module& model, double decay = 0.999, bool warmup = false);
  // Not copied: a copy would point into the original's shadows (EntriesByPosition).
  EMA(const EMA&) = delete;
  EMA& operator=(const EMA&) = delete;

  void update();
  // Exchanges the model's parameter values with the shadows (in place: every handle to a parameter
  // sees the change). Calling it twice restores both.
  void swap();
  void copy_to(Module& model) const;  // overwrite another model of the same architecture

  double decay() const { return decay_; }
  double current_decay() const { return decay_at(num_updates_); }  // the decay the next update() will use
  double decay_at(std::int64_t update) const;  // the decay of update number `update` (from 0)
  // Whether every shadow is its view of the flat shadow buffer for `layout` (after a fused update;
  // load_state_dict replaces them): a recorded update may then run without flat_shadows().
  bool shadows_in(const FlatParameters& layout) const;
  std::int64_t num_updates() const { return num_updates_; }
  void set_num_updates(std::int64_t count);  // restore it from a checkpoint (it affects warm-up only)

  // Shadows by parameter name (the model's names, so it loads into the model directly); copies.
  StateDict state_dict() const;
  // Same checks as Module::load_state_dict: every name, no extras, equal shapes.
  void load_state_dict(const StateDict& state);
  void to(Device device);  // keep the shadows next to the parameters after moving the model

  // For the fused step (nn/optim.cpp): the model this EMA follows, the shadows as one flat buffer
  // laid out like `layout` (each shadow becomes a view of it; values unchanged), and the count of
  // an update done there.
  Module& model() const { return *model_; }
  const Tensor& flat_shadows(const FlatParameters& layout);
  void count_update() { ++num_updates_; }

 private:
  Module* model_;
  double decay_;
  bool warmup_;
  std::int64_t num_updates_ = 0;
  std::map<std::string, Tensor> shadows_;  // entries only assigned after construction, never erased
  EntriesByPosition<Tensor> shadow_at_;    // shadows_ by the flat layout's positions
  FlatState flat_shadows_;
};

// Swaps the EMA weights into the model for the lifetime of the guard, then swaps them back.
class ScopedEMAWeights {
 public:
  explicit ScopedEMAWeights(EMA& ema) : ema_(ema) { ema_.swap(); }
  ~ScopedEMAWeights() { ema_.swap(); }
  ScopedEMAWeights(const ScopedEMAWeights&) = delete;
  ScopedEMAWeights& operator=(const ScopedEMAWeights&) = delete;

 private:
  EMA& ema_;
};

}  // namespace fm::nn
