// core/io/png.cpp — sample grids, scatter plots and line plots rendered to PNG (see png.h).
//
// A tiny rasteriser is enough for diagnostic plots and avoids a plotting dependency: an RGB canvas
// with alpha blending, anti-aliased shapes (coverage from the distance to the shape's edge, with a
// one-pixel ramp), and stb_easy_font's glyph rectangles for text. stb_image_write encodes the result
// in memory and write_file_atomically puts it on disk.
#include "core/io/png.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

#include "core/error.h"
#include "core/io/atomic_file.h"

// stb_easy_font is header-only with static functions; this file does not use all of them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop
// The implementation of stb_image_write is compiled into libstb (linked by fm_core).
#include <stb/stb_image_write.h>

namespace fm::io {
namespace {

// ---- colours --------------------------------------------------------------------------------------

struct Color {
  std::uint8_t r, g, b;
};
constexpr Color kWhite{255, 255, 255};
constexpr Color kFrame{70, 70, 70};
constexpr Color kGrid{230, 230, 230};
constexpr Color kMinorGrid{243, 243, 243};
constexpr Color kText{35, 35, 35};
constexpr Color kGridBorder{128, 128, 128};  // between tiles of a sample grid: visible on black and white
constexpr Color kNonFinite{255, 0, 0};
// Matplotlib's "tab10": distinct, and readable on white.
constexpr Color kPalette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
                              {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
constexpr int kPaletteSize = sizeof(kPalette) / sizeof(kPalette[0]);

// ---- the canvas -----------------------------------------------------------------------------------

struct Rect {
  float x0, y0, x1, y1;
};

struct Point {
  float x, y;
};

// stb_easy_font draws printable ASCII only: it indexes its glyph table with (char - 32), so a byte of
// a UTF-8 sequence (negative as a char) would read before the table (UBSan caught "index -94" for
// the '·' in our plot titles). The few non-ASCII characters our titles use get ASCII stand-ins; any
// other character becomes '?', and control characters other than '\n' a space.
std::string font_text(const std::string& text) {
  static const std::pair<const char*, const char*> kStandIns[] = {
      {"·", "-"}, {"×", "x"}, {"—", "-"}, {"–", "-"}, {"→", "->"}, {"²", "^2"}};
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80) {
      out += (byte >= 32 && byte < 127) || byte == '\n' ? char(byte) : ' ';
      ++i;
      continue;
    }
    std::size_t length = 1;  // the whole UTF-8 sequence: a lead byte and its continuation bytes
    while (i + length < text.size() && (static_cast<unsigned char>(text[i + length]) & 0xC0) == 0x80) ++length;
    const std::string character = text.substr(i, length);
    const char* stand_in = "?";
    for (const auto& [utf8, ascii] : kStandIns)
      if (character == utf8) stand_in = ascii;
    out += stand_in;
    i += length;
  }
  return out;
}

class Canvas {
 public:
  Canvas(int width, int height, Color background) : width_(width), height_(height), rgb_(std::size_t(width) * height * 3) {
    for (std::size_t i = 0; i < rgb_.size(); i += 3) rgb_[i] = background.r, rgb_[i + 1] = background.g, rgb_[i + 2] = background.b;
    reset_clip();
  }
  int width() const { return width_; }
  int height() const { return height_; }
  const std::uint8_t* pixels() const { return rgb_.data(); }

  // Drawing outside the clip rectangle is discarded (plot contents stay inside the axes).
  void set_clip(Rect clip) { clip_ = clip; }
  void reset_clip() { clip_ = {0.f, 0.f, float(width_), float(height_)}; }

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
  void fill_rect(Rect r, Color c, float alpha = 1.f) {
    int x_begin = int(std::floor(r.x0)), x_end = int(std::ceil(r.x1));
    int y_begin = int(std::floor(r.y0)), y_end = int(std::ceil(r.y1));
    for (int y = y_begin; y < y_end; ++y) {
      float cover_y = std::min(r.y1, y + 1.f) - std::max(r.y0, float(y));
      if (cover_y <= 0) continue;
      for (int x = x_begin; x < x_end; ++x) {
        float cover_x = std::min(r.x1, x + 1.f) - std::max(r.x0, float(x));
        if (cover_x > 0) blend(x, y, c, alpha * cover_x * cover_y);
      }
    }
  }

  // An outline one pixel wide along the inside of the integer rectangle [x0, x1) x [y0, y1).
  void outline_rect(int x0, int y0, int x1, int y1, Color c) {
    fill_rect({float(x0), float(y0), float(x1), float(y0 + 1)}, c);
    fill_rect({float(x0), float(y1 - 1), float(x1), float(y1)}, c);
    fill_rect({float(x0), float(y0), float(x0 + 1), float(y1)}, c);
    fill_rect({float(x1 - 1), float(y0), float(x1), float(y1)}, c);
  }

  // An anti-aliased disc; coverage falls from 1 to 0 across the one pixel around the radius.
  void fill_disc(float cx, float cy, float radius, Color c, float alpha = 1.f) {
    int x_begin = int(std::floor(cx - radius - 1)), x_end = int(std::ceil(cx + radius + 1));
    int y_begin = int(std::floor(cy - radius - 1)), y_end = int(std::ceil(cy + radius + 1));
    for (int y = y_begin; y <= y_end; ++y)
      for (int x = x_begin; x <= x_end; ++x) {
        float distance = std::hypot(x + 0.5f - cx, y + 0.5f - cy);
        float coverage = std::clamp(radius + 0.5f - distance, 0.f, 1.f);
        if (coverage > 0) blend(x, y, c, alpha * coverage);
      }
  }

  // Anti-aliased connected line segments of the given width. Coverage is accumulated as a per-pixel
  // maximum before blending, so joints are not blended twice (which shows as dots on a faded line).
  void stroke_polyline(const std::vector<Point>& points, Color c, float line_width, float alpha = 1.f) {
    if (points.empty()) return;
    if (points.size() == 1) return fill_disc(points[0].x, points[0].y, line_width * 0.5f, c, alpha);
    float reach = line_width * 0.5f + 1.f;
    int bx0 = width_, by0 = height_, bx1 = -1, by1 = -1;
    for (const auto& p : points) {
      bx0 = std::min(bx0, int(std::floor(p.x - reach))), bx1 = std::max(bx1, int(std::ceil(p.x + reach)));
      by0 = std::min(by0, int(std::floor(p.y - reach))), by1 = std::max(by1, int(std::ceil(p.y + reach)));
    }
    bx0 = std::max(bx0, 0), by0 = std::max(by0, 0), bx1 = std::min(bx1, width_ - 1), by1 = std::min(by1, height_ - 1);
    if (bx1 < bx0 || by1 < by0) return;
    int box_width = bx1 - bx0 + 1;
    std::vector<float> coverage(std::size_t(box_width) * (by1 - by0 + 1), 0.f);
    for (std::size_t i = 0; i + 1 < points.size(); ++i) {
      Point a = points[i], b = points[i + 1];
      float dx = b.x - a.x, dy = b.y - a.y, length_sq = dx * dx + dy * dy;
      int x_begin = std::max(bx0, int(std::floor(std::min(a.x, b.x) - reach)));
      int x_end = std::min(bx1, int(std::ceil(std::max(a.x, b.x) + reach)));
      int y_begin = std::max(by0, int(std::floor(std::min(a.y, b.y) - reach)));
      int y_end = std::min(by1, int(std::ceil(std::max(a.y, b.y) + reach)));
      for (int y = y_begin; y <= y_end; ++y)
        for (int x = x_begin; x <= x_end; ++x) {
          float px = x + 0.5f - a.x, py = y + 0.5f - a.y;
          // Distance from the pixel centre to the closest point of the segment.
          float t = length_sq > 0 ? std::clamp((px * dx + py * dy) / length_sq, 0.f, 1.f) : 0.f;
          float distance = std::hypot(px - t * dx, py - t * dy);
          float cover = std::clamp(line_width * 0.5f + 0.5f - distance, 0.f, 1.f);
          float& cell = coverage[std::size_t(y - by0) * box_width + (x - bx0)];
          cell = std::max(cell, cover);
        }
    }
    for (int y = by0; y <= by1; ++y)
      for (int x = bx0; x <= bx1; ++x) {
        float cover = coverage[std::size_t(y - by0) * box_width + (x - bx0)];
        if (cover > 0) blend(x, y, c, alpha * cover);
      }
  }

  // Text from stb_easy_font's glyph rectangles, `scale` times their size (the font's capitals are 7
  // units high). (x, y) is the top-left corner of the text; `vertical` turns it 90 degrees
  // anticlockwise so it reads bottom to top, with (x, y) then the bottom-left corner.
  void draw_text(float x, float y, const std::string& text, Color c, float scale, bool vertical = false) {
    if (text.empty()) return;
    std::string writable = font_text(text);  // stb_easy_font takes char*
    // 64 bytes per quad; stb's "about 270 bytes per character" is an average, and '2' alone takes 6
    // quads, so size for the worst glyphs (stb silently drops quads that do not fit).
    std::vector<char> vertices(text.size() * 64 * 24 + 64);
    int quads = stb_easy_font_print(0, 0, writable.data(), nullptr, vertices.data(), int(vertices.size()));
    for (int q = 0; q < quads; ++q) {
      // Each vertex: x, y, z (floats) and 4 colour bytes; vertices 0 and 2 are opposite corners.
      const float* corner0 = reinterpret_cast<const float*>(&vertices[std::size_t(q) * 64]);
      const float* corner2 = reinterpret_cast<const float*>(&vertices[std::size_t(q) * 64 + 32]);
      // Edges snap to whole pixels: at a fractional scale, anti-aliased one-unit strokes come out
      // faint and blurred (a 'k' reads as '<'); snapped ones stay crisp, one or two pixels wide.
      auto snap = [](float a, float b) { return std::pair{std::round(a), std::max(std::round(a) + 1, std::round(b))}; };
      auto [u0, u1] = snap(corner0[0] * scale, corner2[0] * scale);
      auto [v0, v1] = snap(corner0[1] * scale, corner2[1] * scale);
      float ox = std::round(x), oy = std::round(y);
      if (!vertical) fill_rect({ox + u0, oy + v0, ox + u1, oy + v1}, c);
      else fill_rect({ox + v0, oy - u1, ox + v1, oy - u0}, c);
    }
  }

 private:
  int width_, height_;
  std::vector<std::uint8_t> rgb_;
  Rect clip_{};
};

constexpr float kCapHeight = 7.f;  // stb_easy_font capitals, in font units

float text_width(const std::string& text, float scale) {
  if (text.empty()) return 0.f;
  std::string writable = font_text(text);
  // stb_easy_font_width counts one unit of spacing after the last glyph.
  return float(stb_easy_font_width(writable.data()) - 1) * scale;
}

enum class Align { Left, Center, Right };

// Text whose capitals are vertically centred on `center_y`.
void draw_label(Canvas& canvas, float x, float center_y, const std::string& text, Color c, float scale, Align align) {
  float w = text_width(text, scale);
  float left = align == Align::Left ? x : align == Align::Center ? x - w / 2 : x - w;
  canvas.draw_text(std::round(left), std::round(center_y - kCapHeight * scale / 2), text, c, scale);
}

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

// The "nice number" step (1, 2 or 5 times a power of ten) that gives about `target` intervals.
double nice_step(double range, int target) {
  double raw = range / target;
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double fraction = raw / magnitude;
  double nice = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10;
  return nice * magnitude;
}

std::string format_number(double value, double step) {
  char text[48];
  if (std::fabs(value) < step * 1e-6) value = 0;  // -0 and 1e-17 from accumulated steps
  double magnitude = std::fabs(value);
  if (value == 0) return "0";
  if (step >= 1000 && std::fmod(value, 1000) == 0 && magnitude < 1e9) {
    // Step counts: "20k" reads faster than "20000" under an axis.
    if (step >= 1e6 && std::fmod(value, 1e6) == 0) std::snprintf(text, sizeof text, "%gM", value / 1e6);
    else std::snprintf(text, sizeof text, "%gk", value / 1000);
  } else if (magnitude >= 1e6 || magnitude < 1e-4) {
    std::snprintf(text, sizeof text, "%.3g", value);
  } else {
    int decimals = std::max(0, int(-std::floor(std::log10(step) + 1e-9)));
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
  }
  return text;
}

std::vector<Tick> linear_ticks(double lo, double hi, int target) {
  double step = nice_step(hi - lo, target);
  std::vector<Tick> ticks;
  if (!std::isfinite(step) || !(step > 0)) return ticks;  // a range of +-1e308 has no useful ticks
  double first = std::ceil(lo / step - 1e-9);
  for (int i = 0; i < 1000; ++i) {
    double value = (first + i) * step;  // multiplied, not accumulated: no drift
    if (value > hi + step * 1e-9) break;
    ticks.push_back({value, format_number(value, step)});
  }
  return ticks;
}

// Ticks for a log axis whose range is [lo, hi] in log10 units. Over many decades: labelled powers of
// ten; over a few: labelled 1-2-5 multiples; both with unlabelled grid lines at the other multiples.
// Under half a decade, linear steps in value space placed on the log axis.
std::vector<Tick> log_ticks(double lo, double hi, int target) {
  if (hi - lo < 0.5) return linear_ticks(std::pow(10.0, lo), std::pow(10.0, hi), target);
  auto label = [](double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", value);
    return std::string(text);
  };
  const bool many_decades = hi - lo >= 2.5;
  const int stride = std::max(1, int(std::ceil((hi - lo) / target)));  // label every stride-th decade
  std::vector<Tick> ticks;
  for (int decade = int(std::floor(lo)); decade <= int(std::ceil(hi)); ++decade) {
    double power = std::pow(10.0, decade);
    for (int m = 1; m <= 9; ++m) {
      double value = m * power, l = std::log10(value);
      if (l < lo - 1e-9 || l > hi + 1e-9) continue;
      bool labelled = many_decades ? (m == 1 && decade % stride == 0) : (m == 1 || m == 2 || m == 5);
      if (labelled) ticks.push_back({value, label(value)});
      else if (stride == 1) ticks.push_back({value, ""});  // minor lines only while decades are wide enough
    }
  }
  return ticks;
}

// Layout and decoration shared by the scatter and the line plot.
struct PlotFrame {
  int left, top, right, bottom;  // plot area [left, right) x [top, bottom)
  Axis x, y;
  std::vector<Tick> x_ticks, y_ticks;
};

constexpr float kTitleScale = 2.f;
constexpr float kLabelScale = 1.5f;
constexpr float kTickScale = 1.5f;

// Grid lines behind the data.
void draw_grid(Canvas& canvas, const PlotFrame& f) {
  for (const auto& t : f.x_ticks) {
    float px = std::round(f.x.to_pixel(t.value));
    canvas.fill_rect({px, float(f.top), px + 1, float(f.bottom)}, t.label.empty() ? kMinorGrid : kGrid);
  }
  for (const auto& t : f.y_ticks) {
    float py = std::round(f.y.to_pixel(t.value));
    canvas.fill_rect({float(f.left), py, float(f.right), py + 1}, t.label.empty() ? kMinorGrid : kGrid);
  }
}

// Frame, tick marks, tick labels, axis labels and title, over the data.
void draw_axes(Canvas& canvas, const PlotFrame& f, const std::string& title, const std::string& x_label,
               const std::string& y_label) {
  canvas.reset_clip();
  canvas.outline_rect(f.left - 1, f.top - 1, f.right + 1, f.bottom + 1, kFrame);
  float widest_y_label = 0;
  for (const auto& t : f.x_ticks) {
    if (t.label.empty()) continue;
    float px = std::round(f.x.to_pixel(t.value));
    canvas.fill_rect({px, float(f.bottom + 1), px + 1, float(f.bottom + 6)}, kFrame);
    draw_label(canvas, px + 0.5f, f.bottom + 8 + kCapHeight * kTickScale / 2, t.label, kText, kTickScale, Align::Center);
  }
  for (const auto& t : f.y_ticks) {
    if (t.label.empty()) continue;
    float py = std::round(f.y.to_pixel(t.value));
    canvas.fill_rect({float(f.left - 6), py, float(f.left - 1), py + 1}, kFrame);
    draw_label(canvas, f.left - 9, py + 0.5f, t.label, kText, kTickScale, Align::Right);
    widest_y_label = std::max(widest_y_label, text_width(t.label, kTickScale));
  }
  if (!x_label.empty())
    draw_label(canvas, (f.left + f.right) / 2.f, f.bottom + 8 + kCapHeight * kTickScale + 12 + kCapHeight * kLabelScale / 2,
               x_label, kText, kLabelScale, Align::Center);
  if (!y_label.empty()) {
    float label_length = text_width(y_label, kLabelScale);
    float x = f.left - 9 - widest_y_label - 10 - kCapHeight * kLabelScale;
    canvas.draw_text(std::round(x), std::round((f.top + f.bottom) / 2.f + label_length / 2), y_label, kText,
                     kLabelScale, /*vertical=*/true);
  }
  if (!title.empty())
    draw_label(canvas, (f.left + f.right) / 2.f, 14 + kCapHeight * kTitleScale / 2, title, kText, kTitleScale, Align::Center);
}

// Expands a degenerate range so the axis still has a length.
void widen_if_flat(double& lo, double& hi, double fallback_half_width) {
  if (!(hi > lo)) {
    double half = std::fabs(lo) > 0 ? std::fabs(lo) * 0.1 : fallback_half_width;
    lo -= half, hi += half;
  }
}

std::string encode_png(const std::string& path, const std::uint8_t* pixels, int width, int height, int channels) {
  std::string encoded;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), std::size_t(size));
  };
  if (!stbi_write_png_to_func(append, &encoded, width, height, channels, pixels, width * channels))
    throw IOError(cat(path, ": PNG encoding failed (", width, "x", height, "x", channels, ")"));
  return encoded;
}

void write_canvas(const std::string& path, const Canvas& canvas) {
  write_png(path, canvas.pixels(), canvas.width(), canvas.height(), 3);
}

void check_plot_size(const char* what, int width, int height) {
  if (width < 200 || height < 150 || width > 8192 || height > 8192)
    throw ValueError(cat(what, ": image size ", width, "x", height, ", expected 200..8192 x 150..8192 pixels"));
}

// Legend entries in one row, centred: a swatch (disc or line) and its text.
struct LegendEntry {
  Color color;
  std::string text;
  bool line;  // a short line sample rather than a dot
};

void draw_legend_row(Canvas& canvas, float center_x, float center_y, const std::vector<LegendEntry>& entries) {
  const float swatch = 22, gap = 8, spacing = 26;
  float total = 0;
  for (const auto& e : entries) total += swatch + gap + text_width(e.text, kLabelScale) + spacing;
  total -= spacing;
  float x = std::round(center_x - total / 2);
  for (const auto& e : entries) {
    if (e.line) canvas.stroke_polyline({{x, center_y}, {x + swatch, center_y}}, e.color, 2.5f);
    else canvas.fill_disc(x + swatch / 2, center_y, 5.f, e.color);
    draw_label(canvas, x + swatch + gap, center_y, e.text, kText, kLabelScale, Align::Left);
    x += swatch + gap + text_width(e.text, kLabelScale) + spacing;
  }
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
  const float to_byte = 255.f / (hi - lo);
  const std::size_t plane = std::size_t(height) * width;
  for (int n = 0; n < count; ++n) {
    int origin_x = border + int((n % cols) * tile_width), origin_y = border + int((n / cols) * tile_height);
    const float* image = images + std::size_t(n) * channels * plane;
    for (int row = 0; row < height; ++row)
      for (int col = 0; col < width; ++col) {
        std::uint8_t rgb[3];
        bool finite = true;
        for (int ch = 0; ch < 3; ++ch) {
          float v = image[std::size_t(channels == 1 ? 0 : ch) * plane + std::size_t(row) * width + col];
          finite = finite && std::isfinite(v);
          rgb[ch] = finite ? std::uint8_t(std::lround(std::clamp((v - lo) * to_byte, 0.f, 255.f))) : 0;
        }
        Color c = finite ? Color{rgb[0], rgb[1], rgb[2]} : kNonFinite;
        for (int dy = 0; dy < scale; ++dy)
          for (int dx = 0; dx < scale; ++dx) canvas.set(origin_x + col * scale + dx, origin_y + row * scale + dy, c);
      }
  }
  write_canvas(path, canvas);
}

void write_scatter_png(const std::string& path, const float* points_a, int n_a, const float* points_b, int n_b,
                       const ScatterOptions& options) {
  check_plot_size("write_scatter_png", options.width, options.height);
  if (n_a < 0 || n_b < 0 || (n_a > 0 && !points_a) || (n_b > 0 && !points_b))
    throw ValueError(cat("write_scatter_png: ", path, ": point counts ", n_a, " and ", n_b, " with their pointers, "
                         "expected non-negative counts and non-null pointers"));

  // Range: the finite points of both sets, or the fixed range.
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
  int skipped_a = 0, skipped_b = 0;
  auto extend = [&](const float* points, int n, int& skipped) {
    for (int i = 0; i < n; ++i) {
      float px = points[2 * i], py = points[2 * i + 1];
      if (!std::isfinite(px) || !std::isfinite(py)) {
        ++skipped;
        continue;
      }
      x_lo = std::min(x_lo, double(px)), x_hi = std::max(x_hi, double(px));
      y_lo = std::min(y_lo, double(py)), y_hi = std::max(y_hi, double(py));
    }
  };
  extend(points_a, n_a, skipped_a);
  extend(points_b, n_b, skipped_b);
  if (options.fixed_range) {
    if (!(options.x_max > options.x_min) || !(options.y_max > options.y_min))
      throw ValueError(cat("write_scatter_png: ", path, ": fixed range x [", options.x_min, ", ", options.x_max, "] y [",
                           options.y_min, ", ", options.y_max, "], expected min < max"));
    x_lo = options.x_min, x_hi = options.x_max, y_lo = options.y_min, y_hi = options.y_max;
  } else {
    if (!(x_hi >= x_lo)) x_lo = -1, x_hi = 1, y_lo = -1, y_hi = 1;  // no finite point at all
    widen_if_flat(x_lo, x_hi, 1.0);
    widen_if_flat(y_lo, y_hi, 1.0);
    double pad_x = 0.05 * (x_hi - x_lo), pad_y = 0.05 * (y_hi - y_lo);
    x_lo -= pad_x, x_hi += pad_x, y_lo -= pad_y, y_hi += pad_y;
  }

  PlotFrame f;
  f.left = 72, f.right = options.width - 24, f.top = 74, f.bottom = options.height - 58;
  if (options.equal_aspect) {
    // Grow the shorter range around its centre until a unit has the same length in pixels on both axes.
    double units_per_pixel = std::max((x_hi - x_lo) / (f.right - f.left), (y_hi - y_lo) / (f.bottom - f.top));
    double cx = (x_lo + x_hi) / 2, cy = (y_lo + y_hi) / 2;
    x_lo = cx - units_per_pixel * (f.right - f.left) / 2, x_hi = cx + units_per_pixel * (f.right - f.left) / 2;
    y_lo = cy - units_per_pixel * (f.bottom - f.top) / 2, y_hi = cy + units_per_pixel * (f.bottom - f.top) / 2;
  }
  f.x = {x_lo, x_hi, float(f.left), float(f.right), false};
  f.y = {y_lo, y_hi, float(f.bottom), float(f.top), false};  // pixel y grows downwards
  f.x_ticks = linear_ticks(x_lo, x_hi, std::max(3, (f.right - f.left) / 90));
  f.y_ticks = linear_ticks(y_lo, y_hi, std::max(3, (f.bottom - f.top) / 70));

  Canvas canvas(options.width, options.height, kWhite);
  draw_grid(canvas, f);
  canvas.set_clip({float(f.left), float(f.top), float(f.right), float(f.bottom)});
  const Color color_a = kPalette[1], color_b = kPalette[0];
  auto draw_points = [&](const float* points, int n, Color c, float alpha) {
    for (int i = 0; i < n; ++i) {
      float px = points[2 * i], py = points[2 * i + 1];
      if (!std::isfinite(px) || !std::isfinite(py)) continue;
      float x = f.x.to_pixel(px), y = f.y.to_pixel(py);
      // Outside a fixed range: clipped anyway, and far-away pixel coordinates must not reach int.
      float margin = options.point_radius + 2;
      if (x < f.left - margin || x > f.right + margin || y < f.top - margin || y > f.bottom + margin) continue;
      canvas.fill_disc(x, y, options.point_radius, c, alpha);
    }
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

void write_bar_chart_png(const std::string& path, const std::vector<Bar>& bars, const BarChartOptions& options) {
  if (bars.empty()) throw ValueError(cat("write_bar_chart_png: ", path, ": no bars to draw"));
  if (options.width < 300 || options.width > 8192)
    throw ValueError(cat("write_bar_chart_png: ", path, ": width ", options.width, ", expected 300..8192 pixels"));
  const float row_height = 18, section_height = 26, bar_thickness = 11;
  const Color meets = kPalette[2], misses = kPalette[3], plain = kPalette[0];
  auto usable = [&](double v) { return std::isfinite(v) && (!options.log_x || v > 0); };

  // Rows: a section heading whenever the section changes, then the bar.
  float rows_height = 0;
  for (std::size_t k = 0; k < bars.size(); ++k) {
    if (k == 0 || bars[k].section != bars[k - 1].section) rows_height += bars[k].section.empty() ? 0 : section_height;
    rows_height += row_height;
  }
  const int height = int(std::ceil(44 + rows_height + 8 + 92));
  check_plot_size("write_bar_chart_png", options.width, height);

  // Data range: every usable value and target; a linear axis starts at 0.
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& b : bars)
    for (double v : {b.value, b.target})
      if (usable(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!(hi >= lo)) lo = options.log_x ? 1 : 0, hi = options.log_x ? 10 : 1;
  PlotFrame f;
  if (options.log_x) {
    lo = std::log10(lo) - 0.1, hi = std::log10(hi) + 0.15;  // room for the value labels
    widen_if_flat(lo, hi, 0.5);
  } else {
    lo = std::min(lo, 0.0), hi = hi + 0.15 * (hi - lo);
    widen_if_flat(lo, hi, 1.0);
  }
  float widest_label = 0;
  for (const auto& b : bars) widest_label = std::max(widest_label, text_width(b.label, kTickScale));
  f.left = int(std::ceil(16 + widest_label + 10)), f.right = options.width - 24;
  f.top = 44, f.bottom = int(44 + rows_height + 8);
  if (f.right - f.left < 100) throw ValueError(cat("write_bar_chart_png: ", path, ": labels too wide for width ", options.width));
  f.x = {lo, hi, float(f.left), float(f.right), options.log_x};
  f.x_ticks = options.log_x ? log_ticks(lo, hi, std::max(3, (f.right - f.left) / 110))
                            : linear_ticks(lo, hi, std::max(3, (f.right - f.left) / 110));

  Canvas canvas(options.width, height, kWhite);
  draw_grid(canvas, f);
  const float base = options.log_x ? float(f.left) : f.x.to_pixel(0.0);
  float y = float(f.top) + 4;
  for (std::size_t k = 0; k < bars.size(); ++k) {
    const Bar& b = bars[k];
    if ((k == 0 || b.section != bars[k - 1].section) && !b.section.empty()) {
      draw_label(canvas, 16, y + section_height - 9, b.section, kText, kLabelScale, Align::Left);
      y += section_height;
    }
    const float center = y + row_height / 2;
    draw_label(canvas, f.left - 8, center, b.label, kText, kTickScale, Align::Right);
    if (usable(b.value)) {
      const bool has_target = usable(b.target);
      const Color c = !has_target ? plain : b.value >= b.target ? meets : misses;
      const float end = f.x.to_pixel(b.value);
      canvas.fill_rect({std::min(base, end), center - bar_thickness / 2, std::max(base, end), center + bar_thickness / 2}, c);
      char text[32];
      std::snprintf(text, sizeof text, "%.3g", b.value);
      draw_label(canvas, std::max(base, end) + 5, center, text, kText, 1.2f, Align::Left);
      if (has_target) {
        const float t = std::round(f.x.to_pixel(b.target));
        canvas.fill_rect({t - 1, center - row_height / 2 + 1, t + 1, center + row_height / 2 - 1}, kFrame);
      }
    } else {
      draw_label(canvas, base + 5, center, "no value", kFrame, 1.2f, Align::Left);
    }
    y += row_height;
  }
  draw_axes(canvas, f, options.title, options.x_label + (options.log_x ? " (log scale)" : ""), "");
  draw_legend_row(canvas, (f.left + f.right) / 2.f, float(height - 18),
                  {{meets, "meets its target", false}, {misses, "misses its target", false}, {kFrame, "target", true}});
  write_canvas(path, canvas);
}

}  // namespace fm::io
