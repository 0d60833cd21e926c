// tests/test_bench_cpu_lab.cpp — the CPU kernel lab (`fmbench cpu-kernels`, bench/cpu/kernel_lab.h):
// that the peak loop does exactly the multiply-adds it counts (in each copy this CPU runs), that the
// measured peak names the copy the kernels use, that every row's operation count (or, for the
// memory-bound rows, byte count) follows its op's formula from the sizes its `params` column gives (the column bench/cpu_kernels_pytorch.py rebuilds
// PyTorch's inputs from), and that a run writes its CSV whole and refuses a --filter matching nothing.
// No times are asserted: the machines are shared and noisy.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <omp.h>

#include "bench/cpu/fma_peak.h"
#include "bench/cpu/fma_peak_kernel.h"
#include "bench/cpu/kernel_lab.h"
#include "core/error.h"
#include "kernels/cpu/cpu_isa.h"
#include "test_util.h"

namespace {

// Every chain starts at c in each lane and adds 1 per iteration: lanes · Σ_c (c + iterations).
double expected_chain_sum(int lanes, std::int64_t iterations) {
  double total = 0;
  for (int c = 0; c < fm::bench::kFmaChains; ++c) total += double(lanes) * (c + double(iterations));
  return total;
}

std::map<std::string, long> parse_params(const std::string& params) {
  std::map<std::string, long> sizes;
  std::stringstream stream(params);
  std::string item;
  while (std::getline(stream, item, ';')) {
    const auto equals = item.find('=');
    REQUIRE(equals != std::string::npos);
    sizes[item.substr(0, equals)] = std::stol(item.substr(equals + 1));
  }
  return sizes;
}

// --quick (one call per row, no peak), the rows matching `filter`, the CSV at `csv_path`.
fm::bench::CpuKernelLabOptions quick_run(const std::string& filter, const std::string& csv_path) {
  fm::bench::CpuKernelLabOptions options;
  options.quick = true;
  options.filter = filter;
  options.csv_path = csv_path;
  return options;
}

std::vector<fm::bench::CpuLabCase> all_cases() {
  std::vector<fm::bench::CpuLabCase> cases;
  fm::bench::add_conv_lab_cases(cases);
  fm::bench::add_attention_lab_cases(cases);
  fm::bench::add_gemm_lab_cases(cases);
  fm::bench::add_group_norm_lab_cases(cases);
  return cases;
}

}  // namespace

TEST_CASE("cpu lab: the peak loop does exactly the multiply-adds it counts", "[bench][cpu-lab]") {
  // a = 1, b = 1: each lane counts its iterations exactly (integers below 2^24).
  CHECK(fm::bench::fma_chains_portable(1000, 1.0f, 1.0f) == expected_chain_sum(fm::bench::kFmaLanesPortable, 1000));
  CHECK(fm::bench::fma_chains_portable(0, 1.0f, 1.0f) == expected_chain_sum(fm::bench::kFmaLanesPortable, 0));
  if (fm::kernels::cpu_isa() != fm::kernels::CpuIsa::Avx512) {
    SUCCEED("this CPU (or FM_CPU_ISA) runs the portable copy only");
    return;
  }
  CHECK(fm::bench::fma_chains_avx512(1000, 1.0f, 1.0f) == expected_chain_sum(fm::bench::kFmaLanesAvx512, 1000));
}

TEST_CASE("cpu lab: the measured peak is positive and names the kernels' copy", "[bench][cpu-lab]") {
  const fm::bench::CpuPeak peak = fm::bench::measure_fma_peak(1, 0.002);
  CHECK(peak.gflops > 0);
  CHECK(peak.gflops_per_thread > 0);
  CHECK(peak.threads == omp_get_max_threads());
  CHECK(std::string(peak.isa) == fm::kernels::cpu_isa_name(fm::kernels::cpu_isa()));
}

TEST_CASE("cpu lab: each row's operation count follows its op's formula from its params", "[bench][cpu-lab]") {
  const auto cases = all_cases();
  std::set<std::string> keys, ops;
  for (const auto& row : cases) {
    INFO(row.op << " " << row.shape << " " << row.pass << " (" << row.params << ")");
    // bench/cpu_kernels_pytorch.py and cpu_vs_pytorch.py key the rows by op|shape|pass.
    CHECK(keys.insert(row.op + "|" + row.shape + "|" + row.pass).second);
    CHECK(row.shape.find('"') == std::string::npos);  // the CSV quotes it
    ops.insert(row.op);
    const auto p = parse_params(row.params);
    if (row.op == "conv2d") {
      const long out = (p.at("size") + 2 * p.at("pad") - p.at("kernel")) / p.at("stride") + 1;
      CHECK(row.flops == 2.0 * p.at("batch") * p.at("out_channels") * out * out * p.at("in_channels") *
                             p.at("kernel") * p.at("kernel"));
    } else if (row.op == "attention") {
      const double forward = 4.0 * p.at("batch") * p.at("heads") * p.at("tokens") * p.at("tokens") * p.at("head_dim");
      CHECK(row.flops == (row.pass == "forward" ? forward : 2.5 * forward));
    } else if (row.op == "groupnorm_silu") {
      // Counted in bytes, not operations: x and y forward, dy, x and dx backward.
      const double values = double(p.at("batch")) * p.at("channels") * p.at("size") * p.at("size");
      CHECK(row.flops == 0);
      CHECK(row.bytes == (row.pass == "forward" ? 2 : 3) * values * sizeof(float));
      CHECK(p.at("channels") % p.at("groups") == 0);
      continue;
    } else {
      REQUIRE(row.op == "gemm");
      CHECK(row.flops == 2.0 * p.at("M") * p.at("N") * p.at("K"));
      CHECK(row.pass == std::string(p.at("trans_a") ? "t" : "n") + (p.at("trans_b") ? "t" : "n"));
    }
    CHECK(row.bytes == 0);  // rows that count operations are measured against the FMA peak only
  }
  CHECK(ops == std::set<std::string>{"conv2d", "attention", "gemm", "groupnorm_silu"});
}

TEST_CASE("cpu lab: a run writes its CSV whole, one line per selected row", "[bench][cpu-lab]") {
  fm::test::TempDir dir("fm_test_cpu_lab");
  const auto options = quick_run("gemm conv 32->32 7x7", dir.file("lab.csv"));
  REQUIRE(fm::bench::run_cpu_kernel_lab(options) == 0);
  std::ifstream in(options.csv_path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  REQUIRE(lines.size() == 4);  // the header and the 7×7 forward, input- and weight-gradient GEMMs
  CHECK(lines[0].rfind("op,shape,pass,params,", 0) == 0);
  for (std::size_t i = 1; i < lines.size(); ++i) CHECK(lines[i].rfind("gemm,\"conv 32->32 7x7 ", 0) == 0);
  CHECK(dir.entries() == std::vector<std::string>{"lab.csv"});  // no .partial left behind
}

TEST_CASE("cpu lab: a --filter that matches no row is refused before anything is written", "[bench][cpu-lab]") {
  fm::test::TempDir dir("fm_test_cpu_lab");
  CHECK_THROWS_AS(fm::bench::run_cpu_kernel_lab(quick_run("no such kernel", dir.file("lab.csv"))), fm::ConfigError);
  CHECK(dir.entries().empty());
}
