// core/captured_work.h — GPU work recorded once and replayed, for the layers above core (a sampler's
// whole solve, later a training step). The mechanism is kernels::CudaGraph (kernels/runtime.h, where
// its rules are: no waits or host copies while recording, buffers used by the recording must outlive
// it); this header only names it for code that works with Tensors and not with the device runtime.
//
// Tensor-level reading of the rules: ops whose arguments are Tensors on the GPU and plain numbers
// (a time, a step size, a scale) record fine, the numbers becoming part of the recording; reading a
// result (item(), to_vector(), .to(CPU)) or making a GPU tensor from host values (from_vector, .to(CUDA)
// of a host tensor, an op that uploads host indices) throws, and the caller falls back to eager work.
#pragma once
#include "kernels/runtime.h"

namespace fm {
using CapturedWork = kernels::CudaGraph;
}  // namespace fm
