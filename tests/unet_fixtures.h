// tests/unet_fixtures.h — a class-conditional tiny U-Net moved to a device, and its forward pass as a
// ConditionalModelFn (labels read from a RowIndex): the set-up the recorded guided-sampling cases
// share (tests/test_flow_captured_solve.cpp, tests/test_tools_sampling_graph.cpp).
#pragma once
#include <cstdint>
#include <memory>

#include "core/random.h"
#include "flow/model_fn.h"
#include "nn/unet.h"

namespace fm::test {

struct ConditionalTinyUNet {
  nn::UNetConfig config;
  std::unique_ptr<nn::UNet> unet;  // in training mode, as made
  // unet.forward(x, t, y); the fixture must outlive the function.
  flow::ConditionalModelFn forward() const {
    nn::UNet* model = unet.get();
    return [model](const Tensor& x, const Tensor& t, const RowIndex& y) { return model->forward(x, t, y); };
  }
};

// UNetConfig::tiny() with num_classes classes (and the null class), weights drawn from `seed`.
inline ConditionalTinyUNet conditional_tiny_unet(int num_classes, std::uint64_t seed, Device device) {
  ConditionalTinyUNet made;
  made.config = nn::UNetConfig::tiny();
  made.config.num_classes = num_classes;
  Generator init(seed);
  made.unet = std::make_unique<nn::UNet>(made.config, init);
  made.unet->to(device);
  return made;
}

}  // namespace fm::test
