// bench/bench_peaks.cu — the two ceilings every other table divides by, measured on this device in
// this process (datasheet numbers are leads, not measurements):
//
//   copy   cudaMemcpyAsync device → device of a 1 GiB buffer (256 MiB with --shapes small);
//          bandwidth = (bytes read + bytes written) / time = 2·size / time. Memory-bound ops
//          (SiLU, GroupNorm) report "% peak" against this.
//   SGEMM  cuBLAS C = A·B, 8192³ (4096³ small), FP32 on the FMA pipes: CUBLAS_DEFAULT_MATH, no TF32
//          (the engine's convolutions and attention are FP32 without TF32, so this is their
//          ceiling); FLOPs = 2·n³. Compute-bound ops (conv, attention) report "% peak" against this.
//   TF32   the same SGEMM with CUBLAS_TF32_TENSOR_OP_MATH, for information only: what the tensor
//          cores would give if we accepted 10-bit mantissas.
//
// Run:  fmbench peaks [--shapes small] [--repeats N] [--csv FILE]
// Each measurement is validated first: the copy compares every byte, the GEMMs compare 64 sampled
// entries with float64 dot products on the host.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

#include "bench/harness.h"
#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/runtime.h"

namespace fm::bench {
namespace {

struct PeakState {
  bool measured = false;
  Peaks peaks;
  std::vector<ResultRow> rows;  // printed by `fmbench peaks`
};
PeakState& peak_state() {
  static PeakState state;
  return state;
}

// A handle of our own, so switching it to TF32 cannot leak into the engine's (no-TF32) handle.
cublasHandle_t peaks_cublas_handle() {
  static cublasHandle_t handle = [] {
    cublasHandle_t h;
    FM_CUBLAS_CHECK(cublasCreate(&h));
    FM_CUBLAS_CHECK(cublasSetStream(h, kernels::cuda_stream()));
    return h;
  }();
  return handle;
}

ResultRow measure_copy(const Options& options) {
  // 1 GiB, or less if the device is short of memory (two buffers plus the flush buffer must fit).
  std::size_t bytes = options.small_shapes ? std::size_t(256) << 20 : std::size_t(1) << 30;
  std::size_t free_bytes = 0, total_bytes = 0;
  FM_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  while (bytes > (std::size_t(64) << 20) && 3 * bytes > free_bytes) bytes /= 2;
  const std::size_t count = bytes / sizeof(float);
  DeviceArray source = random_array(count, options), destination(count);
  auto run = [&] {
    FM_CUDA_CHECK(cudaMemcpyAsync(destination.get(), source.get(), bytes, cudaMemcpyDeviceToDevice,
                                  kernels::cuda_stream()));
  };

  ResultRow row;
  row.op = "peaks";
  row.shape = format_bytes(double(bytes)) + " buffer";
  row.pass = "copy";
  row.version = "cudaMemcpy D2D";
  row.bound = Bound::Memory;
  row.bytes = 2.0 * double(bytes);  // every byte is read once and written once
  destination.poison();
  run();
  kernels::cuda_synchronize();
  const std::vector<float> sent = source.to_host(), received = destination.to_host();
  row.validated = true;
  if (std::memcmp(sent.data(), received.data(), bytes) != 0) {
    row.check.ok = false;
    row.check.detail = "the copy differs from its source";
    row.check.max_abs_diff = std::numeric_limits<double>::infinity();
  }
  row.timing = time_on_device(run, options);
  row.timed = true;
  return row;
}

ResultRow measure_sgemm(const Options& options, bool tf32) {
  const int n = options.small_shapes ? 4096 : 8192;
  const std::size_t count = std::size_t(n) * n;
  DeviceArray a = random_array(count, options), b = random_array(count, options), c(count);
  cublasHandle_t handle = peaks_cublas_handle();
  FM_CUBLAS_CHECK(cublasSetMathMode(handle, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  const float one = 1.f, zero = 0.f;
  auto run = [&] {
    // Column-major C = A·B; square, so the row/column convention does not matter for timing.
    FM_CUBLAS_CHECK(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.get(), n, b.get(), n, &zero,
                                c.get(), n));
  };

  ResultRow row;
  row.op = "peaks";
  row.shape = std::to_string(n) + "^3";
  row.pass = "sgemm";
  row.version = tf32 ? "cuBLAS TF32 (info)" : "cuBLAS FP32 no TF32";
  row.bound = Bound::Compute;
  row.flops = 2.0 * double(n) * n * n;
  row.bytes = 3.0 * double(count) * sizeof(float);

  c.poison();
  run();
  kernels::cuda_synchronize();
  const std::vector<float> host_a = a.to_host(), host_b = b.to_host(), host_c = c.to_host();
  // 64 sampled entries against float64 dot products; both corners included (tile edges).
  std::vector<float> got;
  std::vector<double> expected;
  std::uint64_t state = next_seed(options);
  for (int s = 0; s < 64; ++s) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    int i = int((state >> 33) % std::uint64_t(n)), j = int((state >> 13) % std::uint64_t(n));
    if (s == 0) i = j = 0;
    if (s == 1) i = j = n - 1;
    double sum = 0;
    for (int k = 0; k < n; ++k) sum += double(host_a[std::size_t(k) * n + i]) * host_b[std::size_t(j) * n + k];
    expected.push_back(sum);
    got.push_back(host_c[std::size_t(j) * n + i]);
  }
  // FP32: a sum of n products in [-1, 1] rounds by ~FLT_EPSILON·n/8 (the conv tests' rule, 4·ε·n).
  // TF32: the inputs keep 10 mantissa bits (relative error 2^-11 each), so each product is off by
  // ~1e-3 of its size and the sum by ~1e-3·√n/3 as a random walk; 2e-3·√n is ~6 times that.
  const Tolerance tolerance = tf32 ? Tolerance{2e-3 * std::sqrt(double(n)), 0.0}
                                   : Tolerance{1e-6 + 4.0 * FLT_EPSILON * n, 1e-5};
  row.check.compare("C", got, expected, tolerance);
  row.validated = true;
  row.timing = time_on_device(run, options);
  row.timed = true;
  FM_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
  return row;
}

double rate_of(const ResultRow& row) {
  const double seconds = row.timing.median_ms * 1e-3;
  return row.bound == Bound::Compute ? row.flops / seconds / 1e12 : row.bytes / seconds / 1e9;
}

}  // namespace

const Peaks& measured_peaks(const Options& options) {
  PeakState& state = peak_state();
  if (state.measured) return state.peaks;
  state.measured = true;  // set first: the timing below must not recurse into measuring again
  state.rows.push_back(measure_copy(options));
  state.rows.push_back(measure_sgemm(options, false));
  state.rows.push_back(measure_sgemm(options, true));
  state.peaks.copy_gb_per_s = rate_of(state.rows[0]);
  state.peaks.sgemm_tflops = rate_of(state.rows[1]);
  state.peaks.tf32_tflops = rate_of(state.rows[2]);
  for (const ResultRow& row : state.rows)
    if (!row.check.ok) count_failed_version();
  remember_peaks_for_table(&state.peaks);
  std::printf("peaks (measured now; `fmbench peaks` shows the table): copy %.0f GB/s, SGEMM FP32 %.2f TFLOP/s, "
              "TF32 %.2f TFLOP/s\n",
              state.peaks.copy_gb_per_s, state.peaks.sgemm_tflops, state.peaks.tf32_tflops);
  return state.peaks;
}

void run_peaks(const Options& options) {
  measured_peaks(options);
  print_table_header("peaks: the ceilings for % peak",
                     "copy: (read + write bytes) / time; SGEMM: 2n^3 / time. % peak of the TF32 row is against FP32.");
  for (const ResultRow& row : peak_state().rows) print_row(row, options);
}

}  // namespace fm::bench
