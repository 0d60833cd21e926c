// kernels/cpu/mlp_layer_kernel.h — one dense layer of the fused MLP forward
// (kernels/cpu/mlp_inference.cpp) on a block of rows stored feature-major, written once for any
// vector width.
//
//   out[o][r] = bias[o] + Σ_k weight[o][k] · in[k][r]      (in: [in_features][columns],
//                                                           out: [out_features][columns])
//
// Why feature-major: a block's rows are the vector lanes. The GEMM that linear() calls works on
// rows-major activations ([rows][features]) and so has to pack them (an 8×8 transpose per 64 values,
// per block and layer), copy the bias into every row, and pack the weights. Here a tile of MO output
// features × NV vectors of rows keeps MO·NV vector accumulators; every k loads NV vectors of in[k]
// and broadcasts MO weights straight from the weight as stored ([out][in] row-major): no packing,
// no bias copy, no transposes between layers.
//
// The arithmetic is the GEMM's (kernels/cpu/gemm_micro_kernel.h): for each K slice
// (gemm_slice_begin), acc = 0, acc = in·w + acc for k ascending (one FMA each where the build has
// FMA), then out = bias + acc for the first slice and out = out + acc for the others, which is what
// linear() gives (C starts as the bias rows, the GEMM adds onto it; with no inputs at all, K = 0,
// out is the bias as it is). So the fused forward is bitwise the op-by-op one, whatever the tile,
// the vector width or the ISA copy — NaN payloads aside: where two NaNs meet, which one comes out
// depends on operand order, which differs between this kernel and the GEMM (and between the
// GEMM's own full and edge tiles). No number differs.
//
// Compiled twice (kernels/cpu/cpu_isa.h): 32-byte vectors in mlp_inference.cpp, 64-byte ones in
// mlp_inference_avx512.cpp. The two are distinct template instantiations, so the linker cannot hand
// the portable path the AVX-512 copy.
#pragma once
#include <cstddef>
#include <cstring>

#include "kernels/cpu/gemm_micro_kernel.h"
#include "kernels/cpu/gemm_pack_b.h"

namespace fm::kernels {

// The tiles: MO output features × NV vectors of rows, MO·NV accumulators. Portable (16 AVX2
// registers): 4 × 2 vectors of 8 = 8 accumulators, 2 row vectors, 1 broadcast weight. AVX-512 (32
// registers): 4 × 4 vectors of 16 = 16 accumulators; per k, 4 loads and 4 broadcasts for 16 FMAs.
constexpr int kMlpTileFeaturesPortable = 4, kMlpTileVectorsPortable = 2;
constexpr int kMlpTileFeaturesAvx512 = 4, kMlpTileVectorsAvx512 = 4;

// One MO × (NV vectors) tile of out, summed over k in [k0, k1). first: out = bias + acc, else
// out = out + acc. ld: the row stride of in and out (the block's column count).
template <int kVecBytes, int MO, int NV>
inline void dense_layer_tile(const float* weight, int in_features, const float* bias, int k0, int k1,
                             bool first, const float* in, float* out, std::size_t ld) {
  using Vec = GemmVector<float, kVecBytes>::type;
  constexpr int L = GemmVector<float, kVecBytes>::kLanes;
  Vec acc[MO][NV];
  for (int i = 0; i < MO; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = Vec{};
  for (int k = k0; k < k1; ++k) {
    Vec x[NV];
    for (int v = 0; v < NV; ++v) std::memcpy(&x[v], in + std::size_t(k) * ld + v * L, sizeof(Vec));
#pragma GCC unroll 8
    for (int i = 0; i < MO; ++i) {
      const float w = weight[std::size_t(i) * in_features + k];  // broadcast from the weight as stored
      for (int v = 0; v < NV; ++v) acc[i][v] += x[v] * w;
    }
  }
  for (int i = 0; i < MO; ++i)
    for (int v = 0; v < NV; ++v) {
      float* o = out + std::size_t(i) * ld + v * L;
      Vec sum;
      if (first) {
        // The bias in every lane: b − 0 is b for every b (0 + b would turn a −0 bias into +0), and
        // the compiler makes it one broadcast (a loop over the lanes became 16 masked inserts).
        sum = bias[i] - Vec{};
      } else {
        std::memcpy(&sum, o, sizeof(Vec));
      }
      if (k1 > k0) sum += acc[i][v];  // K = 0: the bias untouched, as the GEMM leaves C (−0 stays −0)
      std::memcpy(o, &sum, sizeof(Vec));
    }
}

// The leftover out_features % MO features of a layer, as one tile of that many rows.
template <int kVecBytes, int MO, int NV>
inline void dense_layer_leftover(int count, const float* weight, int in_features, const float* bias, int k0,
                                 int k1, bool first, const float* in, float* out, std::size_t ld) {
  if constexpr (MO > 1) {
    if (count == MO - 1) {
      dense_layer_tile<kVecBytes, MO - 1, NV>(weight, in_features, bias, k0, k1, first, in, out, ld);
      return;
    }
    dense_layer_leftover<kVecBytes, MO - 1, NV>(count, weight, in_features, bias, k0, k1, first, in, out, ld);
  }
}

// The whole layer on a block of `columns` rows; columns must be a multiple of NV · (the vector's
// lanes), which the caller asserts at compile time (kernels/cpu/mlp_inference.cpp).
template <int kVecBytes, int MO, int NV>
void dense_layer_feature_major(const float* weight, const float* bias, int in_features, int out_features,
                               const float* in, float* out, int columns) {
  constexpr int L = GemmVector<float, kVecBytes>::kLanes;
  const std::size_t ld = std::size_t(columns);
  const int slices = gemm_slice_count(in_features);
  const int full_tiles_end = out_features / MO * MO;
  for (int slice = 0; slice < slices; ++slice) {
    const int k0 = gemm_slice_begin(in_features, slice), k1 = gemm_slice_begin(in_features, slice + 1);
    for (int c0 = 0; c0 < columns; c0 += NV * L) {
      // Row-block tiles outermost: the NV vectors of in[k] for all k stay in L1 while every group
      // of MO features reads them.
      for (int o0 = 0; o0 < full_tiles_end; o0 += MO)
        dense_layer_tile<kVecBytes, MO, NV>(weight + std::size_t(o0) * in_features, in_features, bias + o0, k0, k1,
                                            slice == 0, in + c0, out + std::size_t(o0) * ld + c0, ld);
      if (full_tiles_end < out_features)
        dense_layer_leftover<kVecBytes, MO, NV>(out_features - full_tiles_end,
                                                weight + std::size_t(full_tiles_end) * in_features, in_features,
                                                bias + full_tiles_end, k0, k1, slice == 0, in + c0,
                                                out + std::size_t(full_tiles_end) * ld + c0, ld);
    }
  }
}

// The AVX-512 copy (kernels/cpu/mlp_inference_avx512.cpp): dense_layer_feature_major with 64-byte
// vectors and the AVX-512 tile. Call it only when kernels/cpu/cpu_isa.h's use_avx512_kernels() is
// true: elsewhere it stops the process with an illegal instruction.
void dense_layer_feature_major_avx512(const float* weight, const float* bias, int in_features, int out_features,
                                      const float* in, float* out, int columns);

}  // namespace fm::kernels
