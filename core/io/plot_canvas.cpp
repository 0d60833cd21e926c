// core/io/plot_canvas.cpp — the canvas, text, ticks and plot frame of plot_canvas.h.
#include "core/io/plot_canvas.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include "core/error.h"
#include "core/io/png.h"

// stb_easy_font is header-only with static functions; this file does not use all of them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

namespace fm::io::plot {
namespace {

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

}  // namespace

// ---- the canvas -----------------------------------------------------------------------------------

Canvas::Canvas(int width, int height, Color background) : width_(width), height_(height), rgb_(std::size_t(width) * height * 3) {
  for (std::size_t i = 0; i < rgb_.size(); i += 3) rgb_[i] = background.r, rgb_[i + 1] = background.g, rgb_[i + 2] = background.b;
  reset_clip();
}

void Canvas::fill_rect(Rect r, Color c, float alpha) {
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

void Canvas::outline_rect(int x0, int y0, int x1, int y1, Color c) {
  fill_rect({float(x0), float(y0), float(x1), float(y0 + 1)}, c);
  fill_rect({float(x0), float(y1 - 1), float(x1), float(y1)}, c);
  fill_rect({float(x0), float(y0), float(x0 + 1), float(y1)}, c);
  fill_rect({float(x1 - 1), float(y0), float(x1), float(y1)}, c);
}

void Canvas::fill_disc(float cx, float cy, float radius, Color c, float alpha) {
  int x_begin = int(std::floor(cx - radius - 1)), x_end = int(std::ceil(cx + radius + 1));
  int y_begin = int(std::floor(cy - radius - 1)), y_end = int(std::ceil(cy + radius + 1));
  for (int y = y_begin; y <= y_end; ++y)
    for (int x = x_begin; x <= x_end; ++x) {
      float distance = std::hypot(x + 0.5f - cx, y + 0.5f - cy);
      float coverage = std::clamp(radius + 0.5f - distance, 0.f, 1.f);
      if (coverage > 0) blend(x, y, c, alpha * coverage);
    }
}

void Canvas::stroke_polyline(const std::vector<Point>& points, Color c, float line_width, float alpha) {
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

void Canvas::draw_text(float x, float y, const std::string& text, Color c, float scale, bool vertical) {
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

float text_width(const std::string& text, float scale) {
  if (text.empty()) return 0.f;
  std::string writable = font_text(text);
  // stb_easy_font_width counts one unit of spacing after the last glyph.
  return float(stb_easy_font_width(writable.data()) - 1) * scale;
}

void draw_label(Canvas& canvas, float x, float center_y, const std::string& text, Color c, float scale, Align align) {
  float w = text_width(text, scale);
  float left = align == Align::Left ? x : align == Align::Center ? x - w / 2 : x - w;
  canvas.draw_text(std::round(left), std::round(center_y - kCapHeight * scale / 2), text, c, scale);
}

// ---- axes -----------------------------------------------------------------------------------------

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

// ---- the plot frame ---------------------------------------------------------------------------------

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

void widen_if_flat(double& lo, double& hi, double fallback_half_width) {
  if (!(hi > lo)) {
    double half = std::fabs(lo) > 0 ? std::fabs(lo) * 0.1 : fallback_half_width;
    lo -= half, hi += half;
  }
}

int PointBounds::add(const float* points, std::size_t n) {
  int skipped = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const float px = points[2 * i], py = points[2 * i + 1];
    if (!std::isfinite(px) || !std::isfinite(py)) {
      ++skipped;
      continue;
    }
    x_lo = std::min(x_lo, double(px)), x_hi = std::max(x_hi, double(px));
    y_lo = std::min(y_lo, double(py)), y_hi = std::max(y_hi, double(py));
  }
  return skipped;
}

void set_point_axes(PlotFrame& f, double x_lo, double x_hi, double y_lo, double y_hi, bool equal_aspect) {
  if (equal_aspect) {
    const double units_per_pixel = std::max((x_hi - x_lo) / (f.right - f.left), (y_hi - y_lo) / (f.bottom - f.top));
    const double cx = (x_lo + x_hi) / 2, cy = (y_lo + y_hi) / 2;
    x_lo = cx - units_per_pixel * (f.right - f.left) / 2, x_hi = cx + units_per_pixel * (f.right - f.left) / 2;
    y_lo = cy - units_per_pixel * (f.bottom - f.top) / 2, y_hi = cy + units_per_pixel * (f.bottom - f.top) / 2;
  }
  f.x = {x_lo, x_hi, float(f.left), float(f.right), false};
  f.y = {y_lo, y_hi, float(f.bottom), float(f.top), false};  // pixel y grows downwards
  f.x_ticks = linear_ticks(x_lo, x_hi, std::max(3, (f.right - f.left) / 90));
  f.y_ticks = linear_ticks(y_lo, y_hi, std::max(3, (f.bottom - f.top) / 70));
}

void set_point_axes(PlotFrame& f, const PointBounds& bounds, bool equal_aspect) {
  double x_lo = bounds.x_lo, x_hi = bounds.x_hi, y_lo = bounds.y_lo, y_hi = bounds.y_hi;
  if (!(x_hi >= x_lo)) x_lo = -1, x_hi = 1, y_lo = -1, y_hi = 1;  // no finite point at all
  widen_if_flat(x_lo, x_hi, 1.0);
  widen_if_flat(y_lo, y_hi, 1.0);
  const double pad_x = 0.05 * (x_hi - x_lo), pad_y = 0.05 * (y_hi - y_lo);
  set_point_axes(f, x_lo - pad_x, x_hi + pad_x, y_lo - pad_y, y_hi + pad_y, equal_aspect);
}

void draw_point(Canvas& canvas, const PlotFrame& f, float px, float py, float radius, Color c, float alpha) {
  if (!std::isfinite(px) || !std::isfinite(py)) return;
  const float x = f.x.to_pixel(px), y = f.y.to_pixel(py), margin = radius + 2;
  if (x < f.left - margin || x > f.right + margin || y < f.top - margin || y > f.bottom + margin) return;
  canvas.fill_disc(x, y, radius, c, alpha);
}

void draw_image_tile(Canvas& canvas, int x, int y, const float* image, int channels, int height, int width,
                     float lo, float hi, int scale) {
  const float to_byte = 255.f / (hi - lo);
  const std::size_t plane = std::size_t(height) * std::size_t(width);
  for (int row = 0; row < height; ++row)
    for (int col = 0; col < width; ++col) {
      std::uint8_t rgb[3];
      bool finite = true;
      for (int ch = 0; ch < 3; ++ch) {
        const float v = image[std::size_t(channels == 1 ? 0 : ch) * plane + std::size_t(row) * width + col];
        finite = finite && std::isfinite(v);
        rgb[ch] = finite ? std::uint8_t(std::lround(std::clamp((v - lo) * to_byte, 0.f, 255.f))) : 0;
      }
      const Color c = finite ? Color{rgb[0], rgb[1], rgb[2]} : kNonFinite;
      for (int dy = 0; dy < scale; ++dy)
        for (int dx = 0; dx < scale; ++dx) canvas.set(x + col * scale + dx, y + row * scale + dy, c);
    }
}

void check_plot_size(const char* what, int width, int height) {
  if (width < 200 || height < 150 || width > 8192 || height > 8192)
    throw ValueError(cat(what, ": image size ", width, "x", height, ", expected 200..8192 x 150..8192 pixels"));
}

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

void write_canvas(const std::string& path, const Canvas& canvas) {
  write_png(path, canvas.pixels(), canvas.width(), canvas.height(), 3);
}

}  // namespace fm::io::plot
