// kernels/cuda/attention_flash.cu — fused (FlashAttention-style) scaled dot-product attention in
// FP32 on CUDA cores, forward and backward. Formulas: kernels/attention.h. Reference:
// kernels/cpu/attention.cpp. Baseline: kernels/cuda/attention_unfused.cu.
//
// Layer: kernels/cuda (hand-written kernels over device pointers, launched on cuda_stream()).
//
// Cost (B=256, H=4, the U-Net's three attention layers; "matmul" = one L×L×D product,
// 2·L²·D flops per head; docs/ops/attention.md §4 has the derivation):
//   L=196, D=32 (downs.1): forward 2 matmuls = 5.04 GFLOP, ≥ 103.6 MB (read Q, K, V, write O,
//                LSE); backward 5 matmuls = 12.6 GFLOP (7 = 17.6 GFLOP with the dQ kernel),
//                ≥ 206.3 MB (read Q, K, V, O, dO, LSE, write dQ, dK, dV).
//   L=49,  D=16 (mids.0): forward 0.157 GFLOP, ≥ 13.0 MB; backward 0.393 GFLOP, ≥ 25.9 MB.
//   L=196, D=8  (ups.0): forward 1.26 GFLOP, ≥ 26.5 MB; backward 3.15 GFLOP, ≥ 52.2 MB.
// H100's FP32 ridge point is ~50 TFLOP/s ÷ ~3.3 TB/s ≈ 15 flops/byte: the L=196 layers (≈ 48
// flops/byte) are compute-bound, L=49 (≈ 12) sits near the ridge. Either way the fused kernels
// exist to avoid the unfused version's L×L traffic (157 MB per pass at L=196), not to beat the
// byte floor.
//
// Two thread layouts over the 256 threads of a block:
//  * score products (S = Q·Kᵀ, dP = dO·Vᵀ): a 16×16 grid (ty, tx); thread (ty, tx) owns rows
//    ty + 16·i and columns tx + 16·j of the score tile — strided, so the 16 rows a half-warp reads
//    land in different banks; operands are read as float4 along the head dim. The 16 threads of a
//    row are one half-warp, so row max/sum are 4 xor-shuffles.
//  * output products (O += P·V, dV += Pᵀ·dO, dK += dSᵀ·Q, dQ += dS·K): thread t owns one float4
//    column group of a few rows, reading one scalar weight per row and one float4 per step.
// Shared tiles have row stride kHeadDimPad + 4: 16-byte aligned rows for float4, and consecutive
// rows 4 banks apart so the 16 rows of a score product cost the minimum two wavefronts.
//
// Head dims are padded to kHeadDimPad ∈ {16, 32, 64, 128} (one template instance each); padding
// columns and rows past L are zero-filled in shared memory, so they add nothing to dot products,
// and masked scores are −∞ before the softmax. Any L works, including L < one tile.
//
// Softmax in base 2: s₂ = S·log2(e), exp(S − m) = exp2(s₂ − m₂); lse = ln 2 · (m₂ + log2 l).
//
// Backward: the dK/dV pass gives each block one tile of keys, which it keeps in shared memory while
// streaming all query tiles; dK and dV accumulate in registers and are written once. dQ needs a sum
// over keys, which that pass spreads across blocks: FlashAttention-2 adds the pieces with float
// atomics, but float addition in arrival order is not reproducible from run to run, and this
// engine promises bitwise-reproducible training. Two deterministic ways, by sequence length:
//  * up to kMaxDqPartialTiles key tiles (every U-Net layer): each dK/dV block also writes its key
//    tile's share dS·K of every query row to a workspace, and a second kernel adds the shares in
//    key-tile order — 5 matmuls in all, plus the workspace traffic;
//  * longer sequences: a query-tile dQ pass that recomputes S and dP (2 extra matmuls of 7, ~40%
//    more backward flops) and sums over keys in a fixed order, with no workspace.
// The first H100 run (2026-11-22) measured the second way alone at 0.68× the unfused backward for
// L = 196, D = 32 (docs/ops/attention.md §7); its dQ kernel's profile: shared-memory bound.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/attention.h"
#include "kernels/cuda/attention_flash_parts.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

constexpr int kThreads = kFlashThreads;
constexpr int kSide = 16;  // the thread grid is kSide × kSide
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Tile sizes per padded head dim, chosen so one block's shared memory stays ≤ ~76 KB (two or
// three blocks per SM) and each thread's accumulators stay ≤ 32 floats per output.
template <int kHeadDimPad>
struct FlashTiles;
template <>
struct FlashTiles<16> {
  static constexpr int kForwardQueries = 64, kForwardKeys = 64;
  static constexpr int kDkDvKeys = 64, kDkDvQueries = 64;
  static constexpr int kDqQueries = 64, kDqKeys = 64;
};
template <>
struct FlashTiles<32> {
  static constexpr int kForwardQueries = 64, kForwardKeys = 64;
  static constexpr int kDkDvKeys = 64, kDkDvQueries = 64;
  static constexpr int kDqQueries = 64, kDqKeys = 64;
};
template <>
struct FlashTiles<64> {
  static constexpr int kForwardQueries = 64, kForwardKeys = 64;
  static constexpr int kDkDvKeys = 64, kDkDvQueries = 32;
  static constexpr int kDqQueries = 64, kDqKeys = 32;
};
template <>
struct FlashTiles<128> {
  static constexpr int kForwardQueries = 64, kForwardKeys = 32;
  static constexpr int kDkDvKeys = 32, kDkDvQueries = 32;
  static constexpr int kDqQueries = 32, kDqKeys = 32;
};

// Row stride of every [rows, head dim] tile in shared memory: 4 floats of padding keep each row
// 16-byte aligned (float4 reads) while shifting consecutive rows by 4 banks, so 8 rows' float4s
// cover all 32 banks: the 16 rows a half-warp reads in a score product cost the minimum 2
// wavefronts.
template <int kHeadDimPad>
constexpr int kTileStride = kHeadDimPad + 4;

// Copies rows [row0, row0 + kRows) of one head's [L, D] matrix into a shared tile with row stride
// kStride, zero-filling rows ≥ L and columns ≥ D. Consecutive threads take consecutive columns, so
// global reads are coalesced along D.
template <int kRows, int kHeadDimPad, int kStride>
__device__ __forceinline__ void load_tile(float* __restrict__ tile, const float* __restrict__ head,
                                          int row0, int L, int D) {
  for (int idx = threadIdx.x; idx < kRows * kHeadDimPad; idx += kThreads) {
    const int r = idx / kHeadDimPad, d = idx % kHeadDimPad;  // powers of two: shifts and masks
    const int row = row0 + r;
    tile[r * kStride + d] = (row < L && d < D) ? head[std::int64_t(row) * D + d] : 0.f;
  }
}

__device__ __forceinline__ float4 load_float4(const float* p) {
  return *reinterpret_cast<const float4*>(p);
}
__device__ __forceinline__ float dot4(float4 a, float4 b, float acc) {
  acc = fmaf(a.x, b.x, acc);
  acc = fmaf(a.y, b.y, acc);
  acc = fmaf(a.z, b.z, acc);
  return fmaf(a.w, b.w, acc);
}
__device__ __forceinline__ float component(const float4& v, int e) {
  return e == 0 ? v.x : e == 1 ? v.y : e == 2 ? v.z : v.w;
}
__device__ __forceinline__ void axpy4(float a, float4 x, float4& y) {
  y.x = fmaf(a, x.x, y.x);
  y.y = fmaf(a, x.y, y.y);
  y.z = fmaf(a, x.z, y.z);
  y.w = fmaf(a, x.w, y.w);
}

// Score products: thread (ty, tx) of the 16×16 grid computes A_i·B_j for rows a = ty + 16·i of
// tile_a and b = tx + 16·j of tile_b (both [rows, kStride]), 4 dims per float4 read.
// kDual also computes C_i·E_j from a second pair of tiles in the same sweep (the backward needs
// S and dP together).
//
// valid_a / valid_b: how many rows of tile_a (and tile_c) / tile_b (and tile_e) are real (the rest
// is zero padding past L). A 16-row block made only of padding is skipped: the branch is uniform
// (block i covers rows 16·i … 16·i + 15 for every thread), and its products would be 0 anyway.
// L = 196 in 64-row tiles ends in a tile with 4 real rows; without the skip a quarter of the
// blocks and a quarter of every block's key tiles would multiply zeros. The backward passes the
// real counts. The forward passes full counts, and takes a short last key tile as a separate
// compile-time tile size instead (forward_key_tile): the H100 (2026-11-22, L = 196, D = 32)
// measured it at 0.531 ms with these tests in its score product, 0.436 ms without; the backward
// went 1.107 → 1.081 ms with them.
template <int kHeadDimPad, int kRowsA, int kRowsB, bool kDual, int kUnrollDims = 2>
__device__ __forceinline__ void score_tile(const float* tile_a, const float* tile_b,
                                           const float* tile_c, const float* tile_e, int valid_a,
                                           int valid_b, float (&out)[kRowsA][kRowsB],
                                           float (&out2)[kRowsA][kRowsB]) {
  constexpr int kStride = kTileStride<kHeadDimPad>;
  const int tx = threadIdx.x % kSide, ty = threadIdx.x / kSide;
#pragma unroll
  for (int i = 0; i < kRowsA; ++i)
#pragma unroll
    for (int j = 0; j < kRowsB; ++j) out[i][j] = out2[i][j] = 0.f;
#pragma unroll kUnrollDims
  for (int d = 0; d < kHeadDimPad; d += 4) {
    float4 a[kRowsA], b[kRowsB];
#pragma unroll
    for (int i = 0; i < kRowsA; ++i)
      if (kSide * i < valid_a) a[i] = load_float4(tile_a + (ty + kSide * i) * kStride + d);
#pragma unroll
    for (int j = 0; j < kRowsB; ++j)
      if (kSide * j < valid_b) b[j] = load_float4(tile_b + (tx + kSide * j) * kStride + d);
#pragma unroll
    for (int i = 0; i < kRowsA; ++i)
#pragma unroll
      for (int j = 0; j < kRowsB; ++j)
        if (kSide * i < valid_a && kSide * j < valid_b) out[i][j] = dot4(a[i], b[j], out[i][j]);
    if constexpr (kDual) {
#pragma unroll
      for (int i = 0; i < kRowsA; ++i)
        if (kSide * i < valid_a) a[i] = load_float4(tile_c + (ty + kSide * i) * kStride + d);
#pragma unroll
      for (int j = 0; j < kRowsB; ++j)
        if (kSide * j < valid_b) b[j] = load_float4(tile_e + (tx + kSide * j) * kStride + d);
#pragma unroll
      for (int i = 0; i < kRowsA; ++i)
#pragma unroll
        for (int j = 0; j < kRowsB; ++j)
          if (kSide * i < valid_a && kSide * j < valid_b)
            out2[i][j] = dot4(a[i], b[j], out2[i][j]);
    }
  }
}

// Output products (O += P·V, dV += Pᵀ·dO, ...) use a second thread layout: FlashOutputLayout
// (attention_flash_parts.cuh).

// ---- forward ----------------------------------------------------------------------------------
// grid (B·H, ⌈L / kQueries⌉). Per key tile: S = Q·Kᵀ in registers (16×16 layout), online-softmax
// update of the running max m and sum l per row (Milakov & Gimelshein 2018), P and the rescale
// factor exp(m_old − m_new) to shared memory, then O = O·rescale + P·V (output layout).

// The forward's state between key tiles, per thread.
template <int kHeadDimPad, int kQueries>
struct ForwardState {
  static constexpr int kRowsPerThread = kQueries / kSide;
  static constexpr int kOutRowsPerThread = kQueries / FlashOutputLayout<kHeadDimPad>::kRowLanes;
  // Softmax state of rows ty + 16·i (16×16 layout; the 16 lanes of a row hold the same values).
  float row_max[kRowsPerThread], row_sum[kRowsPerThread];
  // Unnormalised output of rows row_lane + kRowLanes·r, columns 4·dim_group … +3 (output layout).
  float4 acc[kOutRowsPerThread];
};

// One key tile of kTileKeys keys starting at key0 (keys past L masked). The kernel calls it with
// kTileKeys = kKeys, and with kTailKeys for a last tile of at most kTailKeys keys: L = 196 in
// 64-key tiles ends with 4 keys, and a full-size step there would spend a quarter of the forward's
// products on padding. (Skipping the padding inside a full-size step with runtime tests measured
// slower than not skipping at all: see score_tile's callers in the backward.)
template <int kHeadDimPad, int kQueries, int kTileKeys, int kProbStride>
__device__ __forceinline__ void forward_key_tile(const float* __restrict__ k_head,
                                                 const float* __restrict__ v_head,
                                                 const float* q_tile, float* k_tile, float* v_tile,
                                                 float* p_tile, float* row_rescale, int key0,
                                                 int L, int D, float scale_log2,
                                                 ForwardState<kHeadDimPad, kQueries>& state) {
  using State = ForwardState<kHeadDimPad, kQueries>;
  using Out = FlashOutputLayout<kHeadDimPad>;
  constexpr int kStride = kTileStride<kHeadDimPad>;
  constexpr int kKeysPerThread = kTileKeys / kSide;
  static_assert(kTileKeys % kSide == 0 && kTileKeys < kProbStride, "tile does not fit P");
  const int tx = threadIdx.x % kSide, ty = threadIdx.x / kSide;

  __syncthreads();  // the previous tile's K, V, P, rescale are no longer read (Q load is done)
  load_tile<kTileKeys, kHeadDimPad, kStride>(k_tile, k_head, key0, L, D);
  load_tile<kTileKeys, kHeadDimPad, kHeadDimPad>(v_tile, v_head, key0, L, D);
  __syncthreads();

  // Full counts: the compiler drops score_tile's padding tests (masked keys are handled below).
  float s[State::kRowsPerThread][kKeysPerThread], unused[State::kRowsPerThread][kKeysPerThread];
  score_tile<kHeadDimPad, State::kRowsPerThread, kKeysPerThread, false, 1>(
      q_tile, k_tile, nullptr, nullptr, kQueries, kTileKeys, s, unused);
#pragma unroll
  for (int i = 0; i < State::kRowsPerThread; ++i) {
    float tile_max = -INFINITY;
#pragma unroll
    for (int j = 0; j < kKeysPerThread; ++j) {
      const bool valid_key = key0 + tx + kSide * j < L;
      s[i][j] = valid_key ? s[i][j] * scale_log2 : -INFINITY;
      tile_max = fmaxf(tile_max, s[i][j]);
    }
    // Every key tile holds at least one valid key (key0 < L), so new_max is finite and the
    // exponents below never see −∞ − (−∞). The kSide threads of a row are one half-warp, so the
    // row's max and sum are reductions over kSide lanes.
    const float new_max = fmaxf(state.row_max[i], warp_max<kSide>(tile_max));
    const float rescale = exp2f(state.row_max[i] - new_max);  // 0 on the first tile
    float tile_sum = 0.f;
#pragma unroll
    for (int j = 0; j < kKeysPerThread; ++j) {
      const float p = exp2f(s[i][j] - new_max);  // masked keys: exp2(−∞) = 0
      p_tile[(ty + kSide * i) * kProbStride + tx + kSide * j] = p;
      tile_sum += p;
    }
    state.row_sum[i] = state.row_sum[i] * rescale + warp_sum<kSide>(tile_sum);
    state.row_max[i] = new_max;
    if (tx == 0) row_rescale[ty + kSide * i] = rescale;
  }
  __syncthreads();  // P and the rescale factors complete

  const int group = Out::dim_group();
#pragma unroll
  for (int r = 0; r < State::kOutRowsPerThread; ++r) {
    const float rescale = row_rescale[Out::row_lane() + Out::kRowLanes * r];
    state.acc[r].x *= rescale;
    state.acc[r].y *= rescale;
    state.acc[r].z *= rescale;
    state.acc[r].w *= rescale;
  }
#pragma unroll 4
  for (int c = 0; c < kTileKeys; ++c) {
    const float4 v_val = load_float4(v_tile + c * kHeadDimPad + 4 * group);
#pragma unroll
    for (int r = 0; r < State::kOutRowsPerThread; ++r)
      axpy4(p_tile[(Out::row_lane() + Out::kRowLanes * r) * kProbStride + c], v_val,
            state.acc[r]);
  }
}

constexpr int kTailKeys = kSide;  // the short last key tile: one 16-key column block

// Resident blocks asked of the compiler (__launch_bounds__): 3 fit an SM's shared memory for head
// dims up to 64, and at the ≤ 85 registers per thread that implies, ptxas (CUDA 13, sm_90) fits
// those forwards without spills once score_tile's head-dim loop is not unrolled (it spilled
// 64–72 bytes unrolled twice). Head dim 128 keeps 2 blocks.
template <int kHeadDimPad>
constexpr int kForwardBlocksPerSm = kHeadDimPad <= 64 ? 3 : 2;

template <int kHeadDimPad, int kQueries, int kKeys>
__global__ void __launch_bounds__(kThreads, kForwardBlocksPerSm<kHeadDimPad>)
flash_attention_forward_kernel(const float* __restrict__ q, const float* __restrict__ k,
                               const float* __restrict__ v, float* __restrict__ o,
                               float* __restrict__ lse, int L, int D, float scale_log2) {
  constexpr int kStride = kTileStride<kHeadDimPad>;
  constexpr int kProbStride = kKeys + 1;
  using State = ForwardState<kHeadDimPad, kQueries>;
  using Out = FlashOutputLayout<kHeadDimPad>;
  static_assert(kQueries % Out::kRowLanes == 0, "output rows must split evenly over row lanes");
  extern __shared__ float shared[];
  float* q_tile = shared;                              // [kQueries][kStride]
  float* k_tile = q_tile + kQueries * kStride;         // [kKeys][kStride]
  float* v_tile = k_tile + kKeys * kStride;            // [kKeys][kHeadDimPad]
  float* p_tile = v_tile + kKeys * kHeadDimPad;        // [kQueries][kProbStride]
  float* row_rescale = p_tile + kQueries * kProbStride;  // [kQueries]
  float* row_total = row_rescale + kQueries;           // [kQueries]

  const int bh = blockIdx.x;
  const int query0 = blockIdx.y * kQueries;
  const int tx = threadIdx.x % kSide, ty = threadIdx.x / kSide;
  const std::int64_t head_offset = std::int64_t(bh) * L * D;

  load_tile<kQueries, kHeadDimPad, kStride>(q_tile, q + head_offset, query0, L, D);

  State state;
#pragma unroll
  for (int i = 0; i < State::kRowsPerThread; ++i) {
    state.row_max[i] = -INFINITY;
    state.row_sum[i] = 0.f;
  }
#pragma unroll
  for (int r = 0; r < State::kOutRowsPerThread; ++r) state.acc[r] = make_float4(0.f, 0.f, 0.f, 0.f);

  for (int key0 = 0; key0 < L; key0 += kKeys) {
    if (L - key0 <= kTailKeys)  // the same for every thread of the block
      forward_key_tile<kHeadDimPad, kQueries, kTailKeys, kProbStride>(
          k + head_offset, v + head_offset, q_tile, k_tile, v_tile, p_tile, row_rescale, key0, L,
          D, scale_log2, state);
    else
      forward_key_tile<kHeadDimPad, kQueries, kKeys, kProbStride>(
          k + head_offset, v + head_offset, q_tile, k_tile, v_tile, p_tile, row_rescale, key0, L,
          D, scale_log2, state);
  }

  // lse and the final row sums come from the 16×16 layout; O is written from the output layout.
#pragma unroll
  for (int i = 0; i < State::kRowsPerThread; ++i) {
    const int row_in_tile = ty + kSide * i;
    if (tx == 0) row_total[row_in_tile] = state.row_sum[i];
    const int row = query0 + row_in_tile;
    if (tx == 0 && row < L)
      lse[std::int64_t(bh) * L + row] = kLn2 * (state.row_max[i] + log2f(state.row_sum[i]));
  }
  __syncthreads();
#pragma unroll
  for (int r = 0; r < State::kOutRowsPerThread; ++r) {
    const int row_in_tile = Out::row_lane() + Out::kRowLanes * r;
    const int row = query0 + row_in_tile;
    if (row >= L) continue;
    const float inv_sum = 1.f / row_total[row_in_tile];
    float* out_row = o + head_offset + std::int64_t(row) * D;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int d = 4 * Out::dim_group() + e;
      if (d < D) out_row[d] = component(state.acc[r], e) * inv_sum;
    }
  }
}

// ---- backward: D_i = Σ_d dO_id·O_id -----------------------------------------------------------
// One warp per row of [B·H·L, D]; T is float or bfloat16 (summed in float).
template <typename T>
__global__ void attention_row_dot_kernel(const T* __restrict__ dout, const T* __restrict__ o,
                                         float* __restrict__ row_dot, std::int64_t rows, int D) {
  const std::int64_t row = std::int64_t(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32;
  if (row >= rows) return;  // whole warps leave together
  const int lane = threadIdx.x % 32;
  float sum = 0.f;
  for (int d = lane; d < D; d += 32) sum += float(dout[row * D + d]) * float(o[row * D + d]);
  sum = warp_sum(sum);
  if (lane == 0) row_dot[row] = sum;
}

// ---- backward: dK, dV (one block per key tile) and this key tile's share of dQ ---------------
// grid (B·H, ⌈L / kKeys⌉). In the score products thread (ty, tx) owns keys ty + 16·i and queries
// tx + 16·j, and computes S (as K·Qᵀ) and dP (as V·dOᵀ) together; Pᵀ and dSᵀ go to shared memory;
// dV += Pᵀ·dO and dK += dSᵀ·Q accumulate in the output layout over all query tiles.
// kWithDq: also dQ_t = scale·dS·K_t, the sum over this block's keys only, for each query tile,
// written to dq_partial[t] ([⌈L / kKeys⌉, B·H, L, D], t = blockIdx.y); attention_sum_dq_kernel adds
// the tiles in order. That costs one more output product here and the partials' memory traffic,
// where the dQ kernel below recomputes S and dP (two score products) to sum over all keys itself.
template <int kHeadDimPad, int kKeys, int kQueries, bool kWithDq>
__global__ void __launch_bounds__(kThreads)
flash_attention_backward_dkdv_kernel(const float* __restrict__ q, const float* __restrict__ k,
                                     const float* __restrict__ v, const float* __restrict__ dout,
                                     const float* __restrict__ lse,
                                     const float* __restrict__ row_dot, float* __restrict__ dk,
                                     float* __restrict__ dv, float* __restrict__ dq_partial, int L,
                                     int D, float scale, float scale_log2) {
  constexpr int kStride = kTileStride<kHeadDimPad>;
  constexpr int kProbStride = kQueries + 1;
  constexpr int kKeysPerThread = kKeys / kSide;
  constexpr int kQueriesPerThread = kQueries / kSide;
  using Out = FlashOutputLayout<kHeadDimPad>;
  static_assert(kKeys % Out::kRowLanes == 0, "output rows must split evenly over row lanes");
  static_assert(!kWithDq || kQueries % Out::kRowLanes == 0, "dQ rows must split evenly too");
  constexpr int kOutKeysPerThread = kKeys / Out::kRowLanes;
  extern __shared__ float shared[];
  float* k_tile = shared;                                // [kKeys][kStride]
  float* v_tile = k_tile + kKeys * kStride;              // [kKeys][kStride]
  float* q_tile = v_tile + kKeys * kStride;              // [kQueries][kStride]
  float* do_tile = q_tile + kQueries * kStride;          // [kQueries][kStride]
  float* p_tile = do_tile + kQueries * kStride;          // [kKeys][kProbStride]  (Pᵀ)
  float* ds_tile = p_tile + kKeys * kProbStride;         // [kKeys][kProbStride]  (dSᵀ)
  float* lse_tile = ds_tile + kKeys * kProbStride;       // [kQueries], base-2 units
  float* row_dot_tile = lse_tile + kQueries;             // [kQueries]

  const int bh = blockIdx.x;
  const int key0 = blockIdx.y * kKeys;
  const int tx = threadIdx.x % kSide, ty = threadIdx.x / kSide;
  const std::int64_t head_offset = std::int64_t(bh) * L * D;

  load_tile<kKeys, kHeadDimPad, kStride>(k_tile, k + head_offset, key0, L, D);
  load_tile<kKeys, kHeadDimPad, kStride>(v_tile, v + head_offset, key0, L, D);

  float4 acc_dk[kOutKeysPerThread], acc_dv[kOutKeysPerThread];
#pragma unroll
  for (int r = 0; r < kOutKeysPerThread; ++r)
    acc_dk[r] = acc_dv[r] = make_float4(0.f, 0.f, 0.f, 0.f);

  for (int query0 = 0; query0 < L; query0 += kQueries) {
    __syncthreads();  // previous Q, dO, Pᵀ, dSᵀ tiles are no longer read (and K, V are loaded)
    load_tile<kQueries, kHeadDimPad, kStride>(q_tile, q + head_offset, query0, L, D);
    load_tile<kQueries, kHeadDimPad, kStride>(do_tile, dout + head_offset, query0, L, D);
    for (int r = threadIdx.x; r < kQueries; r += kThreads) {
      const int row = query0 + r;
      lse_tile[r] = row < L ? lse[std::int64_t(bh) * L + row] * kLog2e : 0.f;
      row_dot_tile[r] = row < L ? row_dot[std::int64_t(bh) * L + row] : 0.f;
    }
    __syncthreads();

    const int valid_keys = min(kKeys, L - key0), valid_queries = min(kQueries, L - query0);
    float s[kKeysPerThread][kQueriesPerThread], dp[kKeysPerThread][kQueriesPerThread];
    score_tile<kHeadDimPad, kKeysPerThread, kQueriesPerThread, true>(
        k_tile, q_tile, v_tile, do_tile, valid_keys, valid_queries, s, dp);
#pragma unroll
    for (int i = 0; i < kKeysPerThread; ++i)
#pragma unroll
      for (int j = 0; j < kQueriesPerThread; ++j) {
        const int key = key0 + ty + kSide * i, query_in_tile = tx + kSide * j;
        const bool valid = key < L && query0 + query_in_tile < L;
        const float p = valid ? exp2f(s[i][j] * scale_log2 - lse_tile[query_in_tile]) : 0.f;
        p_tile[(ty + kSide * i) * kProbStride + query_in_tile] = p;
        ds_tile[(ty + kSide * i) * kProbStride + query_in_tile] =
            p * (dp[i][j] - row_dot_tile[query_in_tile]);
      }
    __syncthreads();  // Pᵀ, dSᵀ complete

    const int group = Out::dim_group();
    // Queries past L have P = dS = 0 and keys past L are never written: both are skipped.
#pragma unroll 2
    for (int r = 0; r < valid_queries; ++r) {
      const float4 do_val = load_float4(do_tile + r * kStride + 4 * group);
      const float4 q_val = load_float4(q_tile + r * kStride + 4 * group);
#pragma unroll
      for (int i = 0; i < kOutKeysPerThread; ++i) {
        const int key_in_tile = Out::row_lane() + Out::kRowLanes * i;
        if (key_in_tile >= valid_keys) continue;
        axpy4(p_tile[key_in_tile * kProbStride + r], do_val, acc_dv[i]);
        axpy4(ds_tile[key_in_tile * kProbStride + r], q_val, acc_dk[i]);
      }
    }
    if constexpr (kWithDq) {
      // dQ_t[query, :] = scale · Σ_{keys of this tile} dS[query, key]·K[key, :], output layout
      // over the query tile's rows.
      constexpr int kOutQueriesPerThread = kQueries / Out::kRowLanes;
      float4 acc_dq[kOutQueriesPerThread];
#pragma unroll
      for (int r = 0; r < kOutQueriesPerThread; ++r) acc_dq[r] = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 2
      for (int c = 0; c < valid_keys; ++c) {
        const float4 k_val = load_float4(k_tile + c * kStride + 4 * group);
#pragma unroll
        for (int r = 0; r < kOutQueriesPerThread; ++r)
          axpy4(ds_tile[c * kProbStride + Out::row_lane() + Out::kRowLanes * r], k_val, acc_dq[r]);
      }
      float* tile_out = dq_partial + (std::int64_t(blockIdx.y) * gridDim.x + bh) * L * D;
#pragma unroll
      for (int r = 0; r < kOutQueriesPerThread; ++r) {
        const int query = query0 + Out::row_lane() + Out::kRowLanes * r;
        if (query >= L) continue;
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int d = 4 * group + e;
          if (d < D) tile_out[std::int64_t(query) * D + d] = component(acc_dq[r], e) * scale;
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kOutKeysPerThread; ++i) {
    const int key = key0 + Out::row_lane() + Out::kRowLanes * i;
    if (key >= L) continue;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int d = 4 * Out::dim_group() + e;
      if (d >= D) continue;
      dv[head_offset + std::int64_t(key) * D + d] = component(acc_dv[i], e);
      dk[head_offset + std::int64_t(key) * D + d] = component(acc_dk[i], e) * scale;
    }
  }
}

// ---- backward: dQ (one block per query tile) --------------------------------------------------
// grid (B·H, ⌈L / kQueries⌉). Score products in the 16×16 layout (queries ty + 16·i, keys
// tx + 16·j; S and dP together), dS to shared memory, dQ += dS·K in the output layout.
template <int kHeadDimPad, int kQueries, int kKeys>
__global__ void __launch_bounds__(kThreads)
flash_attention_backward_dq_kernel(const float* __restrict__ q, const float* __restrict__ k,
                                   const float* __restrict__ v, const float* __restrict__ dout,
                                   const float* __restrict__ lse, const float* __restrict__ row_dot,
                                   float* __restrict__ dq, int L, int D, float scale,
                                   float scale_log2) {
  constexpr int kStride = kTileStride<kHeadDimPad>;
  constexpr int kScoreStride = kKeys + 1;
  constexpr int kRowsPerThread = kQueries / kSide;
  constexpr int kKeysPerThread = kKeys / kSide;
  using Out = FlashOutputLayout<kHeadDimPad>;
  static_assert(kQueries % Out::kRowLanes == 0, "output rows must split evenly over row lanes");
  constexpr int kOutRowsPerThread = kQueries / Out::kRowLanes;
  extern __shared__ float shared[];
  float* q_tile = shared;                           // [kQueries][kStride]
  float* do_tile = q_tile + kQueries * kStride;     // [kQueries][kStride]
  float* k_tile = do_tile + kQueries * kStride;     // [kKeys][kStride]
  float* v_tile = k_tile + kKeys * kStride;         // [kKeys][kStride]
  float* ds_tile = v_tile + kKeys * kStride;        // [kQueries][kScoreStride]

  const int bh = blockIdx.x;
  const int query0 = blockIdx.y * kQueries;
  const int tx = threadIdx.x % kSide, ty = threadIdx.x / kSide;
  const std::int64_t head_offset = std::int64_t(bh) * L * D;

  load_tile<kQueries, kHeadDimPad, kStride>(q_tile, q + head_offset, query0, L, D);
  load_tile<kQueries, kHeadDimPad, kStride>(do_tile, dout + head_offset, query0, L, D);
  float my_lse[kRowsPerThread], my_row_dot[kRowsPerThread];
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int row = query0 + ty + kSide * i;
    my_lse[i] = row < L ? lse[std::int64_t(bh) * L + row] * kLog2e : 0.f;
    my_row_dot[i] = row < L ? row_dot[std::int64_t(bh) * L + row] : 0.f;
  }
  float4 acc[kOutRowsPerThread];
#pragma unroll
  for (int r = 0; r < kOutRowsPerThread; ++r) acc[r] = make_float4(0.f, 0.f, 0.f, 0.f);

  for (int key0 = 0; key0 < L; key0 += kKeys) {
    __syncthreads();  // previous K, V, dS tiles are no longer read (and Q, dO are loaded)
    load_tile<kKeys, kHeadDimPad, kStride>(k_tile, k + head_offset, key0, L, D);
    load_tile<kKeys, kHeadDimPad, kStride>(v_tile, v + head_offset, key0, L, D);
    __syncthreads();

    const int valid_keys = min(kKeys, L - key0);
    float s[kRowsPerThread][kKeysPerThread], dp[kRowsPerThread][kKeysPerThread];
    score_tile<kHeadDimPad, kRowsPerThread, kKeysPerThread, true>(
        q_tile, k_tile, do_tile, v_tile, L - query0, valid_keys, s, dp);
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
      for (int j = 0; j < kKeysPerThread; ++j) {
        const bool valid = query0 + ty + kSide * i < L && key0 + tx + kSide * j < L;
        const float p = valid ? exp2f(s[i][j] * scale_log2 - my_lse[i]) : 0.f;
        ds_tile[(ty + kSide * i) * kScoreStride + tx + kSide * j] = p * (dp[i][j] - my_row_dot[i]);
      }
    __syncthreads();  // dS complete

    const int group = Out::dim_group();
#pragma unroll 4
    for (int c = 0; c < valid_keys; ++c) {  // dS = 0 for keys past L
      const float4 k_val = load_float4(k_tile + c * kStride + 4 * group);
#pragma unroll
      for (int r = 0; r < kOutRowsPerThread; ++r)
        if (Out::row_lane() + Out::kRowLanes * r < L - query0)
          axpy4(ds_tile[(Out::row_lane() + Out::kRowLanes * r) * kScoreStride + c], k_val, acc[r]);
    }
  }

#pragma unroll
  for (int r = 0; r < kOutRowsPerThread; ++r) {
    const int row = query0 + Out::row_lane() + Out::kRowLanes * r;
    if (row >= L) continue;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int d = 4 * Out::dim_group() + e;
      if (d < D) dq[head_offset + std::int64_t(row) * D + d] = component(acc[r], e) * scale;
    }
  }
}

// ---- backward: dQ = Σ_t dQ_t over the key tiles, t ascending (deterministic) ----------------------
// The shares are float; dQ is float or bfloat16 (rounded once, after the sum).
template <typename T>
__global__ void attention_sum_dq_kernel(const float* __restrict__ dq_partial, T* __restrict__ dq,
                                        std::int64_t size, int tiles) {
  const std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size) return;
  float sum = 0.f;
  for (int t = 0; t < tiles; ++t) sum += dq_partial[t * size + i];
  dq[i] = T(sum);
}

// ---- host side --------------------------------------------------------------------------------
template <int kHeadDimPad>
void launch_forward(const float* q, const float* k, const float* v, float* o, float* lse, int BH,
                    int L, int D, float scale) {
  using Tiles = FlashTiles<kHeadDimPad>;
  constexpr int kQ = Tiles::kForwardQueries, kK = Tiles::kForwardKeys;
  constexpr std::size_t kStride = kTileStride<kHeadDimPad>;
  constexpr std::size_t kSharedBytes =
      sizeof(float) * (kQ * kStride + kK * kStride + kK * kHeadDimPad + kQ * (kK + 1) + 2 * kQ);
  auto kernel = flash_attention_forward_kernel<kHeadDimPad, kQ, kK>;
  static const bool configured = (allow_dynamic_shared_memory(kernel, kSharedBytes), true);
  (void)configured;
  const dim3 grid{unsigned(BH), unsigned(ceil_div(L, kQ))};
  kernel<<<grid, kThreads, kSharedBytes, cuda_stream()>>>(q, k, v, o, lse, L, D, scale * kLog2e);
  FM_CUDA_CHECK_LAUNCH();
}

template <int kHeadDimPad>
void launch_backward(const float* q, const float* k, const float* v, const float* dout,
                     const float* lse, const float* row_dot, float* dq, float* dk, float* dv,
                     int BH, int L, int D, float scale) {
  using Tiles = FlashTiles<kHeadDimPad>;
  cudaStream_t stream = cuda_stream();
  constexpr int kDkDvKeys = Tiles::kDkDvKeys, kDkDvQueries = Tiles::kDkDvQueries;
  const int key_tiles = int(ceil_div(L, kDkDvKeys));
  const bool dq_from_partials = key_tiles <= kMaxDqPartialTiles;
  const std::int64_t dq_size = std::int64_t(BH) * L * D;
  {
    constexpr std::size_t kStride = kTileStride<kHeadDimPad>;
    constexpr std::size_t kSharedBytes =
        sizeof(float) * (2 * kDkDvKeys * kStride + 2 * kDkDvQueries * kStride +
                         2 * kDkDvKeys * (kDkDvQueries + 1) + 2 * kDkDvQueries);
    const dim3 grid{unsigned(BH), unsigned(key_tiles)};
    if (dq_from_partials) {
      // One key tile: its partial is dQ itself.
      float* partial = key_tiles == 1 ? dq
                                      : static_cast<float*>(cuda_malloc(
                                            std::size_t(dq_size) * key_tiles * sizeof(float)));
      auto kernel = flash_attention_backward_dkdv_kernel<kHeadDimPad, kDkDvKeys, kDkDvQueries, true>;
      static const bool configured = (allow_dynamic_shared_memory(kernel, kSharedBytes), true);
      (void)configured;
      kernel<<<grid, kThreads, kSharedBytes, stream>>>(q, k, v, dout, lse, row_dot, dk, dv, partial,
                                                       L, D, scale, scale * kLog2e);
      FM_CUDA_CHECK_LAUNCH();
      if (key_tiles > 1) {
        attention_sum_dq(partial, dq, dq_size, key_tiles);
        cuda_free(partial);  // stream-ordered reuse by the caching allocator: no sync needed
      }
      return;
    }
    auto kernel = flash_attention_backward_dkdv_kernel<kHeadDimPad, kDkDvKeys, kDkDvQueries, false>;
    static const bool configured = (allow_dynamic_shared_memory(kernel, kSharedBytes), true);
    (void)configured;
    kernel<<<grid, kThreads, kSharedBytes, stream>>>(q, k, v, dout, lse, row_dot, dk, dv, nullptr,
                                                     L, D, scale, scale * kLog2e);
    FM_CUDA_CHECK_LAUNCH();
  }
  {
    constexpr int kQ = Tiles::kDqQueries, kK = Tiles::kDqKeys;
    constexpr std::size_t kStride = kTileStride<kHeadDimPad>;
    constexpr std::size_t kSharedBytes =
        sizeof(float) * (2 * kQ * kStride + 2 * kK * kStride + kQ * (kK + 1));
    auto kernel = flash_attention_backward_dq_kernel<kHeadDimPad, kQ, kK>;
    static const bool configured = (allow_dynamic_shared_memory(kernel, kSharedBytes), true);
    (void)configured;
    const dim3 grid{unsigned(BH), unsigned(ceil_div(L, kQ))};
    kernel<<<grid, kThreads, kSharedBytes, stream>>>(q, k, v, dout, lse, row_dot, dq, L, D, scale,
                                                     scale * kLog2e);
    FM_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void check_flash_sizes(const char* op, int B, int H, int L, int D) {
  check_attention_sizes(op, B, H, L, D);
  FM_CHECK(D <= 128, ValueError, op, ": head dim D=", D, " is above the supported maximum 128");
  FM_CHECK(std::int64_t(L) <= std::int64_t(65535) * 16, ValueError, op, ": L=", L,
           " needs more query tiles than grid.y allows");
}

template <typename T>
float* attention_row_dots(const T* dout, const T* o, std::int64_t rows, int D) {
  float* row_dot = static_cast<float*>(cuda_malloc(std::size_t(rows) * sizeof(float)));
  const unsigned row_blocks = unsigned(ceil_div(rows, kThreads / 32));
  attention_row_dot_kernel<T><<<row_blocks, kThreads, 0, cuda_stream()>>>(dout, o, row_dot, rows, D);
  FM_CUDA_CHECK_LAUNCH();
  return row_dot;
}
template float* attention_row_dots<float>(const float*, const float*, std::int64_t, int);
template float* attention_row_dots<bf16>(const bf16*, const bf16*, std::int64_t, int);

template <typename T>
void attention_sum_dq(const float* partial, T* dq, std::int64_t size, int tiles) {
  attention_sum_dq_kernel<T><<<unsigned(ceil_div(size, kThreads)), kThreads, 0, cuda_stream()>>>(partial, dq, size,
                                                                                                 tiles);
  FM_CUDA_CHECK_LAUNCH();
}
template void attention_sum_dq<float>(const float*, float*, std::int64_t, int);
template void attention_sum_dq<bf16>(const float*, bf16*, std::int64_t, int);

void attention_forward_cuda_flash(const float* q, const float* k, const float* v, float* o,
                                  float* lse, int B, int H, int L, int D, float scale) {
  check_flash_sizes("attention_forward_cuda_flash", B, H, L, D);
  const int BH = B * H;
  if (BH == 0) return;
  if (D <= 16) launch_forward<16>(q, k, v, o, lse, BH, L, D, scale);
  else if (D <= 32) launch_forward<32>(q, k, v, o, lse, BH, L, D, scale);
  else if (D <= 64) launch_forward<64>(q, k, v, o, lse, BH, L, D, scale);
  else launch_forward<128>(q, k, v, o, lse, BH, L, D, scale);
}

void attention_backward_cuda_flash(const float* q, const float* k, const float* v, const float* o,
                                   const float* dout, const float* lse, float* dq, float* dk,
                                   float* dv, int B, int H, int L, int D, float scale) {
  check_flash_sizes("attention_backward_cuda_flash", B, H, L, D);
  const int BH = B * H;
  if (BH == 0) return;
  float* row_dot = attention_row_dots(dout, o, std::int64_t(BH) * L, D);
  attention_backward_fp32_with_row_dots(q, k, v, dout, lse, row_dot, dq, dk, dv, BH, L, D, scale);
  cuda_free(row_dot);  // stream-ordered reuse by the caching allocator: no sync needed
}

void attention_backward_fp32_with_row_dots(const float* q, const float* k, const float* v, const float* dout,
                                           const float* lse, const float* row_dot, float* dq, float* dk, float* dv,
                                           int BH, int L, int D, float scale) {
  if (D <= 16) launch_backward<16>(q, k, v, dout, lse, row_dot, dq, dk, dv, BH, L, D, scale);
  else if (D <= 32) launch_backward<32>(q, k, v, dout, lse, row_dot, dq, dk, dv, BH, L, D, scale);
  else if (D <= 64) launch_backward<64>(q, k, v, dout, lse, row_dot, dq, dk, dv, BH, L, D, scale);
  else launch_backward<128>(q, k, v, dout, lse, row_dot, dq, dk, dv, BH, L, D, scale);
}

}  // namespace fm::kernels
