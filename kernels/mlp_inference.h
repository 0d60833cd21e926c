// kernels/mlp_inference.h — a small MLP's whole forward pass in inference, as one CPU kernel.
//
// Sampling a 2-D flow evaluates the same few dense layers on a few thousand points a hundred times.
// Op by op, each layer is a GEMM over all rows, then the activation over all rows: every op is its
// own parallel region (threads woken and joined ~10 times per evaluation) and every intermediate
// [rows, width] tensor goes out to memory and back. This kernel instead cuts the rows into blocks and
// hands each block, through every layer, to one thread: one parallel region per evaluation, and a
// block's activations stay in that core's cache.
//
// It is built from the engine's own kernels (gemm_cpu, unary_cpu), called exactly as linear() and
// the activation ops call them, so its output is bitwise what those ops give one after another
// (the GEMM's sum for an element never depends on how the rows are cut; kernels/cpu/gemm.cpp).
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
