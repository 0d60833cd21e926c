// kernels/cpu/elementwise_loops.h — the CPU loops of the elementwise maps, as source that is
// compiled twice: once with the build's portable flags (kernels/cpu/elementwise.cpp) and once for
// AVX-512 (kernels/cpu/elementwise_avx512.cpp); kernels/cpu/cpu_isa.h picks a copy per call.
//
// Everything here sits in an unnamed namespace, so each of the two files gets its own private copy
// of every function: the linker can never merge an AVX-512 copy into the portable one (which would
// make the portable path run AVX-512 instructions on a CPU without them).
//
// Fast path: when every operand is contiguous over the output (no broadcast, no transposition) the
// loop is a plain indexed loop the compiler vectorises; otherwise each element's offsets are
// computed from its coordinates. Each op gets its own loops (the op is a template argument), and
// float sigmoid / SiLU / GELU use the vectorisable formulas of kernels/cpu/fast_exp.h.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/bfloat16.h"
#include "kernels/cpu/fast_exp.h"
#include "kernels/cpu/parallel_for.h"
#include "kernels/elementwise.h"
#include "kernels/elementwise_math.h"

namespace fm::kernels {
namespace {

// Below this much work a parallel region costs more than it saves (waking the other threads and
// the barrier, a few microseconds). Work is counted in elements of a cheap op (an add: well under
// a nanosecond each); an op with an exponential, erf, tanh or a division per element costs ten to
// twenty times more, so it is split across threads from a smaller size. A 512-point moons batch
// through a 64-wide layer (32,768 GELUs, ~20 µs on one core) is then shared by both cores.
constexpr std::int64_t kParallelWork = 1 << 17;
constexpr std::int64_t kCostlyOpFactor = 8;

constexpr bool is_costly(UnaryOp op) {
  switch (op) {
    case UnaryOp::Pow: case UnaryOp::Exp: case UnaryOp::Log: case UnaryOp::Tanh: case UnaryOp::Sin:
    case UnaryOp::Cos: case UnaryOp::Sigmoid: case UnaryOp::Silu: case UnaryOp::Gelu: return true;
    default: return false;
  }
}
constexpr bool is_costly(BinaryOp op) {
  switch (op) {
    case BinaryOp::Div: case BinaryOp::SiluBackward: case BinaryOp::GeluBackward: return true;
    default: return false;
  }
}
template <auto kOp>
bool worth_threads(std::int64_t n) {
  return n * (is_costly(kOp) ? kCostlyOpFactor : 1) > kParallelWork;
}

// The general (strided / broadcast) path. First, adjacent dimensions that every operand walks as
// one (outer stride = inner stride × inner size: a contiguous [N, C, H, W] block added to a [N, C,
// 1, 1] broadcast is one 2-d walk of N·C rows of H·W) are merged, so the innermost loop is as long
// as it can be. Then the innermost dimension runs as a plain loop (a unit-stride one when every
// operand is contiguous along it, which the compiler vectorises) and the outer dimensions advance
// like an odometer, one add per operand per row. Only the first row of each thread's chunk pays the
// divisions of strided_offset(): once per row they cost more than the row itself when rows are short
// (the attention's head permute copies rows of 8 floats).
inline ElementwiseGeometry merged_dims(const ElementwiseGeometry& g) {
  ElementwiseGeometry m = g;
  m.ndim = 1;
  for (int d = 1; d < g.ndim; ++d) {
    const int last = m.ndim - 1;
    const std::int64_t n = g.sizes[d];
    const bool joins = m.out_strides[last] == g.out_strides[d] * n && m.a_strides[last] == g.a_strides[d] * n &&
                       m.b_strides[last] == g.b_strides[d] * n;
    if (joins) {
      m.sizes[last] *= n;
      m.out_strides[last] = g.out_strides[d];
      m.a_strides[last] = g.a_strides[d];
      m.b_strides[last] = g.b_strides[d];
    } else {
      m.sizes[m.ndim] = n;
      m.out_strides[m.ndim] = g.out_strides[d];
      m.a_strides[m.ndim] = g.a_strides[d];
      m.b_strides[m.ndim] = g.b_strides[d];
      ++m.ndim;
    }
  }
  return m;
}

// Calls row(out_offset, a_offset, b_offset) for every row (every index of the outer dimensions) of
// m, a merged_dims() geometry, in row-major order within each thread's chunk of rows.
template <typename Row>
void for_each_row(const ElementwiseGeometry& m, bool use_threads, Row row) {
  const int outer = m.ndim - 1;
  const std::int64_t rows = m.sizes[outer] > 0 ? m.numel() / m.sizes[outer] : 0;
  if (rows == 0) return;
  // A few chunks per thread (static schedule): the odometer restarts once per chunk.
  const std::int64_t chunks = use_threads ? std::min<std::int64_t>(rows, 64) : 1;
  parallel_for(chunks, use_threads && chunks > 1, [&](std::int64_t chunk) {
    const std::int64_t first = rows * chunk / chunks, end = rows * (chunk + 1) / chunks;
    std::int64_t index[kMaxDims] = {};
    std::int64_t o = 0, a = 0, b = 0, rest = first;
    for (int d = outer - 1; d >= 0; --d) {
      index[d] = rest % m.sizes[d];
      rest /= m.sizes[d];
      o += index[d] * m.out_strides[d];
      a += index[d] * m.a_strides[d];
      b += index[d] * m.b_strides[d];
    }
    for (std::int64_t r = first; r < end; ++r) {
      row(o, a, b);
      for (int d = outer - 1; d >= 0; --d) {  // next row: carry through the odometer
        o += m.out_strides[d];
        a += m.a_strides[d];
        b += m.b_strides[d];
        if (++index[d] < m.sizes[d]) break;
        o -= m.out_strides[d] * m.sizes[d];
        a -= m.a_strides[d] * m.sizes[d];
        b -= m.b_strides[d] * m.sizes[d];
        index[d] = 0;
      }
    }
  });
}

// ---- the formula of each op on the CPU ---------------------------------------------------------
// kernels/elementwise_math.h's, except that float sigmoids and normal CDFs/densities (Sigmoid,
// SiLU, GELU and their backwards) use the vectorisable kernels/cpu/fast_exp.h versions: glibc's expf
// and erff are scalar calls, so a loop around them runs one element at a time (exact GELU was ~40%
// of a moons training step). double keeps the libm formulas: it exists for gradchecks.
template <UnaryOp kOp, typename T>
inline T cpu_unary(T x, T a, T b) {
  if constexpr (std::is_same_v<T, float>) {
    if constexpr (kOp == UnaryOp::Sigmoid) return sigmoid(x);
    if constexpr (kOp == UnaryOp::Silu) return x * sigmoid(x);
    if constexpr (kOp == UnaryOp::Gelu) return x * fast_normal_cdf(x);
  }
  return apply_unary(kOp, x, a, b);
}
template <BinaryOp kOp, typename T>
inline T cpu_binary(T a, T b) {
  if constexpr (std::is_same_v<T, float>) {
    if constexpr (kOp == BinaryOp::SiluBackward) {
      const float s = sigmoid(a);
      return b * s * (1.0f + a * (1.0f - s));
    }
    if constexpr (kOp == BinaryOp::GeluBackward) return b * (fast_normal_cdf(a) + a * fast_normal_pdf(a));
  }
  return apply_binary(kOp, a, b);
}

// One element of T through the formula in C. Identity copies the element as it is: a copy keeps every
// bit (a bfloat16 signalling NaN would come back quiet from a trip through float).
template <UnaryOp kOp, typename T, typename C>
inline T unary_element(T x, C a, C b) {
  if constexpr (kOp == UnaryOp::Identity)
    return x;
  else
    return T(cpu_unary<kOp>(C(x), a, b));
}

// ---- the loops, one instantiation per op ------------------------------------------------------
// The op is a template argument, so its switch is resolved at compile time and each loop body is
// straight-line arithmetic the compiler vectorises (a switch inside the loop would stop that).
// Elements of type T are computed in C = compute_t<T>: for float and double the conversions are
// no-ops; a bf16 is widened on load and rounded once on store.
template <UnaryOp kOp, typename T, typename C = compute_t<T>>
void unary_loops(const T* x, T* y, const ElementwiseGeometry& g, C a, C b) {
  const std::int64_t n = g.numel();
  if (is_dense(g, g.a_strides) && is_dense(g, g.out_strides)) {
    parallel_for(n, worth_threads<kOp>(n), [&](std::int64_t i) { y[i] = unary_element<kOp>(x[i], a, b); });
    return;
  }
  const ElementwiseGeometry m = merged_dims(g);
  const std::int64_t inner = m.sizes[m.ndim - 1];
  const std::int64_t xs = m.a_strides[m.ndim - 1], ys = m.out_strides[m.ndim - 1];
  for_each_row(m, worth_threads<kOp>(n), [&](std::int64_t o, std::int64_t ia, std::int64_t) {
    const T* xr = x + ia;
    T* yr = y + o;
    if (xs == 1 && ys == 1)
      for (std::int64_t i = 0; i < inner; ++i) yr[i] = unary_element<kOp>(xr[i], a, b);
    else
      for (std::int64_t i = 0; i < inner; ++i) yr[i * ys] = unary_element<kOp>(xr[i * xs], a, b);
  });
}

template <BinaryOp kOp, typename T, typename C = compute_t<T>>
void binary_loops(const T* a, const T* b, T* y, const ElementwiseGeometry& g) {
  const std::int64_t n = g.numel();
  if (is_dense(g, g.a_strides) && is_dense(g, g.b_strides) && is_dense(g, g.out_strides)) {
    parallel_for(n, worth_threads<kOp>(n), [&](std::int64_t i) { y[i] = T(cpu_binary<kOp>(C(a[i]), C(b[i]))); });
    return;
  }
  const ElementwiseGeometry m = merged_dims(g);
  const std::int64_t inner = m.sizes[m.ndim - 1];
  const std::int64_t as = m.a_strides[m.ndim - 1], bs = m.b_strides[m.ndim - 1], ys = m.out_strides[m.ndim - 1];
  for_each_row(m, worth_threads<kOp>(n), [&](std::int64_t o, std::int64_t ia, std::int64_t ib) {
    const T* ar = a + ia;
    const T* br = b + ib;
    T* yr = y + o;
    if (as == 1 && ys == 1 && bs == 0) {  // a row plus one broadcast value (a bias, a time embedding)
      const C bv = C(br[0]);
      for (std::int64_t i = 0; i < inner; ++i) yr[i] = T(cpu_binary<kOp>(C(ar[i]), bv));
    } else if (as == 1 && bs == 1 && ys == 1) {
      for (std::int64_t i = 0; i < inner; ++i) yr[i] = T(cpu_binary<kOp>(C(ar[i]), C(br[i])));
    } else {
      for (std::int64_t i = 0; i < inner; ++i) yr[i * ys] = T(cpu_binary<kOp>(C(ar[i * as]), C(br[i * bs])));
    }
  });
}

template <typename T, typename C = compute_t<T>>
void run_unary(UnaryOp op, const T* x, T* y, const ElementwiseGeometry& g, C a, C b) {
  switch (op) {
    case UnaryOp::Identity: return unary_loops<UnaryOp::Identity>(x, y, g, a, b);
    case UnaryOp::Neg: return unary_loops<UnaryOp::Neg>(x, y, g, a, b);
    case UnaryOp::Affine: return unary_loops<UnaryOp::Affine>(x, y, g, a, b);
    case UnaryOp::Pow: return unary_loops<UnaryOp::Pow>(x, y, g, a, b);
    case UnaryOp::Square: return unary_loops<UnaryOp::Square>(x, y, g, a, b);
    case UnaryOp::Exp: return unary_loops<UnaryOp::Exp>(x, y, g, a, b);
    case UnaryOp::Log: return unary_loops<UnaryOp::Log>(x, y, g, a, b);
    case UnaryOp::Sqrt: return unary_loops<UnaryOp::Sqrt>(x, y, g, a, b);
    case UnaryOp::Tanh: return unary_loops<UnaryOp::Tanh>(x, y, g, a, b);
    case UnaryOp::Sin: return unary_loops<UnaryOp::Sin>(x, y, g, a, b);
    case UnaryOp::Cos: return unary_loops<UnaryOp::Cos>(x, y, g, a, b);
    case UnaryOp::Sigmoid: return unary_loops<UnaryOp::Sigmoid>(x, y, g, a, b);
    case UnaryOp::Relu: return unary_loops<UnaryOp::Relu>(x, y, g, a, b);
    case UnaryOp::Silu: return unary_loops<UnaryOp::Silu>(x, y, g, a, b);
    case UnaryOp::Gelu: return unary_loops<UnaryOp::Gelu>(x, y, g, a, b);
  }
}

template <typename T>
void run_binary(BinaryOp op, const T* a, const T* b, T* y, const ElementwiseGeometry& g) {
  switch (op) {
    case BinaryOp::Add: return binary_loops<BinaryOp::Add>(a, b, y, g);
    case BinaryOp::Sub: return binary_loops<BinaryOp::Sub>(a, b, y, g);
    case BinaryOp::Mul: return binary_loops<BinaryOp::Mul>(a, b, y, g);
    case BinaryOp::Div: return binary_loops<BinaryOp::Div>(a, b, y, g);
    case BinaryOp::ReluBackward: return binary_loops<BinaryOp::ReluBackward>(a, b, y, g);
    case BinaryOp::SiluBackward: return binary_loops<BinaryOp::SiluBackward>(a, b, y, g);
    case BinaryOp::GeluBackward: return binary_loops<BinaryOp::GeluBackward>(a, b, y, g);
    case BinaryOp::SigmoidBackward: return binary_loops<BinaryOp::SigmoidBackward>(a, b, y, g);
    case BinaryOp::TanhBackward: return binary_loops<BinaryOp::TanhBackward>(a, b, y, g);
  }
}

}  // namespace
}  // namespace fm::kernels
