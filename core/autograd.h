// core/autograd.h — the reverse-mode autograd graph.
//
// Every differentiable op that sees an input requiring grad (while grad mode is on) attaches a Node
// to its output: the inputs, and a closure that maps the output's gradient to the inputs'
// gradients. The closure is written in the op's own file, next to the forward it differentiates.
// Tensor::backward() orders the nodes topologically and runs the closures from the output back,
// summing gradients that reach a tensor along several paths; leaves collect theirs in .grad().
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace fm {

struct Node {
  const char* op_name;
  std::vector<Tensor> inputs;
  // Given d(loss)/d(output), returns d(loss)/d(input_i) for every input (undefined Tensor where an
  // input needs no gradient). Runs with grad mode off.
  std::function<std::vector<Tensor>(const Tensor& grad_output)> backward;
  // Scratch of Tensor::backward(), so that it needs no hash set or map: the pass that last visited
  // this node, and the node's position in that pass's topological order (one pass at a time per graph).
  std::uint64_t visited_in_pass = 0;
  std::size_t order_index = 0;
};

// Grad mode: on by default; off inside a NoGradGuard (evaluation, optimiser steps, backward itself).
bool grad_mode_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Watching a backward pass: after each node's closure has run and its gradients were summed, the
// observer is called with the leaves (tensors that require grad and have no grad_fn: parameters)
// that no node still to run in this pass can add to — their gradients are final. Data-parallel
// training starts reducing a bucket of gradients the moment all its parameters are final, while
// the pass goes on (nn/gradient_sync.h); it is also called with an empty list after nodes that
// finish no leaf, so it can let communication progress. Set for a scope (one backward()) with
// BackwardObserverGuard; with none set, backward() spends nothing on it.
using BackwardObserver = std::function<void(const std::vector<TensorImpl*>& finished_leaves)>;
class BackwardObserverGuard {
 public:
  explicit BackwardObserverGuard(BackwardObserver observer);
  ~BackwardObserverGuard();
  BackwardObserverGuard(const BackwardObserverGuard&) = delete;
  BackwardObserverGuard& operator=(const BackwardObserverGuard&) = delete;

 private:
  BackwardObserver previous_;
};

// The inverse of NoGradGuard: grad mode on for its scope, the previous mode back after. For code that
// must build a graph of its own inside a region that runs under NoGradGuard — the likelihood's
// divergence (flow/likelihood.cpp) needs vector-Jacobian products of the velocity at every stage of an
// ODE solver (flow/solver.h), and the solvers combine their stages under NoGradGuard. Whoever turns grad
// mode on this way must drop the graph it builds before the scope ends (nothing may link it to the
// tensors around it), or memory grows with every call.
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool previous_;
};

// Anomaly mode: off by default; on inside an AnomalyModeGuard (fmtrain's train.detect_anomaly).
// While on, every recorded op's forward output and every gradient a backward closure returns is
// checked for NaN/Inf, and the first one found throws fm::NumericError naming the op, the shapes and
// which input (if any) was already non-finite. It costs a copy to the host per op: a debugging aid.
bool anomaly_mode_enabled();
class AnomalyModeGuard {
 public:
  explicit AnomalyModeGuard(bool enabled = true);
  ~AnomalyModeGuard();
  AnomalyModeGuard(const AnomalyModeGuard&) = delete;
  AnomalyModeGuard& operator=(const AnomalyModeGuard&) = delete;
 private:
  bool previous_;
};

// True when grad mode is on and any of the inputs requires grad.
bool any_requires_grad(std::initializer_list<Tensor> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);

// The same for a few named inputs, without copying them: an op asks before it builds its backward
// closure (saved shapes and tensors, the inputs list), so that on inputs that need no gradient it
// spends nothing on autograd. record_op() would drop the node anyway, but only after all was built.
//   Tensor y = ...forward...;
//   if (!needs_grad(a, b)) return y;
//   return record_op(y, "add", {a, b}, [...](const Tensor& g) { ... });
template <typename... Rest>
bool needs_grad(const Tensor& first, const Rest&... rest) {
  return grad_mode_enabled() && (first.requires_grad() || ... || rest.requires_grad());
}

// Records `output` as produced by op_name from `inputs` (no-op when no input requires grad).
// Returns output for chaining.
Tensor record_op(Tensor output, const char* op_name, std::vector<Tensor> inputs,
                 std::function<std::vector<Tensor>(const Tensor&)> backward);

// Reduces a broadcast gradient back to `shape` by summing over broadcast dimensions.
Tensor sum_to_shape(const Tensor& grad, const Shape& shape);

}  // namespace fm
