// kernels/cuda/gemm_tf32.cu — batched GEMM on the tensor cores in TF32 (kernels/gemm.h:
// gemm_batched_cuda_tf32), the first step of the project's tensor-core path (issue 14). The teaching
// version: the warp matrix API (WMMA, <mma.h>), one tile size, no double buffering.
//
// TF32 keeps FP32's 8-bit exponent and 10 of its 23 mantissa bits. The tensor cores multiply such
// inputs exactly and accumulate in FP32, so the only new error is the rounding of A and B to TF32:
// at most 2^-11 relative each, about 2^-10 per product (tests/test_kernel_gemm.cpp derives the full
// bound it checks). An H100 runs TF32 at about 495 TFLOP/s (dense) against 67 TFLOP/s of FP32 FMA
// (NVIDIA's datasheet figures).
//
// Tiling. A block of 128 threads (4 warps) computes a 64×64 tile of C; each warp a 32×32 quarter as
// 2×2 WMMA accumulators of 16×16. Per step of 16 along K the block stages op(A)[64×16] and
// op(B)[16×64] in shared memory — rounded to TF32 once there, bounds-checked with zeros outside the
// matrices, so any M, N, K and both transposes work — and each warp runs 2 k-substeps of
// 2×2 mma_sync (m16n16k8). The epilogue goes through shared memory too: the accumulators are stored
// as a 64×64 tile, and every thread applies C = alpha·AB + beta·C to its elements with bounds checks.
// Shared memory rows are padded (16 + 4 and 64 + 4 floats) to spread banks while keeping every WMMA
// pointer 32-byte aligned and every leading dimension a multiple of 4, as the API requires.
//
// Not yet: double-buffered cp.async staging, larger warp tiles, Hopper's wgmma — the speed work that
// comes after this version has run on a GPU (it has run only on the CUDA emulator so far).
#include <mma.h>

#include "kernels/cuda/common.cuh"
#include "kernels/gemm.h"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

using namespace nvcuda;

constexpr int kTileM = 64, kTileN = 64, kTileK = 16;
constexpr int kThreads = 128;                 // 4 warps in a 2×2 arrangement
constexpr int kWarpTileM = 32, kWarpTileN = 32;
constexpr int kLdA = kTileK + 4;              // 20 floats: a 16-row step is 1280 bytes (32-byte multiple)
constexpr int kLdB = kTileN + 4;              // 68 floats
constexpr int kLdC = kTileN + 4;

struct GemmArgs {
  bool trans_a, trans_b;
  int M, N, K;
  float alpha, beta;
  const float* A;
  int lda;
  std::int64_t stride_a;
  const float* B;
  int ldb;
  std::int64_t stride_b;
  float* C;
  int ldc;
  std::int64_t stride_c;
};

// op(A)[row, k] and op(B)[k, col] of one batch entry, zero outside the matrix.
__device__ __forceinline__ float load_a(const GemmArgs& g, const float* A, int row, int k) {
  if (row >= g.M || k >= g.K) return 0.f;
  return g.trans_a ? A[std::int64_t(k) * g.lda + row] : A[std::int64_t(row) * g.lda + k];
}
__device__ __forceinline__ float load_b(const GemmArgs& g, const float* B, int k, int col) {
  if (k >= g.K || col >= g.N) return 0.f;
  return g.trans_b ? B[std::int64_t(col) * g.ldb + k] : B[std::int64_t(k) * g.ldb + col];
}

__global__ void __launch_bounds__(kThreads) gemm_tf32_kernel(GemmArgs g) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // TF32 tensor cores start with Ampere (sm_80); the host side refuses older devices first
#else
  __shared__ __align__(32) float a_tile[kTileM][kLdA];
  __shared__ __align__(32) float b_tile[kTileK][kLdB];
  __shared__ __align__(32) float c_tile[kTileM][kLdC];

  const int batch = int(blockIdx.z);
  const float* A = g.A + batch * g.stride_a;
  const float* B = g.B + batch * g.stride_b;
  float* C = g.C + batch * g.stride_c;
  const int m0 = int(blockIdx.y) * kTileM, n0 = int(blockIdx.x) * kTileN;
  const int tid = int(threadIdx.x), warp = tid / 32;
  const int warp_m = (warp / 2) * kWarpTileM, warp_n = (warp % 2) * kWarpTileN;

  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[2][2];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  for (int k0 = 0; k0 < g.K; k0 += kTileK) {
    // Stage the tiles: 64×16 of op(A) and 16×64 of op(B), 8 elements per thread each, rounded to TF32.
    for (int e = tid; e < kTileM * kTileK; e += kThreads) {
      const int r = e / kTileK, k = e % kTileK;
      a_tile[r][k] = wmma::__float_to_tf32(load_a(g, A, m0 + r, k0 + k));
    }
    for (int e = tid; e < kTileK * kTileN; e += kThreads) {
      const int k = e / kTileN, c = e % kTileN;
      b_tile[k][c] = wmma::__float_to_tf32(load_b(g, B, k0 + k, n0 + c));
    }
    __syncthreads();
    for (int kk = 0; kk < kTileK; kk += 8) {
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a_frag[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b_frag[2];
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
    float* out = C + std::int64_t(row) * g.ldc + col;
    // beta = 0 must not read C (it may hold garbage or NaN), as in BLAS.
    *out = g.beta == 0.f ? g.alpha * c_tile[r][c] : g.alpha * c_tile[r][c] + g.beta * *out;
  }
#endif
}

}  // namespace

void gemm_batched_cuda_tf32(int batch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                            const float* A, int lda, std::int64_t stride_a, const float* B, int ldb,
                            std::int64_t stride_b, float beta, float* C, int ldc, std::int64_t stride_c) {
  FM_CHECK(batch >= 0 && M >= 0 && N >= 0 && K >= 0, ValueError,
           "gemm_batched_cuda_tf32: sizes must be >= 0, got batch=", batch, " M=", M, " N=", N, " K=", K);
  FM_CHECK(batch <= 65535, ValueError, "gemm_batched_cuda_tf32: batch ", batch, " exceeds the grid's z limit 65535");
  FM_CHECK(ceil_div(M, kTileM) <= 65535, ValueError, "gemm_batched_cuda_tf32: M = ", M,
           " needs more than 65535 row tiles (the grid's y limit)");
  if (batch == 0 || M == 0 || N == 0) return;
  GemmArgs args{trans_a, trans_b, M, N, K, alpha, beta, A, lda, stride_a, B, ldb, stride_b, C, ldc, stride_c};
  dim3 grid(unsigned(ceil_div(N, kTileN)), unsigned(ceil_div(M, kTileM)), unsigned(batch));
  gemm_tf32_kernel<<<grid, kThreads, 0, cuda_stream()>>>(args);
  FM_CUDA_CHECK_LAUNCH();
}

}  // namespace fm::kernels
