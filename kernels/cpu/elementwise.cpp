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

bool is_dense(const ElementwiseGeometry& g, const std::int64_t* strides) {
  std::int64_t expected = 1;
  for (int d = g.ndim - 1; d >= 0; --d) {
    if (g.sizes[d] != 1 && strides[d] != expected) return false;
    expected *= g.sizes[d];
  }
  return true;
}
// Below this many elements a parallel region costs more than it saves (thread wake-up, barrier).
constexpr std::int64_t kParallelThreshold = 1 << 17;

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
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t xo = strided_offset(i, g.ndim, g.sizes, g.a_strides);
    std::int64_t yo = strided_offset(i, g.ndim, g.sizes, g.out_strides);
    y[yo] = apply_unary(op, x[xo], a, b);
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
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t ao = strided_offset(i, g.ndim, g.sizes, g.a_strides);
    std::int64_t bo = strided_offset(i, g.ndim, g.sizes, g.b_strides);
    std::int64_t yo = strided_offset(i, g.ndim, g.sizes, g.out_strides);
    y[yo] = apply_binary(op, a[ao], b[bo]);
  }
}

template <typename From, typename To>
void convert_cpu(const From* x, To* y, const ElementwiseGeometry& g) {
  const std::int64_t n = g.numel();
  for (std::int64_t i = 0; i < n; ++i)
    y[strided_offset(i, g.ndim, g.sizes, g.out_strides)] =
        To(x[strided_offset(i, g.ndim, g.sizes, g.a_strides)]);
}

template <typename T>
void fill_cpu(T* y, const ElementwiseGeometry& g, double value) {
  const std::int64_t n = g.numel();
  for (std::int64_t i = 0; i < n; ++i) y[strided_offset(i, g.ndim, g.sizes, g.out_strides)] = T(value);
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
