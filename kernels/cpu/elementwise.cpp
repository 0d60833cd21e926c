// kernels/cpu/elementwise.cpp — the CPU entry points of kernels/elementwise.h.
//
// The loops themselves are in kernels/cpu/elementwise_loops.h; float maps run the AVX-512 copy of
// them (kernels/cpu/elementwise_avx512.cpp) when kernels/cpu/cpu_isa.h says so, everything else the
// copy compiled here with the build's portable flags.
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/elementwise_avx512.h"
#include "kernels/cpu/elementwise_loops.h"

namespace fm::kernels {

template <typename T>
void unary_cpu(UnaryOp op, const T* x, T* y, const ElementwiseGeometry& g, double alpha, double beta) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_avx512_kernels()) return unary_float_avx512(op, x, y, g, float(alpha), float(beta));
  }
  run_unary(op, x, y, g, T(alpha), T(beta));
}

template <typename T>
void binary_cpu(BinaryOp op, const T* a, const T* b, T* y, const ElementwiseGeometry& g) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_avx512_kernels()) return binary_float_avx512(op, a, b, y, g);
  }
  run_binary(op, a, b, y, g);
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
