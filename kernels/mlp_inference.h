// kernels/mlp_inference.h — a small MLP's whole forward pass in inference, as one CPU kernel.
//
// Sampling a 2-D flow evaluates the same few dense layers on a few thousand points a hundred times.
// Op by op, each layer is a GEMM over all rows, then the activation over all rows: every op is its
// own parallel region (threads woken and joined ~10 times per evaluation) and every intermediate
// [rows, width] tensor goes out to memory and back. This kernel instead cuts the rows into blocks and
// hands each block, through every layer, to one thread: one parallel region per evaluation, and a
// block's activations stay in that core's cache.
//
// Inside a block the activations are stored feature-major (the block's rows are the vector lanes),
// so a layer needs no packing and no copies (kernels/cpu/mlp_layer_kernel.h). Each output is still
// summed as linear()'s GEMM sums it (from zero, k ascending, per K slice, then onto the bias) and
// the activation is the activation op's own loop (unary_cpu), so the output is bitwise what those
// ops give one after another, NaN payloads aside (tests/test_kernel_mlp_inference.cpp,
// tests/test_nn_mlp.cpp; kernels/cpu/mlp_layer_kernel.h says why).
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/elementwise.h"

namespace fm::kernels {

// One dense layer: out = activation(in · weightᵀ + bias); weight [out_features, in_features]
// row-major, bias [out_features]. activation: UnaryOp::Identity for none, or Silu, Gelu, Relu, Tanh.
struct DenseLayerView {
  const float* weight = nullptr;
  const float* bias = nullptr;
  int in_features = 0, out_features = 0;
  UnaryOp activation = UnaryOp::Identity;
};

// output[rows, last out_features] = the layers applied in order to input[rows, first in_features]
// (both row-major, contiguous). Layer l's in_features must equal layer l−1's out_features.
void mlp_inference_cpu(const std::vector<DenseLayerView>& layers, const float* input, std::int64_t rows,
                       float* output);

}  // namespace fm::kernels
