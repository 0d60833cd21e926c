// kernels/cpu/elementwise.cpp — CPU loops for the elementwise maps of kernels/elementwise.h.
//
// Fast path: when every operand is contiguous over the output (no broadcast, no transposition) the
// loop is a plain indexed loop the compiler vectorises; otherwise each element's offsets are
// computed from its coordinates.
#include <algorithm>

#include "kernels/elementwise.h"
#include "kernels/elementwise_math.h"

namespace fm::kernels {
namespace {

// Below this many elements a parallel region costs more than it saves (thread wake-up, barrier).
constexpr std::int64_t kParallelThreshold = 1 << 17;

}  // namespace

// The general (strided / broadcast) path walks the innermost dimension as a plain strided loop and
// computes the outer offsets once per row: the per-element divisions of strided_offset() then cost
// only once per row instead of once per element.
namespace {
struct RowWalk {
  std::int64_t rows, inner;
  int outer_ndim;
};
RowWalk row_walk(const ElementwiseGeometry& g) {
  std::int64_t inner = g.sizes[g.ndim - 1];  // make_geometry guarantees ndim >= 1
  return {inner > 0 ? g.numel() / inner : 0, inner, g.ndim - 1};
}
}  // namespace

template <typename T>
void unary_cpu(UnaryOp op, const T* x, T* y, const ElementwiseGeometry& g, double alpha, double beta) {
  const std::int64_t n = g.numel();
  const T a = T(alpha), b = T(beta);
  if (is_dense(g, g.a_strides) && is_dense(g, g.out_strides)) {
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
    for (std::int64_t i = 0; i < n; ++i) y[i] = apply_unary(op, x[i], a, b);
    return;
  }
  const RowWalk w = row_walk(g);
  const std::int64_t xs = g.a_strides[g.ndim - 1], ys = g.out_strides[g.ndim - 1];
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
  for (std::int64_t r = 0; r < w.rows; ++r) {
    const T* xr = x + strided_offset(r, w.outer_ndim, g.sizes, g.a_strides);
    T* yr = y + strided_offset(r, w.outer_ndim, g.sizes, g.out_strides);
    for (std::int64_t i = 0; i < w.inner; ++i) yr[i * ys] = apply_unary(op, xr[i * xs], a, b);
  }
}

template <typename T>
void binary_cpu(BinaryOp op, const T* a, const T* b, T* y, const ElementwiseGeometry& g) {
  const std::int64_t n = g.numel();
  if (is_dense(g, g.a_strides) && is_dense(g, g.b_strides) && is_dense(g, g.out_strides)) {
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
    for (std::int64_t i = 0; i < n; ++i) y[i] = apply_binary(op, a[i], b[i]);
    return;
  }
  const RowWalk w = row_walk(g);
  const std::int64_t as = g.a_strides[g.ndim - 1], bs = g.b_strides[g.ndim - 1], ys = g.out_strides[g.ndim - 1];
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
  for (std::int64_t r = 0; r < w.rows; ++r) {
    const T* ar = a + strided_offset(r, w.outer_ndim, g.sizes, g.a_strides);
    const T* br = b + strided_offset(r, w.outer_ndim, g.sizes, g.b_strides);
    T* yr = y + strided_offset(r, w.outer_ndim, g.sizes, g.out_strides);
    for (std::int64_t i = 0; i < w.inner; ++i) yr[i * ys] = apply_binary(op, ar[i * as], br[i * bs]);
  }
}

template <typename From, typename To>
void convert_cpu(const From* x, To* y, const ElementwiseGeometry& g) {
  const RowWalk w = row_walk(g);
  const std::int64_t xs = g.a_strides[g.ndim - 1], ys = g.out_strides[g.ndim - 1];
  for (std::int64_t r = 0; r < w.rows; ++r) {
    const From* xr = x + strided_offset(r, w.outer_ndim, g.sizes, g.a_strides);
    To* yr = y + strided_offset(r, w.outer_ndim, g.sizes, g.out_strides);
    for (std::int64_t i = 0; i < w.inner; ++i) yr[i * ys] = To(xr[i * xs]);
  }
}

template <typename T>
void fill_cpu(T* y, const ElementwiseGeometry& g, double value) {
  const std::int64_t n = g.numel();
  if (is_dense(g, g.out_strides)) {
    std::fill(y, y + n, T(value));
    return;
  }
  const RowWalk w = row_walk(g);
  const std::int64_t ys = g.out_strides[g.ndim - 1];
  for (std::int64_t r = 0; r < w.rows; ++r) {
    T* yr = y + strided_offset(r, w.outer_ndim, g.sizes, g.out_strides);
    for (std::int64_t i = 0; i < w.inner; ++i) yr[i * ys] = T(value);
  }
}

template void unary_cpu<float>(UnaryOp, const float*, float*, const ElementwiseGeometry&, double, double);
template void unary_cpu<double>(UnaryOp, const double*, double*, const ElementwiseGeometry&, double, double);
template void binary_cpu<float>(BinaryOp, const float*, const float*, float*, const ElementwiseGeometry&);
template void binary_cpu<double>(BinaryOp, const double*, const double*, double*, const ElementwiseGeometry&);
template void convert_cpu<float, double>(const float*, double*, const ElementwiseGeometry&);
template void convert_cpu<double, float>(const double*, float*, const ElementwiseGeometry&);
template void convert_cpu<float, float>(const float*, float*, const ElementwiseGeometry&);
template void convert_cpu<double, double>(const double*, double*, const ElementwiseGeometry&);
template void fill_cpu<float>(float*, const ElementwiseGeometry&, double);
template void fill_cpu<double>(double*, const ElementwiseGeometry&, double);

}  // namespace fm::kernels
