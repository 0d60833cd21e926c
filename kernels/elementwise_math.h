// kernels/elementwise_math.h — the scalar formulas behind UnaryOp and BinaryOp, written once and
// compiled for both the CPU loops and the CUDA kernels so the two backends cannot drift apart.
#pragma once
#include <cmath>

#include "kernels/elementwise.h"

#ifdef __CUDACC__
#define FM_HOST_DEVICE __host__ __device__ __forceinline__
#else
// Always inlined on the host: these functions are compiled both with the portable flags and for
// AVX-512 (kernels/cpu/elementwise_loops.h), and an out-of-line copy could be shared between the two.
#define FM_HOST_DEVICE [[gnu::always_inline]] inline
#endif

namespace fm::kernels {

template <typename T>
FM_HOST_DEVICE T sigmoid_scalar(T x) {
  return T(1) / (T(1) + exp(-x));
}

// Standard normal CDF Φ(x) = ½(1 + erf(x/√2)) and density φ(x) = e^{−x²/2}/√(2π).
template <typename T>
FM_HOST_DEVICE T normal_cdf(T x) {
  return T(0.5) * (T(1) + erf(x * T(0.70710678118654752440)));
}
template <typename T>
FM_HOST_DEVICE T normal_pdf(T x) {
  return T(0.39894228040143267794) * exp(T(-0.5) * x * x);
}

template <typename T>
FM_HOST_DEVICE T apply_unary(UnaryOp op, T x, T alpha, T beta) {
  switch (op) {
    case UnaryOp::Identity: return x;
    case UnaryOp::Neg: return -x;
    case UnaryOp::Affine: return alpha * x + beta;
    case UnaryOp::Pow: return pow(x, alpha);
    case UnaryOp::Square: return x * x;
    case UnaryOp::Exp: return exp(x);
    case UnaryOp::Log: return log(x);
    case UnaryOp::Sqrt: return sqrt(x);
    case UnaryOp::Tanh: return tanh(x);
    case UnaryOp::Sin: return sin(x);
    case UnaryOp::Cos: return cos(x);
    case UnaryOp::Sigmoid: return sigmoid_scalar(x);
    case UnaryOp::Relu: return x > T(0) ? x : T(0);
    case UnaryOp::Silu: return x * sigmoid_scalar(x);
    case UnaryOp::Gelu: return x * normal_cdf(x);
  }
  return x;
}

template <typename T>
FM_HOST_DEVICE T apply_binary(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::ReluBackward: return a > T(0) ? b : T(0);
    case BinaryOp::SiluBackward: {
      T s = sigmoid_scalar(a);
      return b * s * (T(1) + a * (T(1) - s));
    }
    case BinaryOp::GeluBackward: return b * (normal_cdf(a) + a * normal_pdf(a));
    case BinaryOp::SigmoidBackward: return b * a * (T(1) - a);
    case BinaryOp::TanhBackward: return b * (T(1) - a * a);
  }
  return a;
}

// Offset of linear (row-major) element `index` in an operand with the given strides.
FM_HOST_DEVICE std::int64_t strided_offset(std::int64_t index, int ndim, const std::int64_t* sizes,
                                           const std::int64_t* strides) {
  std::int64_t offset = 0;
  for (int d = ndim - 1; d >= 0; --d) {
    std::int64_t coordinate = index % sizes[d];
    index /= sizes[d];
    offset += coordinate * strides[d];
  }
  return offset;
}

}  // namespace fm::kernels
