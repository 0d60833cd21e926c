// flow/datasets2d.cpp — sampling the 2D toy distributions (see datasets2d.h for their definitions).
#include "flow/datasets2d.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace fm::flow {

Tensor ToyDistribution2D::sample(std::int64_t n, Generator& gen, DType dtype, Device device) const {
  FM_CHECK(n >= 0, ValueError, name(), ": sample count ", n, " is negative");
  return Tensor::from_vector(sample_host(n, gen), {n, 2}, dtype, device);
}

std::vector<double> ToyDistribution2D::sample_host(std::int64_t n, Generator& gen) const {
  std::vector<double> points(std::size_t(2 * std::max<std::int64_t>(n, 0)));
  GeneratorDraws draws(gen);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::array<double, 2> p = point(i, draws);
    points[std::size_t(2 * i)] = p[0];
    points[std::size_t(2 * i + 1)] = p[1];
  }
  return points;
}

Tensor ToyDistribution2D::sample(std::int64_t n, const StepNoise& noise, DType dtype, Device device,
                                 NoiseStream stream) const {
  FM_CHECK(n >= 0, ValueError, name(), ": sample count ", n, " is negative");
  std::vector<double> points(std::size_t(2 * n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t index = noise.first_sample + i;  // the global index: alternation and draws follow it
    PhiloxSampleDraws draws(noise.key(stream), noise.step, index);
    const std::array<double, 2> p = point(index, draws);
    points[std::size_t(2 * i)] = p[0];
    points[std::size_t(2 * i + 1)] = p[1];
  }
  return Tensor::from_vector(points, {n, 2}, dtype, device);
}

MoonsDistribution::MoonsDistribution(double noise, bool normalize) : noise_(noise), normalize_(normalize) {
  FM_CHECK(noise >= 0, ValueError, "moons: noise ", noise, " must be >= 0");
}

std::array<double, 2> MoonsDistribution::point(std::int64_t index, RandomDraws& draws) const {
  const double theta = std::numbers::pi * draws.uniform();
  double x, y;
  if (index % 2 == 0) {
    x = std::cos(theta), y = std::sin(theta);  // outer moon
  } else {
    x = 1.0 - std::cos(theta), y = 0.5 - std::sin(theta);  // inner moon
  }
  x += noise_ * draws.normal();
  y += noise_ * draws.normal();
  if (normalize_) x = (x - kCenterX) * kScale, y = (y - kCenterY) * kScale;
  return {x, y};
}

SpiralDistribution::SpiralDistribution(double scale) : scale_(scale) {
  FM_CHECK(scale > 0, ValueError, "spiral: scale ", scale, " must be > 0");
}

std::array<double, 2> SpiralDistribution::point(std::int64_t, RandomDraws& draws) const {
  const double radius_per_radian = scale_ / (2.0 * std::numbers::pi);
  const double theta = 6.0 * std::numbers::pi * draws.uniform();
  const double x = radius_per_radian * theta * std::cos(theta) + 0.1 * scale_ * draws.normal();
  const double y = radius_per_radian * theta * std::sin(theta) + 0.1 * scale_ * draws.normal();
  return {x, y};
}

EightGaussiansDistribution::EightGaussiansDistribution(double radius, double std)
    : radius_(radius), std_(std) {
  FM_CHECK(radius > 0 && std >= 0, ValueError, "8gaussians: need radius > 0 and std >= 0, got ",
           radius, ", ", std);
}

std::array<double, 2> EightGaussiansDistribution::point(std::int64_t, RandomDraws& draws) const {
  const double angle = 2.0 * std::numbers::pi * double(draws.below(8)) / 8.0;
  const double x = radius_ * std::cos(angle) + std_ * draws.normal();
  const double y = radius_ * std::sin(angle) + std_ * draws.normal();
  return {x, y};
}

CheckerboardDistribution::CheckerboardDistribution(double scale) : scale_(scale) {
  FM_CHECK(scale > 0, ValueError, "checkerboard: scale ", scale, " must be > 0");
}

std::array<double, 2> CheckerboardDistribution::point(std::int64_t, RandomDraws& draws) const {
  const double x = -2.0 + 4.0 * draws.uniform();
  const int column = int(std::floor(x));  // −2 … 1
  // The filled rows of this column: those with column + row even, i.e. {−2, 0} or {−1, 1}.
  const int row = -2 + 2 * int(draws.below(2)) + ((column % 2 + 2) % 2);
  const double y = double(row) + draws.uniform();
  return {scale_ * x, scale_ * y};
}

std::vector<std::string> toy_distribution_names() {
  return {"moons", "spiral", "8gaussians", "checkerboard"};
}

std::shared_ptr<const ToyDistribution2D> make_toy_distribution(const std::string& name) {
  if (name == "moons") return std::make_shared<MoonsDistribution>();
  if (name == "spiral") return std::make_shared<SpiralDistribution>();
  if (name == "8gaussians" || name == "eight_gaussians")
    return std::make_shared<EightGaussiansDistribution>();
  if (name == "checkerboard") return std::make_shared<CheckerboardDistribution>();
  throw ConfigError(cat("toy dataset: unknown name '", name,
                        "', expected one of moons, spiral, 8gaussians, checkerboard"));
}

Tensor to_data_coordinates(const Tensor& points, const ToyDistribution2D::Normalization& normalization) {
  FM_CHECK(points.dim() == 2 && points.size(1) == 2, ShapeError, "to_data_coordinates: points ",
           shape_str(points.shape()), ", expected [N, 2]");
  FM_CHECK(normalization.scale > 0, ValueError, "to_data_coordinates: scale ", normalization.scale, " must be positive");
  Tensor center = Tensor::from_vector({normalization.center_x, normalization.center_y}, {2}, points.dtype(), points.device());
  return points * (1.0 / normalization.scale) + center;
}

}  // namespace fm::flow
