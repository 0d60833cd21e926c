// tests/test_kernel_conv2d.cpp — the conv2d kernels (kernels/conv2d.h) over the case table of
// cases/conv2d.h:
//   1. the reference loops against small cases computed by hand;
//   2. float64 central differences of Σ y·r against the reference backward (every kGradcheck case);
//   3. every implementation of the table (the reference loops on float and im2col on the CPU; v1
//      naive, v2 implicit GEMM and cuDNN on the GPU) against the float64 reference on every kTest
//      case, forward, bwd-data, bwd-weight and their no-bias variants, with the table's tolerances
//      (tests/conv_test_util.h); the im2col path in double too, and its bitwise independence of the
//      thread count;
//   4. GPU: the implicit-GEMM weight gradient is deterministic run to run.
// conv_transpose2d: tests/test_kernel_conv_transpose2d.cpp.
#include <catch2/catch.hpp>

#include <omp.h>

#include <cmath>
#include <vector>

#include "cases/conv2d.h"
#include "conv_test_util.h"
#include "kernel_test_util.h"
#include "kernels/conv2d.h"
#include "kernels/runtime.h"
#include "test_util.h"

using fm::cases::ImplKind;
using fm::kernels::Conv2dParams;
using namespace fm::test::conv;

// =================================================================================================
// 1. Reference loops against hand-computed cases
// =================================================================================================

TEST_CASE("conv2d reference matches hand-computed 3x3 image, 2x2 kernel", "[conv2d]") {
  // x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,2],[3,4]]
  const std::vector<double> x = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w = {1, 2, 3, 4};
  SECTION("stride 1, no padding, bias 0.5") {
    // y[0,0] = 1·1 + 2·2 + 4·3 + 5·4 = 37, then 47, 67, 77; plus the bias.
    const Conv2dParams p{1, 1, 3, 3, 1, 2, 2, 1, 1, 0, 0};
    const double bias = 0.5;
    auto y = nan_doubles(4);
    fm::kernels::conv2d_forward_cpu<double>(x.data(), w.data(), &bias, y.data(), p);
    const std::vector<double> expected = {37.5, 47.5, 67.5, 77.5};
    FM_REQUIRE_CLOSE(y.data(), expected.data(), 4, 0.0, 0.0);

    // With dy = 1 everywhere: dx[h,v] = sum of the weights whose taps land on (h,v);
    // dW[r,s] = sum of the 2x2 window of x at offset (r,s); db = number of outputs.
    const std::vector<double> dy = {1, 1, 1, 1};
    auto dx = nan_doubles(9);
    fm::kernels::conv2d_backward_input_cpu<double>(dy.data(), w.data(), dx.data(), p);
    const std::vector<double> expected_dx = {1, 3, 2, 4, 10, 6, 3, 7, 4};
    FM_REQUIRE_CLOSE(dx.data(), expected_dx.data(), 9, 0.0, 0.0);
    auto dw = nan_doubles(4);
    double db = std::nan("");
    fm::kernels::conv2d_backward_weight_cpu<double>(x.data(), dy.data(), dw.data(), &db, p);
    const std::vector<double> expected_dw = {12, 16, 24, 28};
    FM_REQUIRE_CLOSE(dw.data(), expected_dw.data(), 4, 0.0, 0.0);
    REQUIRE(db == 4.0);
  }
  SECTION("stride 2, padding 1") {
    // Output 2x2. Windows start at (-1,-1), (-1,1), (1,-1), (1,1):
    //   y00 = x00·w11 = 4;  y01 = x01·w10 + x02·w11 = 6 + 12 = 18;
    //   y10 = x10·w01 + x20·w11 = 8 + 28 = 36;  y11 = 5·1 + 6·2 + 8·3 + 9·4 = 77.
    const Conv2dParams p{1, 1, 3, 3, 1, 2, 2, 2, 2, 1, 1};
    REQUIRE(p.out_height() == 2);
    REQUIRE(p.out_width() == 2);
    auto y = nan_doubles(4);
    fm::kernels::conv2d_forward_cpu<double>(x.data(), w.data(), nullptr, y.data(), p);
    const std::vector<double> expected = {4, 18, 36, 77};
    FM_REQUIRE_CLOSE(y.data(), expected.data(), 4, 0.0, 0.0);
  }
}

TEST_CASE("conv2d reference mixes channels as w[out, in] (1x1 kernel)", "[conv2d]") {
  // x: 2 channels of 1x2 pixels, channel 0 = [1, 2], channel 1 = [3, 4].
  // w[out][in] = [[1, 10], [100, 1000]]: y0 = 1·x0 + 10·x1, y1 = 100·x0 + 1000·x1.
  const std::vector<double> x = {1, 2, 3, 4}, w = {1, 10, 100, 1000};
  const Conv2dParams p{1, 2, 1, 2, 2, 1, 1, 1, 1, 0, 0};
  auto y = nan_doubles(4);
  fm::kernels::conv2d_forward_cpu<double>(x.data(), w.data(), nullptr, y.data(), p);
  const std::vector<double> expected = {31, 42, 3100, 4200};
  FM_REQUIRE_CLOSE(y.data(), expected.data(), 4, 0.0, 0.0);
}

// =================================================================================================
// 2. Gradcheck of the reference backward functions (float64 central differences)
// =================================================================================================

TEST_CASE("conv2d reference backward matches central differences (float64)",
          "[conv2d][gradcheck]") {
  int checked = 0;
  for (const fm::cases::Conv2dCase& c : fm::cases::conv2d_cases()) {
    if (!(c.uses & fm::cases::kGradcheck)) continue;
    INFO(fm::cases::conv::shape_name(c.params) << " (" << c.where << ")");
    gradcheck_reference(c.params, fm::cases::conv2d_reference(), 11);
    ++checked;
  }
  REQUIRE(checked > 0);
}

// =================================================================================================
// 3. The implementations of the table against the reference
// =================================================================================================

// The CPU entries of the table: the reference loops on float ("cpu float") and im2col.
TEST_CASE("conv2d CPU implementations match the reference on every test case", "[conv2d]") {
  for (ImplKind kind : {ImplKind::CpuReference, ImplKind::CpuFast}) {
    INFO(fm::cases::impl_kind_name(kind));
    REQUIRE(check_implementations("conv2d", fm::cases::conv2d_cases(), fm::cases::conv2d_implementations(), kind,
                                  fm::cases::conv2d_reference(), 51) > 0);
  }
}

TEST_CASE("conv2d im2col path matches the reference (double)", "[conv2d]") {
  const ConvReference<Conv2dParams> im2col_double = {fm::kernels::conv2d_forward_im2col<double>,
                                                     fm::kernels::conv2d_backward_input_im2col<double>,
                                                     fm::kernels::conv2d_backward_weight_im2col<double>};
  for (const fm::cases::Conv2dCase& c : fm::cases::conv2d_cases()) {
    if (!(c.uses & fm::cases::kTest)) continue;
    INFO(fm::cases::conv::shape_name(c.params) << " (" << c.where << ")");
    require_double_path_matches(c.params, im2col_double, fm::cases::conv2d_reference(), 1);
  }
}

TEST_CASE("conv2d weight gradient over runs of images and groups of output channels matches the reference",
          "[conv2d]") {
  // The weight gradient's dot products (kernels/cpu/conv_weight_grad_kernel.h) keep each block's
  // accumulators in scratch between runs of images, and split the output channels into groups
  // whose accumulators fit 256 KB. The table's shapes are small enough to take one run and one
  // group; this one takes several of each in both copies (in double: AVX-512 runs of 2 images and
  // groups of 4 channels, portable runs of 4 and groups of 8; 8 images per chunk at batch 64), with
  // edge rows (10 = 2·4 + 2 channels) and edge taps (837 = 6·139 + 3).
  const ConvReference<Conv2dParams> im2col_double = {fm::kernels::conv2d_forward_im2col<double>,
                                                     fm::kernels::conv2d_backward_input_im2col<double>,
                                                     fm::kernels::conv2d_backward_weight_im2col<double>};
  const Conv2dParams p{64, 93, 12, 12, 10, 3, 3, 1, 1, 1, 1};
  require_double_path_matches(p, im2col_double, fm::cases::conv2d_reference(), 7);
}

TEST_CASE("conv2d im2col path is bitwise identical with 1 and 2 threads", "[conv2d]") {
  // A U-Net-sized layer: at batch 3 the threads work inside im2col, col2im and the GEMM; at batch 8
  // they take whole images, and the weight gradient's chunks of images (its dot products).
  const int batch = GENERATE(3, 8);
  const Conv2dParams p{batch, 32, 28, 28, 64, 3, 3, 1, 1, 1, 1};
  const std::size_t nx = input_count(p), nw = weight_count(p), ny = output_count(p);
  const auto x = fm::test::random_floats(nx, 31), w = fm::test::random_floats(nw, 32),
             dy = fm::test::random_floats(ny, 33);
  auto run = [&](int threads, std::vector<float>& y, std::vector<float>& dx,
                 std::vector<float>& dw) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    y = nan_floats(ny), dx = nan_floats(nx), dw = nan_floats(nw);
    fm::kernels::conv2d_forward_im2col<float>(x.data(), w.data(), nullptr, y.data(), p);
    fm::kernels::conv2d_backward_input_im2col<float>(dy.data(), w.data(), dx.data(), p);
    fm::kernels::conv2d_backward_weight_im2col<float>(x.data(), dy.data(), dw.data(), nullptr, p);
    omp_set_num_threads(saved);
  };
  std::vector<float> y1, dx1, dw1, y2, dx2, dw2;
  run(1, y1, dx1, dw1);
  run(2, y2, dx2, dw2);
  FM_REQUIRE_CLOSE(y2.data(), y1.data(), ny, 0.0, 0.0);
  FM_REQUIRE_CLOSE(dx2.data(), dx1.data(), nx, 0.0, 0.0);
  FM_REQUIRE_CLOSE(dw2.data(), dw1.data(), nw, 0.0, 0.0);
}

#ifdef FM_WITH_CUDA
TEST_CASE("conv2d CUDA naive versions match the reference on every test case", "[conv2d][gpu]") {
  FM_REQUIRE_GPU();
  REQUIRE(check_implementations("conv2d", fm::cases::conv2d_cases(), fm::cases::conv2d_implementations(),
                                ImplKind::CudaNaive, fm::cases::conv2d_reference(), 51) > 0);
}

TEST_CASE("conv2d CUDA custom versions (implicit GEMM) match the reference on every test case",
          "[conv2d][gpu]") {
  FM_REQUIRE_GPU();
  REQUIRE(check_implementations("conv2d", fm::cases::conv2d_cases(), fm::cases::conv2d_implementations(),
                                ImplKind::CudaCustom, fm::cases::conv2d_reference(), 51) > 0);
}

TEST_CASE("conv2d CUDA TF32 versions (implicit GEMM on WMMA) are within the TF32 bound on every test case",
          "[conv2d][gpu]") {
  FM_REQUIRE_GPU();
  REQUIRE(check_tensor_core_within_bound("conv2d", fm::cases::conv2d_cases(), fm::cases::conv2d_implementations(),
                                         fm::cases::conv2d_reference(), 52, 0x1p-11) > 0);
}

TEST_CASE("conv2d CUDA bf16 versions (implicit GEMM on WMMA) are within the bfloat16 bound on every test case",
          "[conv2d][gpu]") {
  FM_REQUIRE_GPU();
  REQUIRE(check_tensor_core_within_bound("conv2d", fm::cases::conv2d_cases(), fm::cases::conv2d_implementations(),
                                         fm::cases::conv2d_reference(), 53, 0x1p-8) > 0);
}

TEST_CASE("conv2d cuDNN matches the reference on every test case", "[conv2d][gpu]") {
  FM_REQUIRE_GPU();
  if (!fm::kernels::cudnn_available()) {
    WARN("cuDNN is not available in this build (CUDA emulator): its version is not tested here");
    return;
  }
  REQUIRE(check_implementations("conv2d", fm::cases::conv2d_cases(), fm::cases::conv2d_implementations(),
                                ImplKind::Library, fm::cases::conv2d_reference(), 51) > 0);
}

TEST_CASE("conv2d cuDNN with TF32 allowed (spatial algorithms) is within the TF32 bound on every test case",
          "[conv2d][gpu]") {
  FM_REQUIRE_GPU();
  if (!fm::kernels::cudnn_available()) {
    WARN("cuDNN is not available in this build (CUDA emulator): its TF32 version is not tested here");
    return;
  }
  REQUIRE(check_tensor_core_within_bound("conv2d", fm::cases::conv2d_cases(), fm::cases::conv2d_implementations(),
                                         fm::cases::conv2d_reference(), 54, 0x1p-10) > 0);
}

TEST_CASE("conv2d cuDNN's benchmark choices (any algorithm) run and land near the reference on every test case",
          "[conv2d][gpu]") {
  FM_REQUIRE_GPU();
  if (!fm::kernels::cudnn_available()) {
    WARN("cuDNN is not available in this build (CUDA emulator): its benchmark choices are not tested here");
    return;
  }
  REQUIRE(check_unbounded_near_reference("conv2d", fm::cases::conv2d_cases(), fm::cases::conv2d_implementations(),
                                         fm::cases::conv2d_reference(), 55) > 0);
}

// =================================================================================================
// 4. GPU: determinism
// =================================================================================================

TEST_CASE("conv2d implicit-GEMM kernels are deterministic run to run", "[conv2d][gpu]") {
  FM_REQUIRE_GPU();
  // Split-K weight gradients reduce their partial sums in a fixed order: bitwise equal results.
  const Conv2dParams p{4, 64, 14, 14, 64, 3, 3, 1, 1, 1, 1};
  const fm::test::DeviceArray x(fm::test::random_floats(input_count(p), 71)),
      dy(fm::test::random_floats(output_count(p), 72));
  std::vector<std::vector<float>> results;
  for (int run = 0; run < 2; ++run) {
    const auto dw = fm::test::DeviceArray::poisoned(weight_count(p)),
               db = fm::test::DeviceArray::poisoned(bias_count(p));
    fm::kernels::conv2d_backward_weight_cuda(x.get(), dy.get(), dw.get(), db.get(), p);
    results.push_back(dw.to_host());
    results.push_back(db.to_host());
  }
  FM_REQUIRE_CLOSE(results[2].data(), results[0].data(), weight_count(p), 0.0, 0.0);
  FM_REQUIRE_CLOSE(results[3].data(), results[1].data(), bias_count(p), 0.0, 0.0);
}
#endif  // FM_WITH_CUDA
