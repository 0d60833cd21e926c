// bench/plot.h — `fmbench plot`: the kernel lab's CSV drawn as bar charts against the targets
// (bench/plot.cpp says which rows and why). Needs no GPU.
#pragma once
#include <string>
#include <vector>

#include "bench/bar_chart.h"

namespace fm::bench {

// The bars of the two charts, before drawing (what the tests check).
struct LabChartBars {
  std::vector<Bar> bandwidth;   // SiLU, GroupNorm: % of copy bandwidth, target 80
  std::vector<Bar> vs_library;  // conv2d, conv_transpose2d (target 0.7), attention (target 1)
};

// Reads the CSVs (as plot_lab_csv below) and picks the rows bench/plot.cpp's header describes.
LabChartBars lab_chart_bars(const std::vector<std::string>& csv_paths);

// Reads CSVs written by `fmbench ... --csv` (a later file's rows replace an earlier file's rows of
// the same op, shape, pass and version: a rerun of one op over a whole run) and writes
// out_prefix + "_bandwidth.png" (SiLU, GroupNorm) and out_prefix + "_vs_library.png" (conv2d,
// conv_transpose2d, attention), each when there are rows for it. Returns the paths written. Throws
// fm::IOError for an unreadable file and fm::ValueError for a file that is not such a CSV.
std::vector<std::string> plot_lab_csv(const std::vector<std::string>& csv_paths, const std::string& out_prefix);

}  // namespace fm::bench
