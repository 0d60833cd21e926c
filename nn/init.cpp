// nn/init.cpp — PyTorch default initialisation bounds (see init.h for the derivation).
#include "nn/init.h"

#include <cmath>

#include "core/error.h"

namespace fm::nn::init {
namespace {

std::int64_t receptive_field(const Shape& shape) {
  std::int64_t field = 1;
  for (std::size_t d = 2; d < shape.size(); ++d) field *= shape[d];
  return field;
}

void check_weight_shape(const char* what, const Shape& shape) {
  FM_CHECK(shape.size() >= 2, ShapeError, what, ": weight shape ", shape_str(shape),
           " has fewer than 2 dims, so fan_in/fan_out are undefined");
}

}  // namespace

std::int64_t fan_in(const Shape& weight_shape) {
  check_weight_shape("fan_in", weight_shape);
  return weight_shape[1] * receptive_field(weight_shape);
}

std::int64_t fan_out(const Shape& weight_shape) {
  check_weight_shape("fan_out", weight_shape);
  return weight_shape[0] * receptive_field(weight_shape);
}

Tensor uniform(const Shape& shape, Generator& gen, double low, double high, DType dtype) {
  return rand_uniform(shape, gen, low, high, dtype, Device::CPU);
}

Tensor default_weight(const Shape& weight_shape, Generator& gen, DType dtype) {
  std::int64_t fan = fan_in(weight_shape);
  FM_CHECK(fan > 0, ValueError, "default_weight: fan_in of ", shape_str(weight_shape), " is 0");
  double bound = 1.0 / std::sqrt(double(fan));
  return uniform(weight_shape, gen, -bound, bound, dtype);
}

Tensor default_bias(std::int64_t size, std::int64_t weight_fan_in, Generator& gen, DType dtype) {
  FM_CHECK(weight_fan_in > 0, ValueError, "default_bias: fan_in must be positive, got ", weight_fan_in);
  double bound = 1.0 / std::sqrt(double(weight_fan_in));
  return uniform({size}, gen, -bound, bound, dtype);
}

Tensor xavier_uniform(const Shape& weight_shape, Generator& gen, DType dtype) {
  double bound = std::sqrt(6.0 / double(fan_in(weight_shape) + fan_out(weight_shape)));
  return uniform(weight_shape, gen, -bound, bound, dtype);
}

}  // namespace fm::nn::init
