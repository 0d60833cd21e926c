// tests/bfloat16_test_util.h — what the bfloat16 tests share: random bfloat16 tensors and the bits of
// a bfloat16 tensor's elements (the tests compare bfloat16 results bit for bit).
#pragma once
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "core/random.h"
#include "core/tensor.h"
#include "kernels/bfloat16.h"

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

}  // namespace fm::test
