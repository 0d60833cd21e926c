// tests/test_bench_plot.cpp — `fmbench plot` (bench/plot.cpp): which rows of a kernel lab CSV become
// which bars, against which targets; merging a rerun over a whole run; bad files rejected with one
// line naming the file; and the bar chart itself (bench/bar_chart.cpp): target colours, sections, log
// axis, missing values. Needs no GPU: the CSVs here are written by the test in fmbench's format.
#include <catch2/catch.hpp>
#include <array>
#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "bench/bar_chart.h"
#include "bench/plot.h"
#include "core/error.h"
#include "png_test_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using fm::test::decode_png;
using fm::test::DecodedPng;
using fm::test::sample_path;

namespace {

struct TempDir : fm::test::TempDir {
  TempDir() : fm::test::TempDir("fm_test_bench_plot") {}
};

// The header fmbench's harness writes (bench/harness.cu, write_csv_header).
const std::string kHeader =
    "op,shape,pass,version,baseline,median_ms,min_ms,repeats,flops,bytes,throughput,unit,"
    "percent_of_peak,x_baseline,max_abs_diff,valid,detail\n";

// One row with the fields the charts read; the others filled as fmbench fills them.
std::string row(const std::string& op, const std::string& shape, const std::string& pass, const std::string& version,
                const std::string& percent, const std::string& x_baseline, const std::string& valid = "OK") {
  return "\"" + op + "\",\"" + shape + "\",\"" + pass + "\",\"" + version + "\",\"base\",0.1,0.09,50,0,1e6,100,GB/s," +
         percent + "," + x_baseline + ",1e-6," + valid + ",\"\"\n";
}

// Runs `action`, which must throw fm::ValueError with a one-line message containing every fragment.
void require_value_error(const std::function<void()>& action, const std::vector<std::string>& fragments) {
  try {
    action();
  } catch (const fm::ValueError& e) {
    const std::string message = e.what();
    INFO("message: " << message);
    CHECK(message.find('\n') == std::string::npos);
    for (const auto& fragment : fragments) CHECK_THAT(message, Catch::Contains(fragment));
    return;
  }
  FAIL("no error; expected one mentioning '" << (fragments.empty() ? "" : fragments[0]) << "'");
}

const fm::bench::Bar& bar_named(const std::vector<fm::bench::Bar>& bars, const std::string& label) {
  for (const auto& b : bars)
    if (b.label == label) return b;
  FAIL("no bar labelled \"" << label << "\"");
  return bars.front();
}

}  // namespace

TEST_CASE("fmbench plot picks the engine's version of each case against its target", "[bench][plot]") {
  TempDir dir;
  const std::string run = dir.write(
      "run.csv",
      kHeader + row("silu", "256x32x28x28", "fwd", "v1 naive", "70", "0.9") +
          row("silu", "256x32x28x28", "fwd", "v2 float4", "94.5", "1.27") +
          row("group_norm", "256x32x28x28 G8", "fwd", "v2", "69.7", "1.3") +
          row("group_norm", "256x32x28x28 G8", "fwd", "v3", "88.2", "1.7") +
          row("group_norm", "64x256x64x64 G8", "fwd", "v2", "61", "2.5") +
          row("group_norm", "64x256x64x64 G8", "fwd+silu", "fused v2", "59.6", "1.6") +
          row("conv2d", "256x64x7x7>64 k3s1p1", "bwd-data", "v2 implicit GEMM", "25", "0.646") +
          row("conv2d", "256x64x7x7>64 k3s1p1", "bwd-data", "cudnn", "38", "1") +
          row("conv_transpose2d", "256x64x7x7>64 k4s2p1", "fwd", "v2 implicit GEMM", "28", "1.9", "NOT OK") +
          row("attention", "B256 H4 L196 D32", "bwd", "flash", "18", "0.906") +
          row("unet", "batch 256", "step", "custom", "", ""));
  const fm::bench::LabChartBars bars = fm::bench::lab_chart_bars({run});

  REQUIRE(bars.bandwidth.size() == 4);  // silu fwd, GroupNorm's three cases; never v1 or cuDNN rows
  const auto& silu = bar_named(bars.bandwidth, "256x32x28x28 fwd");
  CHECK(silu.value == 94.5);
  CHECK(silu.target == 80);
  CHECK(silu.section == "SiLU");
  CHECK(bar_named(bars.bandwidth, "256x32x28x28 G8 fwd (v3)").value == 88.2);  // v3 where it has a row
  CHECK(bar_named(bars.bandwidth, "64x256x64x64 G8 fwd (v2)").value == 61);    // else v2
  CHECK(bar_named(bars.bandwidth, "64x256x64x64 G8 fwd+silu (fused v2)").value == 59.6);

  REQUIRE(bars.vs_library.size() == 3);
  const auto& conv = bar_named(bars.vs_library, "256x64x7x7>64 k3s1p1 bwd-data");
  CHECK(conv.value == 0.646);
  CHECK(conv.target == 0.7);
  CHECK(std::isnan(bar_named(bars.vs_library, "256x64x7x7>64 k4s2p1 fwd").value));  // not validated: no value
  const auto& attention = bar_named(bars.vs_library, "B256 H4 L196 D32 bwd");
  CHECK(attention.value == 0.906);
  CHECK(attention.target == 1.0);

  // A rerun of one op replaces that op's rows, keeps the rest.
  const std::string rerun =
      dir.write("rerun.csv", kHeader + row("group_norm", "256x32x28x28 G8", "fwd", "v3", "89.1", "1.7"));
  const auto merged = fm::bench::lab_chart_bars({run, rerun});
  CHECK(bar_named(merged.bandwidth, "256x32x28x28 G8 fwd (v3)").value == 89.1);
  CHECK(bar_named(merged.bandwidth, "256x32x28x28 fwd").value == 94.5);
  CHECK(merged.vs_library.size() == 3);

  // Both pictures are written.
  const auto written = fm::bench::plot_lab_csv({run}, (dir.path / "lab").string());
  REQUIRE(written.size() == 2);
  for (const auto& path : written) CHECK(fs::file_size(path) > 1000);
}

TEST_CASE("fmbench plot rejects files that are not a kernel lab CSV, naming the file", "[bench][plot]") {
  TempDir dir;
  auto require_csv_error = [](const std::vector<std::string>& paths, const std::string& fragment) {
    require_value_error([&] { fm::bench::lab_chart_bars(paths); }, {fragment});
  };
  require_csv_error({dir.write("empty.csv", "")}, "empty.csv: empty file");
  require_csv_error({dir.write("other.csv", "a,b,c\n1,2,3\n")}, "other.csv: no column \"op\"");
  require_csv_error({dir.write("short.csv", kHeader + "\"silu\",\"x\"\n")}, "short.csv:2: 2 fields, expected 17");
  require_csv_error({dir.write("quote.csv", kHeader + "\"silu,x\n")}, "quote.csv:2: unterminated quoted field");
  require_csv_error({dir.write("unet.csv", kHeader + row("unet", "batch 256", "step", "custom", "", ""))},
                    "unet.csv: no rows of silu");
  require_csv_error({}, "no CSV file given");
  CHECK_THROWS_AS(fm::bench::lab_chart_bars({(dir.path / "missing.csv").string()}), fm::IOError);
}

TEST_CASE("bar chart: targets colour the bars, sections, log axis, missing values", "[bench][plot]") {
  TempDir dir;
  const double nan = std::nan("");
  // Exact fill colours of the bars (tab10 green, red, blue) counted above the legend row, which
  // has swatches of the same colours.
  auto count_colour = [](const DecodedPng& png, std::array<std::uint8_t, 3> colour) {
    int n = 0;
    for (int y = 0; y < png.height - 40; ++y)
      for (int x = 0; x < png.width; ++x) n += png.at(x, y) == colour;
    return n;
  };
  const std::array<std::uint8_t, 3> green{44, 160, 44}, red{214, 39, 40}, blue{31, 119, 180};
  std::vector<fm::bench::Bar> bars = {
      {"256x64x28x28 fwd", 0.9, 0.7, "conv2d vs cuDNN"},
      {"256x64x7x7 bwd-data", 0.5, 0.7, "conv2d vs cuDNN"},
      {"L196 D32 bwd", 1.3, 1.0, "attention vs unfused"},
      {"no target", 1.2, nan, "attention vs unfused"},
      {"not measured", nan, 1.0, "attention vs unfused"},
  };
  fm::bench::BarChartOptions options;
  options.title = "kernel lab: ours vs the library";
  options.x_label = "x library speed";
  options.log_x = true;
  const std::string path = sample_path(dir, "bars_log.png");
  fm::bench::write_bar_chart_png(path, bars, options);
  auto png = decode_png(path);
  REQUIRE(png.width == 1000);
  REQUIRE(count_colour(png, green) > 100);  // two bars meet their targets
  REQUIRE(count_colour(png, red) > 100);    // one misses
  REQUIRE(count_colour(png, blue) > 100);   // one has no target

  // Every bar at or above its target: no red bar; more rows make a taller picture.
  for (auto& b : bars) b.value = std::isfinite(b.target) ? b.target * 1.5 : b.value;
  bars.insert(bars.end(), bars.begin(), bars.end());
  options.log_x = false;
  fm::bench::write_bar_chart_png(dir.file("bars_linear.png"), bars, options);
  auto taller = decode_png(dir.file("bars_linear.png"));
  REQUIRE(taller.height > png.height);
  REQUIRE(count_colour(taller, red) == 0);
  REQUIRE(count_colour(taller, green) > 100);

  require_value_error([&] { fm::bench::write_bar_chart_png(dir.file("none.png"), {}, options); }, {"no bars"});
  options.width = 100;
  require_value_error([&] { fm::bench::write_bar_chart_png(dir.file("narrow.png"), bars, options); },
                                {"width 100", "300..8192"});
}
