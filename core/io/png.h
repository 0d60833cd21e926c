// core/io/png.h — PNG files: raw pixels encoded as PNG, and the pictures a run leaves behind (sample
// grids, 2D scatter plots, loss curves).
//
// Part of core/io/ (raw float buffers in, PNG files out; no Tensor). Pixels are drawn with the small
// software rasteriser of core/io/plot_canvas.h (anti-aliased lines, discs and rectangles, text from
// stb_easy_font) and encoded by stb_image_write. Every file is written atomically.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fm::io {

// Writes 8-bit pixels (channels = 1 gray, 3 RGB, 4 RGBA; rows top to bottom, no padding).
// Throws fm::ValueError for bad sizes and fm::IOError when the file cannot be written.
void write_png(const std::string& path, const std::uint8_t* pixels, int width, int height, int channels);

// Tiles `count` images (NCHW floats, channels 1 or 3) into a grid of `grid_cols` columns (<= 0: a
// square-ish grid) with a 2-pixel grey border around and between tiles. Values in [lo, hi] map to
// 0..255 (clamped outside); NaN and infinities are drawn pure red so a diverged sample cannot pass for
// a dark one. `scale` >= 1 enlarges each pixel to scale x scale (nearest neighbour).
void write_image_grid_png(const std::string& path, const float* images, int count, int channels, int height,
                          int width, int grid_cols, float lo = -1.f, float hi = 1.f, int scale = 1);

struct ScatterOptions {
  std::string title;
  std::string label_a = "generated";  // the points drawn on top
  std::string label_b = "data";       // the reference points drawn underneath
  int width = 640, height = 640;      // whole image, pixels
  // Axis range: automatic (both point sets, padded 5%) unless fixed_range is set.
  bool fixed_range = false;
  float x_min = -1.f, x_max = 1.f, y_min = -1.f, y_max = 1.f;
  bool equal_aspect = true;  // one unit is as long on x as on y (circles look like circles)
  float point_radius = 1.6f; // pixels
};

// A scatter plot of 2D points, interleaved (x0, y0, x1, y1, ...): `points_b` (the reference data) in
// blue underneath, `points_a` (generated) in orange on top, with axes, ticks, a title and a legend.
// Non-finite points are skipped and counted in the legend. Either set may be empty (n = 0).
void write_scatter_png(const std::string& path, const float* points_a, int n_a, const float* points_b, int n_b,
                       const ScatterOptions& options = {});

struct LineSeries {
  std::vector<double> x, y;  // same length; non-finite values (and y <= 0 on a log axis) break the line
  std::string label;
};

struct LinePlotOptions {
  std::string title;
  std::string x_label = "step";
  std::string y_label = "loss";
  bool log_y = false;
  int width = 900, height = 540;
  // > 1: draw each series faded and, over it, its trailing moving average over this many points
  // (series shorter than two windows, such as a sparse eval curve, are drawn plain).
  int moving_average_window = 0;
};

// A line plot (loss curves): axes with "nice" ticks (1-2-5 steps, powers of ten on a log axis), grid,
// title, axis labels and a legend. Throws fm::ValueError for mismatched x/y lengths.
void write_line_plot_png(const std::string& path, const std::vector<LineSeries>& series,
                         const LinePlotOptions& options = {});

}  // namespace fm::io
