// flow/captured_solve.h — a fixed-step ODE solve on the GPU, recorded once and replayed per chunk.
//
// Sampling 10,000 images in chunks runs the same solve (same solver, steps, shapes, model) on new
// noise each chunk: hundreds of small kernels per velocity evaluation, each launched by the host. A
// CapturedSolve runs the first chunk eagerly (which also fills the allocator's cache), records the
// solve as a graph at the second (core/captured_work.h) and replays it from then on: the host then
// issues one copy (the chunk's noise into the recorded input buffer) and one graph launch per chunk.
// (Precisely: the first chunk of a shape runs eagerly and the next one of that shape is recorded, so
// a sharded run whose first piece is short still records its full chunks.)
// Results are bitwise those of the eager solve: the same kernels on the same numbers.
//
// Falls back to the eager solve, with the same results, when the graph cannot help or cannot be made:
// an adaptive solver (dopri5 reads its error back every step), CPU tensors, a chunk of another shape
// or dtype (the last, shorter chunk), or a model whose forward pass needs the host (values uploaded
// or read back per call): the failed recording is dropped and every later chunk runs eagerly. The
// model's weights must stay the same buffers while the object lives (make one per sampling run,
// inside any EMA-weights scope). What else the field reads must stay in its buffers too: a guided
// field's labels are overwritten in place per chunk (flow/guidance.h's GuidanceLabels), never
// replaced.
#pragma once
#include <cstdint>

#include "core/captured_work.h"
#include "flow/solver.h"

namespace fm::flow {

class CapturedSolve {
 public:
  CapturedSolve(const OdeSolver& solver, VelocityField field);
  // The solve of x_start (as solver.solve(field, x_start)); the state returned is the caller's.
  SolveResult solve(const Tensor& x_start);
  std::int64_t replays() const { return replays_; }  // chunks served by the graph
  bool recorded() const { return graph_.captured(); }
  bool eager_only() const { return eager_only_; }  // a recording failed: no more attempts

 private:
  const OdeSolver& solver_;
  const bool fixed_steps_;  // only a fixed-step solve is the same work every chunk
  VelocityField field_;
  CapturedWork graph_;
  Tensor input_, output_;  // the recorded solve reads input_ and leaves its result in output_
  SolveResult recorded_counts_;  // nfe and steps of the recorded solve
  std::int64_t replays_ = 0;
  bool eager_only_ = false;
};

}  // namespace fm::flow
