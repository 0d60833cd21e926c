// flow/captured_solve.cpp — record a fixed-step solve once, replay it per chunk (captured_solve.h).
#include "flow/captured_solve.h"

#include <utility>

#include "core/error.h"

namespace fm::flow {

CapturedSolve::CapturedSolve(const OdeSolver& solver, VelocityField field)
    : solver_(solver), fixed_steps_(dynamic_cast<const FixedStepSolver*>(&solver) != nullptr), field_(std::move(field)) {}

SolveResult CapturedSolve::solve(const Tensor& x_start) {
  const bool on_gpu = x_start.defined() && x_start.device() == Device::CUDA;
  if (!on_gpu || !fixed_steps_ || eager_only_) return solver_.solve(field_, x_start);
  const bool same_input = input_.defined() && x_start.shape() == input_.shape() && x_start.dtype() == input_.dtype();
  if (!graph_.captured()) {
    if (!same_input) {
      // The first chunk of a shape runs eagerly: it fills the allocator's cache, so the recording
      // finds its blocks there, and names the shape worth recording (a sharded run's first piece
      // may be shorter than the chunks after it: the next shape takes over).
      input_ = Tensor::empty(x_start.shape(), x_start.dtype(), Device::CUDA);
      return solver_.solve(field_, x_start);
    }
    input_.copy_(x_start);
    try {
      graph_.begin_capture();
      SolveResult recorded = solver_.solve(field_, input_);
      graph_.end_capture();
      output_ = recorded.x;
      recorded_counts_ = recorded;
      recorded_counts_.x = Tensor();
    } catch (const DeviceError&) {
      // The model needed the host while recording (or the device failed, which the eager solve
      // below reports again): drop the recording and solve every chunk eagerly from now on.
      graph_.abandon();
      eager_only_ = true;
      input_ = output_ = Tensor();
      return solver_.solve(field_, x_start);
    } catch (...) {
      graph_.abandon();  // the stream leaves capture mode; the error is the caller's
      throw;
    }
  } else {
    if (!same_input) return solver_.solve(field_, x_start);
    input_.copy_(x_start);
  }
  graph_.replay();
  ++replays_;
  SolveResult result = recorded_counts_;
  result.x = output_.clone();  // the next replay overwrites output_
  return result;
}

}  // namespace fm::flow
