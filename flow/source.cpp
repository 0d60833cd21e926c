// flow/source.cpp — Gaussian and 2-D data sources (see source.h).
#include "flow/source.h"

#include "core/error.h"

namespace fm::flow {

Tensor GaussianSource::sample(const Shape& shape, const StepNoise& noise, DType dtype, Device device) const {
  return philox_normal(shape, noise.key(NoiseStream::X0), noise.step, noise.first_sample, dtype, device,
                       noise.step_on_device);
}

Tensor GaussianSource::sample(const Shape& shape, Generator& gen, DType dtype, Device device) const {
  return randn(shape, gen, dtype, device);
}

namespace {
void check_points(const std::string& name, const Shape& shape) {
  FM_CHECK(shape.size() == 2 && shape[1] == 2, ConfigError, "data.source: \"", name,
           "\" gives 2-D points, but the data's samples have shape ", shape_str(Shape(shape.begin() + 1, shape.end())),
           " (a 2-D source needs 2-D data)");
}
}  // namespace

Tensor ToySource::sample(const Shape& shape, const StepNoise& noise, DType dtype, Device device) const {
  FM_CHECK(!noise.step_on_device, DeviceError, "data.source: a 2-D source draws its points on the host, so a "
           "recorded step cannot replay them (expected the Gaussian source)");
  check_points(name(), shape);
  return distribution_->sample(shape[0], noise, dtype, device, NoiseStream::SourcePoint);
}

Tensor ToySource::sample(const Shape& shape, Generator& gen, DType dtype, Device device) const {
  check_points(name(), shape);
  return distribution_->sample(shape[0], gen, dtype, device);
}

std::vector<std::string> source_names() {
  std::vector<std::string> names{"gaussian"};
  for (const std::string& name : toy_distribution_names()) names.push_back(name);
  return names;
}

std::shared_ptr<const SourceDistribution> make_source(const std::string& name) {
  if (name == "gaussian") return std::make_shared<GaussianSource>();
  for (const std::string& toy : toy_distribution_names())
    if (name == toy) return std::make_shared<ToySource>(make_toy_distribution(name));
  std::string known;
  for (const std::string& n : source_names()) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError(cat("data.source: unknown source \"", name, "\", expected one of ", known));
}

}  // namespace fm::flow
