// kernels/cuda/attention_flash_tensor_cores.cu — the fused attention of attention_flash.cu with its
// matrix products on the tensor cores: inputs rounded to TF32 or bfloat16 as they are staged, FP32
// accumulation, the softmax and every running sum in FP32 (kernels/attention.h:
// attention_{forward,backward}_cuda_flash with GemmMath::Tf32 or Bf16). Formulas: kernels/attention.h.
// The kernels are templates over the activations' type A: float, or bfloat16 (the bfloat16 overloads,
// always Bf16Inputs), where a tile loads without a rounding, the same FP32 work follows, and O, dK, dV
// and dQ are rounded once as they are stored. lse, D_i and dQ's key-tile shares stay float.
//
// Layer: kernels/cuda (hand-written kernels over device pointers, launched on cuda_stream()).
//
// The algorithm is the FP32 kernels' (online softmax over key tiles; a key-tile backward that keeps
// dK and dV on chip and writes each key tile's share of dQ for a fixed-order sum), with one change of
// layout: a product's result lives in WMMA accumulator fragments, whose element-to-thread mapping the
// API does not define. So every product whose result needs elementwise work (S, dP, P·V, dQ's share)
// is stored to a shared FP32 tile and the elementwise code reads it there in the FP32 kernels' known
// layouts; only dK and dV, which just accumulate, stay in fragments across query tiles. That costs a
// shared-memory round trip per product, the price of staying with the portable WMMA API
// (docs/ops/tensor_cores.md §5; the mma.sync PTX instructions define the layout and would avoid it).
//
// Tiles: 64 query rows per forward block (8 warps; each warp takes 16×16 output fragments in turn),
// key tiles of 64 (32 for head dims above 64; shared memory per block then stays within 112 KB, which
// sm_80 and sm_90 allow but sm_86 and sm_89, at 99 KB, do not; the build targets sm_90 by default); the inputs' tiles
// hold TF32 values in floats or bfloat16, rows padded by 16 bytes (tensor_core_inputs.cuh). Head dims
// are padded to 16, 32, 64 or 128 with zeros, as in the FP32 kernels, so every product's k extent is a
// multiple of the WMMA step.
//
// Error: each product's inputs carry one rounding (2^-11 TF32, 2^-8 bfloat16 relative), P and dS
// included, which are rounded as they are written for the next product; the row sums of the softmax
// use the unrounded P. tests/test_kernel_attention.cpp checks a bound derived from that.
//
// Not here: the tail-key-tile and padding skips of the FP32 kernels, double buffering, and the dQ
// kernel for long sequences — above kMaxDqPartialTiles key tiles the backward runs the FP32 kernels
// (attention_flash.cu), which then decide the result.
#include <cmath>
#include <cstdint>
#include <mma.h>
#include <type_traits>

#include "kernels/attention.h"
#include "kernels/cuda/attention_flash_parts.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/tensor_core_inputs.cuh"
#include "kernels/elementwise.h"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

using namespace nvcuda;

constexpr int kThreads = kFlashThreads, kWarps = kThreads / 32;
constexpr int kSide = 16;  // the softmax's thread grid is kSide × kSide, as in attention_flash.cu
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr int kFragment = 16;  // WMMA output fragments are 16 × 16

// The dynamic shared memory's element type: WMMA pointers must be 32-byte aligned, and the tiles are
// laid out from the start in multiples of 32 bytes.
struct alignas(32) SharedChunk {
  float values[8];
};

// Tile sizes per padded head dim (rows of Q per forward block, keys per tile; keys per backward block,
// queries per tile).
template <int kHeadDimPad>
struct TensorCoreTiles {
  static constexpr int kForwardQueries = 64, kForwardKeys = kHeadDimPad <= 64 ? 64 : 32;
  static constexpr int kBackwardKeys = attention_tensor_core_backward_keys(kHeadDimPad);  // (kernels/attention.h)
  static constexpr int kBackwardQueries = kHeadDimPad <= 32 ? 64 : 32;
};

// The FP32 scratch tiles' row stride: 4 floats of padding (16 bytes), as the input tiles.
constexpr int float_stride(int columns) { return columns + 4; }
constexpr int larger(int a, int b) { return a > b ? a : b; }

// Rows [row0, row0 + kRows) of one head's [L, D] matrix (A: float, or bfloat16 activations) into a shared
// tile of row stride kLd, converted to the input format (exact for bfloat16 into bfloat16), zero past L
// and past D.
template <class Inputs, int kRows, int kHeadDimPad, int kLd, typename A>
__device__ __forceinline__ void load_tile(typename Inputs::Element* __restrict__ tile, const A* __restrict__ head,
                                          int row0, int L, int D) {
  for (int idx = threadIdx.x; idx < kRows * kHeadDimPad; idx += kThreads) {
    const int r = idx / kHeadDimPad, d = idx % kHeadDimPad;
    const int row = row0 + r;
    tile[r * kLd + d] = Inputs::convert((row < L && d < D) ? float(head[std::int64_t(row) * D + d]) : 0.f);
  }
}

// C[kM × kN] = A[kM × kK]·B[kK × kN] from shared tiles into a shared FP32 tile (row stride ldc). Warps
// take C's 16×16 fragments in turn. A is row-major (lda) or, with kATransposed, stored as Aᵀ [kK × kM];
// B is row-major [kK × kN] (ldb) or, with kBTransposed, stored as Bᵀ [kN × kK].
template <class Inputs, int kM, int kN, int kK, bool kATransposed, bool kBTransposed>
__device__ __forceinline__ void product_to_shared(const typename Inputs::Element* a, int lda,
                                                  const typename Inputs::Element* b, int ldb, float* c,
                                                  int ldc) {
  using LayoutA = std::conditional_t<kATransposed, wmma::col_major, wmma::row_major>;
  using LayoutB = std::conditional_t<kBTransposed, wmma::col_major, wmma::row_major>;
  constexpr int kStep = Inputs::kStepK;
  constexpr int kColumnFragments = kN / kFragment;
  static_assert(kM % kFragment == 0 && kN % kFragment == 0 && kK % kStep == 0, "tile is not a fragment multiple");
  const int warp = threadIdx.x / 32;
  for (int f = warp; f < (kM / kFragment) * kColumnFragments; f += kWarps) {
    const int m0 = (f / kColumnFragments) * kFragment, n0 = (f % kColumnFragments) * kFragment;
    wmma::fragment<wmma::accumulator, 16, 16, kStep, float> acc;
    wmma::fill_fragment(acc, 0.f);
    for (int k0 = 0; k0 < kK; k0 += kStep) {
      wmma::fragment<wmma::matrix_a, 16, 16, kStep, typename Inputs::Fragment, LayoutA> a_frag;
      wmma::fragment<wmma::matrix_b, 16, 16, kStep, typename Inputs::Fragment, LayoutB> b_frag;
      wmma::load_matrix_sync(a_frag, kATransposed ? a + k0 * lda + m0 : a + m0 * lda + k0, lda);
      wmma::load_matrix_sync(b_frag, kBTransposed ? b + n0 * ldb + k0 : b + k0 * ldb + n0, ldb);
      wmma::mma_sync(acc, a_frag, b_frag, acc);
    }
    wmma::store_matrix_sync(c + m0 * ldc + n0, acc, ldc, wmma::mem_row_major);
  }
}

// ---- forward ----------------------------------------------------------------------------------
// grid (B·H, ⌈L / kQueries⌉). Per key tile: S = Q·Kᵀ on the tensor cores into a shared FP32 tile; the
// online softmax in the 16×16 layout (rows ty + 16·i, keys tx + 16·j) writes P, rounded, and each
// row's rescale factor; P·V on the tensor cores into the same FP32 tile; O = O·rescale + P·V in
// registers of the output layout.
template <class Inputs, int kHeadDimPad>
struct ForwardShape {
  using Tiles = TensorCoreTiles<kHeadDimPad>;
  static constexpr int kQueries = Tiles::kForwardQueries, kKeys = Tiles::kForwardKeys;
  static constexpr int kLd = kHeadDimPad + Inputs::kPad;      // Q, K, V tiles
  static constexpr int kProbLd = kKeys + Inputs::kPad;        // P
  static constexpr int kScoreLd = float_stride(kKeys);        // S
  static constexpr int kOutLd = float_stride(kHeadDimPad);    // P·V (same buffer as S)
  static constexpr int kScratchFloats = kQueries * larger(kScoreLd, kOutLd);
  using Element = typename Inputs::Element;
  static constexpr std::size_t kSharedBytes =
      sizeof(Element) * ((kQueries + 2 * kKeys) * kLd + kQueries * kProbLd) +
      sizeof(float) * (kScratchFloats + 2 * kQueries);
};

// A: the activations' type (q, k, v, o): float, or bfloat16 with Bf16Inputs.
template <class Inputs, int kHeadDimPad, typename A>
__global__ void __launch_bounds__(kThreads)
flash_tc_forward_kernel(const A* __restrict__ q, const A* __restrict__ k, const A* __restrict__ v,
                        A* __restrict__ o, float* __restrict__ lse, int L, int D, float scale_log2) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // TF32 and bfloat16 tensor cores start with sm_80
#else
  using Shape = ForwardShape<Inputs, kHeadDimPad>;
  using Element = typename Inputs::Element;
  using Out = FlashOutputLayout<kHeadDimPad>;
  constexpr int kQueries = Shape::kQueries, kKeys = Shape::kKeys, kLd = Shape::kLd;
  constexpr int kRowsPerThread = kQueries / kSide, kKeysPerThread = kKeys / kSide;
  constexpr int kOutRowsPerThread = kQueries / Out::kRowLanes;
  static_assert(kQueries % Out::kRowLanes == 0, "output rows must split evenly over row lanes");
  extern __shared__ SharedChunk shared_chunks[];
  Element* q_tile = reinterpret_cast<Element*>(shared_chunks);  // [kQueries][kLd]
  Element* k_tile = q_tile + kQueries * kLd;                     // [kKeys][kLd]
  Element* v_tile = k_tile + kKeys * kLd;                        // [kKeys][kLd]
  Element* p_tile = v_tile + kKeys * kLd;                        // [kQueries][kProbLd]
  float* scratch = reinterpret_cast<float*>(p_tile + kQueries * Shape::kProbLd);  // S, then P·V
  float* row_rescale = scratch + Shape::kScratchFloats;          // [kQueries]
  float* row_total = row_rescale + kQueries;                     // [kQueries]

  const int bh = blockIdx.x, query0 = blockIdx.y * kQueries;
  const int tx = threadIdx.x % kSide, ty = threadIdx.x / kSide;
  const std::int64_t head_offset = std::int64_t(bh) * L * D;
  load_tile<Inputs, kQueries, kHeadDimPad, kLd>(q_tile, q + head_offset, query0, L, D);

  float row_max[kRowsPerThread], row_sum[kRowsPerThread];
  float4 acc[kOutRowsPerThread];
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) row_max[i] = -INFINITY, row_sum[i] = 0.f;
#pragma unroll
  for (int r = 0; r < kOutRowsPerThread; ++r) acc[r] = make_float4(0.f, 0.f, 0.f, 0.f);

  for (int key0 = 0; key0 < L; key0 += kKeys) {
    __syncthreads();  // the previous tile's K, V, P and P·V are no longer read
    load_tile<Inputs, kKeys, kHeadDimPad, kLd>(k_tile, k + head_offset, key0, L, D);
    load_tile<Inputs, kKeys, kHeadDimPad, kLd>(v_tile, v + head_offset, key0, L, D);
    __syncthreads();
    // S = Q·Kᵀ: K's rows are Kᵀ's columns, so K's tile is Kᵀ stored column-major.
    product_to_shared<Inputs, kQueries, kKeys, kHeadDimPad, false, true>(q_tile, kLd, k_tile, kLd, scratch,
                                                                         Shape::kScoreLd);
    __syncthreads();

#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
      const int row = ty + kSide * i;
      float s[kKeysPerThread], tile_max = -INFINITY;
#pragma unroll
      for (int j = 0; j < kKeysPerThread; ++j) {
        const bool valid_key = key0 + tx + kSide * j < L;
        s[j] = valid_key ? scratch[row * Shape::kScoreLd + tx + kSide * j] * scale_log2 : -INFINITY;
        tile_max = fmaxf(tile_max, s[j]);
      }
      // key0 < L, so every tile holds a valid key and new_max is finite (see attention_flash.cu).
      const float new_max = fmaxf(row_max[i], warp_max<kSide>(tile_max));
      const float rescale = exp2f(row_max[i] - new_max);  // 0 on the first tile
      float tile_sum = 0.f;
#pragma unroll
      for (int j = 0; j < kKeysPerThread; ++j) {
        const float p = exp2f(s[j] - new_max);  // masked keys: 0
        p_tile[row * Shape::kProbLd + tx + kSide * j] = Inputs::convert(p);
        tile_sum += p;
      }
      row_sum[i] = row_sum[i] * rescale + warp_sum<kSide>(tile_sum);
      row_max[i] = new_max;
      if (tx == 0) row_rescale[row] = rescale;
    }
    __syncthreads();  // P and the rescale factors complete; S is no longer read

    product_to_shared<Inputs, kQueries, kHeadDimPad, kKeys, false, false>(p_tile, Shape::kProbLd, v_tile, kLd,
                                                                          scratch, Shape::kOutLd);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kOutRowsPerThread; ++r) {
      const int row = Out::row_lane() + Out::kRowLanes * r;
      const float rescale = row_rescale[row];
      const float4 pv = *reinterpret_cast<const float4*>(scratch + row * Shape::kOutLd + 4 * Out::dim_group());
      acc[r].x = fmaf(acc[r].x, rescale, pv.x);
      acc[r].y = fmaf(acc[r].y, rescale, pv.y);
      acc[r].z = fmaf(acc[r].z, rescale, pv.z);
      acc[r].w = fmaf(acc[r].w, rescale, pv.w);
    }
  }

#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int row_in_tile = ty + kSide * i, row = query0 + row_in_tile;
    if (tx == 0) row_total[row_in_tile] = row_sum[i];
    if (tx == 0 && row < L) lse[std::int64_t(bh) * L + row] = kLn2 * (row_max[i] + log2f(row_sum[i]));
  }
  __syncthreads();
#pragma unroll
  for (int r = 0; r < kOutRowsPerThread; ++r) {
    const int row_in_tile = Out::row_lane() + Out::kRowLanes * r, row = query0 + row_in_tile;
    if (row >= L) continue;
    const float inv_sum = 1.f / row_total[row_in_tile];
    const float values[4] = {acc[r].x, acc[r].y, acc[r].z, acc[r].w};
    A* out_row = o + head_offset + std::int64_t(row) * D;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int d = 4 * Out::dim_group() + e;
      if (d < D) out_row[d] = A(values[e] * inv_sum);
    }
  }
#endif
}

// ---- backward: dK, dV and this key tile's share of dQ -------------------------------------------
// grid (B·H, ⌈L / kKeys⌉). Per query tile: Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ on the tensor cores into shared
// FP32 tiles; Pᵀ = exp(Sᵀ·scale − lse) and dSᵀ = Pᵀ ∘ (dPᵀ − D_i), rounded into input tiles;
// dV += Pᵀ·dO and dK += dSᵀ·Q in accumulator fragments that stay in registers over all query tiles;
// dQ_t = dS·K (dSᵀ read column-major) through a shared FP32 tile to dq_partial[t] ([key tiles, B·H,
// L, D], t = blockIdx.y), which attention_sum_dq_kernel adds in key-tile order.
template <class Inputs, int kHeadDimPad>
struct BackwardShape {
  using Tiles = TensorCoreTiles<kHeadDimPad>;
  static constexpr int kKeys = Tiles::kBackwardKeys, kQueries = Tiles::kBackwardQueries;
  static constexpr int kLd = kHeadDimPad + Inputs::kPad;    // K, V, Q, dO tiles
  static constexpr int kProbLd = kQueries + Inputs::kPad;   // Pᵀ, dSᵀ
  static constexpr int kScoreLd = float_stride(kQueries);   // Sᵀ, dPᵀ
  static constexpr int kOutLd = float_stride(kHeadDimPad);  // dQ_t, and dK, dV at the end
  static constexpr int kScratchFloats =
      larger(2 * kKeys * kScoreLd, larger(kQueries, kKeys) * kOutLd);
  using Element = typename Inputs::Element;
  static constexpr std::size_t kSharedBytes =
      sizeof(Element) * (2 * (kKeys + kQueries) * kLd + 2 * kKeys * kProbLd) +
      sizeof(float) * (kScratchFloats + 2 * kQueries);
  // dV and dK: (kKeys / 16)·(kHeadDimPad / 16) fragments each. The 2·kOutFragments tasks (dV's fragments,
  // then dK's) are dealt to the warps in turn, so at head dim 16 (4 fragments each) all 8 warps work.
  static constexpr int kOutFragments = (kKeys / kFragment) * (kHeadDimPad / kFragment);
  static constexpr int kTasks = 2 * kOutFragments;
  static constexpr int kTasksPerWarp = (kTasks + kWarps - 1) / kWarps;
};

// Writes rows [row0, row0 + rows) × [0, D) of a shared FP32 tile (row stride ld), times factor, to a
// [L, D] matrix of float or bfloat16 (rounded once); rows past L are skipped.
template <int kRows, int kHeadDimPad, typename Out>
__device__ __forceinline__ void write_rows(Out* __restrict__ out, const float* tile, int ld, int row0, int L, int D,
                                           float factor) {
  for (int idx = threadIdx.x; idx < kRows * kHeadDimPad; idx += kThreads) {
    const int r = idx / kHeadDimPad, d = idx % kHeadDimPad, row = row0 + r;
    if (row < L && d < D) out[std::int64_t(row) * D + d] = Out(tile[r * ld + d] * factor);
  }
}

// A: the activations' type (q, k, v, dO, dK, dV), as in the forward. Share: the type of dq_partial, float,
// or A when there is one key tile and its share is dQ itself.
template <class Inputs, int kHeadDimPad, typename A, typename Share>
__global__ void __launch_bounds__(kThreads)
flash_tc_backward_kernel(const A* __restrict__ q, const A* __restrict__ k, const A* __restrict__ v,
                         const A* __restrict__ dout, const float* __restrict__ lse,
                         const float* __restrict__ row_dot, A* __restrict__ dk, A* __restrict__ dv,
                         Share* __restrict__ dq_partial, int L, int D, float scale, float scale_log2) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // TF32 and bfloat16 tensor cores start with sm_80
#else
  using Shape = BackwardShape<Inputs, kHeadDimPad>;
  using Element = typename Inputs::Element;
  constexpr int kKeys = Shape::kKeys, kQueries = Shape::kQueries, kLd = Shape::kLd;
  constexpr int kProbLd = Shape::kProbLd, kScoreLd = Shape::kScoreLd, kOutLd = Shape::kOutLd;
  constexpr int kStep = Inputs::kStepK;
  constexpr int kDimFragments = kHeadDimPad / kFragment;
  extern __shared__ SharedChunk shared_chunks[];
  Element* k_tile = reinterpret_cast<Element*>(shared_chunks);  // [kKeys][kLd]
  Element* v_tile = k_tile + kKeys * kLd;                        // [kKeys][kLd]
  Element* q_tile = v_tile + kKeys * kLd;                        // [kQueries][kLd]
  Element* do_tile = q_tile + kQueries * kLd;                    // [kQueries][kLd]
  Element* pt_tile = do_tile + kQueries * kLd;                   // [kKeys][kProbLd]  Pᵀ
  Element* dst_tile = pt_tile + kKeys * kProbLd;                 // [kKeys][kProbLd]  dSᵀ
  float* scratch = reinterpret_cast<float*>(dst_tile + kKeys * kProbLd);
  float* st_tile = scratch;                                      // [kKeys][kScoreLd]  Sᵀ
  float* dpt_tile = scratch + kKeys * kScoreLd;                  // [kKeys][kScoreLd]  dPᵀ
  float* lse_tile = scratch + Shape::kScratchFloats;             // [kQueries], base-2 units
  float* row_dot_tile = lse_tile + kQueries;                     // [kQueries]

  const int bh = blockIdx.x, key0 = blockIdx.y * kKeys;
  const int warp = threadIdx.x / 32;
  const std::int64_t head_offset = std::int64_t(bh) * L * D;
  load_tile<Inputs, kKeys, kHeadDimPad, kLd>(k_tile, k + head_offset, key0, L, D);
  load_tile<Inputs, kKeys, kHeadDimPad, kLd>(v_tile, v + head_offset, key0, L, D);

  // This warp's dV and dK fragments (tasks warp + kWarps·i), kept across all query tiles.
  wmma::fragment<wmma::accumulator, 16, 16, kStep, float> acc[Shape::kTasksPerWarp];
#pragma unroll
  for (int i = 0; i < Shape::kTasksPerWarp; ++i) wmma::fill_fragment(acc[i], 0.f);

  for (int query0 = 0; query0 < L; query0 += kQueries) {
    __syncthreads();  // the previous tile's Q, dO, Pᵀ, dSᵀ and dQ share are no longer read
    load_tile<Inputs, kQueries, kHeadDimPad, kLd>(q_tile, q + head_offset, query0, L, D);
    load_tile<Inputs, kQueries, kHeadDimPad, kLd>(do_tile, dout + head_offset, query0, L, D);
    for (int r = threadIdx.x; r < kQueries; r += kThreads) {
      const int row = query0 + r;
      lse_tile[r] = row < L ? lse[std::int64_t(bh) * L + row] * kLog2e : 0.f;
      row_dot_tile[r] = row < L ? row_dot[std::int64_t(bh) * L + row] : 0.f;
    }
    __syncthreads();
    // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ (Q's and dO's tiles are Qᵀ and dOᵀ stored column-major).
    product_to_shared<Inputs, kKeys, kQueries, kHeadDimPad, false, true>(k_tile, kLd, q_tile, kLd, st_tile,
                                                                         kScoreLd);
    product_to_shared<Inputs, kKeys, kQueries, kHeadDimPad, false, true>(v_tile, kLd, do_tile, kLd, dpt_tile,
                                                                         kScoreLd);
    __syncthreads();
    for (int idx = threadIdx.x; idx < kKeys * kQueries; idx += kThreads) {
      const int key_in_tile = idx / kQueries, query_in_tile = idx % kQueries;
      const bool valid = key0 + key_in_tile < L && query0 + query_in_tile < L;
      const float p =
          valid ? exp2f(st_tile[key_in_tile * kScoreLd + query_in_tile] * scale_log2 - lse_tile[query_in_tile]) : 0.f;
      const float ds = p * (dpt_tile[key_in_tile * kScoreLd + query_in_tile] - row_dot_tile[query_in_tile]);
      pt_tile[key_in_tile * kProbLd + query_in_tile] = Inputs::convert(p);
      dst_tile[key_in_tile * kProbLd + query_in_tile] = Inputs::convert(ds);
    }
    __syncthreads();  // Pᵀ, dSᵀ complete; Sᵀ and dPᵀ are no longer read

    // dV += Pᵀ·dO (tasks below kOutFragments) and dK += dSᵀ·Q (the rest), fragment f = task mod
    // kOutFragments of the [kKeys, kHeadDimPad] output.
#pragma unroll
    for (int i = 0; i < Shape::kTasksPerWarp; ++i) {
      const int task = warp + kWarps * i;
      // A test, not a break: the loop must unroll fully for acc[i] to stay in registers.
      if (task >= Shape::kTasks) continue;  // uniform per warp
      const bool dk_task = task >= Shape::kOutFragments;
      const int f = task % Shape::kOutFragments;
      const int m0 = (f / kDimFragments) * kFragment, n0 = (f % kDimFragments) * kFragment;
      const Element* a = dk_task ? dst_tile : pt_tile;
      const Element* b = dk_task ? q_tile : do_tile;
#pragma unroll 2
      for (int k0 = 0; k0 < kQueries; k0 += kStep) {
        wmma::fragment<wmma::matrix_a, 16, 16, kStep, typename Inputs::Fragment, wmma::row_major> a_frag;
        wmma::fragment<wmma::matrix_b, 16, 16, kStep, typename Inputs::Fragment, wmma::row_major> b_frag;
        wmma::load_matrix_sync(a_frag, a + m0 * kProbLd + k0, kProbLd);
        wmma::load_matrix_sync(b_frag, b + k0 * kLd + n0, kLd);
        wmma::mma_sync(acc[i], a_frag, b_frag, acc[i]);
      }
    }
    // dQ_t = dS·K for this query tile: dS is dSᵀ's tile read column-major.
    product_to_shared<Inputs, kQueries, kHeadDimPad, kKeys, true, false>(dst_tile, kProbLd, k_tile, kLd, scratch,
                                                                         kOutLd);
    __syncthreads();
    write_rows<kQueries, kHeadDimPad>(dq_partial + std::int64_t(blockIdx.y) * gridDim.x * L * D + head_offset,
                                      scratch, kOutLd, query0, L, D, scale);
  }

  // dV, then dK, through the scratch tile to memory (keys past L skipped; dK gets the scale).
  auto write_out = [&](bool dk_pass, A* out, float factor) {
    __syncthreads();  // the scratch tile is free
#pragma unroll
    for (int i = 0; i < Shape::kTasksPerWarp; ++i) {
      const int task = warp + kWarps * i;
      if (task >= Shape::kTasks || (task >= Shape::kOutFragments) != dk_pass) continue;
      const int f = task % Shape::kOutFragments;
      const int m0 = (f / kDimFragments) * kFragment, n0 = (f % kDimFragments) * kFragment;
      wmma::store_matrix_sync(scratch + m0 * kOutLd + n0, acc[i], kOutLd, wmma::mem_row_major);
    }
    __syncthreads();
    write_rows<kKeys, kHeadDimPad>(out + head_offset, scratch, kOutLd, key0, L, D, factor);
  };
  write_out(false, dv, 1.f);
  write_out(true, dk, scale);
#endif
}

// ---- host side --------------------------------------------------------------------------------
template <class Inputs, int kHeadDimPad, typename A>
void launch_forward(const A* q, const A* k, const A* v, A* o, float* lse, int BH, int L, int D, float scale) {
  require_tensor_cores("attention (tensor cores)");
  using Shape = ForwardShape<Inputs, kHeadDimPad>;
  auto kernel = flash_tc_forward_kernel<Inputs, kHeadDimPad, A>;
  static const bool configured = (allow_dynamic_shared_memory(kernel, Shape::kSharedBytes), true);
  (void)configured;
  const dim3 grid{unsigned(BH), unsigned(ceil_div(L, Shape::kQueries))};
  kernel<<<grid, kThreads, Shape::kSharedBytes, cuda_stream()>>>(q, k, v, o, lse, L, D, scale * kLog2e);
  FM_CUDA_CHECK_LAUNCH();
}

template <class Inputs, int kHeadDimPad, typename A, typename Share>
void launch_backward_kernel(const A* q, const A* k, const A* v, const A* dout, const float* lse,
                            const float* row_dot, Share* dq_partial, A* dk, A* dv, int BH, int key_tiles, int L,
                            int D, float scale) {
  using Shape = BackwardShape<Inputs, kHeadDimPad>;
  auto kernel = flash_tc_backward_kernel<Inputs, kHeadDimPad, A, Share>;
  static const bool configured = (allow_dynamic_shared_memory(kernel, Shape::kSharedBytes), true);
  (void)configured;
  const dim3 grid{unsigned(BH), unsigned(key_tiles)};
  kernel<<<grid, kThreads, Shape::kSharedBytes, cuda_stream()>>>(q, k, v, dout, lse, row_dot, dk, dv, dq_partial,
                                                                  L, D, scale, scale * kLog2e);
  FM_CUDA_CHECK_LAUNCH();
}

template <class Inputs, int kHeadDimPad, typename A>
void launch_backward(const A* q, const A* k, const A* v, const A* dout, const float* lse, const float* row_dot,
                     A* dq, A* dk, A* dv, int BH, int L, int D, float scale) {
  require_tensor_cores("attention (tensor cores)");
  using Shape = BackwardShape<Inputs, kHeadDimPad>;
  const int key_tiles = int(ceil_div(L, Shape::kKeys));
  // One key tile: its share is dQ itself, written (and for bfloat16 rounded) by the kernel.
  if (key_tiles == 1)
    return launch_backward_kernel<Inputs, kHeadDimPad, A, A>(q, k, v, dout, lse, row_dot, dq, dk, dv, BH, 1, L, D,
                                                             scale);
  const std::int64_t dq_size = std::int64_t(BH) * L * D;
  float* partial = static_cast<float*>(cuda_malloc(std::size_t(dq_size) * key_tiles * sizeof(float)));
  launch_backward_kernel<Inputs, kHeadDimPad, A, float>(q, k, v, dout, lse, row_dot, partial, dk, dv, BH, key_tiles,
                                                        L, D, scale);
  attention_sum_dq(partial, dq, dq_size, key_tiles);
  cuda_free(partial);  // stream-ordered reuse by the caching allocator: no sync needed
}

template <class Inputs, typename A>
void forward_for_head_dim(const A* q, const A* k, const A* v, A* o, float* lse, int BH, int L, int D, float scale) {
  if (D <= 16) launch_forward<Inputs, 16>(q, k, v, o, lse, BH, L, D, scale);
  else if (D <= 32) launch_forward<Inputs, 32>(q, k, v, o, lse, BH, L, D, scale);
  else if (D <= 64) launch_forward<Inputs, 64>(q, k, v, o, lse, BH, L, D, scale);
  else launch_forward<Inputs, 128>(q, k, v, o, lse, BH, L, D, scale);
}

template <class Inputs, typename A>
void backward_for_head_dim(const A* q, const A* k, const A* v, const A* dout, const float* lse, const float* row_dot,
                           A* dq, A* dk, A* dv, int BH, int L, int D, float scale) {
  if (D <= 16) launch_backward<Inputs, 16>(q, k, v, dout, lse, row_dot, dq, dk, dv, BH, L, D, scale);
  else if (D <= 32) launch_backward<Inputs, 32>(q, k, v, dout, lse, row_dot, dq, dk, dv, BH, L, D, scale);
  else if (D <= 64) launch_backward<Inputs, 64>(q, k, v, dout, lse, row_dot, dq, dk, dv, BH, L, D, scale);
  else launch_backward<Inputs, 128>(q, k, v, dout, lse, row_dot, dq, dk, dv, BH, L, D, scale);
}

// The tensor-core backward of both activation types: the row dots D_i = rowsum(dO * O) (float), then
// the kernels for the head dimension.
template <class Inputs, typename A>
void backward_on_tensor_cores(const A* q, const A* k, const A* v, const A* o, const A* dout, const float* lse, A* dq,
                              A* dk, A* dv, int BH, int L, int D, float scale) {
  float* row_dot = attention_row_dots(dout, o, std::int64_t(BH) * L, D);
  backward_for_head_dim<Inputs>(q, k, v, dout, lse, row_dot, dq, dk, dv, BH, L, D, scale);
  cuda_free(row_dot);  // stream-ordered reuse by the caching allocator: no sync needed
}

// A contiguous conversion of n elements on cuda_stream() (the elementwise kernels' convert).
template <typename From, typename To>
void convert_contiguous(const From* x, To* y, std::int64_t n) {
  ElementwiseGeometry geometry;
  geometry.ndim = 1;
  geometry.sizes[0] = n;
  geometry.out_strides[0] = geometry.a_strides[0] = 1;
  convert_cuda<From, To>(x, y, geometry);
}

}  // namespace

void attention_forward_cuda_flash(const float* q, const float* k, const float* v, float* o, float* lse, int B,
                                  int H, int L, int D, float scale, GemmMath math) {
  if (math == GemmMath::Fp32) return attention_forward_cuda_flash(q, k, v, o, lse, B, H, L, D, scale);
  check_flash_sizes("attention_forward_cuda_flash", B, H, L, D);
  const int BH = B * H;
  if (BH == 0) return;
  if (math == GemmMath::Tf32) forward_for_head_dim<Tf32Inputs>(q, k, v, o, lse, BH, L, D, scale);
  else forward_for_head_dim<Bf16Inputs>(q, k, v, o, lse, BH, L, D, scale);
}

void attention_backward_cuda_flash(const float* q, const float* k, const float* v, const float* o,
                                   const float* dout, const float* lse, float* dq, float* dk, float* dv, int B,
                                   int H, int L, int D, float scale, GemmMath math) {
  // Long sequences: the FP32 kernels (their dQ pass needs no workspace that grows with L).
  if (math == GemmMath::Fp32 || !attention_tensor_core_backward_runs(L, D))
    return attention_backward_cuda_flash(q, k, v, o, dout, lse, dq, dk, dv, B, H, L, D, scale);
  check_flash_sizes("attention_backward_cuda_flash", B, H, L, D);
  const int BH = B * H;
  if (BH == 0) return;
  if (math == GemmMath::Tf32) backward_on_tensor_cores<Tf32Inputs>(q, k, v, o, dout, lse, dq, dk, dv, BH, L, D, scale);
  else backward_on_tensor_cores<Bf16Inputs>(q, k, v, o, dout, lse, dq, dk, dv, BH, L, D, scale);
}

void attention_forward_cuda_flash(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse, int B, int H,
                                  int L, int D, float scale) {
  check_flash_sizes("attention_forward_cuda_flash", B, H, L, D);
  const int BH = B * H;
  if (BH == 0) return;
  forward_for_head_dim<Bf16Inputs>(q, k, v, o, lse, BH, L, D, scale);
}

void attention_backward_cuda_flash(const bf16* q, const bf16* k, const bf16* v, const bf16* o, const bf16* dout,
                                   const float* lse, bf16* dq, bf16* dk, bf16* dv, int B, int H, int L, int D,
                                   float scale) {
  check_flash_sizes("attention_backward_cuda_flash", B, H, L, D);
  const int BH = B * H;
  if (BH == 0) return;
  const std::int64_t n = std::int64_t(BH) * L * D;
  if (!attention_tensor_core_backward_runs(L, D)) {
    // Long sequences: the FP32 kernels on widened copies (exact), each gradient rounded once. The row
    // dots D_i come from the bfloat16 dO and O directly (widening is exact: the same sums), so O is
    // never widened.
    float* row_dot = attention_row_dots(dout, o, n / D, D);
    float* scratch = static_cast<float*>(cuda_malloc(std::size_t(n) * 7 * sizeof(float)));
    float *q32 = scratch, *k32 = q32 + n, *v32 = k32 + n, *dout32 = v32 + n;
    float *dq32 = dout32 + n, *dk32 = dq32 + n, *dv32 = dk32 + n;
    convert_contiguous(q, q32, n);
    convert_contiguous(k, k32, n);
    convert_contiguous(v, v32, n);
    convert_contiguous(dout, dout32, n);
    attention_backward_fp32_with_row_dots(q32, k32, v32, dout32, lse, row_dot, dq32, dk32, dv32, BH, L, D, scale);
    convert_contiguous(dq32, dq, n);
    convert_contiguous(dk32, dk, n);
    convert_contiguous(dv32, dv, n);
    cuda_free(scratch);
    cuda_free(row_dot);
    return;
  }
  backward_on_tensor_cores<Bf16Inputs>(q, k, v, o, dout, lse, dq, dk, dv, BH, L, D, scale);
}

}  // namespace fm::kernels
