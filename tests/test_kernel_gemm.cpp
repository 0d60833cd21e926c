// tests/test_kernel_gemm.cpp — the GEMM kernels: CPU against a direct triple loop (all transpose
// combinations, awkward sizes, the cache blocking with strided operands; each micro-kernel copy this
// CPU runs, float and double), cuBLAS against the CPU on the GPU, and the TF32 tensor-core GEMMs
// (ours and cuBLAS's) against the float64 definition within a derived error bound.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <tuple>
#include <utility>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/gemm_micro_kernel.h"
#include "kernels/gemm.h"
#include "test_util.h"

namespace {
// C = op(A)·op(B) by the definition, in double.
std::vector<double> reference_gemm(bool ta, bool tb, int M, int N, int K, const std::vector<double>& A,
                                   const std::vector<double>& B) {
  std::vector<double> C(std::size_t(M) * N, 0.0);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double acc = 0;
      for (int k = 0; k < K; ++k) {
        double a = ta ? A[std::size_t(k) * M + i] : A[std::size_t(i) * K + k];
        double b = tb ? B[std::size_t(j) * K + k] : B[std::size_t(k) * N + j];
        acc += a * b;
      }
      C[std::size_t(i) * N + j] = acc;
    }
  return C;
}
}  // namespace

TEST_CASE("gemm_cpu matches the definition for every transpose combination", "[gemm]") {
  for (auto [M, N, K] : {std::tuple{1, 1, 1}, std::tuple{7, 5, 3}, std::tuple{33, 17, 65}}) {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        std::vector<double> A(std::size_t(M) * K), B(std::size_t(K) * N), C(std::size_t(M) * N);
        fm::test::fill_uniform(A.data(), A.size(), 1);
        fm::test::fill_uniform(B.data(), B.size(), 2);
        fm::test::poison(C.data(), C.size());
        fm::kernels::gemm_cpu<double>(ta, tb, M, N, K, 1.0, A.data(), ta ? M : K, B.data(),
                                      tb ? K : N, 0.0, C.data(), N);
        auto expected = reference_gemm(ta, tb, M, N, K, A, B);
        FM_REQUIRE_CLOSE(C.data(), expected.data(), C.size(), 1e-12, 1e-12);
      }
  }
}

TEST_CASE("gemm_cpu honours alpha and beta", "[gemm]") {
  std::vector<double> A = {1, 2, 3, 4}, B = {5, 6, 7, 8}, C = {1, 1, 1, 1};
  fm::kernels::gemm_cpu<double>(false, false, 2, 2, 2, 2.0, A.data(), 2, B.data(), 2, 3.0, C.data(), 2);
  // A·B = [[19,22],[43,50]]; 2·AB + 3·1
  std::vector<double> expected = {41, 47, 89, 103};
  FM_REQUIRE_CLOSE(C.data(), expected.data(), 4, 0.0, 0.0);
}

TEST_CASE("gemm_cpu blocking: K and N spanning several cache slices, strided operands", "[gemm]") {
  // The blocked GEMM under im2col (kernels/cpu/conv2d_im2col.cpp) cuts K into 256-deep slices and N
  // into 256-wide (float) / 128-wide (double) slices; the cases above cover small sizes, this covers
  // the cuts, at the sizes im2col uses.
  for (auto [M, N, K] : {std::tuple{13, 600, 530}, std::tuple{64, 784, 288}, std::tuple{1, 37, 700},
                         std::tuple{97, 5, 257}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        INFO("M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb);
        // Leading dimensions larger than the logical width: the GEMM must honour them.
        const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
        auto A = fm::test::random_doubles(std::size_t(ta ? K : M) * lda, 41);
        auto B = fm::test::random_doubles(std::size_t(tb ? N : K) * ldb, 42);
        auto C = fm::test::random_doubles(std::size_t(M) * ldc, 43);
        auto expected = C;
        for (int i = 0; i < M; ++i)
          for (int j = 0; j < N; ++j) {
            double sum = 0;
            for (int k = 0; k < K; ++k)
              sum += (ta ? A[std::size_t(k) * lda + i] : A[std::size_t(i) * lda + k]) *
                     (tb ? B[std::size_t(j) * ldb + k] : B[std::size_t(k) * ldb + j]);
            expected[std::size_t(i) * ldc + j] = 0.5 * sum + 2.0 * C[std::size_t(i) * ldc + j];
          }
        fm::kernels::gemm_cpu<double>(ta, tb, M, N, K, 0.5, A.data(), lda, B.data(), ldb, 2.0,
                                      C.data(), ldc);
        // Includes the padding columns between rows: they must be left untouched.
        FM_REQUIRE_CLOSE(C.data(), expected.data(), C.size(), 1e-12, 1e-12);
      }
}

namespace {
// The micro-kernel copies this process can run: the portable one always, the AVX-512 one when
// cpu_isa() picked it (FM_CPU_ISA=avx2 leaves only the portable one).
std::vector<fm::kernels::CpuIsa> runnable_copies() {
  std::vector<fm::kernels::CpuIsa> copies = {fm::kernels::CpuIsa::Portable};
  if (fm::kernels::cpu_isa() == fm::kernels::CpuIsa::Avx512) copies.push_back(fm::kernels::CpuIsa::Avx512);
  return copies;
}

// Shapes that reach every edge of both copies' blocking: rows short of a 6- or 8-row block, columns
// short of one vector (8 or 16 floats) and of two, K cut into unequal slices (700 = 3 slices, 641 =
// 3), and the small U-Net's conv and attention GEMMs (bench/cpu/gemm_bench.cpp).
const std::tuple<int, int, int> kCopyShapes[] = {
    {1, 1, 1},     {5, 3, 2},      {8, 16, 7},    {9, 17, 33},   {13, 31, 65},  {7, 33, 321},
    {3, 600, 641}, {32, 49, 288},  {16, 196, 144}, {32, 288, 196}, {288, 49, 32}, {196, 8, 196},
    {196, 196, 8}, {97, 40, 700}};

template <typename T>
void check_copy_against_definition(fm::kernels::CpuIsa isa, double atol, double rtol) {
  for (auto [M, N, K] : kCopyShapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        INFO(fm::kernels::cpu_isa_name(isa) << " M=" << M << " N=" << N << " K=" << K << " ta=" << ta
                                             << " tb=" << tb);
        const int lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 3, ldc = N + 2;
        auto A64 = fm::test::random_doubles(std::size_t(ta ? K : M) * lda, 51);
        auto B64 = fm::test::random_doubles(std::size_t(tb ? N : K) * ldb, 52);
        auto C64 = fm::test::random_doubles(std::size_t(M) * ldc, 53);
        std::vector<T> A(A64.begin(), A64.end()), B(B64.begin(), B64.end()), C(C64.begin(), C64.end());
        std::vector<double> expected(C.size());
        for (std::size_t i = 0; i < C.size(); ++i) expected[i] = double(C[i]);
        for (int i = 0; i < M; ++i)
          for (int j = 0; j < N; ++j) {
            double sum = 0;
            for (int k = 0; k < K; ++k)
              sum += double(ta ? A[std::size_t(k) * lda + i] : A[std::size_t(i) * lda + k]) *
                     double(tb ? B[std::size_t(j) * ldb + k] : B[std::size_t(k) * ldb + j]);
            expected[std::size_t(i) * ldc + j] = 1.5 * sum - 0.5 * double(C[std::size_t(i) * ldc + j]);
          }
        fm::kernels::gemm_cpu_on<T>(isa, ta, tb, M, N, K, T(1.5), A.data(), lda, B.data(), ldb,
                                    T(-0.5), C.data(), ldc);
        std::vector<T> expected_t(expected.begin(), expected.end());
        // Includes the padding columns between rows: they must be left untouched.
        FM_REQUIRE_CLOSE(C.data(), expected_t.data(), C.size(), atol, rtol);
      }
}
}  // namespace

TEST_CASE("gemm_cpu: every micro-kernel copy matches the definition, float and double", "[gemm]") {
  for (fm::kernels::CpuIsa isa : runnable_copies()) {
    // double: exact to rounding. float: K ≤ 700 products of values in [-1, 1] summed in float
    // (|sum| up to ~30): a few ulps of the sum's scale.
    check_copy_against_definition<double>(isa, 1e-12, 1e-12);
    check_copy_against_definition<float>(isa, 2e-5, 1e-5);
  }
}

TEST_CASE("gemm_cpu: the portable and AVX-512 copies give bitwise the same results", "[gemm]") {
  // Both sum each element over the same K slices in the same order with one FMA per product
  // (kernels/cpu/gemm_micro_kernel.h); a build without FMA (plain x86-64) rounds differently.
#ifndef __FMA__
  SUCCEED("this build's portable copy has no FMA");
#else
  if (fm::kernels::cpu_isa() != fm::kernels::CpuIsa::Avx512) {
    SUCCEED("this CPU (or FM_CPU_ISA) runs the portable copy only");
    return;
  }
  for (auto [M, N, K] : kCopyShapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        INFO("M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb);
        auto A = fm::test::random_floats(std::size_t(M) * K, 61), B = fm::test::random_floats(std::size_t(K) * N, 62);
        auto C_portable = fm::test::random_floats(std::size_t(M) * N, 63), C_avx512 = C_portable;
        for (auto [isa, C] : {std::pair{fm::kernels::CpuIsa::Portable, C_portable.data()},
                              std::pair{fm::kernels::CpuIsa::Avx512, C_avx512.data()}})
          fm::kernels::gemm_cpu_on<float>(isa, ta, tb, M, N, K, 0.75f, A.data(), ta ? M : K, B.data(),
                                          tb ? K : N, 1.f, C, N);
        REQUIRE(std::memcmp(C_portable.data(), C_avx512.data(), C_portable.size() * sizeof(float)) == 0);
      }
#endif
}

#ifdef FM_WITH_CUDA
TEST_CASE("gemm_batched_cublas matches gemm_batched_cpu", "[gemm][gpu]") {
  FM_REQUIRE_GPU();
  const int batch = 3, M = 37, N = 19, K = 70;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      std::vector<float> A(std::size_t(batch) * M * K), B(std::size_t(batch) * K * N),
          C(std::size_t(batch) * M * N), C_gpu(C.size());
      fm::test::fill_uniform(A.data(), A.size(), 3);
      fm::test::fill_uniform(B.data(), B.size(), 4);
      fm::kernels::gemm_batched_cpu<float>(batch, ta, tb, M, N, K, 1.f, A.data(), ta ? M : K,
                                           std::int64_t(M) * K, B.data(), tb ? K : N,
                                           std::int64_t(K) * N, 0.f, C.data(), N, std::int64_t(M) * N);
      float *dA = (float*)fm::kernels::cuda_malloc(A.size() * 4),
            *dB = (float*)fm::kernels::cuda_malloc(B.size() * 4),
            *dC = (float*)fm::kernels::cuda_malloc(C.size() * 4);
      fm::kernels::cuda_copy_to_device(dA, A.data(), A.size() * 4);
      fm::kernels::cuda_copy_to_device(dB, B.data(), B.size() * 4);
      fm::test::poison(C_gpu.data(), C_gpu.size());
      fm::kernels::cuda_copy_to_device(dC, C_gpu.data(), C_gpu.size() * 4);
      fm::kernels::gemm_batched_cublas(batch, ta, tb, M, N, K, 1.f, dA, ta ? M : K, std::int64_t(M) * K,
                                       dB, tb ? K : N, std::int64_t(K) * N, 0.f, dC, N,
                                       std::int64_t(M) * N);
      fm::kernels::cuda_copy_to_host(C_gpu.data(), dC, C_gpu.size() * 4);
      fm::kernels::cuda_free(dA), fm::kernels::cuda_free(dB), fm::kernels::cuda_free(dC);
      // K = 70 products summed in float in a different order: allow a few ulps of the sum's scale.
      FM_REQUIRE_CLOSE(C_gpu.data(), C.data(), C.size(), 1e-5, 1e-4);
    }
}
#endif

#ifdef FM_WITH_CUDA
namespace {
// The tensor-core GEMMs (TF32 or bfloat16 inputs) against the float64 definition, element by element
// within a derived bound. With u = the inputs' rounding (TF32: 2^-11 for round-to-nearest, as our
// kernel rounds, 2^-10 for truncation, which cuBLAS may use; bfloat16: 2^-8 and 2^-7 likewise), each
// product ã·b̃ is within (2u + u²)·|a·b| of a·b and is exact in FP32 (11×11 or 8×8 significant bits); summing K of them in FP32 in any order adds at most γ·Σ|ã·b̃| with γ = (K + 2)·v / (1 − (K + 2)·v)
// (the + 2 for alpha's product and beta's sum); v = 2^-23 rather than 2^-24, since the tensor cores'
// FP32 accumulation is not documented to round to nearest (truncation is the worst case). So
//   |C − C_exact| ≤ |alpha|·((2u + u²) + (1 + u)²·γ)·Σ_k |a_k·b_k| + 2v·|beta·C_old|.
// A wrong index or a lost tile edge is off by whole products, far outside this; the bound is tight
// enough (about 1e-3 relative for TF32, 1e-2 for bfloat16) that it is not FP32-vs-TF32 differences it
// tests, and a kernel that skipped the rounding would still pass: the exact-rounding cases below check that.
template <typename Gemm>
void require_tensor_core_gemm_within_bound(const char* name, Gemm gemm, double input_rounding) {
  struct Case { int batch, M, N, K; };
  std::size_t checked = 0, expected_checks = 0;
  for (Case cs : {Case{1, 1, 1, 1}, Case{2, 37, 19, 70}, Case{1, 64, 64, 16}, Case{3, 130, 65, 33},
                  Case{1, 5, 200, 9}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (float beta : {0.f, 0.5f}) {
          const int batch = cs.batch, M = cs.M, N = cs.N, K = cs.K;
          const float alpha = 0.75f;
          std::vector<float> A(std::size_t(batch) * M * K), B(std::size_t(batch) * K * N),
              C0(std::size_t(batch) * M * N);
          fm::test::fill_uniform(A.data(), A.size(), 11);
          fm::test::fill_uniform(B.data(), B.size(), 12);
          fm::test::fill_uniform(C0.data(), C0.size(), 13);
          std::vector<float> C_in = C0;
          if (beta == 0.f) fm::test::poison(C_in.data(), C_in.size());  // beta = 0 must not read C
          float *dA = (float*)fm::kernels::cuda_malloc(A.size() * 4), *dB = (float*)fm::kernels::cuda_malloc(B.size() * 4),
                *dC = (float*)fm::kernels::cuda_malloc(C_in.size() * 4);
          fm::kernels::cuda_copy_to_device(dA, A.data(), A.size() * 4);
          fm::kernels::cuda_copy_to_device(dB, B.data(), B.size() * 4);
          fm::kernels::cuda_copy_to_device(dC, C_in.data(), C_in.size() * 4);
          gemm(batch, ta, tb, M, N, K, alpha, dA, ta ? M : K, std::int64_t(M) * K, dB, tb ? K : N,
               std::int64_t(K) * N, beta, dC, N, std::int64_t(M) * N);
          std::vector<float> C(C_in.size());
          fm::kernels::cuda_copy_to_host(C.data(), dC, C.size() * 4);
          fm::kernels::cuda_free(dA), fm::kernels::cuda_free(dB), fm::kernels::cuda_free(dC);

          expected_checks += std::size_t(batch) * M * N;
          const double u = input_rounding, v = 0x1p-23;
          const double gamma = (K + 2) * v / (1 - (K + 2) * v);
          for (int b = 0; b < batch; ++b) {
            std::vector<double> Ab(A.begin() + std::size_t(b) * M * K, A.begin() + std::size_t(b + 1) * M * K);
            std::vector<double> Bb(B.begin() + std::size_t(b) * K * N, B.begin() + std::size_t(b + 1) * K * N);
            std::vector<double> absA(Ab), absB(Bb);
            for (double& x : absA) x = std::abs(x);
            for (double& x : absB) x = std::abs(x);
            const std::vector<double> exact = reference_gemm(ta, tb, M, N, K, Ab, Bb);
            const std::vector<double> magnitude = reference_gemm(ta, tb, M, N, K, absA, absB);  // Σ|a·b|
            for (int i = 0; i < M * N; ++i, ++checked) {
              const std::size_t at = std::size_t(b) * M * N + std::size_t(i);
              const double want = alpha * exact[std::size_t(i)] + beta * double(C0[at]);
              const double bound = alpha * ((2 * u + u * u) + (1 + u) * (1 + u) * gamma) * magnitude[std::size_t(i)] +
                                   2 * v * std::abs(beta * double(C0[at]));
              if (!(std::abs(double(C[at]) - want) <= bound))
                FAIL(name << " batch " << batch << " M " << M << " N " << N << " K " << K << " ta " << ta
                          << " tb " << tb << " beta " << beta << ": element " << at << " = " << C[at]
                          << ", exact " << want << ", allowed error " << bound);
            }
          }
        }
  REQUIRE(checked == expected_checks);  // every element of every case was held to its bound
}
}  // namespace

TEST_CASE("gemm_batched_cuda_tf32 (our WMMA kernel) is within the TF32 error bound", "[gemm][gpu]") {
  FM_REQUIRE_GPU();
  require_tensor_core_gemm_within_bound("gemm_batched_cuda_tf32", fm::kernels::gemm_batched_cuda_tf32, 0x1p-11);
}

namespace {
// Σ_k A[k] · 1 through a 1×1×K product on the device: what the kernel made of A's rounding.
template <typename Gemm>
float dot_with_ones(Gemm gemm, const std::vector<float>& A) {
  const int K = int(A.size());
  std::vector<float> B(A.size(), 1.f), C(1, -1.f);
  float *dA = (float*)fm::kernels::cuda_malloc(A.size() * 4), *dB = (float*)fm::kernels::cuda_malloc(B.size() * 4),
        *dC = (float*)fm::kernels::cuda_malloc(4);
  fm::kernels::cuda_copy_to_device(dA, A.data(), A.size() * 4);
  fm::kernels::cuda_copy_to_device(dB, B.data(), B.size() * 4);
  gemm(1, false, false, 1, 1, K, 1.f, dA, K, K, dB, 1, K, 0.f, dC, 1, 1);
  fm::kernels::cuda_copy_to_host(C.data(), dC, 4);
  fm::kernels::cuda_free(dA), fm::kernels::cuda_free(dB), fm::kernels::cuda_free(dC);
  return C[0];
}
}  // namespace

TEST_CASE("gemm_batched_cuda_tf32 rounds its inputs to TF32, to nearest", "[gemm][gpu]") {
  FM_REQUIRE_GPU();
  // A row of 1 + 3·2^-12 times a column of ones, K = 8. Rounded to nearest TF32 (10 mantissa bits)
  // each is 1 + 2^-10, so the sum is exactly 8 + 2^-7; truncated to TF32 it would be 8, and in FP32
  // 8 + 3·2^-9. All three are exact in FP32, so the test tells them apart.
  REQUIRE(dot_with_ones(fm::kernels::gemm_batched_cuda_tf32, std::vector<float>(8, 1.f + 3 * 0x1p-12f)) ==
          8.f + 0x1p-7f);
}

TEST_CASE("gemm_batched_cublas_tf32 is within the TF32 error bound", "[gemm][gpu]") {
  FM_REQUIRE_GPU();
  require_tensor_core_gemm_within_bound("gemm_batched_cublas_tf32", fm::kernels::gemm_batched_cublas_tf32, 0x1p-10);
}

TEST_CASE("gemm_batched_cuda_bf16 (our WMMA kernel) is within the bfloat16 error bound", "[gemm][gpu]") {
  FM_REQUIRE_GPU();
  require_tensor_core_gemm_within_bound("gemm_batched_cuda_bf16", fm::kernels::gemm_batched_cuda_bf16, 0x1p-8);
}

TEST_CASE("gemm_batched_cuda_bf16 rounds its inputs to bfloat16, to nearest with ties to even", "[gemm][gpu]") {
  FM_REQUIRE_GPU();
  // bfloat16's spacing above 1 is 2^-7. Eight of 1 + 3·2^-9 (rounds up to 1 + 2^-7) and eight of
  // 1 + 2^-8 (a tie: to even, down to 1) times a column of ones, K = 16: the sum is exactly
  // 16 + 2^-4. Ties away from zero would give 16 + 2^-3, truncation 16, FP32 16 + 5·2^-6, TF32 (no
  // rounding at these bits) the same as FP32: all exact in FP32, so the test tells them apart.
  std::vector<float> A(16);
  for (int k = 0; k < 16; ++k) A[std::size_t(k)] = k < 8 ? 1.f + 3 * 0x1p-9f : 1.f + 0x1p-8f;
  REQUIRE(dot_with_ones(fm::kernels::gemm_batched_cuda_bf16, A) == 16.f + 0x1p-4f);
}

TEST_CASE("gemm_batched_cublas_bf16 is within the bfloat16 error bound", "[gemm][gpu]") {
  FM_REQUIRE_GPU();
  require_tensor_core_gemm_within_bound("gemm_batched_cublas_bf16", fm::kernels::gemm_batched_cublas_bf16, 0x1p-7);
}
#endif
