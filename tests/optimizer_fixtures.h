// tests/optimizer_fixtures.h — what the fused-optimiser cases on CUDA share: random gradients on every
// parameter, and a small velocity MLP on the device with its parameters in the flat buffers the fused
// pass runs over (tests/test_nn_grad_norm_cuda.cpp, tests/test_nn_step_scalars_cuda.cpp).
#pragma once
#include <cstdint>

#include "core/random.h"
#include "nn/mlp.h"

namespace fm::test {

// A standard-normal gradient, drawn from `seed`, on every parameter of `module`, on its device.
inline void fill_gradients(nn::Module& module, std::uint64_t seed) {
  Generator gen(seed);
  for (const Tensor& parameter : module.parameters())
    parameter.set_grad(randn(parameter.shape(), gen).to(parameter.device()));
}

// The 2 → 16 → 2 velocity MLP, weights from `seed`, moved to CUDA and flattened (as the trainer does).
struct FlatCudaMlp {
  Generator init;
  nn::VelocityMLP model;
  explicit FlatCudaMlp(std::uint64_t seed) : init(seed), model(nn::MLPConfig{2, 16, 2}, init) {
    model.to(Device::CUDA);
    model.flatten_parameters();
  }
};

}  // namespace fm::test
