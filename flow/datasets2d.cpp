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

ToyDistribution2D::LabelledPoints ToyDistribution2D::sample_labelled(std::int64_t n, Generator& gen,
                                                                     DType dtype, Device device) const {
  FM_CHECK(n >= 0, ValueError, name(), ": sample count ", n, " is negative");
  std::vector<double> points(std::size_t(2 * n));
  std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
  GeneratorDraws draws(gen);
  for (std::int64_t i = 0; i < n; ++i) {
    const DrawnPoint p = labelled_point(i, draws);
    points[std::size_t(2 * i)] = p.xy[0];
    points[std::size_t(2 * i + 1)] = p.xy[1];
    labels[std::size_t(i)] = p.label;
  }
  return {Tensor::from_vector(points, {n, 2}, dtype, device), std::move(labels)};
}

ToyDistribution2D::LabelledPoints ToyDistribution2D::sample_labelled(std::int64_t n, const StepNoise& noise,
                                                                     DType dtype, Device device,
                                                                     NoiseStream stream) const {
  FM_CHECK(n >= 0, ValueError, name(), ": sample count ", n, " is negative");
  std::vector<double> points(std::size_t(2 * n));
  std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t index = noise.first_sample + i;  // the global index: alternation and draws follow it
    PhiloxSampleDraws draws(noise.key(stream), noise.step, index);
    const DrawnPoint p = labelled_point(index, draws);
    points[std::size_t(2 * i)] = p.xy[0];
    points[std::size_t(2 * i + 1)] = p.xy[1];
    labels[std::size_t(i)] = p.label;
  }
  return {Tensor::from_vector(points, {n, 2}, dtype, device), std::move(labels)};
}

Tensor ToyDistribution2D::sample(std::int64_t n, const StepNoise& noise, DType dtype, Device device,
                                 NoiseStream stream, std::vector<std::int32_t>* labels) const {
  FM_CHECK(!labels || device == Device::CPU, DeviceError, name(), ": sample: labels from the same draws are made on "
           "the CPU only (got device ", device_name(device), "; on a device, labels() or labels_into())");
  const bool drawn_there = dtype == DType::Float32 || (dtype == DType::Float64 && device == Device::CPU);
  if (!drawn_there) return sample_labelled(n, noise, dtype, device, stream).points;  // (labels: CPU, drawn there)
  FM_CHECK(n >= 0, ValueError, name(), ": sample count ", n, " is negative");
  return philox_toy_points(n, law(), noise.key(stream), noise.step, noise.first_sample, dtype, device,
                           noise.step_on_device, labels);
}

std::vector<std::int32_t> ToyDistribution2D::labels(std::int64_t n, const StepNoise& noise, NoiseStream stream) const {
  RowIndex out(std::vector<std::int32_t>(std::size_t(std::max<std::int64_t>(n, 0)), 0), num_classes() + 1, Device::CPU);
  const LabelDropout none{0.0, std::int32_t(num_classes()), noise.key(NoiseStream::LabelDropout), noise.step,
                          noise.first_sample};
  labels_into(out, noise, none, stream);
  return out.to_vector();
}

void ToyDistribution2D::labels_into(RowIndex& out, const StepNoise& noise, const LabelDropout& dropout,
                                    NoiseStream stream) const {
  toy_labels(out, law(), num_classes(), noise.key(stream), noise.step, noise.first_sample, noise.step_on_device, dropout);
}

ToyDistribution2D::DrawnPoint ToyDistribution2D::labelled_point(std::int64_t index, RandomDraws& draws) const {
  const kernels::ToyPoint p = kernels::toy_point(law(), index, draws);
  return {{p.x, p.y}, p.label};
}

std::vector<std::int32_t> ToyDistribution2D::class_of(const Tensor& points) const {
  FM_CHECK(points.dim() == 2 && points.size(1) == 2, ShapeError, name(), ": class_of: points ",
           shape_str(points.shape()), ", expected [N, 2]");
  const std::vector<double> xy = points.to_vector();
  std::vector<std::int32_t> labels(std::size_t(points.size(0)));
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = class_of_point(xy[2 * i], xy[2 * i + 1]);
  return labels;
}

namespace {

// Distance from p to the arc {c + (cos a, sin a) : a ∈ [a0, a0 + π]} of the unit circle around c:
// | |p − c| − 1 | when p's angle falls inside the arc, else the distance to the nearer end.
double distance_to_half_circle(double px, double py, double cx, double cy, double a0) {
  const double dx = px - cx, dy = py - cy;
  double angle = std::atan2(dy, dx) - a0;  // relative to the arc's start, brought into [0, 2π)
  angle -= 2.0 * std::numbers::pi * std::floor(angle / (2.0 * std::numbers::pi));
  if (angle <= std::numbers::pi) return std::abs(std::hypot(dx, dy) - 1.0);
  const double end0 = std::hypot(px - (cx + std::cos(a0)), py - (cy + std::sin(a0)));
  const double end1 = std::hypot(px - (cx + std::cos(a0 + std::numbers::pi)),
                                 py - (cy + std::sin(a0 + std::numbers::pi)));
  return std::min(end0, end1);
}

}  // namespace

MoonsDistribution::MoonsDistribution(double noise, bool normalize) : noise_(noise), normalize_(normalize) {
  FM_CHECK(noise >= 0, ValueError, "moons: noise ", noise, " must be >= 0");
}

kernels::ToyLaw MoonsDistribution::law() const {
  kernels::ToyLaw law;
  law.kind = kernels::ToyLawKind::Moons;
  law.noise = noise_;
  law.normalize = normalize_ ? 1 : 0;
  law.center_x = kCenterX, law.center_y = kCenterY, law.normalize_scale = kScale;
  return law;
}

std::int32_t MoonsDistribution::class_of_point(double x, double y) const {
  if (normalize_) x = x / kScale + kCenterX, y = y / kScale + kCenterY;
  // Outer moon: the upper half of the unit circle around (0, 0); inner: the lower half around (1, 0.5).
  const double outer = distance_to_half_circle(x, y, 0.0, 0.0, 0.0);
  const double inner = distance_to_half_circle(x, y, 1.0, 0.5, std::numbers::pi);
  return inner < outer ? 1 : 0;
}

SpiralDistribution::SpiralDistribution(double scale) : scale_(scale) {
  FM_CHECK(scale > 0, ValueError, "spiral: scale ", scale, " must be > 0");
}

kernels::ToyLaw SpiralDistribution::law() const {
  kernels::ToyLaw law;
  law.kind = kernels::ToyLawKind::Spiral;
  law.scale = scale_;
  return law;
}

std::int32_t SpiralDistribution::class_of_point(double x, double y) const {
  // At the point's angle φ ∈ [0, 2π) turn k passes at radius scale·(φ/2π + k): take the nearest.
  double phi = std::atan2(y, x);
  if (phi < 0) phi += 2.0 * std::numbers::pi;
  const double radius_in_turns = std::hypot(x, y) / scale_ - phi / (2.0 * std::numbers::pi);
  return std::int32_t(std::clamp(std::lround(radius_in_turns), 0L, 2L));
}

EightGaussiansDistribution::EightGaussiansDistribution(double radius, double std)
    : radius_(radius), std_(std) {
  FM_CHECK(radius > 0 && std >= 0, ValueError, "8gaussians: need radius > 0 and std >= 0, got ",
           radius, ", ", std);
}

kernels::ToyLaw EightGaussiansDistribution::law() const {
  kernels::ToyLaw law;
  law.kind = kernels::ToyLawKind::EightGaussians;
  law.radius = radius_, law.std = std_;
  return law;
}

std::array<double, 2> EightGaussiansDistribution::centre(int k) const {
  const double angle = 2.0 * std::numbers::pi * k / 8.0;
  return {radius_ * std::cos(angle), radius_ * std::sin(angle)};
}

std::int32_t EightGaussiansDistribution::class_of_point(double x, double y) const {
  // The centres share one radius, so the nearest centre is the nearest angle.
  const long nearest = std::lround(std::atan2(y, x) / (2.0 * std::numbers::pi / 8.0));
  return std::int32_t(((nearest % 8) + 8) % 8);
}

CheckerboardDistribution::CheckerboardDistribution(double scale) : scale_(scale) {
  FM_CHECK(scale > 0, ValueError, "checkerboard: scale ", scale, " must be > 0");
}

kernels::ToyLaw CheckerboardDistribution::law() const {
  kernels::ToyLaw law;
  law.kind = kernels::ToyLawKind::Checkerboard;
  law.scale = scale_;
  return law;
}

std::int32_t CheckerboardDistribution::class_of_point(double x, double y) const {
  x /= scale_, y /= scale_;
  // Inside a filled cell [column, column + 1) × [row, row + 1): that cell, as labelled_point drew it.
  const double column_of_x = std::floor(x), row_of_y = std::floor(y);
  if (column_of_x >= -2 && column_of_x <= 1 && row_of_y >= -2 && row_of_y <= 1 &&
      (long(column_of_x) + long(row_of_y)) % 2 == 0)
    return std::int32_t(2 * (long(column_of_x) + 2) + (row_of_y >= 0 ? 1 : 0));
  // Elsewhere the filled square at the least distance; ties go to the lower class.
  std::int32_t best = 0;
  double best_distance = INFINITY;
  for (int column = -2; column <= 1; ++column) {
    for (int upper = 0; upper <= 1; ++upper) {
      const int row = -2 + 2 * upper + ((column % 2 + 2) % 2);
      const double dx = std::max({double(column) - x, 0.0, x - double(column + 1)});
      const double dy = std::max({double(row) - y, 0.0, y - double(row + 1)});
      const double distance = std::hypot(dx, dy);
      if (distance < best_distance) best_distance = distance, best = std::int32_t(2 * (column + 2) + upper);
    }
  }
  return best;
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
