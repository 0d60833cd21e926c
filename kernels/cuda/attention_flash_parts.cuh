// kernels/cuda/attention_flash_parts.cuh — what the FP32 fused attention (attention_flash.cu) shares with
// its tensor-core version (attention_flash_tensor_cores.cu): the block size and the output products'
// thread layout (device side), the size checks, the backward's row terms D_i and the fixed-order sum of
// dQ's key-tile shares (host functions; kernels on cuda_stream()).
#pragma once
#include <cstdint>

#include "kernels/attention.h"
#include "kernels/cuda/common.cuh"

namespace fm::kernels {

// Threads per block of every fused attention kernel.
constexpr int kFlashThreads = 256;

// The output products' thread layout (O += P·V, dV += Pᵀ·dO, ...): thread t owns the float4 column group
// t mod (kHeadDimPad / 4) of rows t / (kHeadDimPad / 4) + kRowLanes·r. Per step of the FP32 products it
// reads one scalar weight per row and one float4 of the value row (shared by the whole group), 2–4×
// fewer shared-memory reads per FMA than a 16×16 layout for small head dims.
template <int kHeadDimPad>
struct FlashOutputLayout {
  static constexpr int kDimGroups = kHeadDimPad / 4;
  static constexpr int kRowLanes = kFlashThreads / kDimGroups;
  __device__ static int dim_group() { return threadIdx.x % kDimGroups; }
  __device__ static int row_lane() { return threadIdx.x / kDimGroups; }
};

// ValueError for sizes the fused kernels do not take (D above 128, too many query tiles for the grid).
void check_flash_sizes(const char* op, int B, int H, int L, int D);

// The backward sums dQ from per-key-tile shares when there are at most this many key tiles: the shares
// take tiles × the size of dQ, and for the U-Net (L ≤ 196: at most 4 tiles) that traffic costs far less
// than recomputing the score products in a dQ pass. Longer sequences take the FP32 kernels' dQ pass,
// whose memory does not grow with L.
constexpr int kMaxDqPartialTiles = kAttentionMaxDqPartialTiles;  // (kernels/attention.h)

// D_i = Σ_d dO_id·O_id for every row of the [rows, D] matrices (T = float or bf16, summed in float), into a
// cuda_malloc'ed array of `rows` floats that the caller frees with cuda_free.
template <typename T>
float* attention_row_dots(const T* dout, const T* o, std::int64_t rows, int D);

// The FP32 kernels' backward from precomputed row dots (attention_row_dots), for BH = B·H > 0 heads of
// sizes already checked (check_flash_sizes): the float entry, and the bfloat16 entry's long-sequence
// fallback, whose row dots come from its bfloat16 dO and O without widening O.
void attention_backward_fp32_with_row_dots(const float* q, const float* k, const float* v, const float* dout,
                                           const float* lse, const float* row_dot, float* dq, float* dk, float* dv,
                                           int BH, int L, int D, float scale);

// dq[i] = Σ_t partial[t·size + i], t = 0, 1, …, tiles − 1 in that order (the same bits on every run), in
// float; T = float or bf16 (rounded once).
template <typename T>
void attention_sum_dq(const float* partial, T* dq, std::int64_t size, int tiles);

}  // namespace fm::kernels
