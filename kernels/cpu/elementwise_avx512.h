// kernels/cpu/elementwise_avx512.h — the float elementwise loops compiled for AVX-512
// (kernels/cpu/elementwise_avx512.cpp). Call them only when kernels/cpu/cpu_isa.h's
// use_avx512_kernels() is true: on another CPU they stop the process with an illegal instruction.
#pragma once
#include "kernels/elementwise.h"

namespace fm::kernels {

void unary_float_avx512(UnaryOp op, const float* x, float* y, const ElementwiseGeometry& geometry, float alpha,
                        float beta);
void binary_float_avx512(BinaryOp op, const float* a, const float* b, float* y, const ElementwiseGeometry& geometry);

}  // namespace fm::kernels
