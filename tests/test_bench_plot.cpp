// tests/test_bench_plot.cpp — `fmbench plot` (bench/plot.cpp): which rows of a kernel lab CSV become
// which bars, against which targets; merging a rerun over a whole run; bad files rejected with one
// line naming the file. Needs no GPU: the CSVs here are written by the test in fmbench's format.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/plot.h"
#include "core/error.h"
#include "test_util.h"

namespace fs = std::filesystem;

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

const fm::io::Bar& bar_named(const std::vector<fm::io::Bar>& bars, const std::string& label) {
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
  auto require_value_error = [](const std::vector<std::string>& paths, const std::string& fragment) {
    try {
      fm::bench::lab_chart_bars(paths);
      FAIL("no error; expected one mentioning '" << fragment << "'");
    } catch (const fm::ValueError& e) {
      const std::string message = e.what();
      CHECK(message.find('\n') == std::string::npos);
      CHECK_THAT(message, Catch::Contains(fragment));
    }
  };
  require_value_error({dir.write("empty.csv", "")}, "empty.csv: empty file");
  require_value_error({dir.write("other.csv", "a,b,c\n1,2,3\n")}, "other.csv: no column \"op\"");
  require_value_error({dir.write("short.csv", kHeader + "\"silu\",\"x\"\n")}, "short.csv:2: 2 fields, expected 17");
  require_value_error({dir.write("quote.csv", kHeader + "\"silu,x\n")}, "quote.csv:2: unterminated quoted field");
  require_value_error({dir.write("unet.csv", kHeader + row("unet", "batch 256", "step", "custom", "", ""))},
                      "unet.csv: no rows of silu");
  require_value_error({}, "no CSV file given");
  CHECK_THROWS_AS(fm::bench::lab_chart_bars({(dir.path / "missing.csv").string()}), fm::IOError);
}
