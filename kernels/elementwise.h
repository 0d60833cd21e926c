// kernels/elementwise.h — elementwise maps over strided, broadcast operands.
//
// An operand is described by its strides (in elements) over the output's sizes; a broadcast
// dimension has stride 0. The same functions serve contiguous tensors, transposed views and
// broadcasting, and strided copies (UnaryOp::Identity into a strided output).
#pragma once
#include <cstdint>

#include "kernels/bfloat16.h"
#include "kernels/runtime.h"

namespace fm::kernels {

constexpr int kMaxDims = 8;

struct ElementwiseGeometry {
  int ndim = 0;
  std::int64_t sizes[kMaxDims] = {};
  std::int64_t out_strides[kMaxDims] = {};
  std::int64_t a_strides[kMaxDims] = {};
  std::int64_t b_strides[kMaxDims] = {};
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= sizes[d];
    return n;
  }
};

// The geometry of n contiguous elements, every operand read and written at offset i: what a kernel
// that owns its buffers (the fused MLP's activations, a test's vectors) hands unary_cpu and binary_cpu.
// Always inlined, as is_dense below: the AVX-512 copies include this header (kernels/cpu/fast_exp.h
// says why that matters).
[[gnu::always_inline]] inline ElementwiseGeometry dense_geometry(std::int64_t numel) {
  ElementwiseGeometry g;
  g.ndim = 1;
  g.sizes[0] = numel;
  g.out_strides[0] = g.a_strides[0] = g.b_strides[0] = 1;
  return g;
}

// True when an operand with these strides (one of the geometry's *_strides arrays) is laid out
// contiguously in the output's order, so element i sits at offset i: the CPU loops and the CUDA
// kernels then skip the per-element index arithmetic. Size-1 dimensions may have any stride.
[[gnu::always_inline]] inline bool is_dense(const ElementwiseGeometry& g, const std::int64_t* strides) {
  std::int64_t expected = 1;
  for (int d = g.ndim - 1; d >= 0; --d) {
    if (g.sizes[d] != 1 && strides[d] != expected) return false;
    expected *= g.sizes[d];
  }
  return true;
}

// y = f(x). Affine: alpha·x + beta. Pow: x^alpha.
enum class UnaryOp {
  Identity, Neg, Affine, Pow, Square, Exp, Log, Sqrt, Tanh, Sin, Cos, Sigmoid, Relu, Silu, Gelu
};
// y = f(a, b). The *Backward ops take a = the forward input x (or output y where named) and
// b = the incoming gradient, and return the input gradient: they save a pass over memory.
enum class BinaryOp {
  Add, Sub, Mul, Div,
  ReluBackward,     // a = x: b·[x > 0]
  SiluBackward,     // a = x: b·σ(x)(1 + x(1 − σ(x)))
  GeluBackward,     // a = x: b·(Φ(x) + x·φ(x))
  SigmoidBackward,  // a = y: b·y(1 − y)
  TanhBackward      // a = y: b·(1 − y²)
};

// T is float, double or bf16. A bf16 element is computed in float (compute_t<bf16>) and rounded
// once when stored; alpha and beta are given to the formula in the compute type.
template <typename T>
void unary_cpu(UnaryOp op, const T* x, T* y, const ElementwiseGeometry& geometry, double alpha,
               double beta);
template <typename T>
void binary_cpu(BinaryOp op, const T* a, const T* b, T* y, const ElementwiseGeometry& geometry);
// Strided element conversion between float, double and bf16 (x read with a_strides, y written with
// out_strides); a narrowing conversion rounds to nearest, ties to even.
template <typename From, typename To>
void convert_cpu(const From* x, To* y, const ElementwiseGeometry& geometry);
template <typename T>
void fill_cpu(T* y, const ElementwiseGeometry& geometry, double value);

// CUDA: T is float or bf16, with the same formulas and the same rounding as the CPU.
template <typename T>
void unary_cuda(UnaryOp op, const T* x, T* y, const ElementwiseGeometry& geometry, double alpha,
                double beta);
template <typename T>
void binary_cuda(BinaryOp op, const T* a, const T* b, T* y, const ElementwiseGeometry& geometry);
// float -> bf16 and bf16 -> float (equal types are a copy, see core/tensor_internal.cpp).
template <typename From, typename To>
void convert_cuda(const From* x, To* y, const ElementwiseGeometry& geometry);
template <typename T>
void fill_cuda(T* y, const ElementwiseGeometry& geometry, double value);

}  // namespace fm::kernels
