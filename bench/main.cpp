// bench/main.cpp — `fmbench`, the kernel lab's command line.
//
//   fmbench <subcommand> [--shapes default|small] [--repeats N] [--csv FILE] [--seed S]
//           [--seconds-per-version X] [--steps N] [--warmup-steps N] [--batch N] [--filter TEXT]
//   subcommands: peaks silu group_norm conv2d conv_transpose2d attention unet all
//   fmbench plot --csv FILE[,FILE] --out PREFIX   (a run's CSV as bar charts; bench/plot.h; no GPU)
//   fmbench --list [OP]                           (the case tables of cases/; no GPU)
//   fmbench cpu-ops [--quick] [--repeats N] [--iterations N] [--filter TEXT] [--csv FILE]
//                                                 (per-op overhead of tiny CPU ops; bench/cpu_ops.h; no GPU)
//   fmbench cpu-kernels [--quick] [--repeats N] [--filter TEXT] [--csv FILE]
//                                                 (the CPU kernels against the measured FMA peak;
//                                                 bench/cpu/kernel_lab.h; no GPU)
//   fmbench step [--shapes small] [--steps N] [--warmup-steps N] [--batch N] [--device cpu|cuda|auto]
//                                                 (a training step's device-runtime counters; bench/step.h;
//                                                 any device: CUDA, the CUDA emulator, the CPU)
//
// `all` runs peaks, silu, group_norm, conv2d, conv_transpose2d, attention, unet in that order (the
// ceilings first, then the ops from cheapest to most expensive, then the whole model).
// Exit codes: 0 all versions validated (or no GPU here: nothing to measure), 1 some version NOT OK
// or failed, 2 bad command line or an error that stopped the run.
//
// No CUDA call happens before the arguments are parsed and fm::kernels::cuda_available() says there
// is a device: on a machine with the toolkit but no GPU, `fmbench all` prints one line and exits 0,
// so scripts can call it anywhere. plot, --list and cpu-ops never reach that check: they make no CUDA
// call (nor does cpu-kernels). A build without the CUDA backend (-DFM_CUDA=OFF) has only those four and
// step (FM_BENCH_GPU unset); the CUDA emulator build has the same five.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "bench/cpu/kernel_lab.h"
#include "bench/cpu_ops.h"
#include "bench/harness.h"
#include "bench/plot.h"
#include "bench/step.h"
#include "cases/case_table.h"
#include "core/error.h"
#include "kernels/runtime.h"
#include "tools/cli_args.h"

namespace {

const char* kUsage =
    "usage: fmbench <subcommand> [options]\n"
    "  subcommands:\n"
    "    peaks             device-to-device copy bandwidth and cuBLAS SGEMM (FP32; TF32 for information)\n"
    "    silu              SiLU forward/backward: naive, vectorised, generic elementwise, cuDNN\n"
    "    group_norm        GroupNorm (+ fused SiLU) forward/backward: naive, optimised, unfused vs fused\n"
    "    conv2d            the U-Net's convolutions: fwd, bwd-data, bwd-weight; naive, implicit GEMM, cuDNN\n"
    "    conv_transpose2d  the U-Net's 4x4 stride-2 upsamplers, same passes and versions\n"
    "    attention         the U-Net's attention heads: fwd, bwd; flash vs unfused cuBLAS\n"
    "    unet              training throughput of the default U-Net (custom vs library kernels)\n"
    "    all               everything above, in that order\n"
    "    plot              draw an earlier run's CSV (--csv FILE, or A,B: B's rows replace A's) as bar charts\n"
    "                      against the targets: --out PREFIX writes PREFIX_bandwidth.png and\n"
    "                      PREFIX_vs_library.png (no GPU needed)\n"
    "    --list [OP]       the case tables the lab and the tests share: shapes, implementations,\n"
    "                      tolerances (every op, or OP's; no GPU needed)\n"
    "    cpu-ops           ns per tiny CPU op (x + b on [1]/[8], matmul 1x1, relu, gelu, sum, reshape)\n"
    "                      without grad, recording, and its backward, against issue 13's targets\n"
    "                      (<= 300 ns / <= 400 ns); no GPU needed, also in CPU-only builds.\n"
    "                      --quick: a short smoke run; --iterations N: exactly N ops per repeat\n"
    "                      (for callgrind); --repeats N (default 21), --filter TEXT, --csv FILE\n"
    "    cpu-kernels       the CPU kernels (conv2d's three passes, attention, GEMM, GroupNorm + SiLU) on the\n"
    "                      small U-Net's shapes: us/call, GFLOP/s and % of this machine's measured FMA peak\n"
    "                      (GroupNorm + SiLU: GB/s and % of a copy of as many bytes); no GPU needed,\n"
    "                      also in CPU-only builds. --repeats N rounds per row (default 15; the fastest),\n"
    "                      --filter TEXT (\"OP SHAPE PASS\", e.g. \"conv2d 64x32x7\"), --csv FILE, --quick\n"
    "                      (a smoke run). Against PyTorch: python3 bench/cpu_vs_pytorch.py --only kernels\n"
    "    step              per training step of the moons MLP and a U-Net, unconditional, on bfloat16 activations\n"
    "                      (CUDA) and class-conditional\n"
    "                      (FlowTrainer, as fmtrain trains):\n"
    "                      kernel launches, library calls, host<->device syncs, cudaMalloc calls, allocator\n"
    "                      requests, copies and bytes each way, ms/step, and on CUDA the host's microseconds\n"
    "                      of bookkeeping per replayed update; any device (CUDA, the emulator:\n"
    "                      use --shapes small; CPU: no counters). --steps N (default 5) counted after\n"
    "                      --warmup-steps N (default 3, at least 2); --batch N: the U-Net's batch; --device cpu|cuda|auto\n"
    "  options:\n"
    "    --shapes default|small   the seed U-Net at batch 256 (default), or a quick run on small sizes\n"
    "    --repeats N              timed runs per version (default 50; slow versions get fewer)\n"
    "    --seconds-per-version X  cap on timed runs per version (default 1; at least 5 runs)\n"
    "    --csv FILE               also write every row to FILE (CSV, one row per case and version)\n"
    "    --seed S                 seed of the random inputs (default 20240601)\n"
    "    --filter TEXT            only the shapes whose name contains TEXT, e.g. \"256x64x7x7>64 k3\"\n"
    "                             (to profile one shape: ncu ... fmbench conv2d --filter ...;\n"
    "                             cpu-ops: the rows whose \"op shapes mode\" contains TEXT)\n"
    "    --steps N                unet: timed training steps (default 20)\n"
    "    --warmup-steps N         unet: untimed steps first (default 5)\n"
    "    --batch N                unet: batch size (default 256; 32 with --shapes small)\n";

using Runner = void (*)(const fm::bench::Options&);

// The GPU subcommands are compiled only with the CUDA backend (bench/*.cu); a CPU-only build knows
// their names (so `fmbench silu` there says "nothing to measure", like a machine without a GPU).
#ifdef FM_BENCH_GPU
#define FM_GPU_RUNNER(function) fm::bench::function
#else
#define FM_GPU_RUNNER(function) nullptr
#endif

const std::vector<std::pair<std::string, Runner>>& subcommands() {
  static const std::vector<std::pair<std::string, Runner>> list = {
      {"peaks", FM_GPU_RUNNER(run_peaks)},
      {"silu", FM_GPU_RUNNER(run_silu)},
      {"group_norm", FM_GPU_RUNNER(run_group_norm)},
      {"conv2d", FM_GPU_RUNNER(run_conv2d)},
      {"conv_transpose2d", FM_GPU_RUNNER(run_conv_transpose2d)},
      {"attention", FM_GPU_RUNNER(run_attention)},
      {"unet", FM_GPU_RUNNER(run_unet)},
  };
  return list;
}

// `fmbench step`: its own options (bench/step.h).
int step_main(const fm::tools::CliArgs& args) {
  using fm::ConfigError;
  for (const char* flag : {"--seed", "--seconds-per-version", "--repeats", "--csv", "--filter"})
    if (args.has(flag)) throw ConfigError(fm::cat(flag, ": not an option of fmbench step"));
  fm::bench::StepBenchOptions options;
  const std::string shapes = args.get("--shapes", "default");
  if (shapes != "default" && shapes != "small")
    throw ConfigError(fm::cat("--shapes: expected default or small, got \"", shapes, "\""));
  options.small_shapes = shapes == "small";
  if (args.has("--steps")) options.steps = int(args.integer("--steps", 1, 1000000));
  // At least 2: a recorded step (the ", graph" rows) runs once eagerly and is recorded at the second.
  if (args.has("--warmup-steps")) options.warmup_steps = int(args.integer("--warmup-steps", 2, 1000000));
  if (args.has("--batch")) options.batch = int(args.integer("--batch", 1, 1 << 20));
  options.device = args.get("--device", "auto");
  return fm::bench::run_step_bench(options);
}

// `fmbench cpu-kernels`: its own options (bench/cpu/kernel_lab.h); the others are refused.
int cpu_kernels_main(const fm::tools::CliArgs& args) {
  using fm::ConfigError;
  for (const char* flag : {"--shapes", "--seed", "--seconds-per-version", "--steps", "--warmup-steps", "--batch",
                           "--iterations", "--device", "--out"})
    if (args.has(flag)) throw ConfigError(fm::cat(flag, ": not an option of fmbench cpu-kernels"));
  fm::bench::CpuKernelLabOptions options;
  if (args.has("--repeats")) options.rounds = int(args.integer("--repeats", 1, 100000));
  options.quick = args.has("--quick");
  options.filter = args.get("--filter", "");
  options.csv_path = args.get("--csv", "");
  return fm::bench::run_cpu_kernel_lab(options);
}

// `fmbench cpu-ops`: its own options (bench/cpu_ops.h); the GPU lab's options are refused.
int cpu_ops_main(const fm::tools::CliArgs& args) {
  using fm::ConfigError;
  for (const char* flag : {"--shapes", "--seed", "--seconds-per-version", "--steps", "--warmup-steps", "--batch"})
    if (args.has(flag)) throw ConfigError(fm::cat(flag, ": not an option of fmbench cpu-ops"));
  fm::bench::CpuOpsOptions options;
  if (args.has("--repeats")) options.repeats = int(args.integer("--repeats", 1, 100000));
  if (args.has("--iterations")) options.iterations = args.integer("--iterations", 1, 1LL << 40);
  options.quick = args.has("--quick");
  options.filter = args.get("--filter", "");
  options.csv_path = args.get("--csv", "");
  return fm::bench::run_cpu_ops(options);
}

#ifdef FM_BENCH_GPU
// Runs the selected GPU subcommands (a device is present); returns the exit code.
int run_gpu_subcommands(const std::vector<std::pair<std::string, Runner>>& selected, fm::bench::Options& options,
                        const std::string& csv_path) {
  using namespace fm;
  try {
    if (!csv_path.empty()) {
      options.csv = std::fopen(csv_path.c_str(), "w");
      if (!options.csv) throw IOError(cat("fmbench: cannot open ", csv_path, " for writing"));
      bench::write_csv_header(options.csv);
    }
    bench::print_device_banner();
    std::printf("shapes: %s | repeats: %d (median of CUDA-event times, L2 flushed before each) | seed %llu\n",
                options.small_shapes ? "small" : "default (seed U-Net, batch 256)", options.repeats,
                static_cast<unsigned long long>(options.seed));
    for (const auto& [name, run] : selected) {
      const auto start = std::chrono::steady_clock::now();
      run(options);
      // Wall time including host-side validation: what a call on a lent GPU costs.
      std::printf("-- %s: %.1f s\n", name.c_str(),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fmbench: %s\n", e.what());
    if (options.csv) std::fclose(options.csv);
    return 2;
  }
  if (options.csv) std::fclose(options.csv);

  const int failed = bench::failed_versions();
  if (failed) {
    std::printf("\nfmbench: %d version(s) NOT OK or failed (see the valid column)\n", failed);
    return 1;
  }
  std::puts("\nfmbench: every version validated OK");
  return 0;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  using namespace fm;
  bench::Options options;
  std::vector<std::pair<std::string, Runner>> selected;
  std::string csv_path;
  try {
    tools::CliArgs args(argc, argv,
                        {"--shapes", "--repeats", "--csv", "--seed", "--seconds-per-version", "--steps",
                         "--warmup-steps", "--batch", "--filter", "--out", "--iterations", "--device"},
                        {"--help", "--list", "--quick"});
    if (args.has("--help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    // --list [OP]: the case tables (shapes, implementations, tolerances) the lab and the tests share;
    // no GPU needed.
    if (args.has("--list")) {
      if (args.positional().size() > 1)
        throw ConfigError("fmbench --list: expected at most one op name (run fmbench --help)");
      const std::string only = args.positional().empty() ? "" : args.positional()[0];
      const auto listings = cases::all_op_listings();
      bool known = only.empty();
      for (const auto& listing : listings) known = known || listing.op == only;
      if (!known) throw ConfigError(cat("fmbench --list: no case table for op \"", only, "\""));
      cases::print_listing(stdout, listings, only);
      return 0;
    }
    if (args.positional().size() != 1)
      throw ConfigError(cat("fmbench: expected one subcommand, got ", args.positional().size(),
                            " (run fmbench --help)"));
    const std::string name = args.positional()[0];
    if (name == "plot") {
      if (!args.has("--csv") || !args.has("--out"))
        throw ConfigError("fmbench plot: expected --csv FILE (written by fmbench --csv) and --out PREFIX");
      const std::string prefix = args.get("--out", "");
      if (prefix.empty() || prefix.back() == '/')
        throw ConfigError(cat("fmbench plot: --out \"", prefix, "\" is not a file-name prefix; expected one such as DIR/lab "
                              "(it writes DIR/lab_bandwidth.png and DIR/lab_vs_library.png)"));
      // --csv A,B: B's rows replace A's of the same op, shape, pass and version.
      std::vector<std::string> csv_paths;
      const std::string list = args.get("--csv", "");
      for (std::size_t start = 0; start <= list.size();) {
        const std::size_t comma = std::min(list.find(',', start), list.size());
        if (comma > start) csv_paths.push_back(list.substr(start, comma - start));
        start = comma + 1;
      }
      for (const auto& path : bench::plot_lab_csv(csv_paths, args.get("--out", "")))
        std::printf("wrote %s\n", path.c_str());
      return 0;
    }
    // The CPU kernels: no CUDA call either.
    if (name == "cpu-kernels") return cpu_kernels_main(args);
    if (args.has("--out")) throw ConfigError("--out: only for fmbench plot");
    // Tiny CPU ops: no CUDA call, so it runs anywhere (and in builds without the CUDA backend).
    if (name == "cpu-ops") return cpu_ops_main(args);
    if (args.has("--quick") || args.has("--iterations"))
      throw ConfigError("--quick, --iterations: only for fmbench cpu-ops (--quick also for cpu-kernels)");
    // A training step's counters: any device, every build with fmbench.
    if (name == "step") return step_main(args);
    if (args.has("--device")) throw ConfigError("--device: only for fmbench step");
    for (const auto& entry : subcommands())
      if (name == "all" || name == entry.first) selected.push_back(entry);
    if (selected.empty())
      throw ConfigError(cat("fmbench: unknown subcommand \"", name,
                            "\"; expected peaks, silu, group_norm, conv2d, conv_transpose2d, attention, unet, all, plot, cpu-ops, cpu-kernels or step"));
    const std::string shapes = args.get("--shapes", "default");
    if (shapes != "default" && shapes != "small")
      throw ConfigError(cat("--shapes: expected default or small, got \"", shapes, "\""));
    options.small_shapes = shapes == "small";
    if (args.has("--repeats")) options.repeats = int(args.integer("--repeats", 1, 100000));
    if (args.has("--seconds-per-version"))
      options.seconds_per_version = args.number("--seconds-per-version", 0.001, 3600);
    if (args.has("--seed")) options.seed = args.seed();
    if (args.has("--steps")) options.unet_steps = int(args.integer("--steps", 1, 1000000));
    if (args.has("--warmup-steps")) options.unet_warmup = int(args.integer("--warmup-steps", 0, 1000000));
    if (options.small_shapes) options.unet_batch = 32;
    if (args.has("--batch")) options.unet_batch = int(args.integer("--batch", 1, 1 << 20));
    csv_path = args.get("--csv", "");
    options.filter = args.get("--filter", "");
  } catch (const Error& e) {
    // One line that names the tool, as every tool's refusals do (some messages name it already).
    const std::string message = e.what();
    std::fprintf(stderr, "%s%s\n", message.rfind("fmbench", 0) == 0 ? "" : "fmbench: ", message.c_str());
    return 2;
  }

#ifdef FM_BENCH_GPU
  // The first CUDA call of the process: probes the driver, never throws.
  if (!kernels::cuda_available()) {
    std::puts("fmbench: no CUDA device; nothing to measure");
    return 0;
  }
  return run_gpu_subcommands(selected, options, csv_path);
#else
  std::puts("fmbench: built without the CUDA backend (-DFM_CUDA=OFF); nothing to measure "
            "(cpu-ops, cpu-kernels, plot and --list run in this build)");
  return 0;
#endif
}
