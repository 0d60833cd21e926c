// tests/bfloat16_test_util.h — what the bfloat16 tests share: random bfloat16 tensors, the bits of a
// bfloat16 tensor's elements (some tests compare bfloat16 results bit for bit), and the comparison the
// others use: within a fraction of the expected output's largest magnitude plus a relative tolerance.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "core/random.h"
#include "core/tensor.h"
#include "kernels/bfloat16.h"
#include "test_util.h"

namespace fm::test {

// Uniform in [low, high), rounded to bfloat16, on the CPU.
inline Tensor random_bf16(const Shape& shape, std::uint64_t seed, double low = -3.0, double high = 3.0) {
  Generator gen(seed);
  return rand_uniform(shape, gen, low, high, DType::BFloat16);
}

// The bfloat16 bits of every element (a bf16 tensor on either device).
inline std::vector<std::uint16_t> bits_of_tensor(const Tensor& t) {
  REQUIRE(t.dtype() == DType::BFloat16);
  Tensor host = t.detach().to(Device::CPU).contiguous();
  std::vector<std::uint16_t> bits(std::size_t(host.numel()));
  for (std::size_t i = 0; i < bits.size(); ++i) bits[i] = host.data<bf16>()[i].bits;
  return bits;
}

// REQUIRE got (either device, any dtype) close to want element by element, within
//   atol_of_scale * max |want|  +  rtol * |want[i]|.
// Why the scale: a bfloat16 result differs from the reference by its one rounding (relative, rtol) and
// by float sums added in another order, whose noise is relative to the sums' size, not to one element's
// (a near-zero element of a large sum can be off by far more than its own 2^-8).
inline void require_close_to_scale(const Tensor& got, const Tensor& want, double atol_of_scale, double rtol) {
  const std::vector<double> got_values = got.detach().to(Device::CPU).to(DType::Float64).to_vector(),
                            want_values = want.detach().to(Device::CPU).to(DType::Float64).to_vector();
  REQUIRE(got_values.size() == want_values.size());
  double scale = 0;
  for (double v : want_values) scale = std::max(scale, std::abs(v));
  FM_REQUIRE_CLOSE(got_values.data(), want_values.data(), got_values.size(), scale * atol_of_scale, rtol);
}

}  // namespace fm::test
