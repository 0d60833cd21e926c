// nn/time_embedding.h — the sinusoidal embedding of the flow time t and its MLP projection.
//
// Layer: nn/ (uses core/ only). Seed 002's get_time_embedding (the Transformer's positional encoding
// of Vaswani et al. 2017, applied to time): with half = dim/2 and i = 0 … half−1,
//   factor_i = 10000^(i / half),   emb(t) = [sin(s·t / factor_0 … factor_{half−1}), cos(same)]
// s is a time scale (1 in the seed, which feeds t ∈ [0, 1] unscaled; DDPM-style models feed step
// numbers up to 1000). The U-Net then projects the embedding with Linear → SiLU → Linear (t_proj).
#pragma once
#include <map>
#include <memory>
#include <utility>

#include "core/random.h"
#include "nn/module.h"

namespace fm::nn {

// t: [N] (any float dtype/device) → [N, dim]; dim must be even and positive.
Tensor sinusoidal_time_embedding(const Tensor& t, int dim, double time_scale = 1.0);
// The same with the frequency row [1, dim/2] (10000^(i/half), made by sinusoidal_frequencies on t's
// dtype and device) given, so a layer builds it once instead of copying it to the device per call.
Tensor sinusoidal_frequencies(int dim, DType dtype, Device device);
Tensor sinusoidal_time_embedding(const Tensor& t, const Tensor& frequencies, double time_scale = 1.0);

class SinusoidalTimeEmbedding : public Layer {
 public:
  explicit SinusoidalTimeEmbedding(int dim, double time_scale = 1.0);
  Tensor forward(const Tensor& t) override;  // [N] → [N, dim]
  int dim() const { return dim_; }
  double time_scale() const { return time_scale_; }

 private:
  int dim_;
  double time_scale_;
  // One table per dtype and device seen (a constant, not a parameter). Never replaced once made: a
  // recorded training step (flow/trainer.cpp) reads the table of its setting at every replay.
  std::map<std::pair<DType, Device>, Tensor> frequencies_;
};

// The seed's t_proj: Sequential(Linear(in, hidden), SiLU, Linear(hidden, out)); names "0.*", "2.*".
std::shared_ptr<Sequential> make_time_projection(int in_dim, int hidden_dim, int out_dim,
                                                Generator& gen);

}  // namespace fm::nn
