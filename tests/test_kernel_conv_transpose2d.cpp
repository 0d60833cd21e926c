// tests/test_kernel_conv_transpose2d.cpp — the conv_transpose2d kernels (kernels/conv2d.h) over the
// case table of cases/conv_transpose2d.h:
//   1. the reference loops against small cases computed by hand;
//   2. float64 central differences of Σ y·r against the reference backward (every kGradcheck case);
//   3. every implementation of the table (the reference loops on float and im2col on the CPU; v1
//      naive, v2 implicit GEMM and cuDNN on the GPU) against the float64 reference on every kTest
//      case, forward, bwd-data, bwd-weight and their no-bias variants, with the table's tolerances
//      (tests/conv_test_util.h); the im2col path in double too.
#include <catch2/catch.hpp>

#include <vector>

#include "cases/conv_transpose2d.h"
#include "conv_test_util.h"
#include "kernel_test_util.h"
#include "kernels/conv2d.h"
#include "kernels/runtime.h"
#include "test_util.h"

using fm::cases::ImplKind;
using fm::kernels::ConvTranspose2dParams;
using namespace fm::test::conv;

// =================================================================================================
// 1. Reference loops against hand-computed cases
// =================================================================================================

TEST_CASE("conv_transpose2d reference matches hand-computed cases", "[conv_transpose2d]") {
  const std::vector<double> x = {1, 2, 3, 4};  // one 2x2 image
  SECTION("stride 1: the full 'scatter' of a 2x2 kernel gives a 3x3 output, plus bias") {
    // y[h,v] = Σ x[i,j]·w[h−i, v−j]:  [[1,4,4],[6,20,16],[9,24,16]]
    const std::vector<double> w = {1, 2, 3, 4};
    const ConvTranspose2dParams p{1, 1, 2, 2, 1, 2, 2, 1, 1, 0, 0};
    REQUIRE(p.out_height() == 3);
    const double bias = -1;
    auto y = nan_doubles(9);
    fm::kernels::conv_transpose2d_forward_cpu<double>(x.data(), w.data(), &bias, y.data(), p);
    const std::vector<double> expected = {0, 3, 3, 5, 19, 15, 8, 23, 15};
    FM_REQUIRE_CLOSE(y.data(), expected.data(), 9, 0.0, 0.0);
  }
  SECTION("stride 2 with a 2x2 kernel of ones: each pixel becomes a 2x2 block") {
    const std::vector<double> w = {1, 1, 1, 1};
    const ConvTranspose2dParams p{1, 1, 2, 2, 1, 2, 2, 2, 2, 0, 0};
    REQUIRE(p.out_height() == 4);
    auto y = nan_doubles(16);
    fm::kernels::conv_transpose2d_forward_cpu<double>(x.data(), w.data(), nullptr, y.data(), p);
    const std::vector<double> expected = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
    FM_REQUIRE_CLOSE(y.data(), expected.data(), 16, 0.0, 0.0);
    // Its input gradient sums each 2x2 block of dy; with dy = 0..15 the blocks sum to
    // 0+1+4+5 = 10, 2+3+6+7 = 18, 8+9+12+13 = 42, 10+11+14+15 = 50.
    std::vector<double> dy(16);
    for (int i = 0; i < 16; ++i) dy[i] = i;
    auto dx = nan_doubles(4);
    fm::kernels::conv_transpose2d_backward_input_cpu<double>(dy.data(), w.data(), dx.data(), p);
    const std::vector<double> expected_dx = {10, 18, 42, 50};
    FM_REQUIRE_CLOSE(dx.data(), expected_dx.data(), 4, 0.0, 0.0);
  }
}

// =================================================================================================
// 2. Gradcheck of the reference backward functions (float64 central differences)
// =================================================================================================

TEST_CASE("conv_transpose2d reference backward matches central differences (float64)",
          "[conv_transpose2d][gradcheck]") {
  int checked = 0;
  for (const fm::cases::ConvTranspose2dCase& c : fm::cases::conv_transpose2d_cases()) {
    if (!(c.uses & fm::cases::kGradcheck)) continue;
    INFO(fm::cases::conv::shape_name(c.params) << " (" << c.where << ")");
    gradcheck_reference(c.params, fm::cases::conv_transpose2d_reference(), 21);
    ++checked;
  }
  REQUIRE(checked > 0);
}

// =================================================================================================
// 3. The implementations of the table against the reference
// =================================================================================================

// The CPU entries of the table: the reference loops on float ("cpu float") and im2col.
TEST_CASE("conv_transpose2d CPU implementations match the reference on every test case", "[conv_transpose2d]") {
  for (ImplKind kind : {ImplKind::CpuReference, ImplKind::CpuFast}) {
    INFO(fm::cases::impl_kind_name(kind));
    REQUIRE(check_implementations("conv_transpose2d", fm::cases::conv_transpose2d_cases(),
                                  fm::cases::conv_transpose2d_implementations(), kind,
                                  fm::cases::conv_transpose2d_reference(), 61) > 0);
  }
}

TEST_CASE("conv_transpose2d im2col path matches the reference (double)", "[conv_transpose2d]") {
  const ConvReference<ConvTranspose2dParams> im2col_double = {
      fm::kernels::conv_transpose2d_forward_im2col<double>, fm::kernels::conv_transpose2d_backward_input_im2col<double>,
      fm::kernels::conv_transpose2d_backward_weight_im2col<double>};
  for (const fm::cases::ConvTranspose2dCase& c : fm::cases::conv_transpose2d_cases()) {
    if (!(c.uses & fm::cases::kTest)) continue;
    INFO(fm::cases::conv::shape_name(c.params) << " (" << c.where << ")");
    require_double_path_matches(c.params, im2col_double, fm::cases::conv_transpose2d_reference(), 5);
  }
}

#ifdef FM_WITH_CUDA
TEST_CASE("conv_transpose2d CUDA naive versions match the reference on every test case",
          "[conv_transpose2d][gpu]") {
  FM_REQUIRE_GPU();
  REQUIRE(check_implementations("conv_transpose2d", fm::cases::conv_transpose2d_cases(),
                                fm::cases::conv_transpose2d_implementations(), ImplKind::CudaNaive,
                                fm::cases::conv_transpose2d_reference(), 61) > 0);
}

TEST_CASE("conv_transpose2d CUDA custom versions (implicit GEMM) match the reference on every test case",
          "[conv_transpose2d][gpu]") {
  FM_REQUIRE_GPU();
  REQUIRE(check_implementations("conv_transpose2d", fm::cases::conv_transpose2d_cases(),
                                fm::cases::conv_transpose2d_implementations(), ImplKind::CudaCustom,
                                fm::cases::conv_transpose2d_reference(), 61) > 0);
}

TEST_CASE("conv_transpose2d CUDA TF32 versions (implicit GEMM on WMMA) are within the TF32 bound on every test case",
          "[conv_transpose2d][gpu]") {
  FM_REQUIRE_GPU();
  REQUIRE(check_tensor_core_within_bound("conv_transpose2d", fm::cases::conv_transpose2d_cases(),
                                         fm::cases::conv_transpose2d_implementations(),
                                         fm::cases::conv_transpose2d_reference(), 62, 0x1p-11) > 0);
}

TEST_CASE("conv_transpose2d CUDA bf16 versions (implicit GEMM on WMMA) are within the bfloat16 bound on every test case",
          "[conv_transpose2d][gpu]") {
  FM_REQUIRE_GPU();
  REQUIRE(check_tensor_core_within_bound("conv_transpose2d", fm::cases::conv_transpose2d_cases(),
                                         fm::cases::conv_transpose2d_implementations(),
                                         fm::cases::conv_transpose2d_reference(), 63, 0x1p-8) > 0);
}

TEST_CASE("conv_transpose2d cuDNN matches the reference on every test case", "[conv_transpose2d][gpu]") {
  FM_REQUIRE_GPU();
  if (!fm::kernels::cudnn_available()) {
    WARN("cuDNN is not available in this build (CUDA emulator): its version is not tested here");
    return;
  }
  REQUIRE(check_implementations("conv_transpose2d", fm::cases::conv_transpose2d_cases(),
                                fm::cases::conv_transpose2d_implementations(), ImplKind::Library,
                                fm::cases::conv_transpose2d_reference(), 61) > 0);
}

TEST_CASE("conv_transpose2d cuDNN with TF32 allowed (spatial algorithms) is within the TF32 bound on every test case",
          "[conv_transpose2d][gpu]") {
  FM_REQUIRE_GPU();
  if (!fm::kernels::cudnn_available()) {
    WARN("cuDNN is not available in this build (CUDA emulator): its TF32 version is not tested here");
    return;
  }
  REQUIRE(check_tensor_core_within_bound("conv_transpose2d", fm::cases::conv_transpose2d_cases(),
                                         fm::cases::conv_transpose2d_implementations(),
                                         fm::cases::conv_transpose2d_reference(), 64, 0x1p-10) > 0);
}

TEST_CASE("conv_transpose2d cuDNN's benchmark choices (any algorithm) run and land near the reference on every test case",
          "[conv_transpose2d][gpu]") {
  FM_REQUIRE_GPU();
  if (!fm::kernels::cudnn_available()) {
    WARN("cuDNN is not available in this build (CUDA emulator): its benchmark choices are not tested here");
    return;
  }
  REQUIRE(check_unbounded_near_reference("conv_transpose2d", fm::cases::conv_transpose2d_cases(),
                                         fm::cases::conv_transpose2d_implementations(),
                                         fm::cases::conv_transpose2d_reference(), 65) > 0);
}
#endif  // FM_WITH_CUDA
