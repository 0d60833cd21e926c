// tests/cuda_parity.h — the CUDA-vs-CPU parity check used by every GPU op test.
#pragma once
#include <catch2/catch.hpp>

#include <functional>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "test_util.h"

namespace fm::test {

using Inputs = std::vector<Tensor>;
using OpFn = std::function<Tensor(const Inputs&)>;

// Runs f on CPU float32 and on CUDA with the same inputs, then backward of Σ r∘y on both, and
// compares outputs and every input gradient with |a − b| <= atol + rtol·|b|.
inline void check_cuda_matches_cpu(const OpFn& f, const std::vector<Shape>& shapes, std::uint64_t seed,
                            double atol, double rtol, double low = -1.0, double high = 1.0) {
  Generator gen(seed);
  Inputs cpu_inputs, gpu_inputs;
  for (const Shape& s : shapes) {
    Tensor x = rand_uniform(s, gen, low, high);
    cpu_inputs.push_back(x.clone().set_requires_grad());
    gpu_inputs.push_back(x.to(Device::CUDA).set_requires_grad());
  }
  Tensor y_cpu = f(cpu_inputs), y_gpu = f(gpu_inputs);
  REQUIRE(y_gpu.device() == Device::CUDA);
  REQUIRE(y_gpu.shape() == y_cpu.shape());
  std::vector<float> a = y_gpu.to_float_vector(), b = y_cpu.to_float_vector();
  FM_REQUIRE_CLOSE(a.data(), b.data(), a.size(), atol, rtol);

  Tensor weights = randn(y_cpu.shape(), gen);
  sum(mul(y_cpu, weights)).backward();
  sum(mul(y_gpu, weights.to(Device::CUDA))).backward();
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    INFO("gradient of input " << i);
    REQUIRE(gpu_inputs[i].grad().defined());
    std::vector<float> ga = gpu_inputs[i].grad().to_float_vector();
    std::vector<float> gb = cpu_inputs[i].grad().to_float_vector();
    FM_REQUIRE_CLOSE(ga.data(), gb.data(), ga.size(), atol, rtol);
  }
}



}  // namespace fm::test
