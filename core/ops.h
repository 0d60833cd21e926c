// core/ops.h — the differentiable operations on Tensors.
//
// Each op: checks shapes, dtypes and devices (throwing an error that names the op and what it got),
// allocates its output, dispatches to a CPU or CUDA kernel in kernels/, and records its backward
// (core/autograd.h) beside the forward. Elementwise ops broadcast NumPy-style.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace fm {

// ---- elementwise, broadcasting (core/ops_elementwise.cpp) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& x);
Tensor affine(const Tensor& x, double scale, double shift);  // scale·x + shift
Tensor pow_scalar(const Tensor& x, double exponent);
Tensor square(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor silu(const Tensor& x);  // x·sigmoid(x)
Tensor gelu(const Tensor& x);  // exact: x·Φ(x), Φ the standard normal CDF (erf form)

// ---- reductions (core/ops_reduce.cpp) ----
Tensor sum(const Tensor& x);  // all elements -> shape []
Tensor sum(const Tensor& x, std::vector<int> dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, std::vector<int> dims, bool keepdim = false);

// ---- matrix products (core/ops_matmul.cpp) ----
// a [..., M, K] · b [..., K, N]; batch dims must match, or b may be 2-D and shared across the batch.
Tensor matmul(const Tensor& a, const Tensor& b);
// x·Wᵀ + b for x [..., in], weight [out, in], bias [out] (or undefined: no bias), the Linear layer.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

// ---- joining and copying (core/ops_shape.cpp) ----
Tensor concat(const std::vector<Tensor>& tensors, int dim);

// ---- losses (core/ops_loss.cpp) ----
Tensor mse_loss(const Tensor& prediction, const Tensor& target);  // mean((p - t)²)

}  // namespace fm
