// bench/harness.cu — the kernel lab's machinery (see harness.h): random fills, NaN poison, the L2
// flush, event timing, validation and the table/CSV output.
//
// Everything runs on the engine's one stream (fm::kernels::cuda_stream()), so the kernels under test,
// the flushes and the timing events are ordered exactly as enqueued.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <thread>

#include "bench/harness.h"
#include "core/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/library_handles.h"
#include "kernels/runtime.h"

namespace fm::bench {

// =================================================================================================
// Device facts
// =================================================================================================

const DeviceInfo& device_info() {
  static DeviceInfo info = [] {
    DeviceInfo d;
    cudaDeviceProp prop{};
    FM_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    d.name = prop.name;
    d.sm_count = prop.multiProcessorCount;
    d.l2_bytes = std::size_t(prop.l2CacheSize);
    d.total_memory = prop.totalGlobalMem;
    FM_CUDA_CHECK(cudaRuntimeGetVersion(&d.cuda_runtime));
    FM_CUDA_CHECK(cudaDriverGetVersion(&d.cuda_driver));
    d.cudnn_version = cudnnGetVersion();
    FM_CUBLAS_CHECK(cublasGetVersion(kernels::cublas_handle(), &d.cublas_version));
    return d;
  }();
  return info;
}

void print_device_banner() {
  const DeviceInfo& d = device_info();
  auto cuda_version = [](int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); };
  std::printf("device: %s | %d SMs | %.1f GiB | L2 %.1f MiB | CUDA runtime %s, driver %s | cuDNN %zu.%zu.%zu | cuBLAS %d\n",
              d.name.c_str(), d.sm_count, double(d.total_memory) / (1 << 30), double(d.l2_bytes) / (1 << 20),
              cuda_version(d.cuda_runtime).c_str(), cuda_version(d.cuda_driver).c_str(), d.cudnn_version / 10000,
              d.cudnn_version % 10000 / 100, d.cudnn_version % 100, d.cublas_version);
}

// =================================================================================================
// Device memory, random fills, poison
// =================================================================================================

namespace {

// splitmix64's finaliser: a good 64-bit mix, so hash(seed, i) streams are independent per index.
__host__ __device__ inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

__global__ void fill_uniform_kernel(float* out, std::size_t count, std::uint64_t seed, float low, float span) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const std::uint64_t bits = mix64(seed + 0x9e3779b97f4a7c15ULL * (i + 1));
    const float unit = float(bits >> 40) * (1.0f / 16777216.0f);  // 24 random bits: [0, 1)
    out[i] = low + span * unit;
  }
}

// Reads `count` float4s and writes only if their sum hits an impossible value, so the compiler keeps
// the loads while no line of the flush buffer becomes dirty (a dirty line would cost a write-back
// inside the next timed kernel).
__global__ void read_through_kernel(const float4* data, std::size_t count, float* sink) {
  float sum = 0.f;
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const float4 v = data[i];
    sum += v.x + v.y + v.z + v.w;
  }
  if (sum == -1.2345e30f) *sink = sum;
}

int grid_for(std::size_t count, int threads) {
  const int sms = device_info().sm_count;
  const std::size_t needed = (count + threads - 1) / std::size_t(threads);
  return int(std::max<std::size_t>(1, std::min<std::size_t>(needed, std::size_t(sms) * 32)));
}

std::atomic<std::uint64_t> seed_counter{0};
std::atomic<int> failed_version_count{0};

}  // namespace

int failed_versions() { return failed_version_count.load(); }
void count_failed_version() { ++failed_version_count; }

std::uint64_t next_seed(const Options& options) { return mix64(options.seed ^ mix64(++seed_counter)); }

DeviceArray::DeviceArray(std::size_t count)
    : data_(static_cast<float*>(kernels::cuda_malloc(count * sizeof(float)))), count_(count) {}

DeviceArray::~DeviceArray() {
  if (data_) kernels::cuda_free(data_);
}

DeviceArray::DeviceArray(DeviceArray&& other) noexcept : data_(other.data_), count_(other.count_) {
  other.data_ = nullptr;
  other.count_ = 0;
}

DeviceArray& DeviceArray::operator=(DeviceArray&& other) noexcept {
  if (this != &other) {
    if (data_) kernels::cuda_free(data_);
    data_ = other.data_;
    count_ = other.count_;
    other.data_ = nullptr;
    other.count_ = 0;
  }
  return *this;
}

void DeviceArray::fill_uniform(std::uint64_t seed, float low, float high) {
  if (count_ == 0) return;
  fill_uniform_kernel<<<grid_for(count_, 256), 256, 0, kernels::cuda_stream()>>>(data_, count_, seed, low, high - low);
  FM_CUDA_CHECK_LAUNCH();
}

void DeviceArray::poison() {
  FM_CUDA_CHECK(cudaMemsetAsync(data_, 0xFF, bytes(), kernels::cuda_stream()));
}

std::vector<float> DeviceArray::to_host() const {
  std::vector<float> host(count_);
  if (count_) kernels::cuda_copy_to_host(host.data(), data_, bytes());
  return host;
}

void DeviceArray::copy_from(const DeviceArray& source) {
  FM_CHECK(source.size() == count_, ValueError, "DeviceArray::copy_from: sizes ", source.size(), " and ", count_);
  if (count_) kernels::cuda_copy_device_to_device(data_, source.get(), bytes());
}

DeviceBf16Array::DeviceBf16Array(std::size_t count)
    : data_(static_cast<bf16*>(kernels::cuda_malloc(count * sizeof(bf16)))), count_(count) {}

DeviceBf16Array::DeviceBf16Array(const std::vector<float>& values) : DeviceBf16Array(values.size()) {
  std::vector<bf16> host(values.begin(), values.end());  // each rounded to nearest even
  if (count_) kernels::cuda_copy_to_device(data_, host.data(), count_ * sizeof(bf16));
}

DeviceBf16Array::~DeviceBf16Array() {
  if (data_) kernels::cuda_free(data_);
}

void DeviceBf16Array::poison() {
  const std::vector<bf16> nan(count_, bf16::from_bits(0x7fc0));
  if (count_) kernels::cuda_copy_to_device(data_, nan.data(), count_ * sizeof(bf16));
}

std::vector<float> DeviceBf16Array::to_host() const {
  std::vector<bf16> host(count_);
  if (count_) kernels::cuda_copy_to_host(host.data(), data_, count_ * sizeof(bf16));
  return {host.begin(), host.end()};
}

DeviceArray random_array(std::size_t count, const Options& options, float low, float high) {
  DeviceArray array(count);
  array.fill_uniform(next_seed(options), low, high);
  return array;
}

// =================================================================================================
// Host helpers
// =================================================================================================

void parallel_for(std::int64_t count, const std::function<void(std::int64_t, std::int64_t)>& body) {
  if (count <= 0) return;
  const std::int64_t threads =
      std::max<std::int64_t>(1, std::min<std::int64_t>(count, std::int64_t(std::thread::hardware_concurrency())));
  if (threads == 1) {
    body(0, count);
    return;
  }
  std::vector<std::thread> workers;
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(threads));
  for (std::int64_t t = 0; t < threads; ++t) {
    const std::int64_t begin = count * t / threads, end = count * (t + 1) / threads;
    workers.emplace_back([&, t, begin, end] {
      try {
        body(begin, end);
      } catch (...) {
        errors[std::size_t(t)] = std::current_exception();
      }
    });
  }
  for (auto& w : workers) w.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

std::vector<double> to_double(const std::vector<float>& values) {
  std::vector<double> out(values.size());
  parallel_for(std::int64_t(values.size()), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) out[std::size_t(i)] = values[std::size_t(i)];
  });
  return out;
}

// =================================================================================================
// Validation
// =================================================================================================

void Check::compare(const char* name, const std::vector<float>& got, const std::vector<double>& reference,
                    Tolerance tolerance) {
  if (got.size() != reference.size()) {
    ok = false;
    if (detail.empty()) detail = cat(name, ": ", got.size(), " elements, reference has ", reference.size());
    return;
  }
  std::size_t bad = 0, first_bad = 0;
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], r = reference[i];
    const double diff = std::fabs(g - r);
    // Written so that NaN fails: every comparison with NaN is false.
    if (!(diff <= tolerance.atol + tolerance.rtol * std::fabs(r))) {
      if (bad++ == 0) first_bad = i;
    }
    if (!(diff <= worst)) worst = std::isfinite(diff) ? diff : std::numeric_limits<double>::infinity();
  }
  max_abs_diff = std::max(max_abs_diff, worst);
  if (bad) {
    ok = false;
    if (detail.empty()) {
      char buffer[256];
      std::snprintf(buffer, sizeof buffer, "%s: %zu of %zu out of tolerance; first [%zu] got %.6g, expected %.6g (atol %.2g, rtol %.2g)",
                    name, bad, got.size(), first_bad, double(got[first_bad]), reference[first_bad], tolerance.atol,
                    tolerance.rtol);
      detail = buffer;
    }
  }
}

// =================================================================================================
// Timing
// =================================================================================================

void flush_l2() {
  // Allocated once and deliberately never freed: a static DeviceArray would be destroyed at exit
  // after the engine's allocator (also a function-local static), and free into a dead allocator.
  static DeviceArray* buffer = nullptr;
  static DeviceArray* sink = nullptr;
  if (!buffer) {
    // Twice the L2 size (at least 64 MiB, should the attribute read 0), a multiple of float4.
    const std::size_t bytes = std::max<std::size_t>(2 * device_info().l2_bytes, std::size_t(64) << 20);
    buffer = new DeviceArray(bytes / sizeof(float) / 4 * 4);
    buffer->fill_uniform(1, 0.f, 1.f);
    sink = new DeviceArray(1);
  }
  const std::size_t vectors = buffer->size() / 4;
  read_through_kernel<<<grid_for(vectors, 512), 512, 0, kernels::cuda_stream()>>>(
      reinterpret_cast<const float4*>(buffer->get()), vectors, sink->get());
  FM_CUDA_CHECK_LAUNCH();
}

namespace {
// Timing events, created on first use and reused by every case.
struct EventPool {
  std::vector<cudaEvent_t> events;
  cudaEvent_t get(std::size_t i) {
    while (events.size() <= i) {
      cudaEvent_t e;
      FM_CUDA_CHECK(cudaEventCreate(&e));
      events.push_back(e);
    }
    return events[i];
  }
};
EventPool& event_pool() {
  static EventPool pool;
  return pool;
}

float elapsed_ms(cudaEvent_t start, cudaEvent_t stop) {
  float ms = 0;
  FM_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  return ms;
}
}  // namespace

Timing time_on_device(const std::function<void()>& run, const Options& options) {
  cudaStream_t stream = kernels::cuda_stream();
  EventPool& pool = event_pool();

  // One cold run to learn the cost (it also absorbs any first-call setup left after validation).
  flush_l2();
  FM_CUDA_CHECK(cudaEventRecord(pool.get(0), stream));
  run();
  FM_CUDA_CHECK(cudaEventRecord(pool.get(1), stream));
  FM_CUDA_CHECK(cudaEventSynchronize(pool.get(1)));
  const double estimate_ms = std::max(1e-3, double(elapsed_ms(pool.get(0), pool.get(1))));

  // Warm-up: clocks up, caches of plans and allocator blocks filled; skipped for very slow versions.
  const int warmup = estimate_ms < 5.0 ? 3 : estimate_ms < 100.0 ? 1 : 0;
  for (int i = 0; i < warmup; ++i) run();

  int repeats = std::max(1, options.repeats);
  const double budget_ms = options.seconds_per_version * 1000.0;
  if (estimate_ms * repeats > budget_ms)
    repeats = std::min(repeats, std::max(kMinRepeats, int(budget_ms / estimate_ms)));

  for (int r = 0; r < repeats; ++r) {
    flush_l2();
    FM_CUDA_CHECK(cudaEventRecord(pool.get(2 * std::size_t(r)), stream));
    run();
    FM_CUDA_CHECK(cudaEventRecord(pool.get(2 * std::size_t(r) + 1), stream));
  }
  FM_CUDA_CHECK(cudaEventSynchronize(pool.get(2 * std::size_t(repeats) - 1)));
  FM_CUDA_CHECK(cudaGetLastError());

  std::vector<double> times(static_cast<std::size_t>(repeats));
  for (int r = 0; r < repeats; ++r)
    times[std::size_t(r)] = elapsed_ms(pool.get(2 * std::size_t(r)), pool.get(2 * std::size_t(r) + 1));
  std::sort(times.begin(), times.end());
  Timing timing;
  timing.repeats = repeats;
  timing.min_ms = times.front();
  timing.median_ms = repeats % 2 ? times[std::size_t(repeats / 2)]
                                 : 0.5 * (times[std::size_t(repeats / 2 - 1)] + times[std::size_t(repeats / 2)]);
  return timing;
}

// =================================================================================================
// Table and CSV
// =================================================================================================

std::string dims_string(const std::vector<long long>& sizes) {
  std::string s;
  for (std::size_t i = 0; i < sizes.size(); ++i) s += (i ? "x" : "") + std::to_string(sizes[i]);
  return s;
}

std::string format_bytes(double bytes) {
  char buffer[64];
  if (bytes >= 1e9) std::snprintf(buffer, sizeof buffer, "%.2f GB", bytes / 1e9);
  else if (bytes >= 1e6) std::snprintf(buffer, sizeof buffer, "%.1f MB", bytes / 1e6);
  else std::snprintf(buffer, sizeof buffer, "%.1f kB", bytes / 1e3);
  return buffer;
}

namespace {
constexpr const char* kRowFormat = "%-32s %-11s %-22s %10s %10s %14s %7s %8s %9s  %s\n";

std::string csv_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Useful work per second for this row, in the unit of its bound, and that over the measured peak.
void throughput_of(const ResultRow& row, const Peaks* peaks, double* value, const char** unit, double* percent) {
  *value = -1;
  *percent = -1;
  *unit = "";
  if (!row.timed || row.timing.median_ms <= 0) return;
  const double seconds = row.timing.median_ms * 1e-3;
  if (row.bound == Bound::Compute && row.flops > 0) {
    *value = row.flops / seconds / 1e12;
    *unit = "TFLOP/s";
    if (peaks && peaks->sgemm_tflops > 0) *percent = 100.0 * *value / peaks->sgemm_tflops;
  } else if (row.bytes > 0) {
    *value = row.bytes / seconds / 1e9;
    *unit = "GB/s";
    if (peaks && peaks->copy_gb_per_s > 0) *percent = 100.0 * *value / peaks->copy_gb_per_s;
  }
}

const Peaks* cached_peaks = nullptr;  // set once measured_peaks has run (bench_peaks.cu)
}  // namespace

void remember_peaks_for_table(const Peaks* peaks) { cached_peaks = peaks; }

void print_table_header(const std::string& title, const std::string& baseline_note) {
  std::printf("\n== %s ==\n", title.c_str());
  if (!baseline_note.empty()) std::printf("   %s\n", baseline_note.c_str());
  std::printf(kRowFormat, "shape", "pass", "version", "median ms", "min ms", "throughput", "% peak", "x base",
              "max|diff|", "valid");
}

void write_csv_header(std::FILE* csv) {
  if (!csv) return;
  std::fprintf(csv, "op,shape,pass,version,baseline,median_ms,min_ms,repeats,flops,bytes,throughput,unit,"
                    "percent_of_peak,x_baseline,max_abs_diff,valid,detail\n");
}

void print_row(const ResultRow& row, const Options& options) {
  double value, percent;
  const char* unit;
  throughput_of(row, cached_peaks, &value, &unit, &percent);
  char median[32] = "-", minimum[32] = "-", rate[32] = "-", peak[32] = "-", speedup[32] = "-", diff[32] = "-";
  if (row.timed) {
    std::snprintf(median, sizeof median, "%.4f", row.timing.median_ms);
    std::snprintf(minimum, sizeof minimum, "%.4f", row.timing.min_ms);
  }
  if (value >= 0) std::snprintf(rate, sizeof rate, value >= 100 ? "%.0f %s" : "%.2f %s", value, unit);
  if (percent >= 0) std::snprintf(peak, sizeof peak, "%.1f%%", percent);
  if (row.speedup > 0) std::snprintf(speedup, sizeof speedup, "%.2fx", row.speedup);
  if (row.validated) std::snprintf(diff, sizeof diff, "%.1e", row.check.max_abs_diff);
  std::string valid;
  if (!row.error.empty()) valid = "ERROR: " + row.error;
  else if (!row.validated) valid = "-";
  else if (row.check.ok) valid = "OK";
  else valid = "NOT OK: " + row.check.detail;
  std::printf(kRowFormat, row.shape.c_str(), row.pass.c_str(), row.version.c_str(), median, minimum, rate, peak,
              speedup, diff, valid.c_str());
  std::fflush(stdout);

  if (options.csv) {
    std::fprintf(options.csv, "%s,%s,%s,%s,%s,", csv_quote(row.op).c_str(), csv_quote(row.shape).c_str(),
                 csv_quote(row.pass).c_str(), csv_quote(row.version).c_str(), csv_quote(row.baseline).c_str());
    if (row.timed) std::fprintf(options.csv, "%.6f,%.6f,%d,", row.timing.median_ms, row.timing.min_ms, row.timing.repeats);
    else std::fprintf(options.csv, ",,,");
    std::fprintf(options.csv, "%.6g,%.6g,", row.flops, row.bytes);
    if (value >= 0) std::fprintf(options.csv, "%.6g,%s,", value, unit);
    else std::fprintf(options.csv, ",,");
    if (percent >= 0) std::fprintf(options.csv, "%.4g,", percent);
    else std::fprintf(options.csv, ",");
    if (row.speedup > 0) std::fprintf(options.csv, "%.4g,", row.speedup);
    else std::fprintf(options.csv, ",");
    if (row.validated) std::fprintf(options.csv, "%.4g,", row.check.max_abs_diff);
    else std::fprintf(options.csv, ",");
    const char* validity = !row.error.empty() ? "ERROR" : !row.validated ? "" : row.check.ok ? "OK" : "NOT OK";
    std::fprintf(options.csv, "%s,%s\n", validity,
                 csv_quote(!row.error.empty() ? row.error : row.check.detail).c_str());
    std::fflush(options.csv);
  }
}

// =================================================================================================
// A case: validate every version, time every version, print the rows
// =================================================================================================

void run_case(const BenchCase& bench_case, const Options& options) {
  const Peaks& peaks = measured_peaks(options);
  std::vector<ResultRow> rows;

  // The two numbers to write down before optimising: work and the fewest bytes, each over its peak.
  {
    const double compute_ms = bench_case.flops > 0 && peaks.sgemm_tflops > 0
                                  ? bench_case.flops / (peaks.sgemm_tflops * 1e12) * 1e3 : 0;
    const double memory_ms = peaks.copy_gb_per_s > 0 ? bench_case.bytes / (peaks.copy_gb_per_s * 1e9) * 1e3 : 0;
    char work[96] = "FLOPs not counted (memory-bound)";
    if (bench_case.flops > 0)
      std::snprintf(work, sizeof work, "%.3f GFLOP -> %.4f ms at SGEMM peak", bench_case.flops / 1e9, compute_ms);
    std::printf("   # %s %s: %s | %s at least -> %.4f ms at copy bandwidth | floor %.4f ms\n",
                bench_case.shape.c_str(), bench_case.pass.c_str(), work, format_bytes(bench_case.bytes).c_str(),
                memory_ms, std::max(compute_ms, memory_ms));
  }

  for (const Version& version : bench_case.versions) {
    ResultRow row;
    row.op = bench_case.op;
    row.shape = bench_case.shape;
    row.pass = bench_case.pass;
    row.version = version.name;
    row.baseline = bench_case.baseline;
    row.bound = bench_case.bound;
    row.flops = bench_case.flops;
    row.bytes = bench_case.bytes;
    // 1. validate (outputs poisoned first, so an unwritten element is a NaN and fails)
    try {
      bench_case.poison_outputs();
      version.run();
      kernels::cuda_synchronize();
      FM_CUDA_CHECK(cudaGetLastError());
      row.check = version.check ? version.check() : bench_case.check_outputs();
      row.validated = true;
    } catch (const std::exception& e) {
      row.error = e.what();
    }
    // 2. time (a NOT OK version still gets a time: the table shows both)
    if (row.error.empty()) {
      try {
        row.timing = time_on_device(version.run, options);
        row.timed = true;
      } catch (const std::exception& e) {
        row.error = std::string("while timing: ") + e.what();
      }
    }
    if (!row.error.empty() || (row.validated && !row.check.ok)) count_failed_version();
    rows.push_back(row);
  }

  const ResultRow* baseline = nullptr;
  for (const ResultRow& row : rows)
    if (row.version == bench_case.baseline && row.timed) baseline = &row;
  for (ResultRow& row : rows) {
    if (baseline && row.timed) row.speedup = baseline->timing.median_ms / row.timing.median_ms;
    print_row(row, options);
  }
}

}  // namespace fm::bench
