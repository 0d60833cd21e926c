// tests/test_core_op_overhead.cpp — the shortcuts that keep a tiny op cheap give the same results as
// the long way: the broadcast geometry written straight into its arrays, ops that skip the autograd
// node when no input needs a gradient, and the backward pass's per-node scratch (visit marks reused
// by later passes over the same graph). Timing is fmbench cpu-ops' job, not a test's.
#include <catch2/catch.hpp>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/tensor_internal.h"

using namespace fm;

namespace {

Tensor filled(const Shape& shape, double phase = 0.0) {
  std::vector<double> values(std::size_t(shape_numel(shape)));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.25 * double(i) - 1.5 + phase;
  return Tensor::from_vector(values, shape);
}

void require_same_geometry(const kernels::ElementwiseGeometry& got, const kernels::ElementwiseGeometry& expected) {
  REQUIRE(got.ndim == expected.ndim);
  for (int d = 0; d < kernels::kMaxDims; ++d) {
    CHECK(got.sizes[d] == expected.sizes[d]);
    CHECK(got.out_strides[d] == expected.out_strides[d]);
    CHECK(got.a_strides[d] == expected.a_strides[d]);
    CHECK(got.b_strides[d] == expected.b_strides[d]);
  }
}

}  // namespace

TEST_CASE("broadcast_geometry equals make_geometry over broadcast_strides", "[tensor][dispatch]") {
  // (a, b) pairs: equal shapes, bias broadcast, size-1 dims on either side, scalars, an empty tensor,
  // and a transposed (non-contiguous) operand.
  const std::vector<std::pair<Tensor, Tensor>> pairs = {
      {filled({8}), filled({8})},
      {filled({4, 8}), filled({8})},
      {filled({4, 1}), filled({1, 8})},
      {filled({2, 1, 3}), filled({5, 1})},
      {filled({}), filled({3})},
      {filled({}), filled({})},
      {filled({1, 1}), filled({1})},
      {filled({0, 3}), filled({3})},
      {filled({3, 4}).transpose(0, 1), filled({3})},
  };
  for (const auto& [a, b] : pairs) {
    INFO(shape_str(a.shape()) << " with " << shape_str(b.shape()));
    const Shape out_shape = internal::broadcast_shapes("test", a.shape(), b.shape());
    Tensor y = Tensor::empty(out_shape);
    require_same_geometry(internal::broadcast_geometry(y, a, b),
                          internal::make_geometry(out_shape, y.strides(), internal::broadcast_strides(a, out_shape),
                                                  internal::broadcast_strides(b, out_shape)));
  }
}

TEST_CASE("ops on tensors that need no gradient record nothing, and record the same values when they do",
          "[autograd][dispatch]") {
  Tensor x = filled({4, 8}), b = filled({8}, 0.5);
  Tensor x_grad = filled({4, 8}).set_requires_grad(), b_grad = filled({8}, 0.5).set_requires_grad();
  const std::vector<std::pair<const char*, Tensor (*)(const Tensor&, const Tensor&)>> ops = {
      {"add", [](const Tensor& p, const Tensor& q) { return p + q; }},
      {"sub", [](const Tensor& p, const Tensor& q) { return p - q; }},
      {"mul", [](const Tensor& p, const Tensor& q) { return p * q; }},
      {"div", [](const Tensor& p, const Tensor& q) { return p / (q * q + 1.0); }},
      {"gelu", [](const Tensor& p, const Tensor&) { return gelu(p); }},
      {"relu", [](const Tensor& p, const Tensor&) { return relu(p); }},
      {"sum", [](const Tensor& p, const Tensor&) { return sum(p, {1}); }},
      {"reshape", [](const Tensor& p, const Tensor&) { return p.reshape({8, 4}); }},
      {"narrow", [](const Tensor& p, const Tensor&) { return p.narrow(1, 2, 3); }},
      {"permute", [](const Tensor& p, const Tensor&) { return p.permute({1, 0}); }},
      {"expand", [](const Tensor& p, const Tensor&) { return p.unsqueeze(0).expand({2, 4, 8}); }},
  };
  for (const auto& [name, op] : ops) {
    INFO(name);
    Tensor plain = op(x, b);
    CHECK_FALSE(plain.requires_grad());
    CHECK(plain.grad_fn() == nullptr);
    Tensor recorded = op(x_grad, b_grad);
    CHECK(recorded.requires_grad());
    CHECK(recorded.grad_fn() != nullptr);
    CHECK(recorded.to_vector() == plain.to_vector());
    {
      NoGradGuard no_grad;  // grad mode off: inputs that require grad record nothing either
      CHECK(op(x_grad, b_grad).grad_fn() == nullptr);
    }
  }
}

TEST_CASE("backward passes over one graph: each pass visits every node again", "[autograd]") {
  // A diamond (x feeds two branches that meet again) whose backward runs three times: the visit
  // marks of the first pass must not make the later passes skip nodes, and each pass gives the same
  // gradient (d/dx Σ (x·x + 2x) = 2x + 2).
  Tensor x = filled({5}).set_requires_grad();
  Tensor left = x * x, right = x * 2.0;
  Tensor loss = sum(left + right);
  const std::vector<double> xs = x.to_vector();
  for (int pass = 0; pass < 3; ++pass) {
    INFO("pass " << pass);
    x.zero_grad();
    loss.backward();
    const std::vector<double> grad = x.grad().to_vector();
    REQUIRE(grad.size() == xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) CHECK(grad[i] == Approx(2 * xs[i] + 2));
  }
  // A second graph sharing the first one's nodes (left) is ordered on its own.
  Tensor other = sum(left * 3.0);
  x.zero_grad();
  other.backward();
  const std::vector<double> grad = x.grad().to_vector();
  for (std::size_t i = 0; i < xs.size(); ++i) CHECK(grad[i] == Approx(6 * xs[i]));
}
