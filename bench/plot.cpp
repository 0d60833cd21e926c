// bench/plot.cpp — `fmbench plot`: kernel lab CSVs (`fmbench ... --csv FILE`) drawn as two bar
// charts against the targets, so a run's standing reads at a glance:
//   PREFIX_bandwidth.png    memory-bound ops, % of the measured copy bandwidth (target 80%):
//                           SiLU v2, and GroupNorm as the engine runs it (v3 where a row exists,
//                           else v2; the fused versions for the +SiLU passes)
//   PREFIX_vs_library.png   compute-bound ops, speed relative to the library (log axis): conv2d and
//                           conv_transpose2d v2 vs cuDNN (target 0.7×), flash vs unfused attention
//                           (target 1×: faster)
// A row whose version did not validate is drawn as "no value". Needs no GPU: it only reads the CSV.
#include "bench/plot.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/io/atomic_file.h"

namespace fm::bench {
namespace {

using CsvRow = std::map<std::string, std::string>;

// Splits one CSV line: fields separated by commas, a field in double quotes may hold commas, and ""
// inside quotes is one quote (what fmbench's csv_quote writes).
std::vector<std::string> split_csv_line(const std::string& line, const std::string& path, int line_number) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') fields.back() += '"', ++i;
      else if (c == '"') quoted = false;
      else fields.back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c != '\r') {
      fields.back() += c;
    }
  }
  if (quoted) throw ValueError(cat(path, ":", line_number, ": unterminated quoted field"));
  return fields;
}

std::vector<CsvRow> read_lab_csv(const std::string& path) {
  const std::string text = io::read_file_bytes(path);
  std::vector<std::string> header;
  std::vector<CsvRow> rows;
  std::size_t start = 0;
  for (int line_number = 1; start < text.size(); ++line_number) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line == "\r") continue;
    std::vector<std::string> fields = split_csv_line(line, path, line_number);
    if (header.empty()) {
      header = fields;
      for (const char* needed : {"op", "shape", "pass", "version", "percent_of_peak", "x_baseline", "valid"}) {
        bool found = false;
        for (const auto& name : header) found = found || name == needed;
        if (!found)
          throw ValueError(cat(path, ": no column \"", needed, "\"; expected the header `fmbench --csv` writes"));
      }
      continue;
    }
    if (fields.size() != header.size())
      throw ValueError(cat(path, ":", line_number, ": ", fields.size(), " fields, expected ", header.size(),
                           " as in the header"));
    CsvRow row;
    for (std::size_t k = 0; k < header.size(); ++k) row[header[k]] = fields[k];
    rows.push_back(std::move(row));
  }
  if (header.empty()) throw ValueError(cat(path, ": empty file; expected a CSV written by `fmbench --csv`"));
  return rows;
}

// The row's value in `column`, or NaN when the version did not validate or the field is empty.
double value_of(const CsvRow& row, const std::string& column) {
  const std::string& text = row.at(column);
  if (row.at("valid") != "OK" || text.empty()) return std::nan("");
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  return end && *end == '\0' ? value : std::nan("");
}

const CsvRow* find_row(const std::vector<CsvRow>& rows, const std::string& op, const std::string& shape,
                       const std::string& pass, const std::string& version) {
  for (const auto& row : rows)
    if (row.at("op") == op && row.at("shape") == shape && row.at("pass") == pass && row.at("version") == version)
      return &row;
  return nullptr;
}

// (shape, pass) pairs of `op` in the order the CSV has them.
std::vector<std::pair<std::string, std::string>> cases_of(const std::vector<CsvRow>& rows, const std::string& op) {
  std::vector<std::pair<std::string, std::string>> cases;
  for (const auto& row : rows) {
    if (row.at("op") != op) continue;
    std::pair<std::string, std::string> key{row.at("shape"), row.at("pass")};
    bool seen = false;
    for (const auto& c : cases) seen = seen || c == key;
    if (!seen) cases.push_back(key);
  }
  return cases;
}

// One bar per case of `op`, from the first of `versions` that has a row for that case.
void add_bars(std::vector<Bar>& bars, const std::vector<CsvRow>& rows, const std::string& op,
              const std::string& section, const std::string& column, double target,
              const std::vector<std::string>& plain_versions, const std::vector<std::string>& fused_versions) {
  for (const auto& [shape, pass] : cases_of(rows, op)) {
    const bool fused = pass.find("+silu") != std::string::npos;
    for (const auto& version : fused ? fused_versions : plain_versions) {
      if (const CsvRow* row = find_row(rows, op, shape, pass, version)) {
        // The version in the label only where the op's bars mix versions.
        const bool mixed = plain_versions.size() > 1 || fused_versions.size() > 1;
        bars.push_back({mixed ? cat(shape, " ", pass, " (", version, ")") : cat(shape, " ", pass),
                        value_of(*row, column), target, section});
        break;
      }
    }
  }
}

}  // namespace

LabChartBars lab_chart_bars(const std::vector<std::string>& csv_paths) {
  if (csv_paths.empty()) throw ValueError("fmbench plot: no CSV file given");
  // Later files replace earlier files' rows of the same op, shape, pass and version.
  std::vector<CsvRow> rows;
  for (const auto& path : csv_paths)
    for (auto& row : read_lab_csv(path)) {
      CsvRow* same = nullptr;
      for (auto& kept : rows)
        if (kept.at("op") == row.at("op") && kept.at("shape") == row.at("shape") && kept.at("pass") == row.at("pass") &&
            kept.at("version") == row.at("version"))
          same = &kept;
      if (same) *same = std::move(row);
      else rows.push_back(std::move(row));
    }

  LabChartBars bars;
  add_bars(bars.bandwidth, rows, "silu", "SiLU", "percent_of_peak", 80, {"v2 float4"}, {});
  add_bars(bars.bandwidth, rows, "group_norm", "GroupNorm (+SiLU), as the engine runs it", "percent_of_peak", 80,
           {"v3", "v2"}, {"fused v3", "fused v2"});
  add_bars(bars.vs_library, rows, "conv2d", "conv2d: v2 implicit GEMM vs cuDNN", "x_baseline", 0.7,
           {"v2 implicit GEMM"}, {});
  add_bars(bars.vs_library, rows, "conv_transpose2d", "conv_transpose2d: v2 vs cuDNN", "x_baseline", 0.7,
           {"v2 implicit GEMM"}, {});
  add_bars(bars.vs_library, rows, "attention", "attention: flash vs unfused cuBLAS", "x_baseline", 1.0, {"flash"},
           {});
  if (bars.bandwidth.empty() && bars.vs_library.empty())
    throw ValueError(cat(csv_paths.back(), csv_paths.size() > 1 ? " (and the files before it)" : "",
                         ": no rows of silu, group_norm, conv2d, conv_transpose2d or attention"));
  return bars;
}

std::vector<std::string> plot_lab_csv(const std::vector<std::string>& csv_paths, const std::string& out_prefix) {
  const LabChartBars bars = lab_chart_bars(csv_paths);
  const std::vector<Bar>& bandwidth = bars.bandwidth;
  const std::vector<Bar>& vs_library = bars.vs_library;
  std::vector<std::string> written;
  if (!bandwidth.empty()) {
    BarChartOptions options;
    options.title = "memory-bound kernels: % of copy bandwidth";
    options.x_label = "% of copy bandwidth";
    const std::string path = out_prefix + "_bandwidth.png";
    write_bar_chart_png(path, bandwidth, options);
    written.push_back(path);
  }
  if (!vs_library.empty()) {
    BarChartOptions options;
    options.title = "compute-bound kernels: speed vs the library";
    options.x_label = "x the library's speed";
    options.log_x = true;
    const std::string path = out_prefix + "_vs_library.png";
    write_bar_chart_png(path, vs_library, options);
    written.push_back(path);
  }
  return written;
}

}  // namespace fm::bench
