// tests/test_kernel_gemm.cpp — the GEMM kernels: CPU against a direct triple loop (all transpose
// combinations, awkward sizes, the cache blocking with strided operands; each micro-kernel copy this
// CPU runs, float and double), cuBLAS against the CPU on the GPU.
#include <catch2/catch.hpp>

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
