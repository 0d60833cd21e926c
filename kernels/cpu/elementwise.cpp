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
  run_unary(op, x, y, g, compute_t<T>(alpha), compute_t<T>(beta));
}

template <typename T>
void binary_cpu(BinaryOp op, const T* a, const T* b, T* y, const ElementwiseGeometry& g) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_avx512_kernels()) return binary_float_avx512(op, a, b, y, g);
  }
  run_binary(op, a, b, y, g);
}

// One element, rounded once: float -> bf16 and double -> bf16 round directly (kernels/bfloat16.h), and
// bf16 widens exactly through float.
template <typename To, typename From>
To converted(From x) {
  if constexpr (std::is_same_v<From, To>)
    return x;  // a copy keeps every bit
  else if constexpr (std::is_same_v<From, bf16>)
    return To(float(x));
  else
    return To(x);
}

template <typename From, typename To>
void convert_cpu(const From* x, To* y, const ElementwiseGeometry& g) {
  const ElementwiseGeometry m = merged_dims(g);
  const std::int64_t inner = m.sizes[m.ndim - 1];
  const std::int64_t xs = m.a_strides[m.ndim - 1], ys = m.out_strides[m.ndim - 1];
  for_each_row(m, false, [&](std::int64_t o, std::int64_t a, std::int64_t) {
    for (std::int64_t i = 0; i < inner; ++i) y[o + i * ys] = converted<To>(x[a + i * xs]);
  });
}

template <typename T>
void fill_cpu(T* y, const ElementwiseGeometry& g, double value) {
  const std::int64_t n = g.numel();
  if (is_dense(g, g.out_strides)) {
    std::fill(y, y + n, T(value));  // rounded once, from the double
    return;
  }
  const ElementwiseGeometry m = merged_dims(g);
  const std::int64_t inner = m.sizes[m.ndim - 1], ys = m.out_strides[m.ndim - 1];
  for_each_row(m, false, [&](std::int64_t o, std::int64_t, std::int64_t) {
    for (std::int64_t i = 0; i < inner; ++i) y[o + i * ys] = T(value);
  });
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
template void unary_cpu<bf16>(UnaryOp, const bf16*, bf16*, const ElementwiseGeometry&, double, double);
template void binary_cpu<bf16>(BinaryOp, const bf16*, const bf16*, bf16*, const ElementwiseGeometry&);
template void convert_cpu<float, bf16>(const float*, bf16*, const ElementwiseGeometry&);
template void convert_cpu<double, bf16>(const double*, bf16*, const ElementwiseGeometry&);
template void convert_cpu<bf16, float>(const bf16*, float*, const ElementwiseGeometry&);
template void convert_cpu<bf16, double>(const bf16*, double*, const ElementwiseGeometry&);
template void convert_cpu<bf16, bf16>(const bf16*, bf16*, const ElementwiseGeometry&);
template void fill_cpu<bf16>(bf16*, const ElementwiseGeometry&, double);

}  // namespace fm::kernels
