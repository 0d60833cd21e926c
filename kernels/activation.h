// kernels/activation.h — SiLU (x·sigmoid(x)) and the fused bias + SiLU, forward and backward.
//
// Layer: kernels/ (plain functions over pointers, no Tensor). The CPU versions are readable loops in
// kernels/cpu/activation.cpp, templated on float and double (double is what the gradchecks use);
// the CUDA versions (float) live in kernels/cuda/activation.cu and launch on cuda_stream().
//
// Formulas (Elfwing et al. 2018, "Sigmoid-Weighted Linear Units"; Hendrycks & Gimpel's SiLU):
//   sigmoid(x) = 1 / (1 + exp(-x))
//   silu(x)    = x · sigmoid(x)
//   silu'(x)   = sigmoid(x) · (1 + x · (1 - sigmoid(x)))
// The backward takes the forward's *input* x (not its output): silu is not invertible, so the input
// is what autograd must save.
//
// bias_silu works on a tensor viewed as [outer, C, inner] with one bias per channel c:
//   NCHW feature maps:  outer = N,    inner = H·W
//   [rows, C] matrices: outer = rows, inner = 1
// y = silu(x + bias[c]); the backward returns dx = dy · silu'(x + bias[c]) and
// dbias[c] = Σ over outer and inner of dx (outputs are overwritten, not accumulated).
#pragma once
#include <cstdint>

#include "core/error.h"

namespace fm::kernels {

// The bias + SiLU size check shared by the CPU and CUDA versions (op names the caller).
inline void check_bias_silu_sizes(const char* op, std::int64_t outer, int C, std::int64_t inner) {
  FM_CHECK(outer >= 0 && C > 0 && inner > 0, ValueError, op, ": sizes must be outer >= 0, C > 0, ",
           "inner > 0; got outer=", outer, " C=", C, " inner=", inner);
}

// ---- CPU references (T = float or double) -------------------------------------------------------
template <typename T>
void silu_forward_cpu(const T* x, T* y, std::int64_t n);
template <typename T>
void silu_backward_cpu(const T* x, const T* dy, T* dx, std::int64_t n);

template <typename T>
void bias_silu_forward_cpu(const T* x, const T* bias, T* y, std::int64_t outer, int C,
                           std::int64_t inner);
template <typename T>
void bias_silu_backward_cpu(const T* x, const T* bias, const T* dy, T* dx, T* dbias,
                            std::int64_t outer, int C, std::int64_t inner);

// ---- CUDA (float, device pointers, on cuda_stream()) --------------------------------------------
// v1 "naive": one thread per element, a direct port of the CPU loop.
void silu_forward_cuda_naive(const float* x, float* y, std::int64_t n);
void silu_backward_cuda_naive(const float* x, const float* dy, float* dx, std::int64_t n);
// v2: float4 loads/stores (when every pointer is 16-byte aligned) in a grid-stride loop sized to
// the device; falls back to scalar grid-stride otherwise. Memory-bound: minimum traffic is
// 8 bytes/element forward (read x, write y) and 12 bytes/element backward (read x, dy; write dx).
void silu_forward_cuda(const float* x, float* y, std::int64_t n);
void silu_backward_cuda(const float* x, const float* dy, float* dx, std::int64_t n);

// Fused bias + SiLU over [outer, C, inner]. The backward writes dx and dbias; dbias is reduced
// without atomics (per-block partial sums, then a fixed-order sum), so it is bitwise reproducible.
void bias_silu_forward_cuda(const float* x, const float* bias, float* y, std::int64_t outer, int C,
                            std::int64_t inner);
void bias_silu_backward_cuda(const float* x, const float* bias, const float* dy, float* dx,
                             float* dbias, std::int64_t outer, int C, std::int64_t inner);

}  // namespace fm::kernels
