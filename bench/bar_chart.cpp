// bench/bar_chart.cpp — horizontal bar charts with targets (see bar_chart.h).
#include "bench/bar_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/io/plot_canvas.h"

namespace fm::bench {

using namespace io::plot;  // Canvas, PlotFrame, ticks, labels, legends, colours

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

}  // namespace fm::bench
