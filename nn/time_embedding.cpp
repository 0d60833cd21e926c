// nn/time_embedding.cpp — sinusoidal time embedding (see time_embedding.h).
#include "nn/time_embedding.h"

#include <cmath>
#include <vector>

#include "core/ops.h"
#include "nn/activation.h"
#include "nn/linear.h"

namespace fm::nn {

Tensor sinusoidal_frequencies(int dim, DType dtype, Device device) {
  FM_CHECK(dim > 0 && dim % 2 == 0, ValueError, "sinusoidal_time_embedding: dim must be a positive even number, got ", dim);
  const int half = dim / 2;
  std::vector<double> factors(static_cast<std::size_t>(half));
  for (int i = 0; i < half; ++i) factors[std::size_t(i)] = std::pow(10000.0, double(i) / double(half));
  return Tensor::from_vector(factors, {1, half}, dtype, device);
}

Tensor sinusoidal_time_embedding(const Tensor& t, const Tensor& frequencies, double time_scale) {
  FM_CHECK(t.defined() && t.dim() == 1, ShapeError, "sinusoidal_time_embedding: t has shape ",
           t.defined() ? shape_str(t.shape()) : "undefined", ", expected [N]");
  Tensor scaled = time_scale == 1.0 ? t : t * time_scale;
  Tensor angles = div(scaled.reshape({t.size(0), 1}), frequencies);  // [N, half]
  return concat({sin(angles), cos(angles)}, 1);
}

Tensor sinusoidal_time_embedding(const Tensor& t, int dim, double time_scale) {
  const Tensor frequencies = sinusoidal_frequencies(dim, t.defined() ? t.dtype() : DType::Float32,
                                                    t.defined() ? t.device() : Device::CPU);
  return sinusoidal_time_embedding(t, frequencies, time_scale);
}

SinusoidalTimeEmbedding::SinusoidalTimeEmbedding(int dim, double time_scale)
    : Layer("SinusoidalTimeEmbedding"), dim_(dim), time_scale_(time_scale) {
  FM_CHECK(dim > 0 && dim % 2 == 0, ValueError, "SinusoidalTimeEmbedding: dim must be a positive even number, got ", dim);
  FM_CHECK(std::isfinite(time_scale) && time_scale > 0, ValueError,
           "SinusoidalTimeEmbedding: time_scale must be positive, got ", time_scale);
}

Tensor SinusoidalTimeEmbedding::forward(const Tensor& t) {
  // The frequencies are a constant: made once per dtype/device, not copied to the device every step.
  Tensor& frequencies = frequencies_[{t.dtype(), t.device()}];
  if (!frequencies.defined()) frequencies = sinusoidal_frequencies(dim_, t.dtype(), t.device());
  return sinusoidal_time_embedding(t, frequencies, time_scale_);
}

std::shared_ptr<Sequential> make_time_projection(int in_dim, int hidden_dim, int out_dim, Generator& gen) {
  auto projection = std::make_shared<Sequential>();
  projection->push_back(std::make_shared<Linear>(in_dim, hidden_dim, gen));
  projection->push_back(std::make_shared<SiLU>());
  projection->push_back(std::make_shared<Linear>(hidden_dim, out_dim, gen));
  return projection;
}

}  // namespace fm::nn
