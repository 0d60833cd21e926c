// flow/straightness.cpp — the straightness S of a flow along Euler trajectories (see straightness.h).
#include "flow/straightness.h"

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace fm::flow {

Straightness measure_straightness(const VelocityField& velocity, const Tensor& x_start, int steps) {
  FM_CHECK(steps >= 1, ValueError, "measure_straightness: steps must be >= 1, got ", steps);
  FM_CHECK(x_start.defined() && x_start.dim() >= 1 && x_start.size(0) > 0, ShapeError,
           "measure_straightness: x_start needs a non-empty batch dim");
  NoGradGuard no_grad;
  const double h = 1.0 / steps;
  std::vector<int> sample_dims;
  for (int d = 1; d < x_start.dim(); ++d) sample_dims.push_back(d);
  auto squared_norms = [&](const Tensor& x) {  // ‖x_b‖² per sample b
    return sample_dims.empty() ? square(x) : sum(square(x), sample_dims);
  };
  Tensor x = x_start;
  Tensor speed_integral;  // h·Σ_k ‖v_k‖² per sample
  for (int k = 0; k < steps; ++k) {
    Tensor v = velocity(x, double(k) / steps);
    FM_CHECK(v.defined() && v.shape() == x.shape(), ShapeError, "measure_straightness: the velocity field returned ",
             v.defined() ? shape_str(v.shape()) : "nothing", " for x of shape ", shape_str(x.shape()));
    Tensor term = squared_norms(v) * h;
    speed_integral = speed_integral.defined() ? speed_integral + term : term;
    x = x + v * h;
  }
  Straightness result;
  const double displacement = mean(squared_norms(x - x_start)).item();
  result.straightness = std::max(0.0, mean(speed_integral).item() - displacement);
  result.mean_displacement = displacement;
  result.relative_straightness = displacement > 0 ? result.straightness / displacement : 0.0;
  result.end = x;
  return result;
}

}  // namespace fm::flow
