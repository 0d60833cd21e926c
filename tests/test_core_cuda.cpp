// tests/test_core_cuda.cpp — every core op on CUDA against the CPU reference: forward outputs and
// gradients, on fresh random inputs, over several shapes including odd sizes, broadcasting and
// non-contiguous views. Skipped (visibly) without a GPU.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <tuple>

#include "core/autograd.h"
#include "core/kernel_choice.h"
#include "core/ops.h"
#include "core/ops_nn.h"
#include "core/ops_optim.h"
#include "core/random.h"
#include "kernels/runtime.h"
#include "cuda_parity.h"
#include "test_util.h"

using namespace fm;
using fm::test::Inputs;
using fm::test::OpFn;

namespace {
using fm::test::check_cuda_matches_cpu;
// Pointwise float32 math differs between the host libm and CUDA's intrinsics by a few ulps.
constexpr double kPointwiseAtol = 1e-6, kPointwiseRtol = 1e-5;
}  // namespace

TEST_CASE("cuda: broadcasting arithmetic matches the CPU", "[cuda][gpu]") {
  FM_REQUIRE_GPU();
  for (auto shapes : {std::vector<Shape>{{3, 5}, {3, 5}}, std::vector<Shape>{{7, 1, 3}, {4, 3}},
                      std::vector<Shape>{{1}, {2, 3, 4}}, std::vector<Shape>{{257, 33}, {33}}}) {
    // One float operation per output, but a broadcast input's gradient is a sum over the broadcast
    // axes, added up in a different order on the GPU than in the CPU loop: a few ulps apart.
    check_cuda_matches_cpu([](const Inputs& x) { return add(x[0], x[1]); }, shapes, 1, 1e-6, 1e-6);
    check_cuda_matches_cpu([](const Inputs& x) { return sub(x[0], x[1]); }, shapes, 2, 1e-6, 1e-6);
    check_cuda_matches_cpu([](const Inputs& x) { return mul(x[0], x[1]); }, shapes, 3, 1e-6, 1e-6);
    check_cuda_matches_cpu([](const Inputs& x) { return div(x[0], x[1]); }, shapes, 4, 1e-5, 1e-5,
                           0.5, 2.0);
  }
}

TEST_CASE("cuda: pointwise functions match the CPU", "[cuda][gpu]") {
  FM_REQUIRE_GPU();
  std::vector<std::pair<const char*, OpFn>> ops = {
      {"exp", [](const Inputs& x) { return exp(x[0]); }},
      {"tanh", [](const Inputs& x) { return tanh(x[0]); }},
      {"sin", [](const Inputs& x) { return sin(x[0]); }},
      {"cos", [](const Inputs& x) { return cos(x[0]); }},
      {"sigmoid", [](const Inputs& x) { return sigmoid(x[0]); }},
      {"relu", [](const Inputs& x) { return relu(x[0]); }},
      {"silu", [](const Inputs& x) { return silu(x[0]); }},
      {"gelu", [](const Inputs& x) { return gelu(x[0]); }},
      {"square", [](const Inputs& x) { return square(x[0]); }},
      {"affine", [](const Inputs& x) { return affine(x[0], -1.5, 0.25); }},
  };
  for (auto& [name, f] : ops)
    for (Shape s : {Shape{1}, Shape{1000}, Shape{3, 7, 11}}) {
      INFO(name << " on " << shape_str(s));
      check_cuda_matches_cpu(f, {s}, 5, kPointwiseAtol, kPointwiseRtol, -3.0, 3.0);
    }
  // log, sqrt and pow need positive inputs.
  for (OpFn f : {OpFn([](const Inputs& x) { return log(x[0]); }),
                 OpFn([](const Inputs& x) { return sqrt(x[0]); }),
                 OpFn([](const Inputs& x) { return pow_scalar(x[0], 1.5); })})
    check_cuda_matches_cpu(f, {{5, 13}}, 6, kPointwiseAtol, kPointwiseRtol, 0.1, 4.0);
}

TEST_CASE("cuda: reductions match the CPU", "[cuda][gpu]") {
  FM_REQUIRE_GPU();
  // Float sums of up to ~10^5 terms in a different order: error grows like √n·ε·|terms|.
  for (Shape s : {Shape{1}, Shape{5, 7}, Shape{3, 129, 65}, Shape{100000}}) {
    check_cuda_matches_cpu([](const Inputs& x) { return sum(x[0]); }, {s}, 7, 1e-3, 1e-4);
    check_cuda_matches_cpu([](const Inputs& x) { return mean(x[0], {-1}, true); }, {s}, 8, 1e-5, 1e-4);
  }
  check_cuda_matches_cpu([](const Inputs& x) { return sum(x[0], {0, 2}); }, {{4, 9, 6}}, 9, 1e-5, 1e-5);
}

TEST_CASE("cuda: matmul through cuBLAS matches the CPU loops", "[cuda][gpu]") {
  FM_REQUIRE_GPU();
  // K up to 300 products per output, float accumulation in a different order.
  check_cuda_matches_cpu([](const Inputs& x) { return matmul(x[0], x[1]); }, {{1, 1}, {1, 1}}, 10, 1e-5, 1e-5);
  check_cuda_matches_cpu([](const Inputs& x) { return matmul(x[0], x[1]); }, {{37, 300}, {300, 19}}, 11, 1e-4, 1e-4);
  check_cuda_matches_cpu([](const Inputs& x) { return matmul(x[0], x[1]); }, {{3, 17, 33}, {3, 33, 5}}, 12, 1e-4, 1e-4);
  check_cuda_matches_cpu([](const Inputs& x) { return matmul(x[0], x[1]); }, {{4, 17, 33}, {33, 8}}, 13, 1e-4, 1e-4);
  check_cuda_matches_cpu([](const Inputs& x) { return matmul(x[0], x[1].transpose(0, 1)); },
                         {{9, 31}, {13, 31}}, 14, 1e-4, 1e-4);
  check_cuda_matches_cpu([](const Inputs& x) { return matmul(x[0].transpose(-1, -2), x[1]); },
                         {{2, 31, 9}, {2, 31, 13}}, 15, 1e-4, 1e-4);
}

namespace {
// Puts the process-wide precision and kernel choice back when a test that changes them ends.
struct RestorePrecision {
  Precision saved = precision();
  KernelImpl saved_impl = kernel_impl();
  ~RestorePrecision() { set_precision(saved), set_kernel_impl(saved_impl); }
};
}  // namespace

TEST_CASE("cuda: matmul and conv2d under precision tf32 run on the TF32 kernels, within their error bound",
          "[cuda][gpu]") {
  FM_REQUIRE_GPU();
  RestorePrecision restore;
  set_kernel_impl(KernelImpl::Custom);
  Generator gen(21);
  // Batched with a shared B, and a transposed operand: the shapes Linear and attention produce.
  for (auto [a_shape, b_shape, transpose_b] : {std::tuple<Shape, Shape, bool>{{4, 17, 33}, {33, 8}, false},
                                               std::tuple<Shape, Shape, bool>{{9, 70}, {13, 70}, true}}) {
    Tensor a = rand_uniform(a_shape, gen, -1.0, 1.0), b = rand_uniform(b_shape, gen, -1.0, 1.0);
    auto product = [&](const Tensor& x, const Tensor& y) { return matmul(x, transpose_b ? y.transpose(0, 1) : y); };
    const Tensor cpu = product(a, b);
    set_precision(Precision::FP32);
    const std::vector<float> fp32 = product(a.to(Device::CUDA), b.to(Device::CUDA)).to_float_vector();
    set_precision(Precision::TF32);
    const std::vector<float> tf32 = product(a.to(Device::CUDA), b.to(Device::CUDA)).to_float_vector();
    const std::vector<float> want = cpu.to_float_vector();
    // |a|, |b| <= 1, so Σ_k |a_k·b_k| <= K, and tests/test_kernel_gemm.cpp's bound becomes
    // about (2^-10 + (K + 2)·2^-23)·K; the CPU's own FP32 error (K·2^-24·K) is added.
    const double K = double(a_shape.back());
    const double bound = (0x1p-10 + 0x1p-20 + (K + 2) * 0x1p-23) * K + K * K * 0x1p-24;
    bool differs_from_fp32 = false;
    for (std::size_t i = 0; i < want.size(); ++i) {
      REQUIRE(std::abs(double(tf32[i]) - double(want[i])) <= bound);
      differs_from_fp32 = differs_from_fp32 || tf32[i] != fp32[i];
    }
    REQUIRE(differs_from_fp32);  // the TF32 kernel ran, not the FP32 one
  }
  // A convolution (our implicit GEMM, forward) the same way: K = 8 channels × 9 taps.
  {
    Tensor x = rand_uniform({2, 8, 9, 9}, gen, -1.0, 1.0), w = rand_uniform({16, 8, 3, 3}, gen, -1.0, 1.0);
    const std::vector<float> want = conv2d(x, w, Tensor(), 1, 1).to_float_vector();
    set_precision(Precision::FP32);
    const std::vector<float> fp32 = conv2d(x.to(Device::CUDA), w.to(Device::CUDA), Tensor(), 1, 1).to_float_vector();
    set_precision(Precision::TF32);
    const std::vector<float> tf32 = conv2d(x.to(Device::CUDA), w.to(Device::CUDA), Tensor(), 1, 1).to_float_vector();
    const double K = 72;
    const double bound = (0x1p-10 + 0x1p-20 + (K + 258) * 0x1p-23) * K + K * K * 0x1p-24;
    bool differs_from_fp32 = false;
    for (std::size_t i = 0; i < want.size(); ++i) {
      REQUIRE(std::abs(double(tf32[i]) - double(want[i])) <= bound);
      differs_from_fp32 = differs_from_fp32 || tf32[i] != fp32[i];
    }
    REQUIRE(differs_from_fp32);
  }
  REQUIRE_THROWS_AS(parse_precision("bf17"), ConfigError);
}

namespace {
Tensor absolute(const Tensor& t) {
  std::vector<float> values = t.to_float_vector();
  for (float& v : values) v = std::abs(v);
  return Tensor::from_floats(values, t.shape());
}

// `op` on the CPU (the reference) and on CUDA in fp32, tf32 and bf16, with the current kernel choice:
// every bf16 element within tests/test_kernel_gemm.cpp's bound with rounding u, taken over that
// element's Σ|products| (op on |inputs|) and a reduction of at most `terms` (+ the CPU's own FP32
// error), and the bf16 result differing from both the fp32 and the tf32 one somewhere (a bfloat16
// kernel ran, not a fall-through to another precision).
template <typename Op>
void require_bf16_within_bound(Op op, const Tensor& a, const Tensor& b, double u, double terms) {
  const std::vector<float> want = op(a, b).to_float_vector();
  const std::vector<float> magnitude = op(absolute(a), absolute(b)).to_float_vector();
  auto on_cuda = [&](Precision p) {
    set_precision(p);
    return op(a.to(Device::CUDA), b.to(Device::CUDA)).to_float_vector();
  };
  const std::vector<float> fp32 = on_cuda(Precision::FP32), tf32 = on_cuda(Precision::TF32),
                           bf16 = on_cuda(Precision::BF16);
  const double gamma = terms * 0x1p-23 / (1 - terms * 0x1p-23);
  const double scale = (2 * u + u * u) + (1 + u) * (1 + u) * gamma + terms * 0x1p-24;
  bool differs_from_fp32 = false, differs_from_tf32 = false;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double bound = scale * double(magnitude[i]) * (1 + 1e-6);  // the magnitude's own FP32 rounding
    if (!(std::abs(double(bf16[i]) - double(want[i])) <= bound))
      FAIL("element " << i << " = " << bf16[i] << ", reference " << want[i] << ", allowed error " << bound);
    differs_from_fp32 = differs_from_fp32 || bf16[i] != fp32[i];
    differs_from_tf32 = differs_from_tf32 || bf16[i] != tf32[i];
  }
  REQUIRE(differs_from_fp32);
  REQUIRE(differs_from_tf32);
}
}  // namespace

TEST_CASE("cuda: matmul and conv2d under precision bf16 run on the bfloat16 kernels, within their error bound",
          "[cuda][gpu]") {
  FM_REQUIRE_GPU();
  RestorePrecision restore;
  Generator gen(22);
  Tensor a = rand_uniform({4, 17, 40}, gen, -1.0, 1.0), b = rand_uniform({40, 8}, gen, -1.0, 1.0);
  auto product = [](const Tensor& x, const Tensor& y) { return matmul(x, y); };
  // Ours rounds to nearest (u = 2^-8); cuBLAS's rounding mode is not documented (2^-7, truncation).
  set_kernel_impl(KernelImpl::Custom);
  require_bf16_within_bound(product, a, b, 0x1p-8, 40 + 2);
  set_kernel_impl(KernelImpl::Library);
  require_bf16_within_bound(product, a, b, 0x1p-7, 40 + 2);
  // Our convolution (implicit GEMM, forward): K = 8 channels × 9 taps, split-K sums on top.
  set_kernel_impl(KernelImpl::Custom);
  Tensor x = rand_uniform({2, 8, 9, 9}, gen, -1.0, 1.0), w = rand_uniform({16, 8, 3, 3}, gen, -1.0, 1.0);
  auto convolution = [](const Tensor& in, const Tensor& weight) { return conv2d(in, weight, Tensor(), 1, 1); };
  require_bf16_within_bound(convolution, x, w, 0x1p-8, 72 + 258);
  REQUIRE(parse_precision("bf16") == Precision::BF16);
  REQUIRE(std::string(precision_name(Precision::BF16)) == "bf16");
}

// The attention op routes the precision to the fused kernels' tensor-core versions (kernels = custom):
// tf32 and bf16 outputs and input gradients differ from fp32's and from each other (a fall-through to
// another precision fails), and stay near the CPU's. The derived bounds are
// tests/test_kernel_attention.cpp's; this checks the routing, with a smoke bound of 64·u of the
// largest value (u = 2^-8).
TEST_CASE("cuda: attention under precision tf32 and bf16 runs the fused kernels on the tensor cores",
          "[cuda][gpu]") {
  FM_REQUIRE_GPU();
  RestorePrecision restore;
  set_kernel_impl(KernelImpl::Custom);
  Generator gen(23);
  const Shape shape{2, 2, 70, 16};  // two key tiles, head dim 16
  const Tensor q = rand_uniform(shape, gen, -1.0, 1.0), k = rand_uniform(shape, gen, -1.0, 1.0),
               v = rand_uniform(shape, gen, -1.0, 1.0), weights = rand_uniform(shape, gen, -1.0, 1.0);
  // The output and dQ of sum(attention(q, k, v) · weights), on `device`.
  auto run = [&](Device device) {
    Tensor q_leaf = q.to(device).detach();
    q_leaf.set_requires_grad(true);
    Tensor out = scaled_dot_product_attention(q_leaf, k.to(device), v.to(device));
    sum(out * weights.to(device)).backward();
    return std::pair{out.to_float_vector(), q_leaf.grad().to_float_vector()};
  };
  const auto cpu = run(Device::CPU);
  std::vector<std::pair<std::vector<float>, std::vector<float>>> by_precision;
  for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16}) {
    set_precision(p);
    by_precision.push_back(run(Device::CUDA));
  }
  for (int which = 0; which < 2; ++which) {
    auto pick = [&](const auto& result) { return which == 0 ? result.first : result.second; };
    const std::vector<float> want = pick(cpu);
    double largest = 0;
    for (float x : want) largest = std::max(largest, double(std::abs(x)));
    for (const auto& result : by_precision)
      for (std::size_t i = 0; i < want.size(); ++i)
        if (!(std::abs(double(pick(result)[i]) - double(want[i])) <= 64 * 0x1p-8 * largest))
          FAIL((which == 0 ? "output" : "dQ") << " element " << i << " = " << pick(result)[i] << ", CPU " << want[i]);
    REQUIRE(pick(by_precision[1]) != pick(by_precision[0]));  // tf32 is not fp32
    REQUIRE(pick(by_precision[2]) != pick(by_precision[0]));  // bf16 is not fp32
    REQUIRE(pick(by_precision[2]) != pick(by_precision[1]));  // bf16 is not tf32
  }
}

TEST_CASE("cuda: views, concat and copies match the CPU", "[cuda][gpu]") {
  FM_REQUIRE_GPU();
  check_cuda_matches_cpu([](const Inputs& x) { return x[0].permute({2, 0, 1}).contiguous(); }, {{3, 5, 7}}, 16, 0, 0);
  check_cuda_matches_cpu([](const Inputs& x) { return exp(x[0].narrow(1, 2, 3)); }, {{3, 5, 7}}, 17,
                         kPointwiseAtol, kPointwiseRtol);
  check_cuda_matches_cpu([](const Inputs& x) { return concat({x[0], x[1]}, 1); }, {{2, 3, 4}, {2, 5, 4}}, 18, 0, 0);
  check_cuda_matches_cpu([](const Inputs& x) { return mse_loss(x[0], x[1]); }, {{64, 2}, {64, 2}}, 19, 1e-6, 1e-5);
  check_cuda_matches_cpu([](const Inputs& x) { return x[0].narrow(0, 1, 1).expand({4, 6}) * x[1]; },
                         {{3, 6}, {4, 6}}, 20, 1e-6, 1e-6);
}

TEST_CASE("cuda: add_into (a gradient added to its home in place) matches the CPU", "[cuda][gpu]") {
  FM_REQUIRE_GPU();
  // One float addition per element, on both devices: bitwise equal. 1031 elements: a partial block.
  Generator gen(40);
  const Tensor home = rand_uniform({1031}, gen, -1, 1), gradient = rand_uniform({1031}, gen, -1, 1);
  Tensor on_gpu = home.to(Device::CUDA), on_cpu = home.clone();
  add_into(on_gpu, gradient.to(Device::CUDA));
  add_into(on_cpu, gradient);
  CHECK(on_gpu.to(Device::CPU).to_vector() == on_cpu.to_vector());
  CHECK(on_cpu.to_vector() != home.to_vector());
}

TEST_CASE("cuda: the caching allocator reuses freed blocks", "[cuda][gpu]") {
  FM_REQUIRE_GPU();
  std::size_t before = kernels::cuda_bytes_in_use();
  { Tensor t = Tensor::zeros({1024, 1024}, DType::Float32, Device::CUDA); }
  REQUIRE(kernels::cuda_bytes_in_use() == before);
  void* first = nullptr;
  {
    Tensor t = Tensor::zeros({1000}, DType::Float32, Device::CUDA);
    first = t.raw_data();
  }
  Tensor again = Tensor::zeros({1000}, DType::Float32, Device::CUDA);
  REQUIRE(again.raw_data() == first);
}

TEST_CASE("cuda: cross_entropy matches the CPU", "[cuda][gpu]") {
  FM_REQUIRE_GPU();
  for (int N : {1, 7, 300}) {
    std::vector<std::int32_t> labels(N);
    for (int i = 0; i < N; ++i) labels[i] = (i * 7) % 10;
    check_cuda_matches_cpu([&](const Inputs& x) { return cross_entropy(x[0], labels); }, {{N, 10}}, 21,
                           1e-6, 1e-5, -5.0, 5.0);
  }
  // The labels go to the device once, for the forward and the backward pass.
  const std::vector<std::int32_t> labels{3, 0, 9, 9};
  Tensor logits = Tensor::zeros({4, 10}, DType::Float32, Device::CUDA).set_requires_grad();
  const kernels::RuntimeCounters before = kernels::runtime_counters();
  cross_entropy(logits, labels).backward();
  const kernels::RuntimeCounters d = kernels::runtime_counters() - before;
  REQUIRE(d.host_to_device_copies == 1);
  REQUIRE(d.host_to_device_bytes == labels.size() * sizeof(std::int32_t));
}

TEST_CASE("cuda: embedding matches the CPU", "[cuda][gpu]") {
  FM_REQUIRE_GPU();
  // Forward is a copy and the backward sums in the CPU's order: equal to the bit.
  for (int count : {1, 7, 300}) {
    std::vector<std::int32_t> indices(count);
    for (int i = 0; i < count; ++i) indices[i] = (i * 7) % 11;
    check_cuda_matches_cpu([&](const Inputs& x) { return embedding(x[0], indices); }, {{11, 37}}, 22, 0.0, 0.0);
  }
  // The indices go to the device once, for the forward and the backward pass.
  const std::vector<std::int32_t> indices{4, 4, 10, 0, 2};
  Tensor table = Tensor::zeros({11, 37}, DType::Float32, Device::CUDA).set_requires_grad();
  const kernels::RuntimeCounters before = kernels::runtime_counters();
  sum(embedding(table, indices)).backward();
  const kernels::RuntimeCounters d = kernels::runtime_counters() - before;
  REQUIRE(d.host_to_device_copies == 1);
  REQUIRE(d.host_to_device_bytes == indices.size() * sizeof(std::int32_t));
}
