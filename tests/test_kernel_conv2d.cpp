// tests/test_kernel_conv2d.cpp — the conv2d / conv_transpose2d kernels (kernels/conv2d.h):
//   1. the reference loops against small cases computed by hand;
//   2. float64 central differences of Σ y·r against the reference backward functions (gradcheck);
//   3. the im2col + GEMM path against the reference, float and double, over awkward shapes, and its
//      bitwise determinism across thread counts (and the blocked GEMM on the sizes im2col uses);
//   4. GPU: naive, implicit-GEMM and cuDNN versions against the reference (computed in double) on
//      the U-Net's shapes at a small batch and on awkward shapes.
// Every output buffer is poisoned with NaN first, so an element a kernel forgets to write fails.
#include <catch2/catch.hpp>

#include <omp.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/gemm.h"
#include "kernels/runtime.h"
#include "test_util.h"

using fm::kernels::Conv2dParams;
using fm::kernels::ConvTranspose2dParams;

namespace {

// ---- shapes ------------------------------------------------------------------------------------

// {batch, in_channels, in_h, in_w, out_channels, kernel_h, kernel_w, stride_h, stride_w, pad_h,
//  pad_w}
struct Shape {
  int batch, in_channels, in_height, in_width, out_channels, kernel_h, kernel_w, stride_h, stride_w,
      pad_h, pad_w;
};
Conv2dParams conv_params(const Shape& s) {
  return Conv2dParams{s.batch,        s.in_channels, s.in_height, s.in_width,
                      s.out_channels, s.kernel_h,    s.kernel_w,  s.stride_h,
                      s.stride_w,     s.pad_h,       s.pad_w};
}
ConvTranspose2dParams transpose_params(const Shape& s) {
  return ConvTranspose2dParams{s.batch,        s.in_channels, s.in_height, s.in_width,
                               s.out_channels, s.kernel_h,    s.kernel_w,  s.stride_h,
                               s.stride_w,     s.pad_h,       s.pad_w};
}
std::string describe(const Shape& s, const char* op) {
  std::ostringstream os;
  os << op << " N=" << s.batch << " C_in=" << s.in_channels << " " << s.in_height << "x"
     << s.in_width << " -> C_out=" << s.out_channels << " kernel " << s.kernel_h << "x"
     << s.kernel_w << " stride " << s.stride_h << "x" << s.stride_w << " pad " << s.pad_h << "x"
     << s.pad_w;
  return os.str();
}

// Element counts of one problem's arrays, and the longest sum behind each output element (which
// sets the float tolerance).
struct Problem {
  std::size_t x, w, y, b;
  long forward_terms, input_grad_terms, weight_grad_terms;
};
Problem problem_of(const Conv2dParams& p) {
  const long Ho = p.out_height(), Wo = p.out_width();
  return {std::size_t(p.batch) * p.in_channels * p.in_height * p.in_width,
          std::size_t(p.out_channels) * p.in_channels * p.kernel_h * p.kernel_w,
          std::size_t(p.batch) * p.out_channels * Ho * Wo,
          std::size_t(p.out_channels),
          long(p.in_channels) * p.kernel_h * p.kernel_w,
          long(p.out_channels) * p.kernel_h * p.kernel_w,
          long(p.batch) * Ho * Wo};
}
Problem problem_of(const ConvTranspose2dParams& p) {
  const long Ho = p.out_height(), Wo = p.out_width();
  return {std::size_t(p.batch) * p.in_channels * p.in_height * p.in_width,
          std::size_t(p.in_channels) * p.out_channels * p.kernel_h * p.kernel_w,
          std::size_t(p.batch) * p.out_channels * Ho * Wo,
          std::size_t(p.out_channels),
          long(p.in_channels) * p.kernel_h * p.kernel_w,
          long(p.out_channels) * p.kernel_h * p.kernel_w,
          long(p.batch) * p.in_height * p.in_width};
}

// Absolute tolerance for a float result that is a sum of `terms` products of values in [-1, 1],
// compared with a reference summed in another order (or in double). Each partial sum is a random
// walk of size ~sqrt(i)/3 and each float addition rounds it by up to FLT_EPSILON/2, so the error
// of the whole sum is typically ~FLT_EPSILON·terms/8; 4·FLT_EPSILON·terms is ~30 times that (no
// flaky failures over hundreds of thousands of elements) and still far below what one wrong,
// missing or doubled tap does (|x·w| ~ 0.25 on average).
double float_sum_atol(long terms) { return 1e-6 + 4.0 * FLT_EPSILON * double(terms); }
// Elements are also allowed a few float ulps of their own size (rounding of the final value).
constexpr double kFloatRtol = 1e-5;
// Double: the same sums in another order differ by ~1e-16 per term; 1e-11 leaves wide margin.
constexpr double kDoubleAtol = 1e-11, kDoubleRtol = 1e-11;

// The tolerance pair for comparing two CPU results of type T (float: see float_sum_atol).
template <typename T>
double sum_atol(long terms) {
  if constexpr (sizeof(T) == sizeof(float)) return float_sum_atol(terms);
  return kDoubleAtol;
}
template <typename T>
constexpr double sum_rtol() {
  return sizeof(T) == sizeof(float) ? kFloatRtol : kDoubleRtol;
}

template <typename T>
std::vector<T> random_vector(std::size_t n, std::uint64_t seed) {
  std::vector<T> v(n);
  fm::test::fill_uniform(v.data(), n, seed);
  return v;
}
template <typename T>
std::vector<T> poisoned(std::size_t n) {
  std::vector<T> v(n);
  fm::test::poison(v.data(), n);
  return v;
}

// The awkward shapes both CPU and GPU paths must get right.
const std::vector<Shape>& awkward_shapes() {
  // clang-format off
  static const std::vector<Shape> shapes = {
      {1, 1, 5, 5, 1, 3, 3, 1, 1, 1, 1},    // batch 1, one channel
      {2, 3, 13, 11, 5, 3, 3, 1, 1, 1, 1},  // odd channels, sizes off any tile
      {3, 7, 8, 8, 4, 4, 4, 2, 2, 1, 1},    // the U-Net's 4x4 stride-2 downsample
      {2, 5, 7, 9, 3, 1, 1, 1, 1, 0, 0},    // pointwise (im2col skipped)
      {1, 4, 6, 10, 6, 1, 1, 2, 2, 0, 0},   // strided 1x1: some input pixels are never read
      {2, 3, 9, 7, 2, 3, 5, 2, 1, 2, 0},    // non-square kernel, mixed stride and padding
      {2, 2, 4, 4, 3, 5, 5, 1, 1, 2, 2},    // kernel larger than the image
      {2, 3, 5, 6, 2, 3, 2, 3, 2, 0, 1},    // stride 3: trailing rows unread
      {3, 2, 1, 1, 4, 1, 1, 1, 1, 0, 0},    // 1x1 images
      {1, 6, 14, 14, 9, 3, 3, 1, 1, 1, 1},
      {2, 3, 10, 8, 4, 5, 3, 3, 3, 1, 2},   // stride 3 with padding 1 and 2: (pad mod stride) != 0
      {5, 3, 23, 21, 7, 3, 3, 1, 1, 1, 1},  // batch·pixels large enough for split-K on the GPU
  };
  // clang-format on
  return shapes;
}

// ---- float64 central differences ---------------------------------------------------------------

// L(x, w, b) = Σ y(x, w, b) · r. For each parameter entry, (L(θ+ε) − L(θ−ε)) / 2ε.
template <typename Forward>
std::vector<double> numeric_gradient(std::vector<double>& theta, const std::vector<double>& r,
                                     std::size_t y_size, Forward forward) {
  const double eps = 1e-6;
  std::vector<double> y(y_size), grad(theta.size());
  auto loss = [&] {
    forward(y.data());
    double total = 0;
    for (std::size_t i = 0; i < y_size; ++i) total += y[i] * r[i];
    return total;
  };
  for (std::size_t i = 0; i < theta.size(); ++i) {
    const double saved = theta[i];
    theta[i] = saved + eps;
    const double plus = loss();
    theta[i] = saved - eps;
    const double minus = loss();
    theta[i] = saved;
    grad[i] = (plus - minus) / (2 * eps);
  }
  return grad;
}

// PyTorch's gradcheck tolerances for float64 (atol 1e-5, rtol 1e-3). L is linear in each entry,
// so the central difference is exact up to rounding (~1e-16·|L|/ε ≈ 1e-9 here).
constexpr double kGradcheckAtol = 1e-5, kGradcheckRtol = 1e-3;

}  // namespace

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
    auto y = poisoned<double>(4);
    fm::kernels::conv2d_forward_cpu<double>(x.data(), w.data(), &bias, y.data(), p);
    const std::vector<double> expected = {37.5, 47.5, 67.5, 77.5};
    FM_REQUIRE_CLOSE(y.data(), expected.data(), 4, 0.0, 0.0);

    // With dy = 1 everywhere: dx[h,v] = sum of the weights whose taps land on (h,v);
    // dW[r,s] = sum of the 2x2 window of x at offset (r,s); db = number of outputs.
    const std::vector<double> dy = {1, 1, 1, 1};
    auto dx = poisoned<double>(9);
    fm::kernels::conv2d_backward_input_cpu<double>(dy.data(), w.data(), dx.data(), p);
    const std::vector<double> expected_dx = {1, 3, 2, 4, 10, 6, 3, 7, 4};
    FM_REQUIRE_CLOSE(dx.data(), expected_dx.data(), 9, 0.0, 0.0);
    auto dw = poisoned<double>(4);
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
    auto y = poisoned<double>(4);
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
  auto y = poisoned<double>(4);
  fm::kernels::conv2d_forward_cpu<double>(x.data(), w.data(), nullptr, y.data(), p);
  const std::vector<double> expected = {31, 42, 3100, 4200};
  FM_REQUIRE_CLOSE(y.data(), expected.data(), 4, 0.0, 0.0);
}

TEST_CASE("conv_transpose2d reference matches hand-computed cases", "[conv2d]") {
  const std::vector<double> x = {1, 2, 3, 4};  // one 2x2 image
  SECTION("stride 1: the full 'scatter' of a 2x2 kernel gives a 3x3 output, plus bias") {
    // y[h,v] = Σ x[i,j]·w[h−i, v−j]:  [[1,4,4],[6,20,16],[9,24,16]]
    const std::vector<double> w = {1, 2, 3, 4};
    const ConvTranspose2dParams p{1, 1, 2, 2, 1, 2, 2, 1, 1, 0, 0};
    REQUIRE(p.out_height() == 3);
    const double bias = -1;
    auto y = poisoned<double>(9);
    fm::kernels::conv_transpose2d_forward_cpu<double>(x.data(), w.data(), &bias, y.data(), p);
    const std::vector<double> expected = {0, 3, 3, 5, 19, 15, 8, 23, 15};
    FM_REQUIRE_CLOSE(y.data(), expected.data(), 9, 0.0, 0.0);
  }
  SECTION("stride 2 with a 2x2 kernel of ones: each pixel becomes a 2x2 block") {
    const std::vector<double> w = {1, 1, 1, 1};
    const ConvTranspose2dParams p{1, 1, 2, 2, 1, 2, 2, 2, 2, 0, 0};
    REQUIRE(p.out_height() == 4);
    auto y = poisoned<double>(16);
    fm::kernels::conv_transpose2d_forward_cpu<double>(x.data(), w.data(), nullptr, y.data(), p);
    const std::vector<double> expected = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
    FM_REQUIRE_CLOSE(y.data(), expected.data(), 16, 0.0, 0.0);
    // Its input gradient sums each 2x2 block of dy; with dy = 0..15 the blocks sum to
    // 0+1+4+5 = 10, 2+3+6+7 = 18, 8+9+12+13 = 42, 10+11+14+15 = 50.
    std::vector<double> dy(16);
    for (int i = 0; i < 16; ++i) dy[i] = i;
    auto dx = poisoned<double>(4);
    fm::kernels::conv_transpose2d_backward_input_cpu<double>(dy.data(), w.data(), dx.data(), p);
    const std::vector<double> expected_dx = {10, 18, 42, 50};
    FM_REQUIRE_CLOSE(dx.data(), expected_dx.data(), 4, 0.0, 0.0);
  }
}

// =================================================================================================
// 2. Gradcheck of the reference backward functions (float64 central differences)
// =================================================================================================

TEST_CASE("conv2d reference backward matches central differences (float64)",
          "[conv2d][gradcheck]") {
  // Stride 2 in one direction, padding in one direction: both index paths are exercised.
  const Conv2dParams p{2, 3, 5, 4, 2, 3, 3, 2, 1, 1, 0};
  const Problem n = problem_of(p);
  auto x = random_vector<double>(n.x, 11), w = random_vector<double>(n.w, 12),
       b = random_vector<double>(n.b, 13), r = random_vector<double>(n.y, 14);
  auto forward = [&](double* y) {
    fm::kernels::conv2d_forward_cpu<double>(x.data(), w.data(), b.data(), y, p);
  };
  auto dx = poisoned<double>(n.x), dw = poisoned<double>(n.w), db = poisoned<double>(n.b);
  fm::kernels::conv2d_backward_input_cpu<double>(r.data(), w.data(), dx.data(), p);
  fm::kernels::conv2d_backward_weight_cpu<double>(x.data(), r.data(), dw.data(), db.data(), p);

  auto numeric_dx = numeric_gradient(x, r, n.y, forward);
  auto numeric_dw = numeric_gradient(w, r, n.y, forward);
  auto numeric_db = numeric_gradient(b, r, n.y, forward);
  FM_REQUIRE_CLOSE(dx.data(), numeric_dx.data(), n.x, kGradcheckAtol, kGradcheckRtol);
  FM_REQUIRE_CLOSE(dw.data(), numeric_dw.data(), n.w, kGradcheckAtol, kGradcheckRtol);
  FM_REQUIRE_CLOSE(db.data(), numeric_db.data(), n.b, kGradcheckAtol, kGradcheckRtol);
}

TEST_CASE("conv_transpose2d reference backward matches central differences (float64)",
          "[conv2d][gradcheck]") {
  const ConvTranspose2dParams p{2, 3, 3, 4, 2, 4, 4, 2, 2, 1, 1};  // the U-Net's upsample, small
  const Problem n = problem_of(p);
  auto x = random_vector<double>(n.x, 21), w = random_vector<double>(n.w, 22),
       b = random_vector<double>(n.b, 23), r = random_vector<double>(n.y, 24);
  auto forward = [&](double* y) {
    fm::kernels::conv_transpose2d_forward_cpu<double>(x.data(), w.data(), b.data(), y, p);
  };
  auto dx = poisoned<double>(n.x), dw = poisoned<double>(n.w), db = poisoned<double>(n.b);
  fm::kernels::conv_transpose2d_backward_input_cpu<double>(r.data(), w.data(), dx.data(), p);
  fm::kernels::conv_transpose2d_backward_weight_cpu<double>(x.data(), r.data(), dw.data(),
                                                            db.data(), p);
  auto numeric_dx = numeric_gradient(x, r, n.y, forward);
  auto numeric_dw = numeric_gradient(w, r, n.y, forward);
  auto numeric_db = numeric_gradient(b, r, n.y, forward);
  FM_REQUIRE_CLOSE(dx.data(), numeric_dx.data(), n.x, kGradcheckAtol, kGradcheckRtol);
  FM_REQUIRE_CLOSE(dw.data(), numeric_dw.data(), n.w, kGradcheckAtol, kGradcheckRtol);
  FM_REQUIRE_CLOSE(db.data(), numeric_db.data(), n.b, kGradcheckAtol, kGradcheckRtol);
}

// =================================================================================================
// 3. im2col + GEMM against the reference
// =================================================================================================

namespace {
template <typename T>
void check_im2col_conv2d(const Shape& s) {
  INFO(describe(s, "conv2d"));
  const Conv2dParams p = conv_params(s);
  const Problem n = problem_of(p);
  auto x = random_vector<T>(n.x, 1), w = random_vector<T>(n.w, 2), b = random_vector<T>(n.b, 3),
       dy = random_vector<T>(n.y, 4);
  auto atol = sum_atol<T>;
  const double rtol = sum_rtol<T>();

  auto y_ref = poisoned<T>(n.y), y = poisoned<T>(n.y);
  fm::kernels::conv2d_forward_cpu<T>(x.data(), w.data(), b.data(), y_ref.data(), p);
  fm::kernels::conv2d_forward_im2col<T>(x.data(), w.data(), b.data(), y.data(), p);
  FM_REQUIRE_CLOSE(y.data(), y_ref.data(), n.y, atol(n.forward_terms), rtol);

  auto dx_ref = poisoned<T>(n.x), dx = poisoned<T>(n.x);
  fm::kernels::conv2d_backward_input_cpu<T>(dy.data(), w.data(), dx_ref.data(), p);
  fm::kernels::conv2d_backward_input_im2col<T>(dy.data(), w.data(), dx.data(), p);
  FM_REQUIRE_CLOSE(dx.data(), dx_ref.data(), n.x, atol(n.input_grad_terms), rtol);

  auto dw_ref = poisoned<T>(n.w), dw = poisoned<T>(n.w), db_ref = poisoned<T>(n.b),
       db = poisoned<T>(n.b);
  fm::kernels::conv2d_backward_weight_cpu<T>(x.data(), dy.data(), dw_ref.data(), db_ref.data(), p);
  fm::kernels::conv2d_backward_weight_im2col<T>(x.data(), dy.data(), dw.data(), db.data(), p);
  FM_REQUIRE_CLOSE(dw.data(), dw_ref.data(), n.w, atol(n.weight_grad_terms), rtol);
  FM_REQUIRE_CLOSE(db.data(), db_ref.data(), n.b, atol(n.weight_grad_terms), rtol);

  // A null dbias is allowed and dweight must not depend on it.
  auto dw_no_bias = poisoned<T>(n.w);
  fm::kernels::conv2d_backward_weight_im2col<T>(x.data(), dy.data(), dw_no_bias.data(), nullptr, p);
  FM_REQUIRE_CLOSE(dw_no_bias.data(), dw.data(), n.w, 0.0, 0.0);
}

template <typename T>
void check_im2col_conv_transpose2d(const Shape& s) {
  INFO(describe(s, "conv_transpose2d"));
  const ConvTranspose2dParams p = transpose_params(s);
  const Problem n = problem_of(p);
  auto x = random_vector<T>(n.x, 5), w = random_vector<T>(n.w, 6), b = random_vector<T>(n.b, 7),
       dy = random_vector<T>(n.y, 8);
  auto atol = sum_atol<T>;
  const double rtol = sum_rtol<T>();

  auto y_ref = poisoned<T>(n.y), y = poisoned<T>(n.y);
  fm::kernels::conv_transpose2d_forward_cpu<T>(x.data(), w.data(), b.data(), y_ref.data(), p);
  fm::kernels::conv_transpose2d_forward_im2col<T>(x.data(), w.data(), b.data(), y.data(), p);
  FM_REQUIRE_CLOSE(y.data(), y_ref.data(), n.y, atol(n.forward_terms), rtol);

  auto dx_ref = poisoned<T>(n.x), dx = poisoned<T>(n.x);
  fm::kernels::conv_transpose2d_backward_input_cpu<T>(dy.data(), w.data(), dx_ref.data(), p);
  fm::kernels::conv_transpose2d_backward_input_im2col<T>(dy.data(), w.data(), dx.data(), p);
  FM_REQUIRE_CLOSE(dx.data(), dx_ref.data(), n.x, atol(n.input_grad_terms), rtol);

  auto dw_ref = poisoned<T>(n.w), dw = poisoned<T>(n.w), db_ref = poisoned<T>(n.b),
       db = poisoned<T>(n.b);
  fm::kernels::conv_transpose2d_backward_weight_cpu<T>(x.data(), dy.data(), dw_ref.data(),
                                                       db_ref.data(), p);
  fm::kernels::conv_transpose2d_backward_weight_im2col<T>(x.data(), dy.data(), dw.data(), db.data(),
                                                          p);
  FM_REQUIRE_CLOSE(dw.data(), dw_ref.data(), n.w, atol(n.weight_grad_terms), rtol);
  // The bias gradient sums dy over the (larger) output image.
  FM_REQUIRE_CLOSE(db.data(), db_ref.data(), n.b, atol(long(n.y / n.b)), rtol);
}
}  // namespace

TEST_CASE("conv2d im2col path matches the reference (double)", "[conv2d]") {
  for (const Shape& s : awkward_shapes()) check_im2col_conv2d<double>(s);
}

TEST_CASE("conv2d im2col path matches the reference (float)", "[conv2d]") {
  for (const Shape& s : awkward_shapes()) check_im2col_conv2d<float>(s);
}

TEST_CASE("conv_transpose2d im2col path matches the reference (double)", "[conv2d]") {
  for (const Shape& s : awkward_shapes()) check_im2col_conv_transpose2d<double>(s);
}

TEST_CASE("conv_transpose2d im2col path matches the reference (float)", "[conv2d]") {
  for (const Shape& s : awkward_shapes()) check_im2col_conv_transpose2d<float>(s);
}

TEST_CASE("conv2d im2col path is bitwise identical with 1 and 2 threads", "[conv2d]") {
  // A U-Net-sized layer, big enough that im2col, col2im and the GEMM all go parallel.
  const Conv2dParams p{3, 32, 28, 28, 64, 3, 3, 1, 1, 1, 1};
  const Problem n = problem_of(p);
  auto x = random_vector<float>(n.x, 31), w = random_vector<float>(n.w, 32),
       dy = random_vector<float>(n.y, 33);
  auto run = [&](int threads, std::vector<float>& y, std::vector<float>& dx,
                 std::vector<float>& dw) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    y = poisoned<float>(n.y), dx = poisoned<float>(n.x), dw = poisoned<float>(n.w);
    fm::kernels::conv2d_forward_im2col<float>(x.data(), w.data(), nullptr, y.data(), p);
    fm::kernels::conv2d_backward_input_im2col<float>(dy.data(), w.data(), dx.data(), p);
    fm::kernels::conv2d_backward_weight_im2col<float>(x.data(), dy.data(), dw.data(), nullptr, p);
    omp_set_num_threads(saved);
  };
  std::vector<float> y1, dx1, dw1, y2, dx2, dw2;
  run(1, y1, dx1, dw1);
  run(2, y2, dx2, dw2);
  FM_REQUIRE_CLOSE(y2.data(), y1.data(), n.y, 0.0, 0.0);
  FM_REQUIRE_CLOSE(dx2.data(), dx1.data(), n.x, 0.0, 0.0);
  FM_REQUIRE_CLOSE(dw2.data(), dw1.data(), n.w, 0.0, 0.0);
}

TEST_CASE("gemm_cpu blocking: K and N spanning several cache slices, strided operands", "[gemm]") {
  // The blocked GEMM under im2col cuts K into 256-deep slices and N into 256-wide (float) /
  // 128-wide (double) slices; tests/test_kernel_gemm.cpp covers small sizes, this covers the cuts.
  for (auto [M, N, K] : {std::tuple{13, 600, 530}, std::tuple{64, 784, 288}, std::tuple{1, 37, 700},
                         std::tuple{97, 5, 257}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        INFO("M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb);
        // Leading dimensions larger than the logical width: the GEMM must honour them.
        const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
        auto A = random_vector<double>(std::size_t(ta ? K : M) * lda, 41);
        auto B = random_vector<double>(std::size_t(tb ? N : K) * ldb, 42);
        auto C = random_vector<double>(std::size_t(M) * ldc, 43);
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

// =================================================================================================
// 4. GPU versions against the reference
// =================================================================================================
#ifdef FM_WITH_CUDA
namespace {

// A device copy of a host vector (or a NaN-poisoned device buffer), freed on scope exit.
struct DeviceBuffer {
  float* ptr = nullptr;
  std::size_t size = 0;
  explicit DeviceBuffer(const std::vector<float>& host) : size(host.size()) {
    ptr = static_cast<float*>(fm::kernels::cuda_malloc(size * sizeof(float)));
    fm::kernels::cuda_copy_to_device(ptr, host.data(), size * sizeof(float));
  }
  static DeviceBuffer poisoned_output(std::size_t n) { return DeviceBuffer(poisoned<float>(n)); }
  DeviceBuffer(DeviceBuffer&& other) noexcept : ptr(other.ptr), size(other.size) {
    other.ptr = nullptr;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { fm::kernels::cuda_free(ptr); }
  std::vector<float> to_host() const {
    std::vector<float> host(size);
    fm::kernels::cuda_copy_to_host(host.data(), ptr, size * sizeof(float));
    return host;
  }
};

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }
std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

// The six entry points of one GPU implementation.
struct GpuConv {
  const char* name;
  void (*forward)(const float*, const float*, const float*, float*, const Conv2dParams&);
  void (*backward_input)(const float*, const float*, float*, const Conv2dParams&);
  void (*backward_weight)(const float*, const float*, float*, float*, const Conv2dParams&);
  void (*transpose_forward)(const float*, const float*, const float*, float*,
                            const ConvTranspose2dParams&);
  void (*transpose_backward_input)(const float*, const float*, float*,
                                   const ConvTranspose2dParams&);
  void (*transpose_backward_weight)(const float*, const float*, float*, float*,
                                    const ConvTranspose2dParams&);
};
// The versions this build can run: the CUDA emulator build has no cuDNN, so its row is left out
// there, with a warning in the test output so the gap is visible.
std::vector<GpuConv> gpu_implementations() {
  using namespace fm::kernels;
  std::vector<GpuConv> list = {
      {"naive", conv2d_forward_cuda_naive, conv2d_backward_input_cuda_naive,
       conv2d_backward_weight_cuda_naive, conv_transpose2d_forward_cuda_naive,
       conv_transpose2d_backward_input_cuda_naive, conv_transpose2d_backward_weight_cuda_naive},
      {"implicit_gemm", conv2d_forward_cuda, conv2d_backward_input_cuda,
       conv2d_backward_weight_cuda, conv_transpose2d_forward_cuda,
       conv_transpose2d_backward_input_cuda, conv_transpose2d_backward_weight_cuda},
      {"cudnn", conv2d_forward_cudnn, conv2d_backward_input_cudnn, conv2d_backward_weight_cudnn,
       conv_transpose2d_forward_cudnn, conv_transpose2d_backward_input_cudnn,
       conv_transpose2d_backward_weight_cudnn},
  };
  if (!cudnn_available()) {
    WARN("cuDNN is not available in this build (CUDA emulator): its version is not tested here");
    list.pop_back();
  }
  return list;
}

// The U-Net's layers (28x28 / 14x14 / 7x7 maps; channels 1, 32, 64, 128, 192, 256) at batch 2-4.
const std::vector<Shape>& unet_conv_shapes() {
  // clang-format off
  static const std::vector<Shape> shapes = {
      {4, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1},     // stem
      {2, 32, 28, 28, 64, 3, 3, 1, 1, 1, 1},
      {2, 64, 14, 14, 128, 3, 3, 1, 1, 1, 1},
      {2, 192, 14, 14, 64, 3, 3, 1, 1, 1, 1},   // after a skip concatenation
      {2, 128, 7, 7, 256, 3, 3, 1, 1, 1, 1},
      {2, 256, 7, 7, 256, 3, 3, 1, 1, 1, 1},
      {2, 32, 28, 28, 32, 4, 4, 2, 2, 1, 1},    // downsample 28 -> 14
      {2, 64, 14, 14, 128, 4, 4, 2, 2, 1, 1},   // downsample 14 -> 7
      {2, 256, 7, 7, 128, 1, 1, 1, 1, 0, 0},    // 1x1 channel change
      {3, 32, 28, 28, 1, 1, 1, 1, 1, 0, 0},     // output head, one channel
  };
  // clang-format on
  return shapes;
}
const std::vector<Shape>& unet_transpose_shapes() {
  // clang-format off
  static const std::vector<Shape> shapes = {
      {2, 256, 7, 7, 128, 4, 4, 2, 2, 1, 1},    // upsample 7 -> 14
      {2, 128, 7, 7, 64, 4, 4, 2, 2, 1, 1},
      {2, 64, 14, 14, 32, 4, 4, 2, 2, 1, 1},    // upsample 14 -> 28
  };
  // clang-format on
  return shapes;
}
// Awkward shapes for the GPU on top of the CPU ones: channel counts just past a tile (130, 33),
// maps not a multiple of anything. Small outputs make v2 split the reduction of its forward and
// input-gradient GEMMs (fewer 128-row tiles than the 132 SMs); the last shape has 147 tiles, so
// those GEMMs run unsplit with a multi-step K.
const std::vector<Shape>& gpu_awkward_shapes() {
  static std::vector<Shape> shapes = [] {
    std::vector<Shape> list = awkward_shapes();
    list.push_back({2, 7, 9, 10, 130, 3, 3, 1, 1, 1, 1});
    list.push_back({3, 5, 17, 19, 33, 4, 4, 2, 2, 1, 1});
    list.push_back({1, 129, 5, 3, 65, 3, 3, 1, 1, 1, 1});
    list.push_back({24, 16, 28, 28, 8, 3, 3, 1, 1, 1, 1});
    return list;
  }();
  return shapes;
}

// Every GPU implementation against the reference, computed once in double from the same float
// inputs. Tolerances: the GPU sums in float, the reference in double; see float_sum_atol.
void check_gpu_conv2d(const Shape& s) {
  const Conv2dParams p = conv_params(s);
  const Problem n = problem_of(p);
  auto x = random_vector<float>(n.x, 51), w = random_vector<float>(n.w, 52),
       b = random_vector<float>(n.b, 53), dy = random_vector<float>(n.y, 54);
  auto xd = to_double(x), wd = to_double(w), bd = to_double(b), dyd = to_double(dy);
  std::vector<double> y_ref(n.y), y_no_bias_ref(n.y), dx_ref(n.x), dw_ref(n.w), db_ref(n.b);
  fm::kernels::conv2d_forward_cpu<double>(xd.data(), wd.data(), bd.data(), y_ref.data(), p);
  fm::kernels::conv2d_forward_cpu<double>(xd.data(), wd.data(), nullptr, y_no_bias_ref.data(), p);
  fm::kernels::conv2d_backward_input_cpu<double>(dyd.data(), wd.data(), dx_ref.data(), p);
  fm::kernels::conv2d_backward_weight_cpu<double>(xd.data(), dyd.data(), dw_ref.data(),
                                                  db_ref.data(), p);
  const auto y_expected = to_float(y_ref), y_no_bias_expected = to_float(y_no_bias_ref),
             dx_expected = to_float(dx_ref), dw_expected = to_float(dw_ref),
             db_expected = to_float(db_ref);
  const double y_atol = float_sum_atol(n.forward_terms),
               dx_atol = float_sum_atol(n.input_grad_terms),
               dw_atol = float_sum_atol(n.weight_grad_terms);

  DeviceBuffer x_dev(x), w_dev(w), b_dev(b), dy_dev(dy);
  for (const GpuConv& impl : gpu_implementations()) {
    INFO(impl.name << ": " << describe(s, "conv2d"));
    auto y_dev = DeviceBuffer::poisoned_output(n.y), dx_dev = DeviceBuffer::poisoned_output(n.x),
         dw_dev = DeviceBuffer::poisoned_output(n.w), db_dev = DeviceBuffer::poisoned_output(n.b);
    impl.forward(x_dev.ptr, w_dev.ptr, b_dev.ptr, y_dev.ptr, p);
    impl.backward_input(dy_dev.ptr, w_dev.ptr, dx_dev.ptr, p);
    impl.backward_weight(x_dev.ptr, dy_dev.ptr, dw_dev.ptr, db_dev.ptr, p);
    // Without bias: forward must not read it, dweight must not depend on dbias being wanted.
    auto y2_dev = DeviceBuffer::poisoned_output(n.y), dw2_dev = DeviceBuffer::poisoned_output(n.w);
    impl.forward(x_dev.ptr, w_dev.ptr, nullptr, y2_dev.ptr, p);
    impl.backward_weight(x_dev.ptr, dy_dev.ptr, dw2_dev.ptr, nullptr, p);

    const auto y = y_dev.to_host(), dx = dx_dev.to_host(), dw = dw_dev.to_host(),
               db = db_dev.to_host(), y2 = y2_dev.to_host(), dw2 = dw2_dev.to_host();
    {
      INFO("forward");
      FM_REQUIRE_CLOSE(y.data(), y_expected.data(), n.y, y_atol, kFloatRtol);
    }
    {
      INFO("forward without bias");
      FM_REQUIRE_CLOSE(y2.data(), y_no_bias_expected.data(), n.y, y_atol, kFloatRtol);
    }
    {
      INFO("backward input");
      FM_REQUIRE_CLOSE(dx.data(), dx_expected.data(), n.x, dx_atol, kFloatRtol);
    }
    {
      INFO("backward weight");
      FM_REQUIRE_CLOSE(dw.data(), dw_expected.data(), n.w, dw_atol, kFloatRtol);
      FM_REQUIRE_CLOSE(db.data(), db_expected.data(), n.b, dw_atol, kFloatRtol);
    }
    {
      INFO("backward weight without dbias");
      FM_REQUIRE_CLOSE(dw2.data(), dw_expected.data(), n.w, dw_atol, kFloatRtol);
    }
  }
}

void check_gpu_conv_transpose2d(const Shape& s) {
  const ConvTranspose2dParams p = transpose_params(s);
  const Problem n = problem_of(p);
  auto x = random_vector<float>(n.x, 61), w = random_vector<float>(n.w, 62),
       b = random_vector<float>(n.b, 63), dy = random_vector<float>(n.y, 64);
  auto xd = to_double(x), wd = to_double(w), bd = to_double(b), dyd = to_double(dy);
  std::vector<double> y_ref(n.y), dx_ref(n.x), dw_ref(n.w), db_ref(n.b);
  fm::kernels::conv_transpose2d_forward_cpu<double>(xd.data(), wd.data(), bd.data(), y_ref.data(),
                                                    p);
  fm::kernels::conv_transpose2d_backward_input_cpu<double>(dyd.data(), wd.data(), dx_ref.data(), p);
  fm::kernels::conv_transpose2d_backward_weight_cpu<double>(xd.data(), dyd.data(), dw_ref.data(),
                                                            db_ref.data(), p);
  const auto y_expected = to_float(y_ref), dx_expected = to_float(dx_ref),
             dw_expected = to_float(dw_ref), db_expected = to_float(db_ref);

  DeviceBuffer x_dev(x), w_dev(w), b_dev(b), dy_dev(dy);
  for (const GpuConv& impl : gpu_implementations()) {
    INFO(impl.name << ": " << describe(s, "conv_transpose2d"));
    auto y_dev = DeviceBuffer::poisoned_output(n.y), dx_dev = DeviceBuffer::poisoned_output(n.x),
         dw_dev = DeviceBuffer::poisoned_output(n.w), db_dev = DeviceBuffer::poisoned_output(n.b);
    impl.transpose_forward(x_dev.ptr, w_dev.ptr, b_dev.ptr, y_dev.ptr, p);
    impl.transpose_backward_input(dy_dev.ptr, w_dev.ptr, dx_dev.ptr, p);
    impl.transpose_backward_weight(x_dev.ptr, dy_dev.ptr, dw_dev.ptr, db_dev.ptr, p);

    const auto y = y_dev.to_host(), dx = dx_dev.to_host(), dw = dw_dev.to_host(),
               db = db_dev.to_host();
    {
      INFO("forward");
      FM_REQUIRE_CLOSE(y.data(), y_expected.data(), n.y, float_sum_atol(n.forward_terms),
                       kFloatRtol);
    }
    {
      INFO("backward input");
      FM_REQUIRE_CLOSE(dx.data(), dx_expected.data(), n.x, float_sum_atol(n.input_grad_terms),
                       kFloatRtol);
    }
    {
      INFO("backward weight");
      FM_REQUIRE_CLOSE(dw.data(), dw_expected.data(), n.w, float_sum_atol(n.weight_grad_terms),
                       kFloatRtol);
      // The bias gradient sums dy over the (larger) output image.
      FM_REQUIRE_CLOSE(db.data(), db_expected.data(), n.b, float_sum_atol(long(n.y / n.b)),
                       kFloatRtol);
    }
  }
}

}  // namespace

TEST_CASE("conv2d GPU versions match the reference on U-Net shapes", "[conv2d][gpu]") {
  FM_REQUIRE_GPU();
  for (const Shape& s : unet_conv_shapes()) check_gpu_conv2d(s);
}

TEST_CASE("conv2d GPU versions match the reference on awkward shapes", "[conv2d][gpu]") {
  FM_REQUIRE_GPU();
  for (const Shape& s : gpu_awkward_shapes()) check_gpu_conv2d(s);
}

TEST_CASE("conv_transpose2d GPU versions match the reference on U-Net shapes", "[conv2d][gpu]") {
  FM_REQUIRE_GPU();
  for (const Shape& s : unet_transpose_shapes()) check_gpu_conv_transpose2d(s);
}

TEST_CASE("conv_transpose2d GPU versions match the reference on awkward shapes", "[conv2d][gpu]") {
  FM_REQUIRE_GPU();
  for (const Shape& s : gpu_awkward_shapes()) check_gpu_conv_transpose2d(s);
}

TEST_CASE("conv2d implicit-GEMM kernels are deterministic run to run", "[conv2d][gpu]") {
  FM_REQUIRE_GPU();
  // Split-K weight gradients reduce their partial sums in a fixed order: bitwise equal results.
  const Conv2dParams p{4, 64, 14, 14, 64, 3, 3, 1, 1, 1, 1};
  const Problem n = problem_of(p);
  DeviceBuffer x_dev(random_vector<float>(n.x, 71)), dy_dev(random_vector<float>(n.y, 72));
  std::vector<std::vector<float>> results;
  for (int run = 0; run < 2; ++run) {
    auto dw_dev = DeviceBuffer::poisoned_output(n.w), db_dev = DeviceBuffer::poisoned_output(n.b);
    fm::kernels::conv2d_backward_weight_cuda(x_dev.ptr, dy_dev.ptr, dw_dev.ptr, db_dev.ptr, p);
    results.push_back(dw_dev.to_host());
    results.push_back(db_dev.to_host());
  }
  FM_REQUIRE_CLOSE(results[2].data(), results[0].data(), n.w, 0.0, 0.0);
  FM_REQUIRE_CLOSE(results[3].data(), results[1].data(), n.b, 0.0, 0.0);
}
#endif  // FM_WITH_CUDA
