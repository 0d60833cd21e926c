// core/io/png.cpp — PNG encoding, and the run pictures drawn with core/io/plot_canvas.h: sample
// grids, scatter plots and line plots (see png.h).
//
// stb_image_write encodes in memory and write_file_atomically puts the result on disk.
#include "core/io/png.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/io/atomic_file.h"
#include "core/io/plot_canvas.h"
// The implementation of stb_image_write is compiled into libstb (linked by fm_core).
#include <stb/stb_image_write.h>

namespace fm::io {

using namespace plot;  // Canvas, PlotFrame, ticks, labels, legends, colours

namespace {

std::string encode_png(const std::string& path, const std::uint8_t* pixels, int width, int height, int channels) {
  std::string encoded;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), std::size_t(size));
  };
  if (!stbi_write_png_to_func(append, &encoded, width, height, channels, pixels, width * channels))
    throw IOError(cat(path, ": PNG encoding failed (", width, "x", height, "x", channels, ")"));
  return encoded;
}

}  // namespace

// ---- public functions -------------------------------------------------------------------------------

void write_png(const std::string& path, const std::uint8_t* pixels, int width, int height, int channels) {
  if (width <= 0 || height <= 0 || (channels != 1 && channels != 3 && channels != 4))
    throw ValueError(cat("write_png: ", path, ": ", width, "x", height, "x", channels,
                         ", expected positive sizes and 1, 3 or 4 channels"));
  if (pixels == nullptr) throw ValueError(cat("write_png: ", path, ": null pixel pointer"));
  write_file_atomically(path, encode_png(path, pixels, width, height, channels));
}

void write_image_grid_png(const std::string& path, const float* images, int count, int channels, int height, int width,
                          int grid_cols, float lo, float hi, int scale) {
  if (count <= 0 || height <= 0 || width <= 0 || (channels != 1 && channels != 3))
    throw ValueError(cat("write_image_grid_png: ", path, ": ", count, " images of ", channels, "x", height, "x", width,
                         ", expected at least one image with 1 or 3 channels"));
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi))
    throw ValueError(cat("write_image_grid_png: ", path, ": value range [", lo, ", ", hi, "], expected finite lo < hi"));
  if (scale < 1 || scale > 64) throw ValueError(cat("write_image_grid_png: ", path, ": scale ", scale, ", expected 1..64"));
  if (images == nullptr) throw ValueError(cat("write_image_grid_png: ", path, ": null image pointer"));
  const int border = 2;
  int cols = grid_cols > 0 ? std::min(grid_cols, count) : int(std::ceil(std::sqrt(double(count))));
  int rows = (count + cols - 1) / cols;
  std::int64_t tile_width = std::int64_t(width) * scale + border, tile_height = std::int64_t(height) * scale + border;
  std::int64_t out_width = cols * tile_width + border, out_height = rows * tile_height + border;
  if (out_width > 32768 || out_height > 32768)
    throw ValueError(cat("write_image_grid_png: ", path, ": grid would be ", out_width, "x", out_height,
                         " pixels, expected at most 32768 per side (fewer images or a smaller scale)"));

  Canvas canvas(int(out_width), int(out_height), kGridBorder);
  const std::size_t image_size = std::size_t(channels) * std::size_t(height) * std::size_t(width);
  for (int n = 0; n < count; ++n)
    draw_image_tile(canvas, border + int((n % cols) * tile_width), border + int((n / cols) * tile_height),
                    images + std::size_t(n) * image_size, channels, height, width, lo, hi, scale);
  write_canvas(path, canvas);
}

void write_scatter_png(const std::string& path, const float* points_a, int n_a, const float* points_b, int n_b,
                       const ScatterOptions& options) {
  check_plot_size("write_scatter_png", options.width, options.height);
  if (n_a < 0 || n_b < 0 || (n_a > 0 && !points_a) || (n_b > 0 && !points_b))
    throw ValueError(cat("write_scatter_png: ", path, ": point counts ", n_a, " and ", n_b, " with their pointers, "
                         "expected non-negative counts and non-null pointers"));

  PointBounds bounds;
  const int skipped_a = n_a > 0 ? bounds.add(points_a, std::size_t(n_a)) : 0;
  const int skipped_b = n_b > 0 ? bounds.add(points_b, std::size_t(n_b)) : 0;
  PlotFrame f;
  f.left = 72, f.right = options.width - 24, f.top = 74, f.bottom = options.height - 58;
  if (options.fixed_range) {
    if (!(options.x_max > options.x_min) || !(options.y_max > options.y_min))
      throw ValueError(cat("write_scatter_png: ", path, ": fixed range x [", options.x_min, ", ", options.x_max, "] y [",
                           options.y_min, ", ", options.y_max, "], expected min < max"));
    set_point_axes(f, options.x_min, options.x_max, options.y_min, options.y_max, options.equal_aspect);
  } else {
    set_point_axes(f, bounds, options.equal_aspect);  // both sets, padded 5%
  }

  Canvas canvas(options.width, options.height, kWhite);
  draw_grid(canvas, f);
  canvas.set_clip({float(f.left), float(f.top), float(f.right), float(f.bottom)});
  const Color color_a = kPalette[1], color_b = kPalette[0];
  auto draw_points = [&](const float* points, int n, Color c, float alpha) {
    for (int i = 0; i < n; ++i) draw_point(canvas, f, points[2 * i], points[2 * i + 1], options.point_radius, c, alpha);
  };
  // Translucent points: dense regions read darker, so the two densities can be compared by eye.
  draw_points(points_b, n_b, color_b, 0.35f);
  draw_points(points_a, n_a, color_a, 0.5f);
  draw_axes(canvas, f, options.title, "", "");

  auto legend_text = [](const std::string& label, int n, int skipped) {
    std::string text = cat(label, " (n=", n - skipped, ")");
    if (skipped) text += cat(", ", skipped, " non-finite skipped");
    return text;
  };
  draw_legend_row(canvas, (f.left + f.right) / 2.f, 50.f,
                  {{color_b, legend_text(options.label_b, n_b, skipped_b), false},
                   {color_a, legend_text(options.label_a, n_a, skipped_a), false}});
  write_canvas(path, canvas);
}

void write_line_plot_png(const std::string& path, const std::vector<LineSeries>& series, const LinePlotOptions& options) {
  check_plot_size("write_line_plot_png", options.width, options.height);
  for (const auto& s : series)
    if (s.x.size() != s.y.size())
      throw ValueError(cat("write_line_plot_png: ", path, ": series '", s.label, "' has ", s.x.size(), " x values and ",
                           s.y.size(), " y values, expected the same number"));

  auto usable = [&](double x, double y) { return std::isfinite(x) && std::isfinite(y) && (!options.log_y || y > 0); };
  // Trailing mean over up to `window` points (fewer at the start), skipping unusable values.
  auto moving_average = [&](const LineSeries& s) {
    LineSeries smooth{s.x, std::vector<double>(s.y.size(), std::nan("")), s.label};
    double sum = 0;
    std::size_t in_window = 0, window = std::size_t(options.moving_average_window), oldest = 0;
    std::vector<std::size_t> kept;  // indices of usable points, in order
    for (std::size_t i = 0; i < s.y.size(); ++i) {
      if (!usable(s.x[i], s.y[i])) continue;
      kept.push_back(i);
      sum += s.y[i], ++in_window;
      if (in_window > window) sum -= s.y[kept[oldest++]], --in_window;
      smooth.y[i] = sum / double(in_window);
    }
    return smooth;
  };
  const bool smoothing = options.moving_average_window > 1;

  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
  for (const auto& s : series)
    for (std::size_t i = 0; i < s.x.size(); ++i)
      if (usable(s.x[i], s.y[i])) {
        double y = options.log_y ? std::log10(s.y[i]) : s.y[i];
        x_lo = std::min(x_lo, s.x[i]), x_hi = std::max(x_hi, s.x[i]);
        y_lo = std::min(y_lo, y), y_hi = std::max(y_hi, y);
      }
  bool has_data = x_hi >= x_lo;
  if (!has_data) x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;
  widen_if_flat(x_lo, x_hi, 1.0);
  if (options.log_y && !(y_hi > y_lo)) y_lo -= 0.5, y_hi += 0.5;  // half a decade each way
  widen_if_flat(y_lo, y_hi, 1.0);
  double pad_y = 0.05 * (y_hi - y_lo);
  y_lo -= pad_y, y_hi += pad_y;

  PlotFrame f;
  f.top = 44, f.right = options.width - 24, f.bottom = options.height - 62;
  f.y = {y_lo, y_hi, float(f.bottom), float(f.top), options.log_y};
  f.y_ticks = options.log_y ? log_ticks(y_lo, y_hi, std::max(3, (f.bottom - f.top) / 60))
                            : linear_ticks(y_lo, y_hi, std::max(3, (f.bottom - f.top) / 60));
  // The left margin fits the widest y tick label and the rotated y label.
  float widest = 0;
  for (const auto& t : f.y_ticks) widest = std::max(widest, text_width(t.label, kTickScale));
  f.left = int(std::ceil(16 + kCapHeight * kLabelScale + 10 + widest + 9));
  f.x = {x_lo, x_hi, float(f.left), float(f.right), false};
  f.x_ticks = linear_ticks(x_lo, x_hi, std::max(3, (f.right - f.left) / 110));

  Canvas canvas(options.width, options.height, kWhite);
  draw_grid(canvas, f);
  canvas.set_clip({float(f.left), float(f.top), float(f.right), float(f.bottom)});
  auto polyline_runs = [&](const LineSeries& s) {
    std::vector<std::vector<Point>> runs(1);
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      Point p{0, 0};
      if (usable(s.x[i], s.y[i])) p = {f.x.to_pixel(s.x[i]), f.y.to_pixel(s.y[i])};
      // A range overflowing double (values near +-1e308) maps to NaN pixels: break the line there too.
      if (usable(s.x[i], s.y[i]) && std::isfinite(p.x) && std::isfinite(p.y)) runs.back().push_back(p);
      else if (!runs.back().empty()) runs.emplace_back();
    }
    return runs;
  };
  std::vector<LegendEntry> legend;
  for (std::size_t k = 0; k < series.size(); ++k) {
    Color c = kPalette[k % kPaletteSize];
    // Faded raw values under a solid moving average: the trend reads clearly, the noise stays visible.
    // A series shorter than two windows (a sparse eval curve) is drawn as it is: its average would
    // lag far behind it.
    bool smooth = smoothing && series[k].y.size() >= 2 * std::size_t(options.moving_average_window);
    for (const auto& run : polyline_runs(series[k])) canvas.stroke_polyline(run, c, smooth ? 1.2f : 1.8f, smooth ? 0.3f : 1.f);
    if (smooth)
      for (const auto& run : polyline_runs(moving_average(series[k]))) canvas.stroke_polyline(run, c, 2.2f);
    std::string text = series[k].label.empty() ? cat("series ", k + 1) : series[k].label;
    legend.push_back({c, text, true});
  }
  canvas.reset_clip();
  if (!has_data)
    draw_label(canvas, (f.left + f.right) / 2.f, (f.top + f.bottom) / 2.f, "no data", kFrame, kLabelScale, Align::Center);

  std::string x_label = options.x_label;
  if (smoothing) x_label += cat("   (bold: moving average over ", options.moving_average_window, " points)");
  draw_axes(canvas, f, options.title, x_label, options.y_label + (options.log_y ? " (log scale)" : ""));

  // Legend box in the top-right corner of the plot area.
  if (!legend.empty()) {
    float row_height = 20, swatch = 24, pad = 8, widest_text = 0;
    for (const auto& e : legend) widest_text = std::max(widest_text, text_width(e.text, kLabelScale));
    float box_w = pad + swatch + 8 + widest_text + pad, box_h = pad + row_height * legend.size() + pad - 6;
    float bx = f.right - 10 - box_w, by = f.top + 10;
    canvas.fill_rect({bx, by, bx + box_w, by + box_h}, kWhite, 0.9f);
    canvas.outline_rect(int(bx), int(by), int(bx + box_w), int(by + box_h), Color{200, 200, 200});
    for (std::size_t k = 0; k < legend.size(); ++k) {
      float cy = by + pad + row_height * k + 7;
      canvas.stroke_polyline({{bx + pad, cy}, {bx + pad + swatch, cy}}, legend[k].color, 2.5f);
      draw_label(canvas, bx + pad + swatch + 8, cy, legend[k].text, kText, kLabelScale, Align::Left);
    }
  }
  write_canvas(path, canvas);
}

}  // namespace fm::io
