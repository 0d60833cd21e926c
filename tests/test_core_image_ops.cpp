// tests/test_core_image_ops.cpp — the U-Net's ops through autograd: conv2d, conv_transpose2d,
// group_norm, group_norm_silu, scaled_dot_product_attention (and its packed form), SiLU.
//   CPU: float64 gradcheck across the options (stride, padding, groups, heads) and forward values
//        against the plain-loop reference kernels.
//   CUDA: the custom kernels and the library path (cuDNN / cuBLAS), forward and every backward,
//        against the CPU on fresh random inputs (skipped without a GPU).
#include <catch2/catch.hpp>

#include "core/kernel_choice.h"
#include "core/ops_nn.h"
#include "cuda_parity.h"
#include "gradcheck.h"
#include "kernels/conv2d.h"
#include "kernels/runtime.h"

using namespace fm;
using fm::test::Inputs;
using fm::test::random_tensor;

TEST_CASE("conv2d forward equals the reference loops", "[conv]") {
  Tensor x = random_tensor({2, 3, 9, 7}, 1), w = random_tensor({5, 3, 3, 3}, 2), b = random_tensor({5}, 3);
  Tensor y = conv2d(x, w, b, 2, 1);
  kernels::Conv2dParams p{2, 3, 9, 7, 5, 3, 3, 2, 2, 1, 1};
  REQUIRE(y.shape() == Shape{2, 5, p.out_height(), p.out_width()});
  std::vector<double> expected(std::size_t(y.numel()));
  kernels::conv2d_forward_cpu<double>(x.data<double>(), w.data<double>(), b.data<double>(), expected.data(), p);
  std::vector<double> got = y.to_vector();
  FM_REQUIRE_CLOSE(got.data(), expected.data(), got.size(), 1e-12, 1e-12);
}

TEST_CASE("gradcheck: conv2d across kernel sizes, strides and paddings", "[gradcheck][conv]") {
  struct Case { Shape x, w; int stride, pad; bool bias; };
  for (Case c : {Case{{2, 3, 6, 5}, {4, 3, 3, 3}, 1, 1, true}, Case{{1, 2, 8, 8}, {3, 2, 4, 4}, 2, 1, true},
                 Case{{2, 3, 5, 5}, {2, 3, 1, 1}, 1, 0, true}, Case{{1, 1, 7, 6}, {2, 1, 3, 2}, 2, 0, false}}) {
    INFO("x " << shape_str(c.x) << " w " << shape_str(c.w) << " stride " << c.stride << " pad " << c.pad);
    Inputs in = {random_tensor(c.x, 4), random_tensor(c.w, 5)};
    if (c.bias) in.push_back(random_tensor({c.w[0]}, 6));
    int stride = c.stride, pad = c.pad;
    FM_REQUIRE_GRADCHECK([=](const Inputs& x) { return conv2d(x[0], x[1], x.size() > 2 ? x[2] : Tensor(), stride, pad); }, in);
  }
}

TEST_CASE("gradcheck: conv_transpose2d", "[gradcheck][conv]") {
  struct Case { Shape x, w; int stride, pad; };
  for (Case c : {Case{{2, 3, 4, 4}, {3, 2, 4, 4}, 2, 1}, Case{{1, 2, 3, 5}, {2, 3, 3, 3}, 1, 1},
                 Case{{1, 1, 3, 3}, {1, 1, 2, 2}, 2, 0}}) {
    INFO("x " << shape_str(c.x) << " w " << shape_str(c.w));
    Inputs in = {random_tensor(c.x, 7), random_tensor(c.w, 8), random_tensor({c.w[1]}, 9)};
    int stride = c.stride, pad = c.pad;
    FM_REQUIRE_GRADCHECK([=](const Inputs& x) { return conv_transpose2d(x[0], x[1], x[2], stride, pad); }, in);
  }
  // Shape rule: (H − 1)·stride − 2·pad + k; 4×4 stride-2 pad-1 doubles the size.
  REQUIRE(conv_transpose2d(random_tensor({1, 2, 7, 7}, 1), random_tensor({2, 3, 4, 4}, 2), Tensor(), 2, 1).shape() ==
          Shape{1, 3, 14, 14});
}

TEST_CASE("gradcheck: group_norm and group_norm_silu", "[gradcheck][norm]") {
  for (auto [shape, groups] : {std::pair{Shape{2, 4, 3, 3}, 2}, std::pair{Shape{1, 6, 5, 1}, 1},
                               std::pair{Shape{2, 3, 4, 2}, 3}, std::pair{Shape{3, 4, 7}, 4}}) {
    INFO("shape " << shape_str(shape) << " groups " << groups);
    std::int64_t C = shape[1];
    Inputs in = {random_tensor(shape, 10, -2, 2), random_tensor({C}, 11, 0.5, 1.5), random_tensor({C}, 12)};
    int g = groups;
    FM_REQUIRE_GRADCHECK([=](const Inputs& x) { return group_norm(x[0], g, x[1], x[2], 1e-5); }, in);
    FM_REQUIRE_GRADCHECK([=](const Inputs& x) { return group_norm_silu(x[0], g, x[1], x[2], 1e-5); }, in);
    // The fused op equals silu(group_norm(x)).
    std::vector<double> fused = group_norm_silu(in[0], g, in[1], in[2], 1e-5).to_vector();
    std::vector<double> two = silu(group_norm(in[0], g, in[1], in[2], 1e-5)).to_vector();
    FM_REQUIRE_CLOSE(fused.data(), two.data(), fused.size(), 1e-12, 1e-12);
  }
  // Normalised output: per group mean 0, variance 1 (weight 1, bias 0).
  Tensor x = random_tensor({2, 4, 5, 5}, 13, -3, 5);
  Tensor y = group_norm(x, 2, Tensor::ones({4}, DType::Float64), Tensor::zeros({4}, DType::Float64), 1e-5);
  Tensor grouped = y.reshape({2, 2, 50});
  std::vector<double> means = mean(grouped, {2}).to_vector();
  std::vector<double> vars = mean(square(grouped), {2}).to_vector();
  for (double m : means) REQUIRE(std::abs(m) < 1e-10);
  for (double v : vars) REQUIRE(v == Approx(1.0).epsilon(1e-3));
  REQUIRE_THROWS_WITH(group_norm(x, 3, Tensor::ones({4}, DType::Float64), Tensor::zeros({4}, DType::Float64), 1e-5),
                      Catch::Contains("4 channels do not split into 3 groups"));
}

TEST_CASE("gradcheck: scaled_dot_product_attention", "[gradcheck][attention]") {
  for (Shape s : {Shape{1, 1, 1, 1}, Shape{2, 2, 5, 3}, Shape{1, 3, 7, 4}}) {
    INFO("q/k/v " << shape_str(s));
    Inputs in = {random_tensor(s, 14, -1.5, 1.5), random_tensor(s, 15, -1.5, 1.5), random_tensor(s, 16)};
    FM_REQUIRE_GRADCHECK([](const Inputs& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); }, in);
  }
  // Against the composition softmax(q kᵀ/√d) v built from primitive ops.
  Tensor q = random_tensor({2, 2, 6, 4}, 17), k = random_tensor({2, 2, 6, 4}, 18), v = random_tensor({2, 2, 6, 4}, 19);
  Tensor scores = matmul(q, k.transpose(-1, -2)) * (1.0 / 2.0);
  Tensor e = exp(scores);
  Tensor probs = e / sum(e, {-1}, true);
  std::vector<double> expected = matmul(probs, v).to_vector();
  std::vector<double> got = scaled_dot_product_attention(q, k, v).to_vector();
  FM_REQUIRE_CLOSE(got.data(), expected.data(), got.size(), 1e-12, 1e-10);
}

TEST_CASE("scaled_dot_product_attention_packed: q, k, v stacked give the same output and gradients",
          "[gradcheck][attention]") {
  for (Shape s : {Shape{3, 1, 1, 1, 1}, Shape{3, 2, 2, 5, 3}, Shape{3, 1, 3, 7, 4}}) {  // [3, B, H, L, D]
    INFO("qkv " << shape_str(s));
    FM_REQUIRE_GRADCHECK([](const Inputs& x) { return scaled_dot_product_attention_packed(x[0]); },
                         Inputs{random_tensor(s, 20, -1.5, 1.5)});
  }
  // Against the three-tensor op on the same numbers, float32 (the training dtype): the output is
  // the same kernel's, so the same bits; the packed gradient holds the three-tensor op's dq, dk, dv.
  for (Shape s : {Shape{3, 2, 4, 196, 8}, Shape{3, 2, 4, 49, 8}, Shape{3, 1, 2, 17, 5}}) {
    INFO("qkv " << shape_str(s));
    Tensor qkv = random_tensor(s, 21, -2.0, 2.0, DType::Float32);
    qkv.set_requires_grad();
    const Tensor out_grad = random_tensor(Shape(s.begin() + 1, s.end()), 22, -1.0, 1.0, DType::Float32);
    Tensor packed = scaled_dot_product_attention_packed(qkv);
    packed.backward(out_grad);
    Tensor q = qkv.detach().narrow(0, 0, 1).squeeze(0).contiguous();
    Tensor k = qkv.detach().narrow(0, 1, 1).squeeze(0).contiguous();
    Tensor v = qkv.detach().narrow(0, 2, 1).squeeze(0).contiguous();
    for (Tensor* t : {&q, &k, &v}) t->set_requires_grad();
    Tensor separate = scaled_dot_product_attention(q, k, v);
    separate.backward(out_grad);
    REQUIRE(packed.to_vector() == separate.to_vector());
    const Tensor dqkv = qkv.grad();
    REQUIRE(dqkv.shape() == s);
    CHECK(dqkv.narrow(0, 0, 1).squeeze(0).to_vector() == q.grad().to_vector());
    CHECK(dqkv.narrow(0, 1, 1).squeeze(0).to_vector() == k.grad().to_vector());
    CHECK(dqkv.narrow(0, 2, 1).squeeze(0).to_vector() == v.grad().to_vector());
  }
  // A non-contiguous qkv (the module's permuted projection, [B, L, 3, H, D] viewed as [3, B, H, L, D])
  // is read as laid out: the output matches the three-tensor op on the slices taken from the wide
  // layout directly, and the gradient reaches the wide tensor through the permute (gradcheck).
  Tensor wide = random_tensor({2, 5, 3, 2, 4}, 23);  // [B, L, 3, H, D]
  const auto packed_from_wide = [](const Inputs& x) {
    return scaled_dot_product_attention_packed(x[0].permute({2, 0, 3, 1, 4}));
  };
  const auto slice_of_wide = [&](int which) {  // [B, H, L, D] straight from [B, L, 3, H, D]
    return wide.narrow(2, which, 1).squeeze(2).permute({0, 2, 1, 3});
  };
  const std::vector<double> from_packed = packed_from_wide({wide}).to_vector();
  const std::vector<double> from_slices =
      scaled_dot_product_attention(slice_of_wide(0), slice_of_wide(1), slice_of_wide(2)).to_vector();
  FM_REQUIRE_CLOSE(from_packed.data(), from_slices.data(), from_packed.size(), 1e-14, 1e-14);
  FM_REQUIRE_GRADCHECK(packed_from_wide, Inputs{wide});
}

TEST_CASE("image ops refuse bad shapes with the op's name", "[errors]") {
  Tensor x = Tensor::zeros({1, 3, 8, 8});
  REQUIRE_THROWS_WITH(conv2d(x, Tensor::zeros({4, 3, 3}), Tensor(), 1, 1),
                      Catch::Contains("conv2d: weight has 3 dims [4, 3, 3], expected 4 (out, in, kh, kw)"));
  REQUIRE_THROWS_WITH(conv2d(x, Tensor::zeros({4, 2, 3, 3}), Tensor(), 1, 1),
                      Catch::Contains("conv2d: input has 3 channels"));
  REQUIRE_THROWS_WITH(conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor::zeros({5}), 1, 1),
                      Catch::Contains("bias has shape [5], expected [4]"));
  REQUIRE_THROWS_WITH(scaled_dot_product_attention(x, x, x.narrow(1, 0, 2)), Catch::Contains("shapes differ"));
  REQUIRE_THROWS_WITH(scaled_dot_product_attention_packed(Tensor::zeros({2, 1, 1, 4, 4})),
                      Catch::Contains("scaled_dot_product_attention_packed: qkv [2, 1, 1, 4, 4], expected [3, batch, "
                                      "heads, tokens, head_dim]"));
  REQUIRE_THROWS_WITH(scaled_dot_product_attention_packed(x), Catch::Contains("expected [3, batch"));
  REQUIRE_THROWS_WITH(scaled_dot_product_attention_packed(Tensor::zeros({3, 1, 1, 2, 129})),
                      Catch::Contains("scaled_dot_product_attention_packed: head_dim 129, expected 1..128"));
}

// ---- CUDA parity: both implementations against the CPU ------------------------------------------
namespace {
// Runs body with our kernels and with the library baseline. Convolution's baseline is cuDNN, which
// the CUDA emulator build lacks: there it is skipped with a warning (attention's cuBLAS baseline is
// emulated and still runs).
void for_each_impl(const std::function<void()>& body, bool library_is_cudnn = false) {
  for (KernelImpl impl : {KernelImpl::Custom, KernelImpl::Library}) {
    if (impl == KernelImpl::Library && library_is_cudnn && !kernels::cudnn_available()) {
      WARN("cuDNN is not available in this build (CUDA emulator): the library version is not tested");
      continue;
    }
    INFO("kernels: " << kernel_impl_name(impl));
    set_kernel_impl(impl);
    body();
  }
  set_kernel_impl(KernelImpl::Custom);
}
}  // namespace

TEST_CASE("cuda: conv2d custom and cuDNN match the CPU", "[gpu][conv]") {
  FM_REQUIRE_GPU();
  // Sums of up to C_in·k² = 1152 float products: a relative 1e-4 covers reordering; atol covers
  // outputs that cancel to near zero.
  struct Case { Shape x, w; int stride, pad; };
  for_each_impl([] {
    for (Case c : {Case{{2, 32, 28, 28}, {32, 32, 3, 3}, 1, 1}, Case{{2, 64, 14, 14}, {64, 64, 4, 4}, 2, 1},
                   Case{{1, 1, 28, 28}, {32, 1, 3, 3}, 1, 1}, Case{{3, 96, 7, 7}, {64, 96, 1, 1}, 1, 0},
                   Case{{1, 5, 13, 11}, {7, 5, 3, 3}, 1, 1}, Case{{2, 3, 9, 9}, {5, 3, 4, 4}, 2, 1}}) {
      INFO("x " << shape_str(c.x) << " w " << shape_str(c.w));
      int stride = c.stride, pad = c.pad;
      fm::test::check_cuda_matches_cpu([=](const Inputs& x) { return conv2d(x[0], x[1], x[2], stride, pad); },
                                       {c.x, c.w, {c.w[0]}}, 20, 1e-4, 1e-4);
    }
  }, /*library_is_cudnn=*/true);
}

TEST_CASE("cuda: conv_transpose2d custom and cuDNN match the CPU", "[gpu][conv]") {
  FM_REQUIRE_GPU();
  for_each_impl([] {
    for (auto [xs, ws] : {std::pair{Shape{2, 64, 7, 7}, Shape{64, 64, 4, 4}}, std::pair{Shape{2, 128, 14, 14}, Shape{128, 128, 4, 4}},
                          std::pair{Shape{1, 3, 5, 6}, Shape{3, 5, 4, 4}}}) {
      INFO("x " << shape_str(xs) << " w " << shape_str(ws));
      fm::test::check_cuda_matches_cpu([](const Inputs& x) { return conv_transpose2d(x[0], x[1], x[2], 2, 1); },
                                       {xs, ws, {ws[1]}}, 21, 1e-4, 1e-4);
    }
  }, /*library_is_cudnn=*/true);
}

TEST_CASE("cuda: group_norm and the fused GroupNorm+SiLU match the CPU", "[gpu][norm]") {
  FM_REQUIRE_GPU();
  // Statistics over up to 8·784 elements per group in float: Welford vs two-pass differ by ~1e-6.
  for (auto [shape, groups] : {std::pair{Shape{4, 32, 28, 28}, 8}, std::pair{Shape{2, 64, 7, 7}, 8},
                               std::pair{Shape{1, 3, 5, 5}, 1}, std::pair{Shape{3, 6, 1, 1}, 6}}) {
    INFO("shape " << shape_str(shape) << " groups " << groups);
    int g = groups;
    fm::test::check_cuda_matches_cpu([=](const Inputs& x) { return group_norm(x[0], g, x[1], x[2], 1e-5); },
                                     {shape, {shape[1]}, {shape[1]}}, 22, 1e-4, 1e-4);
    fm::test::check_cuda_matches_cpu([=](const Inputs& x) { return group_norm_silu(x[0], g, x[1], x[2], 1e-5); },
                                     {shape, {shape[1]}, {shape[1]}}, 23, 1e-4, 1e-4);
  }
}

TEST_CASE("cuda: attention flash and cuBLAS match the CPU", "[gpu][attention]") {
  FM_REQUIRE_GPU();
  for_each_impl([] {
    // The U-Net's attention layers: 196 tokens with head_dim 32 (128 ch) and 8 (32 ch), 49 tokens with 16.
    for (Shape s : {Shape{2, 4, 196, 32}, Shape{2, 4, 196, 8}, Shape{2, 4, 49, 16}, Shape{1, 1, 1, 1},
                    Shape{1, 1, 130, 128}, Shape{3, 2, 17, 5}}) {
      INFO("q/k/v " << shape_str(s));
      fm::test::check_cuda_matches_cpu([](const Inputs& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); },
                                       {s, s, s}, 24, 1e-5, 1e-4);
      // The stacked form: the same kernels on slices of one buffer, one gradient written slice by slice.
      Shape packed = s;
      packed.insert(packed.begin(), 3);
      fm::test::check_cuda_matches_cpu([](const Inputs& x) { return scaled_dot_product_attention_packed(x[0]); },
                                       {packed}, 25, 1e-5, 1e-4);
    }
  });
}

TEST_CASE("cuda: SiLU kernels match the CPU", "[gpu]") {
  FM_REQUIRE_GPU();
  for (Shape s : {Shape{1}, Shape{1023}, Shape{4, 32, 28, 28}})
    fm::test::check_cuda_matches_cpu([](const Inputs& x) { return silu(x[0]); }, {s}, 25, 1e-6, 1e-5, -4, 4);
  // Non-contiguous input takes the generic path.
  fm::test::check_cuda_matches_cpu([](const Inputs& x) { return silu(x[0].transpose(0, 1)); }, {{5, 7}}, 26, 1e-6, 1e-5);
}
