// tests/test_core_bfloat16_attention.cpp — scaled dot-product attention on bfloat16 activations.
//
//   CPU: the op on bfloat16 q, k, v is the float32 op on the widened inputs with O rounded once, and
//   its gradients the float32 backward's (on the saved, rounded O) rounded once, bit for bit;
//   CUDA: the bfloat16 flash kernels are the float kernels with bfloat16 products (GemmMath::Bf16,
//   which tests/test_kernel_attention.cpp holds to a derived bound) on the widened inputs, with O and
//   the gradients rounded once, bit for bit: one key tile, several (dQ's shares summed in float), a
//   head dim padded to 128, and a sequence long enough for the backward's FP32 fallback. And the op on
//   CUDA refuses bfloat16 with the library kernels.
#include <catch2/catch.hpp>

#include <cmath>
#include <tuple>
#include <vector>

#include "bfloat16_test_util.h"
#include "core/kernel_choice.h"
#include "core/ops.h"
#include "core/ops_nn.h"
#include "kernels/attention.h"
#include "test_util.h"

using namespace fm;
using fm::test::bits_of_tensor;
using fm::test::random_bf16;
using fm::test::require_close_to_scale;

namespace {

struct AttentionShape {
  int B, H, L, D;
  Shape shape() const { return {B, H, L, D}; }
};

struct AttentionResult {
  Tensor o, dq, dk, dv;
};

// O = attention(q, k, v) and the gradients of Σ O·dO, through the op and autograd.
AttentionResult run_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& dout) {
  Tensor q = q_in.detach().set_requires_grad(true), k = k_in.detach().set_requires_grad(true),
         v = v_in.detach().set_requires_grad(true);
  Tensor o = scaled_dot_product_attention(q, k, v);
  sum(mul(o, dout)).backward();
  return {o.detach(), q.grad(), k.grad(), v.grad()};
}

}  // namespace

TEST_CASE("attention on bfloat16 activations equals the float32 attention rounded once", "[bfloat16][attention]") {
  // The CPU widens its inputs exactly, runs the float32 GEMM version and rounds each output once. The
  // backward's inputs include the O the forward saved, which is bfloat16: so the gradients are the
  // float32 backward's on the rounded O (widened), rounded once.
  for (AttentionShape s : {AttentionShape{2, 2, 5, 8}, AttentionShape{1, 3, 70, 20}}) {
    INFO("B " << s.B << " H " << s.H << " L " << s.L << " D " << s.D);
    Tensor q = random_bf16(s.shape(), 41, -1.5, 1.5), k = random_bf16(s.shape(), 42, -1.5, 1.5),
           v = random_bf16(s.shape(), 43), dout = random_bf16(s.shape(), 44);
    const AttentionResult got = run_attention(q, k, v, dout);
    CHECK(got.o.dtype() == DType::BFloat16);
    CHECK(got.dq.dtype() == DType::BFloat16);

    Tensor q32 = q.to(DType::Float32), k32 = k.to(DType::Float32), v32 = v.to(DType::Float32),
           dout32 = dout.to(DType::Float32);
    CHECK(bits_of_tensor(got.o) == bits_of_tensor(scaled_dot_product_attention(q32, k32, v32).to(DType::BFloat16)));
    const float scale = 1.f / std::sqrt(float(s.D));
    Tensor o32 = Tensor::empty(s.shape(), DType::Float32), lse32 = Tensor::empty({s.B, s.H, s.L}, DType::Float32);
    kernels::attention_forward_cpu_gemm<float>(q32.data<float>(), k32.data<float>(), v32.data<float>(),
                                               o32.data<float>(), lse32.data<float>(), s.B, s.H, s.L, s.D, scale);
    Tensor o_saved = got.o.to(DType::Float32);
    std::vector<Tensor> want;
    for (int i = 0; i < 3; ++i) want.push_back(Tensor::empty(s.shape(), DType::Float32));
    kernels::attention_backward_cpu_gemm<float>(q32.data<float>(), k32.data<float>(), v32.data<float>(),
                                                o_saved.data<float>(), dout32.data<float>(), lse32.data<float>(),
                                                want[0].data<float>(), want[1].data<float>(), want[2].data<float>(),
                                                s.B, s.H, s.L, s.D, scale);
    CHECK(bits_of_tensor(got.dq) == bits_of_tensor(want[0].to(DType::BFloat16)));
    CHECK(bits_of_tensor(got.dk) == bits_of_tensor(want[1].to(DType::BFloat16)));
    CHECK(bits_of_tensor(got.dv) == bits_of_tensor(want[2].to(DType::BFloat16)));
  }
  // q, k and v must share their dtype.
  Tensor q = random_bf16({1, 1, 4, 8}, 45);
  CHECK_THROWS_AS(scaled_dot_product_attention(q, q.to(DType::Float32), q), DTypeError);
}

#ifdef FM_WITH_CUDA
TEST_CASE("cuda: bfloat16 flash attention is the float kernels with bfloat16 products, rounded once",
          "[cuda][gpu][bfloat16][attention]") {
  FM_REQUIRE_GPU();
  // Both load bfloat16 values into the tensor cores' tiles (the float kernels round the widened
  // values, which changes nothing), run the same FP32 softmax and sums, and differ only in the
  // stores. So O, dQ, dK, dV are the float kernels' results rounded once, and lse is the same float.
  // The float backward is given the bfloat16 forward's O (widened) and lse: the inputs the bfloat16
  // backward reads.
  const std::vector<AttentionShape> shapes = {
      {2, 2, 49, 16},  // a U-Net 7x7 stage: one key tile, dQ written by the tile itself
      {1, 2, 130, 32},  // 3 key tiles: dQ's shares summed in float, then rounded
      {1, 1, 40, 72},   // head dim padded to 128 (32 keys per tile): 2 key tiles
      {1, 1, 520, 8},   // 9 key tiles: the backward's FP32 fallback on widened copies
      // Each remaining (head dim, one key tile or several) kernel of the backward (64 keys per tile up
      // to D = 64, 32 above), and the forward for D padded to 64.
      {1, 2, 100, 16},  // D <= 16, 2 key tiles
      {1, 1, 30, 24},   // padded to 32, one key tile
      {1, 1, 50, 40},   // padded to 64, one key tile
      {1, 1, 100, 48},  // padded to 64, 2 key tiles
      {1, 1, 20, 100},  // padded to 128, one key tile
  };
  for (const AttentionShape& s : shapes) {
    INFO("B " << s.B << " H " << s.H << " L " << s.L << " D " << s.D);
    const float scale = 1.f / std::sqrt(float(s.D));
    Tensor q = random_bf16(s.shape(), 51, -1.5, 1.5).to(Device::CUDA),
           k = random_bf16(s.shape(), 52, -1.5, 1.5).to(Device::CUDA), v = random_bf16(s.shape(), 53).to(Device::CUDA),
           dout = random_bf16(s.shape(), 54).to(Device::CUDA);
    Tensor o = Tensor::empty(s.shape(), DType::BFloat16, Device::CUDA);
    Tensor lse = Tensor::empty({s.B, s.H, s.L}, DType::Float32, Device::CUDA);
    kernels::attention_forward_cuda_flash(q.data<bf16>(), k.data<bf16>(), v.data<bf16>(), o.data<bf16>(),
                                          lse.data<float>(), s.B, s.H, s.L, s.D, scale);
    Tensor q32 = q.to(DType::Float32), k32 = k.to(DType::Float32), v32 = v.to(DType::Float32),
           dout32 = dout.to(DType::Float32);
    Tensor o32 = Tensor::empty(s.shape(), DType::Float32, Device::CUDA);
    Tensor lse32 = Tensor::full({s.B, s.H, s.L}, std::nan(""), DType::Float32, Device::CUDA);  // NaN: unwritten fails
    kernels::attention_forward_cuda_flash(q32.data<float>(), k32.data<float>(), v32.data<float>(), o32.data<float>(),
                                          lse32.data<float>(), s.B, s.H, s.L, s.D, scale, kernels::GemmMath::Bf16);
    REQUIRE(bits_of_tensor(o) == bits_of_tensor(o32.to(DType::BFloat16)));
    REQUIRE(lse.to_vector() == lse32.to_vector());

    std::vector<Tensor> grads, grads32;
    for (int i = 0; i < 3; ++i) {
      grads.push_back(Tensor::empty(s.shape(), DType::BFloat16, Device::CUDA));
      grads32.push_back(Tensor::empty(s.shape(), DType::Float32, Device::CUDA));
    }
    kernels::attention_backward_cuda_flash(q.data<bf16>(), k.data<bf16>(), v.data<bf16>(), o.data<bf16>(),
                                           dout.data<bf16>(), lse.data<float>(), grads[0].data<bf16>(),
                                           grads[1].data<bf16>(), grads[2].data<bf16>(), s.B, s.H, s.L, s.D, scale);
    Tensor o_widened = o.to(DType::Float32);
    kernels::attention_backward_cuda_flash(q32.data<float>(), k32.data<float>(), v32.data<float>(),
                                           o_widened.data<float>(), dout32.data<float>(), lse.data<float>(),
                                           grads32[0].data<float>(), grads32[1].data<float>(),
                                           grads32[2].data<float>(), s.B, s.H, s.L, s.D, scale,
                                           kernels::GemmMath::Bf16);
    for (int i = 0; i < 3; ++i) {
      INFO((i == 0 ? "dQ" : i == 1 ? "dK" : "dV"));
      REQUIRE(bits_of_tensor(grads[std::size_t(i)]) == bits_of_tensor(grads32[std::size_t(i)].to(DType::BFloat16)));
    }
  }
}

TEST_CASE("cuda: attention on bfloat16 activations through the op, and the library kernels refuse it",
          "[cuda][gpu][bfloat16][attention]") {
  FM_REQUIRE_GPU();
  // The op's CUDA path against its CPU path: the tensor cores round nothing that is not bfloat16
  // already except P and dS, so this is the softmax's and the sums' float noise plus those roundings:
  // within 2^-6 of each element and 2^-9 of each output's scale (a smoke bound; the kernel-level case
  // above is the exact one).
  const Shape shape{2, 2, 49, 16};
  Tensor q = random_bf16(shape, 61, -1.5, 1.5), k = random_bf16(shape, 62, -1.5, 1.5), v = random_bf16(shape, 63),
         dout = random_bf16(shape, 64);
  const AttentionResult gpu =
      run_attention(q.to(Device::CUDA), k.to(Device::CUDA), v.to(Device::CUDA), dout.to(Device::CUDA));
  const AttentionResult cpu = run_attention(q, k, v, dout);
  for (auto [name, got_t, want_t] : {std::tuple{"O", gpu.o, cpu.o}, std::tuple{"dQ", gpu.dq, cpu.dq},
                                      std::tuple{"dK", gpu.dk, cpu.dk}, std::tuple{"dV", gpu.dv, cpu.dv}}) {
    INFO(name);
    REQUIRE(got_t.dtype() == DType::BFloat16);
    require_close_to_scale(got_t, want_t, std::ldexp(1.0, -9), std::ldexp(1.0, -6));
  }
  const KernelImpl before = kernel_impl();
  set_kernel_impl(KernelImpl::Library);
  Tensor qd = q.to(Device::CUDA);
  CHECK_THROWS_WITH(scaled_dot_product_attention(qd, qd, qd),
                    Catch::Contains("scaled_dot_product_attention: the library kernels (cuBLAS) take float32 tensors"));
  set_kernel_impl(before);
}
#endif  // FM_WITH_CUDA
