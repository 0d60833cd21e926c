// core/tensor_internal.h — helpers shared by the op implementations in core/ (not part of the
// public API): argument checks, broadcasting, kernel geometry, device dispatch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/elementwise.h"

namespace fm::internal {

// Throws unless every tensor is defined and shares the first one's dtype and device; CUDA tensors
// must be float32 (the CUDA kernels are float-only).
void check_same_dtype_device(const char* op, std::initializer_list<const Tensor*> tensors);
void check_defined(const char* op, const Tensor& t, const char* what);
void check_dim(const char* op, const Tensor& t, int expected_dims, const char* what,
               const char* layout);
int normalize_dim(const char* op, int dim, int ndim);

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);
// Strides of `t` read as if it had shape `out_shape` (right-aligned, 0 on broadcast dims).
Shape broadcast_strides(const Tensor& t, const Shape& out_shape);

kernels::ElementwiseGeometry make_geometry(const Shape& sizes, const Shape& out_strides,
                                           const Shape& a_strides, const Shape& b_strides = {});
// The geometry of y = f(a, b) with a and b broadcast to y's shape: the same as
// make_geometry(y.shape(), y.strides(), broadcast_strides(a, y.shape()), broadcast_strides(b, y.shape())),
// written straight into the fixed arrays (a tiny op would otherwise pay more for the stride vectors'
// allocations than for its arithmetic).
kernels::ElementwiseGeometry broadcast_geometry(const Tensor& y, const Tensor& a, const Tensor& b);

// Strided copy src -> dst on one device (shapes equal, or src broadcastable to dst).
void copy_same_device(const Tensor& src, const Tensor& dst);
// The same copy into a destination of another dtype, each element converted (rounded to nearest,
// ties to even, when the destination is narrower). Float64 has no CUDA kernel: on CUDA the types
// are float32 and bfloat16.
void convert_same_device(const Tensor& src, const Tensor& dst);

}  // namespace fm::internal
