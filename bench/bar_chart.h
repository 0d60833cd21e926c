// bench/bar_chart.h — the kernel lab's chart: horizontal bars against per-bar targets, as a PNG.
//
// Part of the kernel lab (bench/, used by bench/plot.cpp for `fmbench plot`); drawn with core/io's
// plotting kit (core/io/plot_canvas.h), so it needs no GPU and the CPU build tests it.
#pragma once
#include <limits>
#include <string>
#include <vector>

namespace fm::bench {

struct Bar {
  std::string label;    // drawn left of the bar
  double value = 0;     // the bar's length; non-finite (or <= 0 on a log axis) shows as "no value"
  double target = std::numeric_limits<double>::quiet_NaN();  // a tick across the row; NaN: none
  std::string section;  // a heading drawn above the first bar of each run of equal sections
};

struct BarChartOptions {
  std::string title;
  std::string x_label;
  bool log_x = false;
  int width = 1000;  // pixels; the height follows the number of bars and sections
};

// Horizontal bars, one row each, the value printed at the bar's end. A bar with a target is green
// when value >= target and red when below, and its target is drawn as a dark tick across its row;
// bars without one are blue. Throws fm::ValueError for no bars or a bad width.
void write_bar_chart_png(const std::string& path, const std::vector<Bar>& bars, const BarChartOptions& options = {});

}  // namespace fm::bench
