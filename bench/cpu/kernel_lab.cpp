// bench/cpu/kernel_lab.cpp — `fmbench cpu-kernels` (bench/cpu/kernel_lab.h): the ceiling first, then
// every selected row timed, printed as time, GFLOP/s and share of the ceiling.
//
// Timing: one untimed call per row (first touch of its buffers, the thread team awake), then
// `rounds` timed rounds; a round repeats the call until it has run 2 ms (small GEMMs take a few
// microseconds, below the clock's resolution), and the row reports the fastest round's time per call:
// on a shared, noisy machine the least disturbed one (the mean would measure the neighbours).
#include "bench/cpu/kernel_lab.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <omp.h>

#include "bench/cpu/fma_peak.h"
#include "core/error.h"
#include "kernels/cpu/cpu_isa.h"

namespace fm::bench {
namespace {

constexpr double kSecondsPerRound = 0.002;

double seconds_of(const std::function<void()>& run, int calls) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) run();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Seconds per call of the fastest round (see the file comment).
double fastest_call(const CpuLabCase& row, int rounds) {
  const double first = seconds_of(row.run, 1);  // warm-up, and the calibration
  const int calls = int(std::clamp(kSecondsPerRound / std::max(first, 1e-9), 1.0, 100000.0));
  double best = 1e30;
  for (int round = 0; round < rounds; ++round) best = std::min(best, seconds_of(row.run, calls) / calls);
  return best;
}

// The ceiling of a byte-counted row: a copy moving as many bytes (half read, half written), split
// between the threads as the kernels split their work, timed like the rows. Its speed depends on
// where the bytes fit (L2, L3 or memory), so each row gets a copy of its own size.
double copy_gbps(double bytes, int rounds) {
  const std::size_t count = std::size_t(bytes / 2 / sizeof(float));
  std::vector<float> source(count, 1.0f), target(count);
  const CpuLabCase copy{"copy", "", "", "", 0, [&] {
                          const std::int64_t threads = omp_get_max_threads();
#pragma omp parallel for schedule(static)
                          for (std::int64_t t = 0; t < threads; ++t) {
                            const std::size_t begin = count * t / threads, end = count * (t + 1) / threads;
                            std::memcpy(target.data() + begin, source.data() + begin, (end - begin) * sizeof(float));
                          }
                        }};
  return bytes / fastest_call(copy, rounds) * 1e-9;
}

bool selected(const CpuLabCase& row, const std::string& filter) {
  return filter.empty() || cat(row.op, " ", row.shape, " ", row.pass).find(filter) != std::string::npos;
}

}  // namespace

int run_cpu_kernel_lab(const CpuKernelLabOptions& options) {
  std::vector<CpuLabCase> all;
  add_conv_lab_cases(all);
  add_attention_lab_cases(all);
  add_gemm_lab_cases(all);
  add_group_norm_lab_cases(all);
  std::vector<const CpuLabCase*> rows;
  for (const CpuLabCase& row : all)
    if (selected(row, options.filter)) rows.push_back(&row);
  // A --filter that matches no row is a typo, not an empty measurement.
  FM_CHECK(!rows.empty(), ConfigError, "--filter \"", options.filter, "\": no row matches (rows are named \"OP SHAPE PASS\", "
           "e.g. \"", all.front().op, " ", all.front().shape, " ", all.front().pass, "\")");

  // The CSV goes to FILE.partial and is renamed over FILE at the end: a run cut short leaves no
  // half-written table under the name a script reads.
  std::FILE* csv = nullptr;
  const std::string partial = options.csv_path + ".partial";
  if (!options.csv_path.empty()) {
    csv = std::fopen(partial.c_str(), "w");
    if (!csv)
      throw IOError(cat("fmbench cpu-kernels: --csv ", options.csv_path, ": cannot open ", partial,
                        " for writing (expected a file in an existing, writable folder)"));
    std::fprintf(csv, "op,shape,pass,params,threads,isa,flops,bytes,seconds,gflops,gbps,peak_gflops,copy_gbps,"
                 "percent_of_ceiling\n");
  }

  const int threads = omp_get_max_threads();
  const char* isa = kernels::cpu_isa_name(kernels::cpu_isa());
  std::printf("fmbench cpu-kernels: the CPU kernels on the small U-Net's shapes (configs/fashion_mnist_cpu.json, "
              "batch 64), float32\n");
  CpuPeak peak;
  if (options.quick) {
    std::printf("--quick: one call per row, no peak (a smoke test, not a measurement)\n\n");
  } else {
    peak = measure_fma_peak();
    std::printf("peak: %.1f GFLOP/s on %d thread(s) (%.1f on one), measured: independent %s FMAs "
                "(bench/cpu/fma_peak.h)\n",
                peak.gflops, peak.threads, peak.gflops_per_thread, peak.isa);
    std::printf("each row: the fastest of %d rounds of >= %.0f ms; OMP_NUM_THREADS sets the threads, "
                "FM_CPU_ISA=avx2 the portable copy\n\n", options.rounds, kSecondsPerRound * 1e3);
  }
  std::printf("%-14s %-34s %-12s %10s %16s %8s\n", "op", "shape", "pass", "us/call", "rate", "of ceil.");
  for (const CpuLabCase* row : rows) {
    const int rounds = options.quick ? 1 : options.rounds;
    const double seconds = fastest_call(*row, rounds);
    const bool counts_bytes = row->bytes > 0;
    const double gflops = row->flops / seconds * 1e-9, gbps = row->bytes / seconds * 1e-9;
    // The ceiling: the FMA peak, or for a byte-counted row a copy of as many bytes (none with --quick).
    const double copy = counts_bytes && !options.quick ? copy_gbps(row->bytes, rounds) : 0;
    const double ceiling = counts_bytes ? copy : peak.gflops;
    const double percent = ceiling > 0 ? 100.0 * (counts_bytes ? gbps : gflops) / ceiling : 0;
    const std::string share = ceiling > 0 ? cat(int(percent + 0.5), "%") : std::string("-");
    std::printf("%-14s %-34s %-12s %10.1f %8.1f %-7s %8s\n", row->op.c_str(), row->shape.c_str(), row->pass.c_str(),
                seconds * 1e6, counts_bytes ? gbps : gflops, counts_bytes ? "GB/s" : "GFLOP/s", share.c_str());
    std::fflush(stdout);
    if (csv)
      std::fprintf(csv, "%s,\"%s\",%s,%s,%d,%s,%.0f,%.0f,%.9g,%.3f,%.3f,%.3f,%.3f,%.2f\n", row->op.c_str(),
                   row->shape.c_str(), row->pass.c_str(), row->params.c_str(), threads, isa, row->flops, row->bytes,
                   seconds, gflops, gbps, peak.gflops, copy, percent);
  }
  if (csv) {
    const bool written = std::fclose(csv) == 0;
    FM_CHECK(written && std::rename(partial.c_str(), options.csv_path.c_str()) == 0, IOError,
             "fmbench cpu-kernels: cannot write ", options.csv_path);
    std::printf("\nwrote %s\n", options.csv_path.c_str());
  }
  std::printf("\nconv2d: 2·N·C_out·Ho·Wo·C_in·kh·kw per pass. attention: 4·L²·D per head forward, 2.5× that "
              "backward;\nits L² exponentials are not counted (with D = 8 they cost as much as the products). "
              "gemm: 2·M·N·K.\ngroupnorm_silu: in bytes, 2 values per element forward (x in, y out), "
              "3 backward (dy, x in, dx out),\nagainst a copy of as many bytes on the same threads.\n");
  return 0;
}

}  // namespace fm::bench
