// kernels/embedding.h — a lookup table: row index[i] of table[rows, dim] becomes row i of the
// output (how a class label becomes a learned vector in a conditional model).
//
//   forward   out[i, d]    = table[index[i], d]                          i < count, d < dim
//   backward  dtable[r, d] = Σ_{i : index[i] = r} dout[i, d]             (rows never looked up: 0)
//
// The backward is a scatter-add. Both versions below sum each dtable element over i in increasing
// order, so the CPU and CUDA results are the same bits and the backward is reproducible (no atomics).
// Indices are checked by the caller (core/ops_embedding.cpp): 0 <= index[i] < rows.
//
// Layer: kernels/ (plain functions over pointers). CPU reference (float, double) in
// kernels/cpu/embedding.cpp; CUDA (float, device pointers, on cuda_stream()) in kernels/cuda/embedding.cu.
// Minimum traffic: forward reads count·dim table values and writes as many; backward reads dout
// (count·dim) and writes dtable (rows·dim).
#pragma once
#include <cstdint>

namespace fm::kernels {

template <typename T>
void embedding_forward_cpu(const T* table, const std::int32_t* index, T* out, int count, int rows, int dim);
// Overwrites dtable (every row, also those no index names).
template <typename T>
void embedding_backward_cpu(const T* dout, const std::int32_t* index, T* dtable, int count, int rows, int dim);

// index is a device pointer too.
// index_offset (optional, a device word): the lookup reads index[*index_offset + i] instead, the
// offset read as the kernel runs (a recorded training step's batch position: core/ops.h take_rows),
// and index holds index_size entries. What the kernel reads when it runs is checked there too
// (FM_DEVICE_CHECK, kernels/cuda/common.cuh): each position within [0, index_size) and each index
// within [0, rows); a value outside stops the kernel instead of reading outside a buffer.
void embedding_forward_cuda(const float* table, const std::int32_t* index, float* out, int count, int rows,
                            int dim, const std::int64_t* index_offset = nullptr, std::int64_t index_size = 0);
void embedding_backward_cuda(const float* dout, const std::int32_t* index, float* dtable, int count, int rows,
                             int dim);

}  // namespace fm::kernels
