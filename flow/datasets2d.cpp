// flow/datasets2d.cpp — sampling the 2D toy distributions (see datasets2d.h for their definitions).
#include "flow/datasets2d.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace fm::flow {

Tensor ToyDistribution2D::sample(std::int64_t n, Generator& gen, DType dtype, Device device) const {
  FM_CHECK(n >= 0, ValueError, name(), ": sample count ", n, " is negative");
  return Tensor::from_vector(sample_host(n, gen), {n, 2}, dtype, device);
}

MoonsDistribution::MoonsDistribution(double noise, bool normalize) : noise_(noise), normalize_(normalize) {
  FM_CHECK(noise >= 0, ValueError, "moons: noise ", noise, " must be >= 0");
}

std::vector<double> MoonsDistribution::sample_host(std::int64_t n, Generator& gen) const {
  std::vector<double> points(std::size_t(2 * n));
  for (std::int64_t i = 0; i < n; ++i) {
    const double theta = std::numbers::pi * gen.uniform();
    double x, y;
    if (i % 2 == 0) {
      x = std::cos(theta), y = std::sin(theta);  // outer moon
    } else {
      x = 1.0 - std::cos(theta), y = 0.5 - std::sin(theta);  // inner moon
    }
    x += noise_ * gen.normal();
    y += noise_ * gen.normal();
    if (normalize_) x = (x - kCenterX) * kScale, y = (y - kCenterY) * kScale;
    points[std::size_t(2 * i)] = x;
    points[std::size_t(2 * i + 1)] = y;
  }
  return points;
}

SpiralDistribution::SpiralDistribution(double scale) : scale_(scale) {
  FM_CHECK(scale > 0, ValueError, "spiral: scale ", scale, " must be > 0");
}

std::vector<double> SpiralDistribution::sample_host(std::int64_t n, Generator& gen) const {
  std::vector<double> points(std::size_t(2 * n));
  const double radius_per_radian = scale_ / (2.0 * std::numbers::pi);
  for (std::int64_t i = 0; i < n; ++i) {
    const double theta = 6.0 * std::numbers::pi * gen.uniform();
    points[std::size_t(2 * i)] = radius_per_radian * theta * std::cos(theta) + 0.1 * scale_ * gen.normal();
    points[std::size_t(2 * i + 1)] = radius_per_radian * theta * std::sin(theta) + 0.1 * scale_ * gen.normal();
  }
  return points;
}

EightGaussiansDistribution::EightGaussiansDistribution(double radius, double std)
    : radius_(radius), std_(std) {
  FM_CHECK(radius > 0 && std >= 0, ValueError, "8gaussians: need radius > 0 and std >= 0, got ",
           radius, ", ", std);
}

std::vector<double> EightGaussiansDistribution::sample_host(std::int64_t n, Generator& gen) const {
  std::vector<double> points(std::size_t(2 * n));
  for (std::int64_t i = 0; i < n; ++i) {
    const double angle = 2.0 * std::numbers::pi * double(gen.below(8)) / 8.0;
    points[std::size_t(2 * i)] = radius_ * std::cos(angle) + std_ * gen.normal();
    points[std::size_t(2 * i + 1)] = radius_ * std::sin(angle) + std_ * gen.normal();
  }
  return points;
}

CheckerboardDistribution::CheckerboardDistribution(double scale) : scale_(scale) {
  FM_CHECK(scale > 0, ValueError, "checkerboard: scale ", scale, " must be > 0");
}

std::vector<double> CheckerboardDistribution::sample_host(std::int64_t n, Generator& gen) const {
  std::vector<double> points(std::size_t(2 * n));
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = -2.0 + 4.0 * gen.uniform();
    const int column = int(std::floor(x));  // −2 … 1
    // The filled rows of this column: those with column + row even, i.e. {−2, 0} or {−1, 1}.
    const int row = -2 + 2 * int(gen.below(2)) + ((column % 2 + 2) % 2);
    const double y = double(row) + gen.uniform();
    points[std::size_t(2 * i)] = scale_ * x;
    points[std::size_t(2 * i + 1)] = scale_ * y;
  }
  return points;
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

}  // namespace fm::flow
