// flow/source.h — the source distribution p0 a flow starts from: x0 ~ p0 at t = 0.
//
// The standard normal is the usual choice (and the default), but flow matching needs no formula for
// p0, only samples: any 2-D data set can be the source (8 gaussians → moons, as in torchcfm's
// benchmarks), and the model learns to carry one distribution onto the other. A source is asked for
// draws in two ways: keyed by the training step's Philox place (sample i of step s is a pure function
// of (seed, s, i), so resumes and data-parallel splits see the same x0), and from a Generator in order
// (sampling after training).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "flow/datasets2d.h"
#include "flow/step_noise.h"

namespace fm::flow {

class SourceDistribution {
 public:
  virtual ~SourceDistribution() = default;
  virtual std::string name() const = 0;
  // [shape] draws for the training step `noise` (shape[0] samples from noise.first_sample on).
  virtual Tensor sample(const Shape& shape, const StepNoise& noise, DType dtype, Device device) const = 0;
  // [shape] draws in order from gen (sampling).
  virtual Tensor sample(const Shape& shape, Generator& gen, DType dtype, Device device) const = 0;
};

// x0 ~ N(0, I): the training draws are the X0 stream's normals, made directly on the device.
class GaussianSource final : public SourceDistribution {
 public:
  std::string name() const override { return "gaussian"; }
  Tensor sample(const Shape& shape, const StepNoise& noise, DType dtype, Device device) const override;
  Tensor sample(const Shape& shape, Generator& gen, DType dtype, Device device) const override;
};

// x0 ~ a 2-D toy distribution (flow/datasets2d.h), its training draws from the SourcePoint stream
// (independent of the data's own DataPoint draws). Shapes must be [N, 2].
class ToySource final : public SourceDistribution {
 public:
  explicit ToySource(std::shared_ptr<const ToyDistribution2D> distribution) : distribution_(std::move(distribution)) {}
  std::string name() const override { return distribution_->name(); }
  Tensor sample(const Shape& shape, const StepNoise& noise, DType dtype, Device device) const override;
  Tensor sample(const Shape& shape, Generator& gen, DType dtype, Device device) const override;

 private:
  std::shared_ptr<const ToyDistribution2D> distribution_;
};

// "gaussian", or any 2-D data set name of flow/datasets2d.h; ConfigError otherwise.
std::shared_ptr<const SourceDistribution> make_source(const std::string& name);
std::vector<std::string> source_names();

}  // namespace fm::flow
