// kernels/cuda/gemm_tensor_cores.cu — batched GEMM on the tensor cores, TF32 or bfloat16 inputs with
// FP32 accumulation (kernels/gemm.h: gemm_batched_cuda_tf32, gemm_batched_cuda_bf16): the project's
// tensor-core path (issue 14). The teaching version: the warp matrix API (WMMA, <mma.h>), one tile
// size, no double buffering.
//
// TF32 keeps FP32's 8-bit exponent and 10 of its 23 mantissa bits; bfloat16 keeps the exponent and 7.
// The tensor cores multiply such inputs exactly (11×11 or 8×8 significant bits fit in FP32's 24) and
// accumulate in FP32, so the only new error is the rounding of A and B: at most 2^-11 (TF32) or 2^-8
// (bfloat16) relative each (tests/test_kernel_gemm.cpp derives the full bound it checks). An H100
// runs TF32 at about 495 TFLOP/s and bfloat16 at about 990 (dense) against 67 TFLOP/s of FP32 FMA
// (NVIDIA's datasheet figures). bfloat16 also halves the bytes of every operand tile.
//
// Tiling. A block of 128 threads (4 warps) computes a 64×64 tile of C; each warp a 32×32 quarter as
// 2×2 WMMA accumulators of 16×16. Per step of 16 along K the block stages op(A)[64×16] and
// op(B)[16×64] in shared memory — converted to the input format once there (TF32 values kept in
// floats, or bfloat16), bounds-checked with zeros outside the matrices, so any M, N, K and both
// transposes work — and each warp runs 2×2 mma_sync per WMMA step: two steps of m16n16k8 for TF32,
// one of m16n16k16 for bfloat16. The epilogue goes through shared memory too: the accumulators are
// stored as a 64×64 FP32 tile, and every thread applies C = alpha·AB + beta·C to its elements with
// bounds checks. Shared memory rows are padded by 16 bytes (4 floats, 8 bfloat16) to spread banks
// while keeping every WMMA pointer 32-byte aligned and every leading dimension a multiple of 16 bytes,
// as the API requires.
//
// Not yet: double-buffered cp.async staging, larger warp tiles, Hopper's wgmma — the speed work that
// comes after this version has run on a GPU (it has run only on the CUDA emulator so far).
#include <mma.h>

#include <array>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/tensor_core_inputs.cuh"
#include "kernels/gemm.h"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

using namespace nvcuda;

constexpr int kTileM = 64, kTileN = 64, kTileK = 16;
constexpr int kThreads = 128;                 // 4 warps in a 2×2 arrangement
constexpr int kWarpTileM = 32, kWarpTileN = 32;
constexpr int kLdC = kTileN + 4;              // the FP32 epilogue tile: 68 floats

// The input format's name, for error messages.
template <class Inputs>
constexpr const char* kGemmName = "gemm_batched_cuda_tf32";
template <>
constexpr const char* kGemmName<Bf16Inputs> = "gemm_batched_cuda_bf16";

// The matrices' element types: float, or bfloat16 operands and outputs (kernels/gemm.h's mixed GEMM).
// Every element is read as a float (exact) and C is written rounded once.
template <typename TA = float, typename TB = float, typename TC = float>
struct GemmArgs {
  bool trans_a, trans_b;
  int M, N, K;
  float alpha, beta;
  const TA* A;
  int lda;
  std::int64_t stride_a;
  const TB* B;
  int ldb;
  std::int64_t stride_b;
  TC* C;
  int ldc;
  std::int64_t stride_c;
  // What this struct points to, for the CUDA emulator's check that each is a device address.
  std::array<const void*, 3> device_pointers() const { return {A, B, C}; }
};

// op(A)[row, k] and op(B)[k, col] of one batch entry, zero outside the matrix.
template <class Args, typename TA>
__device__ __forceinline__ float load_a(const Args& g, const TA* A, int row, int k) {
  if (row >= g.M || k >= g.K) return 0.f;
  return float(g.trans_a ? A[std::int64_t(k) * g.lda + row] : A[std::int64_t(row) * g.lda + k]);
}
template <class Args, typename TB>
__device__ __forceinline__ float load_b(const Args& g, const TB* B, int k, int col) {
  if (k >= g.K || col >= g.N) return 0.f;
  return float(g.trans_b ? B[std::int64_t(col) * g.ldb + k] : B[std::int64_t(k) * g.ldb + col]);
}

template <class Inputs, typename TA, typename TB, typename TC>
__global__ void __launch_bounds__(kThreads) gemm_tensor_core_kernel(GemmArgs<TA, TB, TC> g) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // TF32 and bfloat16 tensor cores start with Ampere (sm_80); the host side refuses older devices first
#else
  using Element = typename Inputs::Element;
  constexpr int kLdA = kTileK + Inputs::kPad, kLdB = kTileN + Inputs::kPad;
  __shared__ __align__(32) Element a_tile[kTileM][kLdA];
  __shared__ __align__(32) Element b_tile[kTileK][kLdB];
  __shared__ __align__(32) float c_tile[kTileM][kLdC];

  const int batch = int(blockIdx.z);
  const TA* A = g.A + batch * g.stride_a;
  const TB* B = g.B + batch * g.stride_b;
  TC* C = g.C + batch * g.stride_c;
  const int m0 = int(blockIdx.y) * kTileM, n0 = int(blockIdx.x) * kTileN;
  const int tid = int(threadIdx.x), warp = tid / 32;
  const int warp_m = (warp / 2) * kWarpTileM, warp_n = (warp % 2) * kWarpTileN;

  wmma::fragment<wmma::accumulator, 16, 16, Inputs::kStepK, float> acc[2][2];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  for (int k0 = 0; k0 < g.K; k0 += kTileK) {
    // Stage the tiles: 64×16 of op(A) and 16×64 of op(B), 8 elements per thread each, converted once.
    for (int e = tid; e < kTileM * kTileK; e += kThreads) {
      const int r = e / kTileK, k = e % kTileK;
      a_tile[r][k] = Inputs::convert(load_a(g, A, m0 + r, k0 + k));
    }
    for (int e = tid; e < kTileK * kTileN; e += kThreads) {
      const int k = e / kTileN, c = e % kTileN;
      b_tile[k][c] = Inputs::convert(load_b(g, B, k0 + k, n0 + c));
    }
    __syncthreads();
    for (int kk = 0; kk < kTileK; kk += Inputs::kStepK) {
      wmma::fragment<wmma::matrix_a, 16, 16, Inputs::kStepK, typename Inputs::Fragment, wmma::row_major> a_frag[2];
      wmma::fragment<wmma::matrix_b, 16, 16, Inputs::kStepK, typename Inputs::Fragment, wmma::row_major> b_frag[2];
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(a_frag[i], &a_tile[warp_m + 16 * i][kk], kLdA);
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(b_frag[j], &b_tile[kk][warp_n + 16 * j], kLdB);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], a_frag[i], b_frag[j], acc[i][j]);
    }
    __syncthreads();  // the next stage overwrites the tiles
  }

  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(&c_tile[warp_m + 16 * i][warp_n + 16 * j], acc[i][j], kLdC, wmma::mem_row_major);
  __syncthreads();
  for (int e = tid; e < kTileM * kTileN; e += kThreads) {
    const int r = e / kTileN, c = e % kTileN;
    const int row = m0 + r, col = n0 + c;
    if (row >= g.M || col >= g.N) continue;
    TC* out = C + std::int64_t(row) * g.ldc + col;
    // beta = 0 must not read C (it may hold garbage or NaN), as in BLAS.
    *out = TC(g.beta == 0.f ? g.alpha * c_tile[r][c] : g.alpha * c_tile[r][c] + g.beta * float(*out));
  }
#endif
}

template <class Inputs, typename TA, typename TB, typename TC>
void launch_gemm(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const TA* A, int lda,
                 std::int64_t stride_a, const TB* B, int ldb, std::int64_t stride_b, float beta, TC* C, int ldc,
                 std::int64_t stride_c) {
  const char* name = kGemmName<Inputs>;
  FM_CHECK(batch >= 0 && M >= 0 && N >= 0 && K >= 0, ValueError, name, ": sizes must be >= 0, got batch=", batch,
           " M=", M, " N=", N, " K=", K);
  FM_CHECK(batch <= 65535, ValueError, name, ": batch ", batch, " exceeds the grid's z limit 65535");
  FM_CHECK(ceil_div(M, kTileM) <= 65535, ValueError, name, ": M = ", M,
           " needs more than 65535 row tiles (the grid's y limit)");
  if (batch == 0 || M == 0 || N == 0) return;
  require_tensor_cores(name);
  GemmArgs<TA, TB, TC> args{trans_a, trans_b, M, N, K, alpha, beta, A, lda, stride_a, B, ldb, stride_b, C, ldc,
                            stride_c};
  dim3 grid(unsigned(ceil_div(N, kTileN)), unsigned(ceil_div(M, kTileM)), unsigned(batch));
  gemm_tensor_core_kernel<Inputs, TA, TB, TC><<<grid, kThreads, 0, cuda_stream()>>>(args);
  FM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void gemm_batched_cuda_tf32(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                            const float* A, int lda, std::int64_t stride_a, const float* B, int ldb,
                            std::int64_t stride_b, float beta, float* C, int ldc, std::int64_t stride_c) {
  launch_gemm<Tf32Inputs>(batch, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc,
                          stride_c);
}

void gemm_batched_cuda_bf16(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                            const float* A, int lda, std::int64_t stride_a, const float* B, int ldb,
                            std::int64_t stride_b, float beta, float* C, int ldc, std::int64_t stride_c) {
  launch_gemm<Bf16Inputs>(batch, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc,
                          stride_c);
}

template <typename TA, typename TB, typename TC>
void gemm_batched_mixed_cuda(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const TA* A,
                             int lda, std::int64_t stride_a, const TB* B, int ldb, std::int64_t stride_b, float beta,
                             TC* C, int ldc, std::int64_t stride_c) {
  launch_gemm<Bf16Inputs>(batch, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc,
                          stride_c);
}

template void gemm_batched_mixed_cuda<bf16, float, bf16>(int, bool, bool, int, int, int, float, const bf16*, int,
                                                         std::int64_t, const float*, int, std::int64_t, float, bf16*,
                                                         int, std::int64_t);
template void gemm_batched_mixed_cuda<bf16, bf16, float>(int, bool, bool, int, int, int, float, const bf16*, int,
                                                         std::int64_t, const bf16*, int, std::int64_t, float, float*,
                                                         int, std::int64_t);
template void gemm_batched_mixed_cuda<bf16, bf16, bf16>(int, bool, bool, int, int, int, float, const bf16*, int,
                                                        std::int64_t, const bf16*, int, std::int64_t, float, bf16*,
                                                        int, std::int64_t);

}  // namespace fm::kernels
