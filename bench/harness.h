// bench/harness.h — the kernel lab's shared machinery: device buffers with random fills and NaN
// poison, validation against a CPU reference, timing with CUDA events and an L2 flush, the measured
// device peaks, and the result table every op prints.
//
// Layer: tools-level program (bench/ sits beside tools/ and may use every layer below). Each op file
// (bench_silu.cu, bench_conv2d.cu, ...) builds a list of BenchCase — one (shape, pass) with its
// versions, its FLOP and byte counts, a poison step and a check step — and hands each to run_case(),
// which validates every version first and then times it. Included from both .cu (nvcc, C++17) and
// .cpp (C++20) files, so it uses no C++20 features and no CUDA types.
//
// How a case is measured (run_case):
//   1. validate: for each version, poison the outputs with NaN, run once, synchronise, copy the
//      outputs back and compare with the CPU reference: |got − ref| <= atol + rtol·|ref| per element
//      (NaN never passes). A version that fails is still timed and marked NOT OK; one that throws is
//      reported with its error and not timed.
//   2. time: one run to estimate the cost, warm-up runs, then `repeats` runs, each preceded by a pass
//      over a buffer twice the size of L2 (so every run starts with a cold cache, as in training where
//      the previous layer's data has long left L2) and bracketed by CUDA events on the engine's stream.
//      Median and minimum are reported. A slow version (naive kernels) gets fewer repeats, so that no
//      version takes more than about Options::seconds_per_version; the count is in the CSV.
//   3. report: throughput is useful work over the median time — GB/s from the fewest bytes the op must
//      move for memory-bound ops, TFLOP/s from the op's FLOPs for compute-bound ops — and "% peak" is
//      that throughput over the peak measured in this process (device-to-device copy bandwidth, or
//      FP32 SGEMM without TF32). "× base" is baseline median / version median: above 1 is faster.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "cases/case_table.h"
#include "kernels/bfloat16.h"

namespace fm::bench {

// ---- options (command line) --------------------------------------------------------------------
struct Options {
  bool small_shapes = false;          // --shapes small: a quick run on reduced sizes
  int repeats = 50;                   // --repeats N: timed runs per version (fewer for slow ones)
  double seconds_per_version = 1.0;   // cap on timed runs per version (at least kMinRepeats)
  std::uint64_t seed = 20240601;      // --seed: the random inputs (each buffer gets its own stream)
  int unet_steps = 20;                // --steps: timed training steps in `unet`
  int unet_warmup = 5;                // --warmup-steps
  int unet_batch = 256;               // --batch
  std::FILE* csv = nullptr;           // --csv FILE: one row per (case, version), opened by main
  std::string filter;                 // --filter TEXT: only shapes whose name contains TEXT

  // Whether the shape named `shape` (as printed in the table) is to be run.
  bool selects(const std::string& shape) const {
    return filter.empty() || shape.find(filter) != std::string::npos;
  }
};
constexpr int kMinRepeats = 5;

// ---- device facts and measured peaks -----------------------------------------------------------
struct DeviceInfo {
  std::string name;
  int sm_count = 0;
  std::size_t l2_bytes = 0;
  std::size_t total_memory = 0;
  int cuda_runtime = 0, cuda_driver = 0;
  std::size_t cudnn_version = 0;
  int cublas_version = 0;
};
const DeviceInfo& device_info();
void print_device_banner();  // one line: device, memory, L2, CUDA / cuDNN / cuBLAS versions

struct Peaks {
  double copy_gb_per_s = 0;   // device-to-device cudaMemcpy, (bytes read + bytes written) / time
  double sgemm_tflops = 0;    // cuBLAS SGEMM, FP32 FMA pipes (CUBLAS_DEFAULT_MATH, no TF32)
  double tf32_tflops = 0;     // cuBLAS SGEMM with TF32 tensor cores (information only)
};
// Measured on first use (bench_peaks.cu) and cached for the rest of the process.
const Peaks& measured_peaks(const Options& options);
// Tells the table printer which peaks "% peak" divides by (bench_peaks.cu calls it once measured).
void remember_peaks_for_table(const Peaks* peaks);

// ---- device memory -----------------------------------------------------------------------------
// A float array in device memory from the engine's allocator (fm::kernels::cuda_malloc).
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(std::size_t count);
  ~DeviceArray();
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& other) noexcept;
  DeviceArray& operator=(DeviceArray&& other) noexcept;

  float* get() const { return data_; }
  std::size_t size() const { return count_; }
  std::size_t bytes() const { return count_ * sizeof(float); }

  // Uniform values in [low, high) from a counter-based hash of (seed, index), drawn on the device.
  void fill_uniform(std::uint64_t seed, float low, float high);
  // All bits set: a NaN in every element, so an element a kernel forgets to write fails the check.
  void poison();
  std::vector<float> to_host() const;
  void copy_from(const DeviceArray& source);  // device to device, same size

 private:
  float* data_ = nullptr;
  std::size_t count_ = 0;
};

// A bfloat16 array in device memory (the lab's rows on bfloat16 activations): made from a float
// array's values rounded to nearest even, or empty; read back widened to float (exact).
class DeviceBf16Array {
 public:
  explicit DeviceBf16Array(std::size_t count);
  explicit DeviceBf16Array(const std::vector<float>& values);
  ~DeviceBf16Array();
  DeviceBf16Array(const DeviceBf16Array&) = delete;
  DeviceBf16Array& operator=(const DeviceBf16Array&) = delete;

  bf16* get() const { return data_; }
  std::size_t size() const { return count_; }
  void poison();  // a NaN (0x7fc0) in every element
  std::vector<float> to_host() const;

 private:
  bf16* data_ = nullptr;
  std::size_t count_ = 0;
};

// A fresh seed for every buffer: Options::seed mixed with a process-wide counter.
std::uint64_t next_seed(const Options& options);
// A device array of `count` uniform values in [low, high) with a fresh seed.
DeviceArray random_array(std::size_t count, const Options& options, float low = -1.f, float high = 1.f);

// ---- host helpers --------------------------------------------------------------------------------
std::vector<double> to_double(const std::vector<float>& values);
// Runs body(begin, end) over [0, count) in contiguous chunks on all hardware threads (std::thread).
// For single-threaded reference loops only: the OpenMP references parallelise themselves.
void parallel_for(std::int64_t count, const std::function<void(std::int64_t, std::int64_t)>& body);

// ---- validation ----------------------------------------------------------------------------------
// The tolerance rules live with the case tables (cases/case_table.h), shared with the tests.
using cases::Tolerance;
using cases::scaled_tolerance;
using cases::float_sum_tolerance;

struct Check {
  bool ok = true;
  double max_abs_diff = 0;   // over every output compared
  std::string detail;        // first failure, "dx[1234]: got nan, expected 0.25 (tol 1e-05)"
  // Compares one output; `name` labels it in the detail. Sizes must match.
  void compare(const char* name, const std::vector<float>& got, const std::vector<double>& reference,
               Tolerance tolerance);
};

// ---- timing -------------------------------------------------------------------------------------
struct Timing {
  double median_ms = 0, min_ms = 0;
  int repeats = 0;
};
// Enqueues `run` on the engine's stream (fm::kernels::cuda_stream()): warm-up, then timed repeats
// with an L2 flush before each. Throws fm::DeviceError on any CUDA failure.
Timing time_on_device(const std::function<void()>& run, const Options& options);
// A pass over a buffer of 2× L2 (reads only, so L2 is left holding clean lines of that buffer).
void flush_l2();

// ---- cases and the result table -----------------------------------------------------------------
enum class Bound { Memory, Compute };

struct Version {
  std::string name;             // "v1 naive", "v2 implicit GEMM", "cudnn", ...
  std::function<void()> run;    // enqueues the pass on cuda_stream(); writes the case's outputs
  std::function<Check()> check; // this version's own check (e.g. a TF32 bound); empty: the case's
};

struct BenchCase {
  std::string op;               // "conv2d"
  std::string shape;            // as printed: "256x64x28x28 -> 64 k3s1p1"
  std::string pass;             // "fwd", "bwd-data", "bwd-weight", ...
  Bound bound = Bound::Memory;  // which peak "% peak" refers to
  double flops = 0;             // floating-point operations of the op (0: not counted)
  double bytes = 0;             // fewest bytes the op must move through device memory
  std::vector<Version> versions;
  std::string baseline;         // the version "× base" compares with (empty: none)
  std::function<void()> poison_outputs;   // NaN into every output buffer
  std::function<Check()> check_outputs;   // outputs back to the host, compared with the reference
};

// Validates every version, then times it, then prints the case's rows (and writes CSV rows).
void run_case(const BenchCase& bench_case, const Options& options);

// Table header for one op: its title and what the baseline is.
void print_table_header(const std::string& title, const std::string& baseline_note);

// One row as printed and written to CSV (also used by `peaks` and `unet` for uniform output).
struct ResultRow {
  std::string op, shape, pass, version, baseline;
  Bound bound = Bound::Memory;
  double flops = 0, bytes = 0;
  Timing timing;
  bool timed = false;
  double speedup = -1;          // baseline median / this median; < 0: none
  bool validated = false;
  Check check;
  std::string error;            // the version threw: not timed
};
void print_row(const ResultRow& row, const Options& options);
void write_csv_header(std::FILE* csv);

// "256x64x28x28" from sizes.
std::string dims_string(const std::vector<long long>& sizes);
std::string format_bytes(double bytes);  // "51.4 MB"

// Entry points of the op files (declared here so main.cpp can dispatch to them).
void run_peaks(const Options& options);
void run_silu(const Options& options);
void run_group_norm(const Options& options);
void run_conv2d(const Options& options);
void run_conv_transpose2d(const Options& options);
void run_attention(const Options& options);
void run_unet(const Options& options);

// Versions that failed validation or threw, counted since the start (main's exit code says so).
int failed_versions();
void count_failed_version();

}  // namespace fm::bench
