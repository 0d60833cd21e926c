// tools/conditional_sampling.cpp — guided sampling of class-conditional models (see the header).
#include "tools/conditional_sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>

#include "core/autograd.h"
#include "core/error.h"
#include "core/io/npy.h"
#include "core/io/plot_canvas.h"
#include "core/ops.h"
#include "flow/guidance.h"

namespace fm::tools {

void require_conditional_model(const nn::VelocityModel& model, const std::string& what) {
  FM_CHECK(model.num_classes() > 0, ConfigError, what,
           ": needs a class-conditional model, but this checkpoint's model is unconditional (model.num_classes = 0)");
}

std::vector<std::int32_t> uniform_labels(std::int64_t n, int num_classes, std::uint64_t seed) {
  FM_CHECK(num_classes >= 1, ValueError, "uniform_labels: ", num_classes, " classes, expected at least 1");
  Generator gen(seed);
  std::vector<std::int32_t> labels(std::size_t(std::max<std::int64_t>(n, 0)));
  for (auto& label : labels) label = std::int32_t(gen.below(std::uint64_t(num_classes)));
  return labels;
}

std::vector<std::int32_t> labels_from_seed(std::int64_t n, int num_classes, std::uint64_t seed) {
  // An offset of its own, so the labels' generator never shares a seed with the noise's (seeded `seed`).
  return uniform_labels(n, num_classes, seed + 3000);
}

namespace {

// The guided field of the model and the hook that sets each chunk's labels in the buffer it reads.
struct GuidedChunks {
  flow::VelocityField field;
  BeforeChunk set_labels;
};
GuidedChunks guided_chunks(nn::VelocityModel& model, const std::vector<std::int32_t>& labels, double guidance,
                           Device device) {
  auto buffer = std::make_shared<flow::GuidanceLabels>(guidance, model.num_classes(), device);
  buffer->check(labels);  // all of them before the first chunk, not when a bad one's chunk comes
  flow::ConditionalModelFn forward = [&model](const Tensor& x, const Tensor& t, const RowIndex& y) {
    return model.forward(x, t, y);
  };
  GuidedChunks out;
  out.field = flow::guided_velocity_field(forward, buffer);
  out.set_labels = [buffer, &labels](std::int64_t first, std::int64_t count) {
    buffer->set(std::vector<std::int32_t>(labels.begin() + first, labels.begin() + first + count));
  };
  return out;
}

}  // namespace

SampleResult generate_guided_samples_from_noise(nn::VelocityModel& model, const flow::OdeSolver& solver,
                                                const Tensor& noise, const std::vector<std::int32_t>& labels,
                                                double guidance, std::int64_t chunk) {
  require_conditional_model(model, "guided sampling");
  FM_CHECK(noise.dim() >= 1 && noise.size(0) == std::int64_t(labels.size()), ShapeError, "guided sampling: noise ",
           shape_str(noise.shape()), " for ", labels.size(), " labels, expected one label per sample");
  Shape example = noise.shape();
  example.erase(example.begin());
  const GuidedChunks guided = guided_chunks(model, labels, guidance, noise.device());
  return sample_in_chunks(
      model, solver, example, noise.size(0), chunk,
      [&noise](std::int64_t start, std::int64_t count) { return noise.narrow(0, start, count); }, guided.field,
      guided.set_labels);
}

SampleResult generate_guided_samples(nn::VelocityModel& model, const flow::OdeSolver& solver,
                                     const Shape& example_shape, const std::vector<std::int32_t>& labels,
                                     double guidance, Generator& gen, Device device, std::int64_t chunk,
                                     const flow::SourceDistribution* source) {
  require_conditional_model(model, "guided sampling");
  const flow::GaussianSource gaussian;
  if (source == nullptr) source = &gaussian;
  const GuidedChunks guided = guided_chunks(model, labels, guidance, device);
  // Each chunk's noise drawn just before it, as generate_samples draws it.
  return sample_in_chunks(
      model, solver, example_shape, std::int64_t(labels.size()), chunk,
      [&](std::int64_t, std::int64_t count) {
        Shape shape = example_shape;
        shape.insert(shape.begin(), count);
        return source->sample(shape, gen, DType::Float32, device);
      },
      guided.field, guided.set_labels);
}

RunSamples generate_run_samples(nn::VelocityModel& model, nn::EMA* ema, const flow::OdeSolver& solver,
                                const Shape& example_shape, std::int64_t n, std::uint64_t seed, Device device,
                                const flow::SourceDistribution* source) {
  Generator gen(seed);
  RunSamples out;
  if (model.num_classes() == 0) {
    out.result = generate_samples_with_ema(model, ema, solver, example_shape, n, gen, device, source);
    return out;
  }
  out.labels = labels_from_seed(n, model.num_classes(), seed);
  std::optional<nn::ScopedEMAWeights> ema_weights;
  if (ema) ema_weights.emplace(*ema);
  out.result = generate_guided_samples(model, solver, example_shape, out.labels, 0.0, gen, device, 512, source);
  return out;
}

ClassGrid class_grid_noise(int num_classes, std::int64_t columns, const Shape& example_shape, Generator& gen,
                           Device device, const flow::SourceDistribution* source) {
  FM_CHECK(num_classes >= 1 && columns >= 1, ValueError, "class grid: ", num_classes, " classes × ", columns,
           " columns, expected at least one of each");
  const flow::GaussianSource gaussian;
  if (source == nullptr) source = &gaussian;
  Shape shape = example_shape;
  shape.insert(shape.begin(), columns);
  const Tensor row = source->sample(shape, gen, DType::Float32, device);
  ClassGrid grid;
  grid.noise = concat(std::vector<Tensor>(std::size_t(num_classes), row), 0);
  for (int k = 0; k < num_classes; ++k) grid.labels.insert(grid.labels.end(), std::size_t(columns), k);
  return grid;
}

void write_class_scatter_png(const std::string& path, const Tensor& points, const std::vector<std::int32_t>& labels,
                             int num_classes, const Tensor& reference, const std::string& title) {
  using namespace io::plot;
  FM_CHECK(points.dim() == 2 && points.size(1) == 2 && points.size(0) == std::int64_t(labels.size()), ShapeError,
           "class scatter: points ", shape_str(points.shape()), " with ", labels.size(), " labels, expected [n, 2] and n labels");
  const std::vector<float> xy = points.to_float_vector();
  const std::vector<float> ref = reference.defined() ? reference.to_float_vector() : std::vector<float>{};
  std::vector<int> counts(std::size_t(std::max(num_classes, 1)) + 1, 0);
  for (std::int32_t k : labels) counts[std::size_t(std::clamp<int>(k, 0, num_classes))]++;
  // Legend entries (the data, then each class that has samples), four to a row above the plot.
  const Color grey{215, 215, 215};
  // tab10 without its grey (index 7), which would read as the data underneath.
  auto class_color = [](int k) {
    const int m = ((k % (kPaletteSize - 1)) + (kPaletteSize - 1)) % (kPaletteSize - 1);
    return kPalette[m < 7 ? m : m + 1];
  };
  std::vector<LegendEntry> entries;
  if (!ref.empty()) entries.push_back({grey, cat("data (n=", ref.size() / 2, ")"), false});
  for (int k = 0; k < num_classes; ++k)
    if (counts[std::size_t(k)] > 0)
      entries.push_back({class_color(k), cat("class ", k, " (n=", counts[std::size_t(k)], ")"), false});
  const int legend_rows = int((entries.size() + 3) / 4);
  const int width = 760, height = 700 + 20 * legend_rows;
  PlotFrame f;
  f.left = 72, f.right = width - 24, f.top = 56 + 20 * legend_rows, f.bottom = height - 58;
  PointBounds bounds;
  bounds.add(xy.data(), xy.size() / 2);
  bounds.add(ref.data(), ref.size() / 2);
  set_point_axes(f, bounds, true);  // padded 5%, one unit as long on both axes (modes keep their shapes)

  Canvas canvas(width, height, kWhite);
  draw_grid(canvas, f);
  canvas.set_clip({float(f.left), float(f.top), float(f.right), float(f.bottom)});
  auto dot = [&](float px, float py, Color c, float alpha) { draw_point(canvas, f, px, py, 1.6f, c, alpha); };
  for (std::size_t i = 0; i + 1 < ref.size(); i += 2) dot(ref[i], ref[i + 1], grey, 0.5f);
  for (std::size_t i = 0; i < labels.size(); ++i)
    dot(xy[2 * i], xy[2 * i + 1], class_color(labels[i]), 0.55f);
  draw_axes(canvas, f, title, "", "");
  for (int r = 0; r < legend_rows; ++r) {
    std::vector<LegendEntry> row(entries.begin() + 4 * r, entries.begin() + std::min<std::size_t>(entries.size(), 4 * r + 4));
    draw_legend_row(canvas, (f.left + f.right) / 2.f, 44.f + 20.f * r, row);
  }
  write_canvas(path, canvas);
}

void save_labels_npy(const std::string& path, const std::vector<std::int32_t>& labels) {
  std::vector<float> values(labels.begin(), labels.end());
  io::write_npy(path, values.data(), {std::int64_t(values.size())});
}

}  // namespace fm::tools
