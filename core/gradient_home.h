// core/gradient_home.h — a fixed buffer that a leaf's gradient accumulates in.
//
// By default backward() hands a leaf the first gradient tensor that reaches it and replaces it with
// a fresh sum when another arrives. A model whose parameters live in one flat buffer
// (nn/flat_parameters.h) wants their gradients in one flat buffer too, so that the optimiser can
// run over all of them in one pass. It registers, for each parameter, a view into that buffer as
// the parameter's gradient home; backward() then copies the first gradient into the home (after
// zero_grad() dropped the old one) and adds later ones into it in place. The values are those of
// the default path bit for bit: a copy, then the same a + b per element.
//
// The registry is keyed by the leaf's gradient slot (TensorImpl::grad); whoever registers a home
// keeps the leaf alive until it clears it again.
#pragma once
#include "core/tensor.h"

namespace fm {

// `home`: contiguous, same shape, dtype and device as `leaf`; replaces any earlier home.
void set_gradient_home(const Tensor& leaf, const Tensor& home);
void clear_gradient_home(const Tensor& leaf);
// The home registered for `leaf`, or an undefined tensor.
Tensor gradient_home(const Tensor& leaf);

// For core/autograd.cpp: accumulates g into `slot` (a leaf's TensorImpl::grad) through its home when
// the slot has one and holds either nothing or the home itself; returns false otherwise (the caller
// then accumulates the default way).
bool accumulate_in_gradient_home(Tensor& slot, const Tensor& g);

}  // namespace fm
