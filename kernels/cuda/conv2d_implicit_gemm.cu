// kernels/cuda/conv2d_implicit_gemm.cu — v2 of the GPU convolution: tiled implicit GEMM for the
// forward pass, the input gradient (dgrad) and the weight gradient (wgrad), on float32 or bfloat16
// activations (float32 weights).
//
// Each pass is a matrix product whose operands are read straight out of the NCHW tensors, tile by
// tile, with the im2col index arithmetic done while loading (no im2col buffer ever exists):
//
//   pass     GEMM rows (M)           cols (N)  reduction (K)              A (gathered)  B
//   forward  output pixels N·Ho·Wo   C_out     C_in·kh·kw                 x             weight
//   dgrad    input pixels N·H·W      C_in      C_out·(taps hitting pixel) dy            weight
//   wgrad    weight taps C_in·kh·kw  C_out     N·Ho·Wo                    x             dy
//
// The GEMM core is the classic shared-memory SGEMM (cf. the SGEMM_CUDA tutorial's 2-D block-tiling
// kernels, and CUTLASS's "implicit GEMM convolution" doc): a block computes a BM×BN tile of C in
// BK-deep steps; the A and B tiles go through registers into double-buffered shared memory (the
// global loads of step t+1 are in flight while step t is multiplied: one __syncthreads per step);
// each thread keeps a TM×TN block of C in registers and does TM·TN FMAs per TM/4 + TN/4 float4
// shared-memory loads.
//
// Shape-specific choices:
//   * Tile width BN follows the GEMM's N (a channel count: 1..256): 128, 64 or 32, so narrow layers
//     do not waste most of a 128-wide tile.
//   * dgrad of a strided conv (and so conv_transpose2d's forward, the U-Net's upsampler) is split
//     into stride_h·stride_w parity classes (blockIdx.z): input pixels with the same (h+pad) mod
//     stride are reached by the same subset of kernel taps, so each class is a dense GEMM over only
//     those taps. Without this, a 4×4 stride-2 dgrad would multiply by zero 3 times out of 4.
//   * wgrad has a small M×N (a few thousand × ≤ 256) and a huge K (N·Ho·Wo = 200 704 at batch
//     256, 28×28), so K is split across blockIdx.z; each split writes its partial tile to a
//     workspace and a second kernel adds the splits in a fixed order (deterministic; no float
//     atomics).
//   * Forward and dgrad outputs too small to fill one wave (the U-Net's 7×7 layers at batch 256:
//     98 tiles for 132 SMs × 3 resident blocks) take 128×64 tiles even above 64 columns and split
//     K the same way, the slice count chosen by counting waves (output_k_splits): each slice
//     writes a partial output to a workspace, and the slices are added in a fixed order with the
//     bias (see OutputSplit).
//   * The forward and stride-1 dgrad epilogues write each thread's runs of 4 consecutive pixels as
//     one float4 when the channel plane allows it (store_row_run).
//   * The bias is added in the forward epilogue; the bias gradient is a deterministic two-stage
//     channel sum of dy.
//
// Cost of the main shape — conv 64→64, 3×3, stride 1, pad 1, on 28×28 maps, batch 256:
//   M = 256·28·28 = 200 704, N = 64, K = 64·9 = 576
//   FLOPs = 2·M·N·K = 14.8 GFLOP (the same for each of forward, dgrad and wgrad)
//   fewest bytes = read x (51.4 MB) + write y (51.4 MB) + weight (0.15 MB) ≈ 103 MB
//   H100 SXM: 14.8 GFLOP / ~67 TFLOP/s FP32 = 221 µs;  103 MB / ~3.35 TB/s = 31 µs.
//   Arithmetic intensity 144 FLOP/B against a ridge point of ~20: compute-bound, so what matters is
//   keeping the FMA pipes fed (register blocking, few address instructions per FMA), not bandwidth.
//   The 4×4 stride-2 downsample 64→64, 28→14: M = 50 176, K = 1024: 6.6 GFLOP, same bound.
//
// TF32 (the *_cuda_tf32 entry points, docs/ops/tensor_cores.md): the same loaders, shared-memory
// tiles and epilogues; only the multiply changes. Each warp owns a 32-row slice of the block tile and
// multiplies it on the tensor cores with WMMA m16n16k8 fragments loaded from the shared tiles (A is
// stored k-major there, i.e. column-major for WMMA), rounded to TF32 as they are loaded. At the end
// the fragments are moved, 16 rows at a time through the (then idle) A tile, into the per-thread
// TM×TN layout the epilogues expect. Not yet run on a GPU: checked on the CUDA emulator only.
//
// bfloat16 (the *_cuda_bf16 entry points): the same again with shared tiles of bfloat16 (converted,
// round to nearest even, as the loaders store them: half the shared-memory bytes per step) and WMMA
// m16n16k16 fragments. Its tile configurations differ from the FP32 ones in two constants only: every
// BK is 16 (one m16n16k16 step; the wide tile's 8 would be half a step) and rows are padded by 8
// elements (16 bytes) instead of 4, as WMMA wants leading dimensions that span a multiple of 16 bytes.
// Block and thread counts, and so every host-side choice (tile, split-K), are the FP32 ones.
//
// bfloat16 activations (the overloads of the entry points on bf16 pointers): x, y, dy and dx are
// bfloat16 in memory, weights, bias and their gradients float32. Each pass is a template over the
// activations' element type A: the loaders widen what they read (exactly), the epilogues round what
// they write once; split-K workspaces stay float. Such launches always multiply on the bfloat16
// tensor cores (the activations are bfloat16 already; the weights are rounded as they are staged),
// and the one- and two-column layers take the tile path too (the direct kernels are float only).
//
// Everything runs on fm::kernels::cuda_stream(). Flat offsets are 32-bit (checked on the host).
#include <cuda_bf16.h>
#include <mma.h>

#include <algorithm>
#include <array>
#include <climits>
#include <type_traits>
#include <cstdint>

#include "kernels/conv2d.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/element_access.cuh"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

// =================================================================================================
// Tile configurations
// =================================================================================================

template <int BM_, int BN_, int BK_, int TM_, int TN_, int kPad_ = 4>
struct TileConfig {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  static constexpr int kThreadsM = BM / TM, kThreadsN = BN / TN;
  static constexpr int kThreads = kThreadsM * kThreadsN;
  // A thread's TM rows are TM/4 runs of 4 consecutive rows, kRowRunStride apart (so each run is one
  // float4 shared-memory load and consecutive threads read consecutive float4s); same for columns.
  static constexpr int kRowRunStride = 4 * kThreadsM, kColRunStride = 4 * kThreadsN;
  // Shared-memory rows padded by 4 floats: keeps float4 alignment and spreads the K-major stores
  // (lanes walking k) over all 32 banks. (8 for the bfloat16 tiles: 16 bytes, see the header.)
  static constexpr int kLdA = BM + kPad_, kLdB = BN + kPad_;
  // Register budget via __launch_bounds__: 256-thread tiles ask for 2 resident blocks (≤ 128
  // registers), 128-thread tiles for 3 (≤ 168). ptxas (CUDA 13, sm_90) then fits the 8×8 tiles with
  // no spills except ~12 bytes in the wide dgrad; asking 4 blocks of the 128-thread tiles made them
  // spill 40–70 bytes.
  static constexpr int kMinBlocksPerSm = kThreads >= 256 ? 2 : 3;
  static_assert(TM % 4 == 0 && TN % 4 == 0, "thread tiles are made of float4 runs");
  static_assert(BM % TM == 0 && BN % TN == 0, "tile must split evenly into thread tiles");
};

// BK is 8 for the wide tile: its two 8-deep register prefetches (4 + 4 values) keep it within 128
// registers; the 128-thread tiles load 16-deep steps to halve the per-step overhead (index
// decomposition, __syncthreads) relative to their 1024 FMAs per thread per step.
using WideTile = TileConfig<128, 128, 8, 8, 8>;    // N > 64:  256 threads, 8×8 per thread
using MediumTile = TileConfig<128, 64, 16, 8, 8>;  // 32 < N ≤ 64: 128 threads, 8×8 per thread
using NarrowTile = TileConfig<128, 32, 16, 8, 4>;  // N ≤ 32: 128 threads, 8×4 per thread

// The three arithmetics of the multiply (the kernel's template argument).
enum class Math { Fp32, Tf32, Bf16 };

// The tile configuration a launch of `Cfg` uses in arithmetic `kMath`: bfloat16 needs BK = 16 and
// 16-byte row padding (see the header); the others use Cfg as it is.
template <class Cfg, Math kMath>
struct ConfigFor {
  using type = Cfg;
};
template <class Cfg>
struct ConfigFor<Cfg, Math::Bf16> {
  using type = TileConfig<Cfg::BM, Cfg::BN, 16, Cfg::TM, Cfg::TN, 8>;
};

// What the shared tiles hold: floats (FP32, and TF32 values kept in floats) or bfloat16.
template <Math kMath>
using TileElement = std::conditional_t<kMath == Math::Bf16, __nv_bfloat16, float>;
__device__ __forceinline__ float to_tile_element(float value, float*) { return value; }
__device__ __forceinline__ __nv_bfloat16 to_tile_element(float value, __nv_bfloat16*) {
  return __float2bfloat16(value);
}

// How the threads of a block cover a BK × E operand tile (E = BM or BN) when loading it. Both
// layouts store into shared memory as tile[k][mn].
//
// Along MN: consecutive threads take consecutive rows mn (consecutive output pixels: coalesced
// reads of NCHW images); each thread loads kCount consecutive k of its row.
template <class Cfg, int E>
struct AlongMnLayout {
  static constexpr int kThreadsPerK = Cfg::kThreads / E;
  static constexpr int kCount = Cfg::BK / kThreadsPerK;
  static_assert(Cfg::kThreads % E == 0 && Cfg::BK % kThreadsPerK == 0, "layout does not fit");
  int mn, k_first;
  __device__ explicit AlongMnLayout(int tid) : mn(tid % E), k_first(tid / E * kCount) {}
  template <int LD, class Element>  // float or __nv_bfloat16 tiles
  __device__ void store(Element (*tile)[LD], const float (&regs)[kCount]) const {
#pragma unroll
    for (int j = 0; j < kCount; ++j)
      tile[k_first + j][mn] = to_tile_element(regs[j], static_cast<Element*>(nullptr));
  }
};

// Along K: consecutive threads take consecutive k (consecutive pixels for wgrad, consecutive
// weights for forward); each thread loads kCount rows mn_first + j·kRowStep at its one k.
template <class Cfg, int E>
struct AlongKLayout {
  static constexpr int kRowStep = Cfg::kThreads / Cfg::BK;
  static constexpr int kCount = E / kRowStep;
  static_assert(Cfg::kThreads % Cfg::BK == 0 && E % kRowStep == 0, "layout does not fit");
  int k, mn_first;
  __device__ explicit AlongKLayout(int tid) : k(tid % Cfg::BK), mn_first(tid / Cfg::BK) {}
  template <int LD, class Element>
  __device__ void store(Element (*tile)[LD], const float (&regs)[kCount]) const {
#pragma unroll
    for (int j = 0; j < kCount; ++j)
      tile[k][mn_first + j * kRowStep] = to_tile_element(regs[j], static_cast<Element*>(nullptr));
  }
};

// An activation element as a float: float32 through the read-only cache, bfloat16 widened (exact).
__device__ __forceinline__ float read_activation(const float* p) { return __ldg(p); }
__device__ __forceinline__ float read_activation(const bf16* p) {
  return float(bf16::from_bits(__ldg(reinterpret_cast<const unsigned short*>(p))));
}

// The geometry every kernel reads (sizes of the conv2d whose passes we compute).
struct ConvGeometry {
  int batch, in_channels, in_height, in_width, out_channels, out_height, out_width;
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
};

// What one block needs to know about its slice of the problem (blockIdx.z picks a dgrad parity
// class or a wgrad K split; the forward pass has one).
struct BlockProblem {
  int M;               // GEMM rows of this slice
  int k_begin, k_end;  // reduction range of this slice
};

// Split-K for the forward and dgrad passes. With k_splits > 1, slice z of the reduction writes its
// partial output (no bias) to partial[z] and sum_splits_kernel adds the slices and the bias.
struct OutputSplit {
  int k_splits = 1;
  float* partial = nullptr;  // [k_splits, output elements] when k_splits > 1
};

// Slice `split` of a K-long reduction cut into `splits`: ⌈K / splits⌉ rounded up to 16 (a multiple
// of every tile's BK) per slice; trailing slices may be short or empty (an empty slice writes zeros).
__device__ __forceinline__ void split_k_range(int K, int splits, int split, int& begin, int& end) {
  const int per_slice = ((K + splits - 1) / splits + 15) / 16 * 16;
  begin = min(K, split * per_slice);
  end = min(K, begin + per_slice);
}

// =================================================================================================
// The GEMM core shared by the three passes
// =================================================================================================

// acc += A_tile · B_tile for one BK-deep step, from shared memory.
template <class Cfg>
__device__ __forceinline__ void multiply_tile(const float (*a_tile)[Cfg::kLdA],
                                              const float (*b_tile)[Cfg::kLdB],
                                              float (&acc)[Cfg::TM][Cfg::TN], int ty, int tx) {
#pragma unroll
  for (int k = 0; k < Cfg::BK; ++k) {
    float a_frag[Cfg::TM], b_frag[Cfg::TN];
#pragma unroll
    for (int run = 0; run < Cfg::TM / 4; ++run) {
      const float4 v =
          *reinterpret_cast<const float4*>(&a_tile[k][run * Cfg::kRowRunStride + ty * 4]);
      a_frag[run * 4 + 0] = v.x, a_frag[run * 4 + 1] = v.y;
      a_frag[run * 4 + 2] = v.z, a_frag[run * 4 + 3] = v.w;
    }
#pragma unroll
    for (int run = 0; run < Cfg::TN / 4; ++run) {
      const float4 v =
          *reinterpret_cast<const float4*>(&b_tile[k][run * Cfg::kColRunStride + tx * 4]);
      b_frag[run * 4 + 0] = v.x, b_frag[run * 4 + 1] = v.y;
      b_frag[run * 4 + 2] = v.z, b_frag[run * 4 + 3] = v.w;
    }
#pragma unroll
    for (int i = 0; i < Cfg::TM; ++i)
#pragma unroll
      for (int j = 0; j < Cfg::TN; ++j) acc[i][j] = fmaf(a_frag[i], b_frag[j], acc[i][j]);
  }
}

// Row / column of C (within the block tile) held by accumulator acc[i][j] of thread (ty, tx).
template <class Cfg>
__device__ __forceinline__ int tile_row(int i, int ty) {
  return (i / 4) * Cfg::kRowRunStride + ty * 4 + (i % 4);
}
template <class Cfg>
__device__ __forceinline__ int tile_col(int j, int tx) {
  return (j / 4) * Cfg::kColRunStride + tx * 4 + (j % 4);
}

// ---- TF32 and bfloat16 tensor cores (WMMA) ---------------------------------------------------------
// The block's warps split the tile 4 × (warps / 4): a warp owns 32 rows (BM = 128) and BN / (warps / 4)
// columns, as 2 × kFragsN accumulator fragments of 16×16.
template <class Cfg>
struct WarpTiling {
  static constexpr int kWarps = Cfg::kThreads / 32;
  static constexpr int kWarpsM = 4, kWarpsN = kWarps / kWarpsM;
  static constexpr int kRows = Cfg::BM / kWarpsM, kCols = Cfg::BN / kWarpsN;
  static constexpr int kFragsM = kRows / 16, kFragsN = kCols / 16;
  static_assert(kWarps % kWarpsM == 0 && Cfg::BM % (16 * kWarpsM) == 0 && Cfg::BN % (16 * kWarpsN) == 0,
                "the warp tiling must cover the block tile with 16×16 fragments");
};

// The WMMA step for each tensor-core arithmetic: fragment input type and depth.
template <Math kMath>
struct TensorStep;
template <>
struct TensorStep<Math::Tf32> {
  using Input = nvcuda::wmma::precision::tf32;
  static constexpr int kK = 8;  // m16n16k8
};
template <>
struct TensorStep<Math::Bf16> {
  using Input = __nv_bfloat16;
  static constexpr int kK = 16;  // m16n16k16
};
template <>
struct TensorStep<Math::Fp32> : TensorStep<Math::Tf32> {};  // unused (the FP32 multiply), keeps types valid

template <class Cfg, Math kMath>
using TensorAccumulators =
    nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, TensorStep<kMath>::kK,
                           float>[WarpTiling<Cfg>::kFragsM][WarpTiling<Cfg>::kFragsN];

// acc += A_tile · B_tile for one BK-deep step on the tensor cores. A is stored k-major (a_tile[k][m]),
// which is a column-major M×K matrix with leading dimension kLdA; B is a row-major K×N one. TF32
// fragments are loaded from float tiles and rounded to TF32 here; bfloat16 tiles were converted
// when the loaders stored them.
template <class Cfg, Math kMath>
__device__ __forceinline__ void multiply_tile_tensor(const TileElement<kMath> (*a_tile)[Cfg::kLdA],
                                                     const TileElement<kMath> (*b_tile)[Cfg::kLdB],
                                                     TensorAccumulators<Cfg, kMath>& acc, int warp_row,
                                                     int warp_col) {
  using namespace nvcuda;
  using W = WarpTiling<Cfg>;
  using Step = TensorStep<kMath>;
  static_assert(Cfg::BK % Step::kK == 0, "a BK-deep step is a whole number of WMMA steps");
  static_assert(Cfg::kLdA * sizeof(TileElement<kMath>) % 16 == 0 && Cfg::kLdB * sizeof(TileElement<kMath>) % 16 == 0,
                "WMMA needs leading dimensions that span a multiple of 16 bytes");
#pragma unroll
  for (int kk = 0; kk < Cfg::BK; kk += Step::kK) {
    wmma::fragment<wmma::matrix_a, 16, 16, Step::kK, typename Step::Input, wmma::col_major> a_frag[W::kFragsM];
    wmma::fragment<wmma::matrix_b, 16, 16, Step::kK, typename Step::Input, wmma::row_major> b_frag[W::kFragsN];
#pragma unroll
    for (int i = 0; i < W::kFragsM; ++i) {
      wmma::load_matrix_sync(a_frag[i], &a_tile[kk][warp_row + 16 * i], Cfg::kLdA);
      if constexpr (kMath == Math::Tf32) {
#pragma unroll
        for (int e = 0; e < a_frag[i].num_elements; ++e) a_frag[i].x[e] = wmma::__float_to_tf32(a_frag[i].x[e]);
      }
    }
#pragma unroll
    for (int j = 0; j < W::kFragsN; ++j) {
      wmma::load_matrix_sync(b_frag[j], &b_tile[kk][warp_col + 16 * j], Cfg::kLdB);
      if constexpr (kMath == Math::Tf32) {
#pragma unroll
        for (int e = 0; e < b_frag[j].num_elements; ++e) b_frag[j].x[e] = wmma::__float_to_tf32(b_frag[j].x[e]);
      }
    }
#pragma unroll
    for (int i = 0; i < W::kFragsM; ++i)
#pragma unroll
      for (int j = 0; j < W::kFragsN; ++j) wmma::mma_sync(acc[i][j], a_frag[i], b_frag[j], acc[i][j]);
  }
}

// The fragments' values into the per-thread layout of the FP32 path (tile_row / tile_col), 16 rows
// of the block tile at a time through `scratch` (≥ 16 × (BN + 4) floats, 32-byte aligned, free: the
// main loop has ended with a barrier). Every thread of the block calls it.
template <class Cfg, Math kMath>
__device__ __forceinline__ void tensor_accumulators_to_thread_tile(const TensorAccumulators<Cfg, kMath>& frags,
                                                                   float* scratch, int warp_row, int warp_col,
                                                                   float (&acc)[Cfg::TM][Cfg::TN], int ty,
                                                                   int tx) {
  using namespace nvcuda;
  using W = WarpTiling<Cfg>;
  constexpr int kLd = Cfg::BN + 4;
#pragma unroll 1
  for (int band = 0; band < Cfg::BM / 16; ++band) {
    // This warp's fragment row holding the band, if any (uniform across the warp). Indexed by this
    // runtime value, the fragments leave the registers for a local-memory frame (128-256 bytes);
    // indexed by an unrolled i compared with it, they stay. ptxas (sm_90, 2026-12-03) then keeps the
    // 128-thread tiles free of both, but makes the 256-thread ones (128 registers) spill 160-190
    // bytes, so those keep the frame.
    const int band_row = band - warp_row / 16;
    if constexpr (Cfg::kThreads >= 256) {
      if (band_row >= 0 && band_row < W::kFragsM) {
#pragma unroll
        for (int j = 0; j < W::kFragsN; ++j)
          wmma::store_matrix_sync(scratch + warp_col + 16 * j, frags[band_row][j], kLd, wmma::mem_row_major);
      }
    } else {
#pragma unroll
      for (int i = 0; i < W::kFragsM; ++i) {
        if (i != band_row) continue;
#pragma unroll
        for (int j = 0; j < W::kFragsN; ++j)
          wmma::store_matrix_sync(scratch + warp_col + 16 * j, frags[i][j], kLd, wmma::mem_row_major);
      }
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < Cfg::TM; ++r) {
      const int row = tile_row<Cfg>(r, ty);
      if (row / 16 != band) continue;
#pragma unroll
      for (int c = 0; c < Cfg::TN; ++c) acc[r][c] = scratch[(row % 16) * kLd + tile_col<Cfg>(c, tx)];
    }
    __syncthreads();  // the next band overwrites the scratch rows
  }
}

// The epilogue's output layout. A thread's TM rows come in runs of 4 consecutive GEMM rows (see
// TileConfig), and in the forward (and the stride-1 dgrad) consecutive rows are consecutive pixels
// of one channel plane. When a plane's pixel count is a multiple of 4, a run never straddles two
// images and starts four elements aligned, so it goes out as one float4 (8 bytes of bfloat16) per column: a warp's 16 row
// threads then write 256 contiguous bytes instead of 16 scattered floats 16 bytes apart. That matters
// where K is short (a 1×1 conv's input gradient has K = C_out, 16 at the U-Net's 64→16: one step,
// so the writes are most of the work).
template <class Cfg, typename Out>
__device__ __forceinline__ void store_row_run(Out* plane_start, int pixels, int run,
                                              const float (&acc)[Cfg::TM][Cfg::TN],
                                              const float (&bias)[Cfg::TN], int column_limit,
                                              int n0, int tx) {
#pragma unroll
  for (int j = 0; j < Cfg::TN; ++j) {
    const int column = n0 + tile_col<Cfg>(j, tx);
    if (column < column_limit)
      store_at<true>(plane_start + std::int64_t(column) * pixels, 0,
                     make_float4(acc[run * 4 + 0][j] + bias[j], acc[run * 4 + 1][j] + bias[j],
                                 acc[run * 4 + 2][j] + bias[j], acc[run * 4 + 3][j] + bias[j]));
  }
}

// One kernel template for the three passes. A Pass provides:
//   Pass::Params                    the kernel argument (pointers + geometry)
//   Pass::block_problem(params, z)  M and the K range of slice z
//   Pass::Loader<Cfg>               per-thread operand loader: load(k0, k_end, a_regs, b_regs) and
//                                   store(a_tile, b_tile, a_regs, b_regs); may fill Pass::Shared
//   Pass::store_results<Cfg>(...)   the epilogue
//
// The kernel parameter is __grid_constant__ so the loaders can hold a reference to it without the
// compiler copying the whole struct into local memory.
// kMath: Tf32 and Bf16 run the multiply on the tensor cores (see the file's header); everything else
// is shared. Cfg is already ConfigFor<..., kMath>.
template <class Cfg, class Pass, Math kMath>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocksPerSm)
    implicit_gemm_kernel(const __grid_constant__ typename Pass::Params params) {
  constexpr bool kTensor = kMath != Math::Fp32;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  if constexpr (kTensor) {
    __trap();  // TF32 and bfloat16 tensor cores start with sm_80
    return;
  }
#endif
  // 32-byte alignment: WMMA fragment pointers must be 256-bit aligned (float4 needs 16).
  __shared__ __align__(32) TileElement<kMath> a_tile[2][Cfg::BK][Cfg::kLdA];
  __shared__ __align__(32) TileElement<kMath> b_tile[2][Cfg::BK][Cfg::kLdB];
  __shared__ typename Pass::template Shared<Cfg> shared;

  const BlockProblem slice = Pass::block_problem(params, int(blockIdx.z));
  const int m0 = int(blockIdx.x) * Cfg::BM, n0 = int(blockIdx.y) * Cfg::BN;
  if (m0 >= slice.M) return;  // the grid is sized for the largest slice; uniform per block

  const int tid = int(threadIdx.x);
  const int ty = tid % Cfg::kThreadsM, tx = tid / Cfg::kThreadsM;
  typename Pass::template Loader<Cfg> loader(params, slice, m0, n0, tid, shared);
  __syncthreads();  // the loader may have built tables in `shared`

  float acc[Cfg::TM][Cfg::TN];
  TensorAccumulators<Cfg, kMath> tensor_acc;  // the tensor-core accumulators (unused, and removed, in FP32)
  const int warp = tid / 32;
  const int warp_row = (warp % WarpTiling<Cfg>::kWarpsM) * WarpTiling<Cfg>::kRows;
  const int warp_col = (warp / WarpTiling<Cfg>::kWarpsM) * WarpTiling<Cfg>::kCols;
  if constexpr (kTensor) {
#pragma unroll
    for (int i = 0; i < WarpTiling<Cfg>::kFragsM; ++i)
#pragma unroll
      for (int j = 0; j < WarpTiling<Cfg>::kFragsN; ++j) nvcuda::wmma::fill_fragment(tensor_acc[i][j], 0.f);
  } else {
#pragma unroll
    for (int i = 0; i < Cfg::TM; ++i)
#pragma unroll
      for (int j = 0; j < Cfg::TN; ++j) acc[i][j] = 0.f;
  }

  const int k_steps = (slice.k_end - slice.k_begin + Cfg::BK - 1) / Cfg::BK;
  if (k_steps > 0) {
    float a_regs[Pass::template Loader<Cfg>::kARegs], b_regs[Pass::template Loader<Cfg>::kBRegs];
    loader.load(slice.k_begin, slice.k_end, a_regs, b_regs);
    loader.store(a_tile[0], b_tile[0], a_regs, b_regs);
    __syncthreads();
    for (int step = 0; step < k_steps; ++step) {
      const int current = step & 1;
      const bool has_next = step + 1 < k_steps;
      // Issue the next step's global loads first; they complete while this step multiplies.
      if (has_next) loader.load(slice.k_begin + (step + 1) * Cfg::BK, slice.k_end, a_regs, b_regs);
      if constexpr (kTensor)
        multiply_tile_tensor<Cfg, kMath>(a_tile[current], b_tile[current], tensor_acc, warp_row, warp_col);
      else
        multiply_tile<Cfg>(a_tile[current], b_tile[current], acc, ty, tx);
      // The other buffer was last read in the previous step, which every thread finished before the
      // __syncthreads that ended it: safe to overwrite.
      if (has_next) loader.store(a_tile[current ^ 1], b_tile[current ^ 1], a_regs, b_regs);
      __syncthreads();
    }
  }
  if constexpr (kTensor) {
    static_assert(sizeof(a_tile) >= 16 * (Cfg::BN + 4) * sizeof(float), "the A tile holds 16 output rows");
    tensor_accumulators_to_thread_tile<Cfg, kMath>(tensor_acc, reinterpret_cast<float*>(&a_tile[0][0][0]), warp_row,
                                                   warp_col, acc, ty, tx);
  }
  Pass::template store_results<Cfg>(params, slice, int(blockIdx.z), m0, n0, ty, tx, acc);
}

struct NoShared {};

// =================================================================================================
// Forward: y[n, o, pixel] = bias[o] + Σ_k x_col[(n, pixel), k] · w[o, k],  k = (c, r, s)
// =================================================================================================

template <typename A>  // the activations' element type: float or bf16
struct ForwardPass {
  static constexpr bool kBf16Activations = std::is_same_v<A, bf16>;
  struct Params {
    ConvGeometry g;
    const A* x;
    const float* weight;
    const float* bias;  // may be null
    A* y;
    OutputSplit split;  // blockIdx.z is the K slice
    // What this struct points to, for the CUDA emulator's check that each is a device address.
    std::array<const void*, 4> device_pointers() const { return {x, weight, bias, y}; }
  };
  template <class Cfg>
  using Shared = NoShared;

  static __device__ BlockProblem block_problem(const Params& p, int z) {
    const ConvGeometry& g = p.g;
    BlockProblem slice{g.batch * g.out_height * g.out_width, 0, 0};
    split_k_range(g.in_channels * g.kernel_h * g.kernel_w, p.split.k_splits, z, slice.k_begin,
                  slice.k_end);
    return slice;
  }

  template <class Cfg>
  struct Loader {
    using ALayout = AlongMnLayout<Cfg, Cfg::BM>;  // x: consecutive output pixels per warp
    using BLayout = AlongKLayout<Cfg, Cfg::BN>;   // weight rows are contiguous in k
    static constexpr int kARegs = ALayout::kCount, kBRegs = BLayout::kCount;
    ALayout a_layout;
    BLayout b_layout;
    const Params& p;
    int n0;
    bool row_valid;
    int image_offset;        // n·C_in·H·W for this thread's output pixel
    int h_origin, w_origin;  // top-left input coordinate of its window (may be negative)

    __device__ Loader(const Params& params, const BlockProblem& slice, int m0, int n0_, int tid,
                      NoShared&)
        : a_layout(tid), b_layout(tid), p(params), n0(n0_) {
      const ConvGeometry& g = p.g;
      const int m = m0 + a_layout.mn;
      row_valid = m < slice.M;
      const int pixels = g.out_height * g.out_width;
      const int n = row_valid ? m / pixels : 0, pixel = row_valid ? m - n * pixels : 0;
      const int i = pixel / g.out_width, j = pixel - i * g.out_width;
      image_offset = n * g.in_channels * g.in_height * g.in_width;
      h_origin = i * g.stride_h - g.pad_h;
      w_origin = j * g.stride_w - g.pad_w;
    }

    __device__ void load(int k0, int k_end, float (&a_regs)[kARegs],
                         float (&b_regs)[kBRegs]) const {
      const ConvGeometry& g = p.g;
      // A: this thread's kARegs consecutive k = (c, r, s) of one output pixel. Decompose the first
      // k once, then step (s, r, c) like an odometer.
      const int taps = g.kernel_h * g.kernel_w;
      int k = k0 + a_layout.k_first;
      int c = k / taps, rem = k - c * taps;
      int r = rem / g.kernel_w, s = rem - r * g.kernel_w;
#pragma unroll
      for (int j = 0; j < kARegs; ++j, ++k) {
        const int h = h_origin + r, w = w_origin + s;
        float v = 0.f;
        if (row_valid && k < k_end && unsigned(h) < unsigned(g.in_height) &&
            unsigned(w) < unsigned(g.in_width))
          v = read_activation(p.x + image_offset + (c * g.in_height + h) * g.in_width + w);
        a_regs[j] = v;
        if (++s == g.kernel_w) {
          s = 0;
          if (++r == g.kernel_h) r = 0, ++c;
        }
      }
      // B: weight[o, k] for this thread's one k and kBRegs output channels o.
      const int kb = k0 + b_layout.k;
      const int row_length = g.in_channels * g.kernel_h * g.kernel_w;  // weight is [C_out, K]
#pragma unroll
      for (int j = 0; j < kBRegs; ++j) {
        const int o = n0 + b_layout.mn_first + j * BLayout::kRowStep;
        b_regs[j] =
            (kb < k_end && o < g.out_channels) ? __ldg(p.weight + o * row_length + kb) : 0.f;
      }
    }

    template <class Element>  // float or __nv_bfloat16 tiles
    __device__ void store(Element (*a_tile)[Cfg::kLdA], Element (*b_tile)[Cfg::kLdB],
                          const float (&a_regs)[kARegs], const float (&b_regs)[kBRegs]) const {
      a_layout.store(a_tile, a_regs);
      b_layout.store(b_tile, b_regs);
    }
  };

  template <class Cfg>
  static __device__ void store_results(const Params& p, const BlockProblem& slice, int z, int m0,
                                       int n0, int ty, int tx,
                                       const float (&acc)[Cfg::TM][Cfg::TN]) {
    const ConvGeometry& g = p.g;
    // Split: this slice's partial output (float), without the bias (added once, after the sum).
    const bool partial = p.split.k_splits > 1;
    float* partial_out =
        partial ? p.split.partial + std::int64_t(z) * g.batch * g.out_channels * g.out_height * g.out_width : nullptr;
    // One epilogue in the code for float outputs (a pointer chosen at run time); bfloat16 outputs
    // and the float workspace are two types, so two.
    if constexpr (std::is_same_v<A, float>) {
      write_results<Cfg>(p, partial ? partial_out : p.y, partial, slice, m0, n0, ty, tx, acc);
    } else {
      if (partial)
        write_results<Cfg>(p, partial_out, true, slice, m0, n0, ty, tx, acc);
      else
        write_results<Cfg>(p, p.y, false, slice, m0, n0, ty, tx, acc);
    }
  }

  template <class Cfg, typename Out>
  static __device__ void write_results(const Params& p, Out* out, bool partial, const BlockProblem& slice, int m0,
                                       int n0, int ty, int tx, const float (&acc)[Cfg::TM][Cfg::TN]) {
    const ConvGeometry& g = p.g;
    const int pixels = g.out_height * g.out_width;
    float bias[Cfg::TN];
#pragma unroll
    for (int j = 0; j < Cfg::TN; ++j) {
      const int o = n0 + tile_col<Cfg>(j, tx);
      bias[j] = (p.bias && !partial && o < g.out_channels) ? __ldg(p.bias + o) : 0.f;
    }
    if (pixels % 4 == 0) {  // float4 runs (store_row_run); slice.M is then a multiple of 4 too
#pragma unroll
      for (int run = 0; run < Cfg::TM / 4; ++run) {
        const int m = m0 + tile_row<Cfg>(run * 4, ty);
        if (m >= slice.M) continue;
        const int n = m / pixels, pixel = m - n * pixels;
        store_row_run<Cfg>(out + n * g.out_channels * pixels + pixel, pixels, run, acc, bias,
                           g.out_channels, n0, tx);
      }
      return;
    }
#pragma unroll
    for (int i = 0; i < Cfg::TM; ++i) {
      const int m = m0 + tile_row<Cfg>(i, ty);
      if (m >= slice.M) continue;
      const int n = m / pixels, pixel = m - n * pixels;
      Out* y_pixel = out + n * g.out_channels * pixels + pixel;
#pragma unroll
      for (int j = 0; j < Cfg::TN; ++j) {
        const int o = n0 + tile_col<Cfg>(j, tx);
        if (o < g.out_channels) y_pixel[o * pixels] = Out(acc[i][j] + bias[j]);
      }
    }
  }
};

// =================================================================================================
// Dgrad: dx[n, c, h, w] = Σ_{o, taps} dy[n, o, i, j] · w[o, c, r, s]  (+ bias[c] for
// conv_transpose2d)
// =================================================================================================
//
// Pixel (h, w) is read by tap r of output row i exactly when h + pad_h − r = i·stride_h, so only
// taps with r ≡ (h + pad_h) (mod stride_h) reach it. Parity class z = (ch, cw) gathers the pixels
// with (h + pad_h) mod stride_h = ch and (w + pad_w) mod stride_w = cw; their taps are
// r = ch + tr·stride_h (tr < taps_h) and s = cw + ts·stride_w, and the output row is
// i = (h + pad_h − ch)/stride_h − tr (exact division). Each class is a dense GEMM:
//   rows = class pixels (n, h, w), cols = c, reduction over (o, tr, ts).

struct DgradClass {
  int ch, cw;            // residues of (h + pad) modulo the stride
  int h_first, w_first;  // smallest h (w) in the class
  int rows, cols;        // class pixels per image: rows × cols (h = h_first + t·stride_h)
  int taps_h, taps_w;    // taps reaching the class
};

__device__ __forceinline__ DgradClass dgrad_class(const ConvGeometry& g, int z) {
  DgradClass k;
  k.ch = z / g.stride_w;
  k.cw = z - k.ch * g.stride_w;
  k.h_first = ((k.ch - g.pad_h) % g.stride_h + g.stride_h) % g.stride_h;
  k.w_first = ((k.cw - g.pad_w) % g.stride_w + g.stride_w) % g.stride_w;
  k.rows = k.h_first < g.in_height ? (g.in_height - k.h_first + g.stride_h - 1) / g.stride_h : 0;
  k.cols = k.w_first < g.in_width ? (g.in_width - k.w_first + g.stride_w - 1) / g.stride_w : 0;
  k.taps_h = k.ch < g.kernel_h ? (g.kernel_h - k.ch + g.stride_h - 1) / g.stride_h : 0;
  k.taps_w = k.cw < g.kernel_w ? (g.kernel_w - k.cw + g.stride_w - 1) / g.stride_w : 0;
  return k;
}

template <typename A>  // the activations' element type: float or bf16
struct DgradPass {
  static constexpr bool kBf16Activations = std::is_same_v<A, bf16>;
  struct Params {
    ConvGeometry g;
    const A* dy;
    const float* weight;
    const float* bias;  // per input channel c; null for a plain conv2d dgrad
    A* dx;
    OutputSplit split;  // blockIdx.z = parity class · k_splits + K slice
    // What this struct points to, for the CUDA emulator's check that each is a device address.
    std::array<const void*, 4> device_pointers() const { return {dy, weight, bias, dx}; }
  };
  template <class Cfg>
  using Shared = NoShared;

  static __device__ BlockProblem block_problem(const Params& p, int z) {
    const DgradClass k = dgrad_class(p.g, z / p.split.k_splits);
    BlockProblem slice{p.g.batch * k.rows * k.cols, 0, 0};
    split_k_range(p.g.out_channels * k.taps_h * k.taps_w, p.split.k_splits, z % p.split.k_splits,
                  slice.k_begin, slice.k_end);
    return slice;
  }

  template <class Cfg>
  struct Loader {
    using ALayout = AlongMnLayout<Cfg, Cfg::BM>;  // dy gathered: consecutive class pixels
    using BLayout = AlongKLayout<Cfg, Cfg::BN>;   // weight: each thread one (o, tr, ts)
    static constexpr int kARegs = ALayout::kCount, kBRegs = BLayout::kCount;
    ALayout a_layout;
    BLayout b_layout;
    const Params& p;
    DgradClass cls;
    int n0;
    bool row_valid;
    int image_offset;    // n·C_out·Ho·Wo
    int i_base, j_base;  // output row/column read by tap tr = 0 / ts = 0

    __device__ Loader(const Params& params, const BlockProblem& slice, int m0, int n0_, int tid,
                      NoShared&)
        : a_layout(tid),
          b_layout(tid),
          p(params),
          cls(dgrad_class(params.g, int(blockIdx.z) / params.split.k_splits)),
          n0(n0_) {
      const ConvGeometry& g = p.g;
      const int m = m0 + a_layout.mn;
      row_valid = m < slice.M;  // slice.M > 0 here, so rows, cols > 0
      const int per_image = cls.rows * cls.cols;
      const int n = row_valid ? m / per_image : 0, rest = row_valid ? m - n * per_image : 0;
      const int t = rest / cls.cols, u = rest - t * cls.cols;
      const int h = cls.h_first + t * g.stride_h, w = cls.w_first + u * g.stride_w;
      image_offset = n * g.out_channels * g.out_height * g.out_width;
      i_base = (h + g.pad_h - cls.ch) / g.stride_h;  // exact, and >= 0 (see dgrad_class)
      j_base = (w + g.pad_w - cls.cw) / g.stride_w;
    }

    __device__ void load(int k0, int k_end, float (&a_regs)[kARegs],
                         float (&b_regs)[kBRegs]) const {
      const ConvGeometry& g = p.g;
      const int taps = cls.taps_h * cls.taps_w;  // > 0 whenever there is a step to load
      // A: dy[n, o, i_base − tr, j_base − ts] for kARegs consecutive k = (o, tr, ts).
      int k = k0 + a_layout.k_first;
      int o = k / taps, rem = k - o * taps;
      int tr = rem / cls.taps_w, ts = rem - tr * cls.taps_w;
#pragma unroll
      for (int j = 0; j < kARegs; ++j, ++k) {
        const int i = i_base - tr, jj = j_base - ts;
        float v = 0.f;
        if (row_valid && k < k_end && unsigned(i) < unsigned(g.out_height) &&
            unsigned(jj) < unsigned(g.out_width))
          v = read_activation(p.dy + image_offset + (o * g.out_height + i) * g.out_width + jj);
        a_regs[j] = v;
        if (++ts == cls.taps_w) {
          ts = 0;
          if (++tr == cls.taps_h) tr = 0, ++o;
        }
      }
      // B: weight[o, c, r, s] for this thread's k = (o, tr, ts) and kBRegs input channels c.
      const int kb = k0 + b_layout.k;
      const int ob = kb / taps, remb = kb - ob * taps;
      const int trb = remb / cls.taps_w, tsb = remb - trb * cls.taps_w;
      const int r = cls.ch + trb * g.stride_h, s = cls.cw + tsb * g.stride_w;
      const int kernel_size = g.kernel_h * g.kernel_w;
      const int w_offset = ob * g.in_channels * kernel_size + r * g.kernel_w + s;
#pragma unroll
      for (int j = 0; j < kBRegs; ++j) {
        const int c = n0 + b_layout.mn_first + j * BLayout::kRowStep;
        b_regs[j] =
            (kb < k_end && c < g.in_channels) ? __ldg(p.weight + w_offset + c * kernel_size) : 0.f;
      }
    }

    template <class Element>  // float or __nv_bfloat16 tiles
    __device__ void store(Element (*a_tile)[Cfg::kLdA], Element (*b_tile)[Cfg::kLdB],
                          const float (&a_regs)[kARegs], const float (&b_regs)[kBRegs]) const {
      a_layout.store(a_tile, a_regs);
      b_layout.store(b_tile, b_regs);
    }
  };

  template <class Cfg>
  static __device__ void store_results(const Params& p, const BlockProblem& slice, int z, int m0,
                                       int n0, int ty, int tx,
                                       const float (&acc)[Cfg::TM][Cfg::TN]) {
    const ConvGeometry& g = p.g;
    const int plane = g.in_height * g.in_width;
    const bool partial = p.split.k_splits > 1;  // as in ForwardPass::store_results
    float* partial_out =
        partial ? p.split.partial + std::int64_t(z % p.split.k_splits) * g.batch * g.in_channels * plane : nullptr;
    if constexpr (std::is_same_v<A, float>) {
      write_results<Cfg>(p, partial ? partial_out : p.dx, partial, slice, z, m0, n0, ty, tx, acc);
    } else {
      if (partial)
        write_results<Cfg>(p, partial_out, true, slice, z, m0, n0, ty, tx, acc);
      else
        write_results<Cfg>(p, p.dx, false, slice, z, m0, n0, ty, tx, acc);
    }
  }

  template <class Cfg, typename Out>
  static __device__ void write_results(const Params& p, Out* out, bool partial, const BlockProblem& slice, int z,
                                       int m0, int n0, int ty, int tx, const float (&acc)[Cfg::TM][Cfg::TN]) {
    const ConvGeometry& g = p.g;
    const DgradClass cls = dgrad_class(g, z / p.split.k_splits);
    const int per_image = cls.rows * cls.cols;
    const int plane = g.in_height * g.in_width;
    float bias[Cfg::TN];
#pragma unroll
    for (int j = 0; j < Cfg::TN; ++j) {
      const int c = n0 + tile_col<Cfg>(j, tx);
      bias[j] = (p.bias && !partial && c < g.in_channels) ? __ldg(p.bias + c) : 0.f;
    }
    // Stride 1: one class, whose rows are the image's pixels in order (float4 runs as forward).
    if (g.stride_h == 1 && g.stride_w == 1 && plane % 4 == 0) {
#pragma unroll
      for (int run = 0; run < Cfg::TM / 4; ++run) {
        const int m = m0 + tile_row<Cfg>(run * 4, ty);
        if (m >= slice.M) continue;
        const int n = m / plane, pixel = m - n * plane;
        store_row_run<Cfg>(out + n * g.in_channels * plane + pixel, plane, run, acc, bias,
                           g.in_channels, n0, tx);
      }
      return;
    }
#pragma unroll
    for (int i = 0; i < Cfg::TM; ++i) {
      const int m = m0 + tile_row<Cfg>(i, ty);
      if (m >= slice.M) continue;
      const int n = m / per_image, rest = m - n * per_image;
      const int t = rest / cls.cols, u = rest - t * cls.cols;
      const int h = cls.h_first + t * g.stride_h, w = cls.w_first + u * g.stride_w;
      Out* dx_pixel = out + n * g.in_channels * plane + h * g.in_width + w;
#pragma unroll
      for (int j = 0; j < Cfg::TN; ++j) {
        const int c = n0 + tile_col<Cfg>(j, tx);
        if (c < g.in_channels) dx_pixel[c * plane] = Out(acc[i][j] + bias[j]);
      }
    }
  }
};

// =================================================================================================
// Wgrad: dW[o, m] = Σ_k x_col[m, k] · dy[n, o, pixel],  m = (c, r, s), k = (n, pixel), split over K
// =================================================================================================

// Sentinel tap for rows past M: any h_origin + kInvalidTap is negative, so the bounds test fails.
constexpr int kInvalidTap = -(1 << 28);

template <typename A>  // the activations' element type: float or bf16
struct WgradPass {
  static constexpr bool kBf16Activations = std::is_same_v<A, bf16>;
  struct Params {
    ConvGeometry g;
    const A* x;
    const A* dy;
    float* out;       // dweight [C_out, M] when splits == 1, else workspace [splits, C_out, M]
    int k_per_split;  // a multiple of BK
    // What this struct points to, for the CUDA emulator's check that each is a device address.
    std::array<const void*, 3> device_pointers() const { return {x, dy, out}; }
  };
  // The block's BM rows m = (c, r, s), decomposed once: offset c·H·W + r·W + s, and r, s.
  template <class Cfg>
  struct Shared {
    int offset[Cfg::BM];
    int r[Cfg::BM];
    int s[Cfg::BM];
  };

  static __device__ BlockProblem block_problem(const Params& p, int z) {
    const ConvGeometry& g = p.g;
    const int K = g.batch * g.out_height * g.out_width;
    const int k_begin = z * p.k_per_split;
    return {g.in_channels * g.kernel_h * g.kernel_w, k_begin, min(K, k_begin + p.k_per_split)};
  }

  template <class Cfg>
  struct Loader {
    using ALayout = AlongKLayout<Cfg, Cfg::BM>;  // x: consecutive pixels k per warp
    using BLayout = AlongKLayout<Cfg, Cfg::BN>;  // dy: the same k, so one decomposition serves both
    static constexpr int kARegs = ALayout::kCount, kBRegs = BLayout::kCount;
    ALayout a_layout;
    BLayout b_layout;
    const Params& p;
    const Shared<Cfg>& rows;
    int n0;

    __device__ Loader(const Params& params, const BlockProblem& slice, int m0, int n0_, int tid,
                      Shared<Cfg>& shared)
        : a_layout(tid), b_layout(tid), p(params), rows(shared), n0(n0_) {
      const ConvGeometry& g = p.g;
      const int kernel_size = g.kernel_h * g.kernel_w;
      for (int row = tid; row < Cfg::BM; row += Cfg::kThreads) {
        const int m = m0 + row;
        if (m < slice.M) {
          const int c = m / kernel_size, rem = m - c * kernel_size;
          const int r = rem / g.kernel_w, s = rem - r * g.kernel_w;
          shared.offset[row] = (c * g.in_height + r) * g.in_width + s;
          shared.r[row] = r;
          shared.s[row] = s;
        } else {
          shared.offset[row] = 0;
          shared.r[row] = kInvalidTap;
          shared.s[row] = kInvalidTap;
        }
      }
    }

    __device__ void load(int k0, int k_end, float (&a_regs)[kARegs],
                         float (&b_regs)[kBRegs]) const {
      const ConvGeometry& g = p.g;
      const int k = k0 + a_layout.k;  // == k0 + b_layout.k: both layouts put k = tid % BK
      const bool k_valid = k < k_end;
      const int pixels = g.out_height * g.out_width;
      const int n = k_valid ? k / pixels : 0, pixel = k_valid ? k - n * pixels : 0;
      const int i = pixel / g.out_width, j = pixel - i * g.out_width;
      const int h_origin = i * g.stride_h - g.pad_h, w_origin = j * g.stride_w - g.pad_w;
      // x[n, c, h_origin + r, w_origin + s] = x[x_base + offset(c, r, s)]
      const int x_base =
          n * g.in_channels * g.in_height * g.in_width + h_origin * g.in_width + w_origin;
#pragma unroll
      for (int t = 0; t < kARegs; ++t) {
        const int row = a_layout.mn_first + t * ALayout::kRowStep;
        const int h = h_origin + rows.r[row], w = w_origin + rows.s[row];
        float v = 0.f;
        if (k_valid && unsigned(h) < unsigned(g.in_height) && unsigned(w) < unsigned(g.in_width))
          v = read_activation(p.x + x_base + rows.offset[row]);
        a_regs[t] = v;
      }
      const int dy_base = n * g.out_channels * pixels + pixel;
#pragma unroll
      for (int t = 0; t < kBRegs; ++t) {
        const int o = n0 + b_layout.mn_first + t * BLayout::kRowStep;
        b_regs[t] = (k_valid && o < g.out_channels) ? read_activation(p.dy + dy_base + o * pixels) : 0.f;
      }
    }

    template <class Element>  // float or __nv_bfloat16 tiles
    __device__ void store(Element (*a_tile)[Cfg::kLdA], Element (*b_tile)[Cfg::kLdB],
                          const float (&a_regs)[kARegs], const float (&b_regs)[kBRegs]) const {
      a_layout.store(a_tile, a_regs);
      b_layout.store(b_tile, b_regs);
    }
  };

  template <class Cfg>
  static __device__ void store_results(const Params& p, const BlockProblem& slice, int z, int m0,
                                       int n0, int ty, int tx,
                                       const float (&acc)[Cfg::TM][Cfg::TN]) {
    const int M = slice.M, C_out = p.g.out_channels;
    float* out = p.out + std::int64_t(z) * C_out * M;
#pragma unroll
    for (int i = 0; i < Cfg::TM; ++i) {
      const int m = m0 + tile_row<Cfg>(i, ty);
      if (m >= M) continue;
#pragma unroll
      for (int j = 0; j < Cfg::TN; ++j) {
        const int o = n0 + tile_col<Cfg>(j, tx);
        if (o < C_out) out[o * M + m] = acc[i][j];
      }
    }
  }
};

// out[i] = Σ_{z < splits} partial[z][i] (+ bias[channel of i] for an [N, channels, pixels] output
// with a bias), z ascending: the fixed order makes split-K deterministic.
template <typename Out>
__global__ void sum_splits_kernel(const float* __restrict__ partial, const float* __restrict__ bias,
                                  Out* __restrict__ out, int splits, int size, int channels,
                                  int pixels) {
  const int i = int(blockIdx.x) * blockDim.x + int(threadIdx.x);
  if (i >= size) return;
  float sum = 0.f;
  for (int z = 0; z < splits; ++z) sum += partial[std::int64_t(z) * size + i];
  if (bias) sum += __ldg(bias + (i / pixels) % channels);
  out[i] = Out(sum);
}

// =================================================================================================
// Bias gradient: sums[c] = Σ_{n, pixel} a[n, c, pixel], deterministic in two stages
// =================================================================================================

constexpr int kSumThreads = 256;
constexpr int kSumChunk = 8192;  // elements of one channel per stage-1 block

// Stage 1: block (chunk, c) sums elements [chunk·kSumChunk, …) of channel c's batch·pixels values
// with a fixed-shape tree, writing partial[c · chunks + chunk].
template <typename A>
__global__ void channel_sum_partial_kernel(const A* __restrict__ a, float* __restrict__ partial,
                                           int batch, int channels, int pixels, int chunks) {
  __shared__ float lane_sums[kSumThreads];
  const int c = int(blockIdx.y), chunk = int(blockIdx.x);
  const int count = batch * pixels;
  const int begin = chunk * kSumChunk, end = min(count, begin + kSumChunk);
  float sum = 0.f;
  for (int e = begin + int(threadIdx.x); e < end; e += kSumThreads) {
    const int n = e / pixels, pixel = e - n * pixels;
    sum += float(a[(n * channels + c) * pixels + pixel]);
  }
  lane_sums[threadIdx.x] = sum;
  __syncthreads();
  for (int half = kSumThreads / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half) lane_sums[threadIdx.x] += lane_sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[c * chunks + chunk] = lane_sums[0];
}

// Stage 2: sums[c] = Σ_chunk partial[c · chunks + chunk] in order.
__global__ void channel_sum_finish_kernel(const float* __restrict__ partial,
                                          float* __restrict__ sums, int channels, int chunks) {
  const int c = int(blockIdx.x) * blockDim.x + int(threadIdx.x);
  if (c >= channels) return;
  float sum = 0.f;
  for (int chunk = 0; chunk < chunks; ++chunk) sum += partial[c * chunks + chunk];
  sums[c] = sum;
}

// =================================================================================================
// Host side
// =================================================================================================

ConvGeometry geometry_of(const Conv2dParams& p, const char* op) {
  FM_CHECK(p.batch >= 0 && p.in_channels > 0 && p.out_channels > 0 && p.kernel_h > 0 &&
               p.kernel_w > 0 && p.stride_h > 0 && p.stride_w > 0 && p.pad_h >= 0 && p.pad_w >= 0,
           ValueError, op,
           ": bad parameters (channels, kernel and stride must be positive, padding "
           "non-negative)");
  FM_CHECK(p.in_height > 0 && p.in_width > 0 && p.out_height() > 0 && p.out_width() > 0, ValueError,
           op, ": kernel ", p.kernel_h, "x", p.kernel_w, " does not fit the padded ", p.in_height,
           "x", p.in_width, " input");
  // The kernels index with 32-bit offsets.
  const std::int64_t x_size = std::int64_t(p.batch) * p.in_channels * p.in_height * p.in_width;
  const std::int64_t y_size =
      std::int64_t(p.batch) * p.out_channels * p.out_height() * p.out_width();
  const std::int64_t w_size =
      std::int64_t(p.out_channels) * p.in_channels * p.kernel_h * p.kernel_w;
  FM_CHECK(x_size < INT_MAX && y_size < INT_MAX && w_size < INT_MAX, ValueError, op,
           ": tensors of 2^31 or more elements are not supported (input ", x_size, ", output ",
           y_size, ")");
  return {p.batch,        p.in_channels, p.in_height, p.in_width, p.out_channels,
          p.out_height(), p.out_width(), p.kernel_h,  p.kernel_w, p.stride_h,
          p.stride_w,     p.pad_h,       p.pad_w};
}

template <class Cfg, class Pass, Math kMath>
void launch_in(const typename Pass::Params& params, const dim3& grid) {
  using Config = typename ConfigFor<Cfg, kMath>::type;
  static_assert(Config::BM == Cfg::BM && Config::BN == Cfg::BN && Config::kThreads == Cfg::kThreads);
  implicit_gemm_kernel<Config, Pass, kMath><<<grid, Config::kThreads, 0, cuda_stream()>>>(params);
}

template <class Cfg, class Pass>
void launch(const typename Pass::Params& params, std::int64_t max_rows, int cols, int slices, Math math) {
  const dim3 grid(unsigned(ceil_div(max_rows, Cfg::BM)), unsigned(ceil_div(cols, Cfg::BN)),
                  unsigned(slices));
  if (Pass::kBf16Activations || math != Math::Fp32) require_tensor_cores("conv2d (implicit GEMM)");
  if constexpr (Pass::kBf16Activations) {
    (void)math;  // bfloat16 activations: the bfloat16 tensor cores (see the file's header)
    launch_in<Cfg, Pass, Math::Bf16>(params, grid);
  } else {
    switch (math) {
      case Math::Fp32: launch_in<Cfg, Pass, Math::Fp32>(params, grid); break;
      case Math::Tf32: launch_in<Cfg, Pass, Math::Tf32>(params, grid); break;
      case Math::Bf16: launch_in<Cfg, Pass, Math::Bf16>(params, grid); break;
    }
  }
  FM_CUDA_CHECK_LAUNCH();
}

// The three tile shapes, by the GEMM's N (a channel count): 128, 64 or 32 columns wide.
enum class Tile { Wide, Medium, Narrow };

Tile tile_for_columns(int cols) {
  return cols > 64 ? Tile::Wide : cols > 32 ? Tile::Medium : Tile::Narrow;
}

int tile_width(Tile tile) {
  return tile == Tile::Wide ? WideTile::BN : tile == Tile::Medium ? MediumTile::BN : NarrowTile::BN;
}

// Blocks of the tile resident on one SM: the count each asks for with __launch_bounds__, which is
// what ncu reported on the H100 for the wide (2) and medium (3) tiles (the register limit).
int resident_blocks_per_sm(Tile tile) {
  return tile == Tile::Wide     ? WideTile::kMinBlocksPerSm
         : tile == Tile::Medium ? MediumTile::kMinBlocksPerSm
                                : NarrowTile::kMinBlocksPerSm;
}

template <class Pass>
void launch_tile(Tile tile, const typename Pass::Params& params, std::int64_t max_rows, int cols,
                 int slices, Math math) {
  switch (tile) {
    case Tile::Wide: return launch<WideTile, Pass>(params, max_rows, cols, slices, math);
    case Tile::Medium: return launch<MediumTile, Pass>(params, max_rows, cols, slices, math);
    case Tile::Narrow: return launch<NarrowTile, Pass>(params, max_rows, cols, slices, math);
  }
}

// Number of output tiles of a forward or dgrad launch: `row_tiles` blocks of 128 rows per column
// tile (per slice).
std::int64_t output_tiles(std::int64_t row_tiles, int cols, Tile tile) {
  return row_tiles * ceil_div(cols, tile_width(tile));
}

// The tile for a forward or dgrad output. An output with fewer tiles than SMs (the 7×7 layers at
// batch 256: 98 row tiles) gets split-K below; there a wide tile for 65..128 columns would leave
// 8-warp blocks of which only 2 fit an SM, while the medium tile makes twice as many 4-warp blocks,
// 3 per SM. On the H100 (2026-11-22) the 7×7 128→64 input gradient (N = 128) took 0.138 ms with wide
// tiles in 5 slices, 0.167 ms in 8, where the forward of the same size on medium tiles (N = 64, 4
// slices) took 0.100 ms.
Tile output_tile(std::int64_t row_tiles, int cols) {
  const Tile tile = tile_for_columns(cols);
  if (tile == Tile::Wide && output_tiles(row_tiles, cols, tile) < device_multiprocessor_count())
    return Tile::Medium;
  return tile;
}

// K slices for a forward or dgrad launch of `tiles` output tiles (per slice) of the given tile
// shape and reduction length K. 1 when the tiles fill at least one wave (every SM holding as many
// blocks as fit). Otherwise the count s
// (each slice at least 64 long: four 16-deep steps for the pipeline to overlap; at most 16) whose
// launch finishes soonest: tiles·s blocks run in ⌈tiles·s / (SMs · resident blocks)⌉ waves of
// blocks 1/s as long, so the time goes as waves(s)/s; ties go to fewer slices (less workspace
// traffic). Rounding matters: the 7×7 layers have 98 tiles and 132 SMs × 3 blocks = 396 slots, so
// 4 slices fill one wave (392 blocks) where 5 slices spill 94 blocks into a second wave.
int output_k_splits(std::int64_t tiles, Tile tile, int K) {
  static_assert(WideTile::BM == 128 && MediumTile::BM == 128 && NarrowTile::BM == 128);
  const std::int64_t slots =
      std::int64_t(device_multiprocessor_count()) * resident_blocks_per_sm(tile);
  if (tiles >= slots) return 1;
  const int most = std::max(1, std::min(16, K / 64));
  int best = 1;
  double best_time = 1.0;  // s = 1: one wave of full-length blocks
  for (int s = 2; s <= most; ++s) {
    const double waves = double((tiles * s + slots - 1) / slots);
    const double time = waves / s;
    if (time < best_time - 1e-9) best = s, best_time = time;
  }
  return best;
}

// Adds the K slices of a split launch (and the bias) into `out`, then frees the workspace.
template <typename A>
void finish_output_split(const OutputSplit& split, const float* bias, A* out,
                         std::int64_t size, int channels, int pixels) {
  if (split.k_splits == 1) return;
  sum_splits_kernel<A><<<unsigned(ceil_div(size, 256)), 256, 0, cuda_stream()>>>(
      split.partial, bias, out, split.k_splits, int(size), channels, pixels);
  FM_CUDA_CHECK_LAUNCH();
  cuda_free(split.partial);  // stream-ordered reuse by the caching allocator: no sync needed
}

OutputSplit make_output_split(int k_splits, std::int64_t size) {
  OutputSplit split;
  split.k_splits = k_splits;
  if (k_splits > 1)
    split.partial = static_cast<float*>(cuda_malloc(std::size_t(size) * k_splits * sizeof(float)));
  return split;
}

template <typename A>
void run_forward(const A* x, const float* weight, const float* bias, A* y,
                 const ConvGeometry& g, Math math) {
  const std::int64_t rows = std::int64_t(g.batch) * g.out_height * g.out_width;
  if (rows == 0) return;
  const int K = g.in_channels * g.kernel_h * g.kernel_w;
  const std::int64_t row_tiles = ceil_div(rows, 128);
  const Tile tile = output_tile(row_tiles, g.out_channels);
  const std::int64_t size = rows * g.out_channels;
  const OutputSplit split = make_output_split(
      output_k_splits(output_tiles(row_tiles, g.out_channels, tile), tile, K), size);
  launch_tile<ForwardPass<A>>(tile, {g, x, weight, bias, y, split}, rows, g.out_channels,
                           split.k_splits, math);
  finish_output_split(split, bias, y, size, g.out_channels, g.out_height * g.out_width);
}

template <typename A>
void run_dgrad(const A* dy, const float* weight, const float* bias, A* dx,
               const ConvGeometry& g, Math math) {
  // Largest parity class: ceil(H / stride) × ceil(W / stride) pixels per image.
  const std::int64_t max_rows = std::int64_t(g.batch) *
                                ((g.in_height + g.stride_h - 1) / g.stride_h) *
                                ((g.in_width + g.stride_w - 1) / g.stride_w);
  if (max_rows == 0) return;
  FM_CHECK(std::int64_t(g.stride_h) * g.stride_w <= 65535, ValueError,
           "conv2d_backward_input_cuda: stride ", g.stride_h, "x", g.stride_w, " is too large");
  const int classes = g.stride_h * g.stride_w;
  const int max_taps = ((g.kernel_h + g.stride_h - 1) / g.stride_h) *
                       ((g.kernel_w + g.stride_w - 1) / g.stride_w);
  const std::int64_t row_tiles = std::int64_t(classes) * ceil_div(max_rows, 128);
  const Tile tile = output_tile(row_tiles, g.in_channels);
  int k_splits = output_k_splits(output_tiles(row_tiles, g.in_channels, tile), tile,
                                 g.out_channels * max_taps);
  if (std::int64_t(classes) * k_splits > 65535) k_splits = 1;  // grid.z holds classes × slices
  const std::int64_t size = std::int64_t(g.batch) * g.in_channels * g.in_height * g.in_width;
  const OutputSplit split = make_output_split(k_splits, size);
  launch_tile<DgradPass<A>>(tile, {g, dy, weight, bias, dx, split}, max_rows, g.in_channels,
                         classes * k_splits, math);
  finish_output_split(split, bias, dx, size, g.in_channels, g.in_height * g.in_width);
}

// sums[c] = Σ_{n, pixel} a[n, c, pixel] over an [N, C, pixels] array.
template <typename A>
void run_channel_sum(const A* a, float* sums, int batch, int channels, int pixels) {
  const int count = batch * pixels;
  const int chunks = std::max(1, int(ceil_div(count, kSumChunk)));
  FM_CHECK(channels <= 65535, ValueError, "bias gradient: ", channels,
           " channels is more than a grid dimension holds");
  float* partial = static_cast<float*>(cuda_malloc(std::size_t(channels) * chunks * sizeof(float)));
  channel_sum_partial_kernel<A><<<dim3(unsigned(chunks), unsigned(channels)), kSumThreads, 0,
                                  cuda_stream()>>>(a, partial, batch, channels, pixels, chunks);
  FM_CUDA_CHECK_LAUNCH();
  channel_sum_finish_kernel<<<unsigned(ceil_div(channels, 128)), 128, 0, cuda_stream()>>>(
      partial, sums, channels, chunks);
  FM_CUDA_CHECK_LAUNCH();
  cuda_free(partial);  // safe without a sync: later users of the block run after us on the stream
}

template <typename A>
void run_wgrad(const A* x, const A* dy, float* dweight, const ConvGeometry& g, Math math) {
  const int M = g.in_channels * g.kernel_h * g.kernel_w, N = g.out_channels;
  const int K = g.batch * g.out_height * g.out_width;
  if (K == 0) {  // empty batch: the gradient is zero
    cuda_memset_zero(dweight, std::size_t(M) * N * sizeof(float));
    return;
  }
  // Enough blocks to fill the GPU about four times over; never fewer than 16 K-steps per split so
  // the pipeline has something to overlap, and at most 256 splits to bound the workspace.
  constexpr int kStep = 16;  // splits start on a multiple of every tile configuration's BK
  static_assert(kStep % WideTile::BK == 0 && kStep % MediumTile::BK == 0 &&
                kStep % NarrowTile::BK == 0);
  const Tile tile = tile_for_columns(N);
  const int block_n = tile_width(tile);
  static_assert(WideTile::BM == 128 && MediumTile::BM == 128 && NarrowTile::BM == 128);
  const std::int64_t tiles = ceil_div(M, 128) * ceil_div(N, block_n);
  const int k_steps = int(ceil_div(K, kStep));
  const std::int64_t wanted =
      std::max<std::int64_t>(1, ceil_div(4 * device_multiprocessor_count(), tiles));
  const int splits_cap = std::max(1, std::min(256, k_steps / 16));
  int splits = int(std::min<std::int64_t>(wanted, splits_cap));
  const int steps_per_split = int(ceil_div(k_steps, splits));
  splits = int(ceil_div(k_steps, steps_per_split));  // no empty split
  const int k_per_split = steps_per_split * kStep;

  if (splits == 1) {
    launch_tile<WgradPass<A>>(tile, {g, x, dy, dweight, k_per_split}, M, N, 1, math);
    return;
  }
  const std::size_t size = std::size_t(M) * N;
  float* partial = static_cast<float*>(cuda_malloc(size * splits * sizeof(float)));
  launch_tile<WgradPass<A>>(tile, {g, x, dy, partial, k_per_split}, M, N, splits, math);
  sum_splits_kernel<float><<<unsigned(ceil_div(std::int64_t(size), 256)), 256, 0, cuda_stream()>>>(
      partial, nullptr, dweight, splits, int(size), 1, 1);
  FM_CUDA_CHECK_LAUNCH();
  cuda_free(partial);
}

}  // namespace

// A GEMM with one or two columns (the U-Net's 1-channel stem and head) would leave 30 of the 32
// columns of the narrowest tile idle. The direct kernels of conv2d_naive.cu (one thread per output
// element) do only the useful work there; on the H100 (docs/ops/conv2d.md §7) they took 0.049 ms
// against v2's 0.099 ms for the 16→1 head's forward and 0.051 against 0.204 ms for the 1→32 stem's
// input gradient. Their cost grows with the column count while the tile's does not, so they stay
// ahead up to about two columns.
constexpr int kDirectMaxColumns = 2;

// ---- conv2d -------------------------------------------------------------------------------------
// Each pass in FP32 (*_cuda) and on the tensor cores in TF32 (*_cuda_tf32) or bfloat16 (*_cuda_bf16).
// The one- and two-column layers go to the direct FP32 kernels either way: too little work to be
// worth a tensor-core tile.

namespace {

// The direct kernels exist for float activations only; bfloat16 takes the tile path at any width.
template <typename A>
constexpr bool direct_kernels_for = std::is_same_v<A, float>;

template <typename A>
void conv2d_forward(const A* x, const float* weight, const float* bias, A* y, const Conv2dParams& p, Math math) {
  const ConvGeometry g = geometry_of(p, "conv2d_forward_cuda");
  if constexpr (direct_kernels_for<A>)
    if (g.out_channels <= kDirectMaxColumns) return conv2d_forward_cuda_naive(x, weight, bias, y, p);
  run_forward(x, weight, bias, y, g, math);
}

template <typename A>
void conv2d_backward_input(const A* dy, const float* weight, A* dx, const Conv2dParams& p, Math math) {
  const ConvGeometry g = geometry_of(p, "conv2d_backward_input_cuda");
  if constexpr (direct_kernels_for<A>)
    if (g.in_channels <= kDirectMaxColumns) return conv2d_backward_input_cuda_naive(dy, weight, dx, p);
  run_dgrad(dy, weight, nullptr, dx, g, math);
}

template <typename A>
void conv2d_backward_weight(const A* x, const A* dy, float* dweight, float* dbias, const Conv2dParams& p,
                            Math math) {
  const ConvGeometry g = geometry_of(p, "conv2d_backward_weight_cuda");
  run_wgrad(x, dy, dweight, g, math);
  if (dbias) run_channel_sum(dy, dbias, g.batch, g.out_channels, g.out_height * g.out_width);
}

// conv_transpose2d: the conv2d passes with roles swapped.
template <typename A>
void conv_transpose2d_forward(const A* x, const float* weight, const float* bias, A* y,
                              const ConvTranspose2dParams& p, Math math) {
  // Forward = dgrad of the equivalent conv2d; the bias lands on its input channels (our C_out).
  const ConvGeometry g = geometry_of(p.as_conv2d(), "conv_transpose2d_forward_cuda");
  if constexpr (direct_kernels_for<A>)
    if (g.in_channels <= kDirectMaxColumns) return conv_transpose2d_forward_cuda_naive(x, weight, bias, y, p);
  run_dgrad(x, weight, bias, y, g, math);
}

template <typename A>
void conv_transpose2d_backward_input(const A* dy, const float* weight, A* dx, const ConvTranspose2dParams& p,
                                     Math math) {
  const ConvGeometry g = geometry_of(p.as_conv2d(), "conv_transpose2d_backward_input_cuda");
  if constexpr (direct_kernels_for<A>)
    if (g.out_channels <= kDirectMaxColumns) return conv_transpose2d_backward_input_cuda_naive(dy, weight, dx, p);
  run_forward(dy, weight, nullptr, dx, g, math);
}

template <typename A>
void conv_transpose2d_backward_weight(const A* x, const A* dy, float* dweight, float* dbias,
                                      const ConvTranspose2dParams& p, Math math) {
  // The equivalent conv2d reads dy as its input and x as its output gradient.
  const ConvGeometry g = geometry_of(p.as_conv2d(), "conv_transpose2d_backward_weight_cuda");
  run_wgrad(dy, x, dweight, g, math);
  if (dbias) run_channel_sum(dy, dbias, p.batch, p.out_channels, p.out_height() * p.out_width());
}

}  // namespace

void conv2d_forward_cuda(const float* x, const float* weight, const float* bias, float* y, const Conv2dParams& p) {
  conv2d_forward(x, weight, bias, y, p, Math::Fp32);
}
void conv2d_backward_input_cuda(const float* dy, const float* weight, float* dx, const Conv2dParams& p) {
  conv2d_backward_input(dy, weight, dx, p, Math::Fp32);
}
void conv2d_backward_weight_cuda(const float* x, const float* dy, float* dweight, float* dbias,
                                 const Conv2dParams& p) {
  conv2d_backward_weight(x, dy, dweight, dbias, p, Math::Fp32);
}
void conv_transpose2d_forward_cuda(const float* x, const float* weight, const float* bias, float* y,
                                   const ConvTranspose2dParams& p) {
  conv_transpose2d_forward(x, weight, bias, y, p, Math::Fp32);
}
void conv_transpose2d_backward_input_cuda(const float* dy, const float* weight, float* dx,
                                          const ConvTranspose2dParams& p) {
  conv_transpose2d_backward_input(dy, weight, dx, p, Math::Fp32);
}
void conv_transpose2d_backward_weight_cuda(const float* x, const float* dy, float* dweight, float* dbias,
                                           const ConvTranspose2dParams& p) {
  conv_transpose2d_backward_weight(x, dy, dweight, dbias, p, Math::Fp32);
}

void conv2d_forward_cuda_tf32(const float* x, const float* weight, const float* bias, float* y,
                              const Conv2dParams& p) {
  conv2d_forward(x, weight, bias, y, p, Math::Tf32);
}
void conv2d_backward_input_cuda_tf32(const float* dy, const float* weight, float* dx, const Conv2dParams& p) {
  conv2d_backward_input(dy, weight, dx, p, Math::Tf32);
}
void conv2d_backward_weight_cuda_tf32(const float* x, const float* dy, float* dweight, float* dbias,
                                      const Conv2dParams& p) {
  conv2d_backward_weight(x, dy, dweight, dbias, p, Math::Tf32);
}
void conv_transpose2d_forward_cuda_tf32(const float* x, const float* weight, const float* bias, float* y,
                                        const ConvTranspose2dParams& p) {
  conv_transpose2d_forward(x, weight, bias, y, p, Math::Tf32);
}
void conv_transpose2d_backward_input_cuda_tf32(const float* dy, const float* weight, float* dx,
                                               const ConvTranspose2dParams& p) {
  conv_transpose2d_backward_input(dy, weight, dx, p, Math::Tf32);
}
void conv_transpose2d_backward_weight_cuda_tf32(const float* x, const float* dy, float* dweight, float* dbias,
                                                const ConvTranspose2dParams& p) {
  conv_transpose2d_backward_weight(x, dy, dweight, dbias, p, Math::Tf32);
}

void conv2d_forward_cuda_bf16(const float* x, const float* weight, const float* bias, float* y,
                              const Conv2dParams& p) {
  conv2d_forward(x, weight, bias, y, p, Math::Bf16);
}
void conv2d_backward_input_cuda_bf16(const float* dy, const float* weight, float* dx, const Conv2dParams& p) {
  conv2d_backward_input(dy, weight, dx, p, Math::Bf16);
}
void conv2d_backward_weight_cuda_bf16(const float* x, const float* dy, float* dweight, float* dbias,
                                      const Conv2dParams& p) {
  conv2d_backward_weight(x, dy, dweight, dbias, p, Math::Bf16);
}
void conv_transpose2d_forward_cuda_bf16(const float* x, const float* weight, const float* bias, float* y,
                                        const ConvTranspose2dParams& p) {
  conv_transpose2d_forward(x, weight, bias, y, p, Math::Bf16);
}
void conv_transpose2d_backward_input_cuda_bf16(const float* dy, const float* weight, float* dx,
                                               const ConvTranspose2dParams& p) {
  conv_transpose2d_backward_input(dy, weight, dx, p, Math::Bf16);
}
void conv_transpose2d_backward_weight_cuda_bf16(const float* x, const float* dy, float* dweight, float* dbias,
                                                const ConvTranspose2dParams& p) {
  conv_transpose2d_backward_weight(x, dy, dweight, dbias, p, Math::Bf16);
}

// bfloat16 activations: always the bfloat16 tensor cores (the file's header).
void conv2d_forward_cuda(const bf16* x, const float* weight, const float* bias, bf16* y, const Conv2dParams& p) {
  conv2d_forward(x, weight, bias, y, p, Math::Bf16);
}
void conv2d_backward_input_cuda(const bf16* dy, const float* weight, bf16* dx, const Conv2dParams& p) {
  conv2d_backward_input(dy, weight, dx, p, Math::Bf16);
}
void conv2d_backward_weight_cuda(const bf16* x, const bf16* dy, float* dweight, float* dbias,
                                 const Conv2dParams& p) {
  conv2d_backward_weight(x, dy, dweight, dbias, p, Math::Bf16);
}
void conv_transpose2d_forward_cuda(const bf16* x, const float* weight, const float* bias, bf16* y,
                                   const ConvTranspose2dParams& p) {
  conv_transpose2d_forward(x, weight, bias, y, p, Math::Bf16);
}
void conv_transpose2d_backward_input_cuda(const bf16* dy, const float* weight, bf16* dx,
                                          const ConvTranspose2dParams& p) {
  conv_transpose2d_backward_input(dy, weight, dx, p, Math::Bf16);
}
void conv_transpose2d_backward_weight_cuda(const bf16* x, const bf16* dy, float* dweight, float* dbias,
                                           const ConvTranspose2dParams& p) {
  conv_transpose2d_backward_weight(x, dy, dweight, dbias, p, Math::Bf16);
}

}  // namespace fm::kernels
