// nn/velocity_model.h — the interface flow/ trains and samples: a Module that maps (x_t, t) to a
// velocity of x_t's shape (the vector field v_θ(x, t) of flow matching, Lipman et al. 2022).
//
// Layer: nn/ (uses core/ only). Both models implement it: VelocityMLP (2-D toys, nn/mlp.h) and UNet
// (images, nn/unet.h). Convention: t = 0 is noise, t = 1 is data.
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/ops.h"
#include "nn/module.h"

namespace fm::nn {

class VelocityModel : public Module {
 public:
  using Module::Module;
  // x: [N, ...]; t: [N], [N, 1], [1] or [] (one time shared by the whole batch, as a sampler passes).
  virtual Tensor forward(const Tensor& x, const Tensor& t) = 0;
  Tensor operator()(const Tensor& x, const Tensor& t) { return forward(x, t); }

  // Class-conditional models (num_classes() > 0) also take one label per sample: 0..num_classes()-1,
  // or null_class() = num_classes(), the "no label" class that classifier-free guidance trains with
  // label dropout and samples as the unconditional branch. For a conditional model the two-argument
  // forward means the null class for every sample. An unconditional model accepts only empty labels.
  virtual Tensor forward(const Tensor& x, const Tensor& t, const std::vector<std::int32_t>& labels);
  // The same with the labels already on the model's device, one per sample (a recorded training step
  // or guided solve reads each batch's labels from one buffer; see core/ops.h's RowIndex). An
  // unconditional UNet or VelocityMLP refuses them (ConfigError). This default, for a model that takes
  // only host labels, reads them back and calls the overload above; while a graph is recorded that
  // read throws DeviceError, so a recorded step or solve falls back to eager ones.
  virtual Tensor forward(const Tensor& x, const Tensor& t, const RowIndex& labels);
  virtual int num_classes() const { return 0; }
  int null_class() const { return num_classes(); }
  // The config that rebuilds this architecture (with "type"), for checkpoints and run folders.
  virtual nlohmann::json config_json() const = 0;
};

// t in any of the accepted shapes → [batch] (a broadcast view when t has one element). Throws
// fm::ShapeError naming `who` when t has another shape, or a dtype/device other than x's.
Tensor expand_time(const Tensor& t, const Tensor& x, const char* who);

}  // namespace fm::nn
