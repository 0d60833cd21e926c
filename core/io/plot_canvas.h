// core/io/plot_canvas.h — the small drawing kit behind every picture the project writes: an RGB
// canvas with anti-aliased shapes and text, axes with "nice" ticks, and a plot frame (grid, tick
// labels, axis labels, title, legend). core/io/png.cpp draws the run pictures with it (sample grids,
// scatter plots, loss curves); bench/bar_chart.cpp draws the kernel lab's bar charts.
//
// Part of core/io/ (floats and pixels only; no Tensor). A tiny rasteriser is enough for diagnostic
// plots and avoids a plotting dependency: alpha blending, coverage from the distance to a shape's edge
// (a one-pixel ramp), and stb_easy_font's glyph rectangles for text. write_canvas encodes through
// core/io/png.h, so every picture is written atomically.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace fm::io::plot {

// ---- colours --------------------------------------------------------------------------------------

struct Color {
  std::uint8_t r, g, b;
};
inline constexpr Color kWhite{255, 255, 255};
inline constexpr Color kFrame{70, 70, 70};
inline constexpr Color kGrid{230, 230, 230};
inline constexpr Color kMinorGrid{243, 243, 243};
inline constexpr Color kText{35, 35, 35};
inline constexpr Color kGridBorder{128, 128, 128};  // between tiles of a sample grid: visible on black and white
inline constexpr Color kNonFinite{255, 0, 0};
// Matplotlib's "tab10": distinct, and readable on white.
inline constexpr Color kPalette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
                                     {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
inline constexpr int kPaletteSize = sizeof(kPalette) / sizeof(kPalette[0]);

// ---- the canvas -----------------------------------------------------------------------------------

struct Rect {
  float x0, y0, x1, y1;
};

struct Point {
  float x, y;
};

class Canvas {
 public:
  Canvas(int width, int height, Color background);
  int width() const { return width_; }
  int height() const { return height_; }
  const std::uint8_t* pixels() const { return rgb_.data(); }

  // Drawing outside the clip rectangle is discarded (plot contents stay inside the axes).
  void set_clip(Rect clip) { clip_ = clip; }
  void reset_clip() { clip_ = {0.f, 0.f, float(width_), float(height_)}; }

  // Inline: the sample grid sets every pixel through it, and every shape blends through blend.
  void set(int x, int y, Color c) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    std::uint8_t* p = &rgb_[(std::size_t(y) * width_ + x) * 3];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }

  // Alpha-blends colour c over pixel (x, y) with opacity `alpha` in [0, 1].
  void blend(int x, int y, Color c, float alpha) {
    if (alpha <= 0.f || x < clip_.x0 || y < clip_.y0 || x >= clip_.x1 || y >= clip_.y1) return;
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    alpha = std::min(alpha, 1.f);
    std::uint8_t* p = &rgb_[(std::size_t(y) * width_ + x) * 3];
    auto mix = [alpha](std::uint8_t under, std::uint8_t over) {
      return static_cast<std::uint8_t>(std::lround(under + (float(over) - under) * alpha));
    };
    p[0] = mix(p[0], c.r), p[1] = mix(p[1], c.g), p[2] = mix(p[2], c.b);
  }

  // A rectangle with fractional edges: edge pixels get the covered fraction of their area.
  void fill_rect(Rect r, Color c, float alpha = 1.f);

  // An outline one pixel wide along the inside of the integer rectangle [x0, x1) x [y0, y1).
  void outline_rect(int x0, int y0, int x1, int y1, Color c);

  // An anti-aliased disc; coverage falls from 1 to 0 across the one pixel around the radius.
  void fill_disc(float cx, float cy, float radius, Color c, float alpha = 1.f);

  // Anti-aliased connected line segments of the given width. Coverage is accumulated as a per-pixel
  // maximum before blending, so joints are not blended twice (which shows as dots on a faded line).
  void stroke_polyline(const std::vector<Point>& points, Color c, float line_width, float alpha = 1.f);

  // Text from stb_easy_font's glyph rectangles, `scale` times their size (the font's capitals are 7
  // units high). (x, y) is the top-left corner of the text; `vertical` turns it 90 degrees
  // anticlockwise so it reads bottom to top, with (x, y) then the bottom-left corner.
  void draw_text(float x, float y, const std::string& text, Color c, float scale, bool vertical = false);

 private:
  int width_, height_;
  std::vector<std::uint8_t> rgb_;
  Rect clip_{};
};

inline constexpr float kCapHeight = 7.f;  // stb_easy_font capitals, in font units

// Width in pixels of `text` drawn at `scale`.
float text_width(const std::string& text, float scale);

enum class Align { Left, Center, Right };

// Text whose capitals are vertically centred on `center_y`.
void draw_label(Canvas& canvas, float x, float center_y, const std::string& text, Color c, float scale, Align align);

// ---- axes -----------------------------------------------------------------------------------------

// Maps a data interval onto a pixel interval; on a log axis through log10.
struct Axis {
  double lo = 0, hi = 1;  // data range (in log10 units when log)
  float pixel_lo = 0, pixel_hi = 1;
  bool log = false;
  float to_pixel(double value) const {
    double v = log ? std::log10(value) : value;
    return float(pixel_lo + (v - lo) / (hi - lo) * (pixel_hi - pixel_lo));
  }
};

struct Tick {
  double value;
  std::string label;  // empty for a minor tick (grid line only)
};

// About `target` ticks at 1-2-5 multiples of a power of ten covering [lo, hi], labelled.
std::vector<Tick> linear_ticks(double lo, double hi, int target);
// Ticks for a log axis whose range is [lo, hi] in log10 units. Over many decades: labelled powers of
// ten; over a few: labelled 1-2-5 multiples; both with unlabelled grid lines at the other multiples.
// Under half a decade, linear steps in value space placed on the log axis.
std::vector<Tick> log_ticks(double lo, double hi, int target);

// ---- the plot frame ---------------------------------------------------------------------------------

// Layout and decoration shared by the scatter plot, the line plot and the bar chart.
struct PlotFrame {
  int left, top, right, bottom;  // plot area [left, right) x [top, bottom)
  Axis x, y;
  std::vector<Tick> x_ticks, y_ticks;
};

inline constexpr float kTitleScale = 2.f;
inline constexpr float kLabelScale = 1.5f;
inline constexpr float kTickScale = 1.5f;

// Grid lines behind the data.
void draw_grid(Canvas& canvas, const PlotFrame& f);
// Frame, tick marks, tick labels, axis labels and title, over the data.
void draw_axes(Canvas& canvas, const PlotFrame& f, const std::string& title, const std::string& x_label,
               const std::string& y_label);
// Expands a degenerate range so the axis still has a length.
void widen_if_flat(double& lo, double& hi, double fallback_half_width);

// ---- 2-D point plots (scatter plots, class plots, path animations) ----------------------------------

// The bounding box of the finite points added so far.
struct PointBounds {
  double x_lo = HUGE_VAL, x_hi = -HUGE_VAL, y_lo = HUGE_VAL, y_hi = -HUGE_VAL;
  // Adds the finite points of an interleaved (x0, y0, x1, y1, ...) array of n points; returns how
  // many were skipped as not finite.
  int add(const float* points, std::size_t n);
};

// Sets f's axes and ticks (its pixel area already laid out) to show [x_lo, x_hi] x [y_lo, y_hi]. With
// equal_aspect the shorter range grows around its centre until one unit is as long in pixels on both
// axes (circles look like circles).
void set_point_axes(PlotFrame& f, double x_lo, double x_hi, double y_lo, double y_hi, bool equal_aspect);
// The same for the points' bounds padded 5% on each side: [-1, 1]^2 when there are none, a flat side
// widened (widen_if_flat).
void set_point_axes(PlotFrame& f, const PointBounds& bounds, bool equal_aspect);

// A disc at data point (px, py); nothing for a non-finite point or one far outside the plot area
// (clipped anyway, and far-away pixel coordinates must not reach int).
void draw_point(Canvas& canvas, const PlotFrame& f, float px, float py, float radius, Color c, float alpha);

// ---- images -----------------------------------------------------------------------------------------

// One image of a sample grid, each pixel a scale x scale block with its top-left corner at (x, y):
// `image` is channels (1 or 3) planes of height x width floats, [lo, hi] mapped onto 0..255 (clamped);
// a pixel with a non-finite channel is drawn kNonFinite.
void draw_image_tile(Canvas& canvas, int x, int y, const float* image, int channels, int height, int width,
                     float lo, float hi, int scale);

// Throws fm::ValueError unless the image is 200..8192 x 150..8192 pixels (`what` names the caller).
void check_plot_size(const char* what, int width, int height);

// Legend entries in one row, centred: a swatch (disc or line) and its text.
struct LegendEntry {
  Color color;
  std::string text;
  bool line;  // a short line sample rather than a dot
};
void draw_legend_row(Canvas& canvas, float center_x, float center_y, const std::vector<LegendEntry>& entries);

// Encodes the canvas as an RGB PNG and writes it atomically (core/io/png.h's write_png).
void write_canvas(const std::string& path, const Canvas& canvas);

}  // namespace fm::io::plot
