// tests/test_util.h — helpers shared by the test suites: GPU skips, tolerance checks that print
// useful failures, NaN poisoning, central-difference gradcheck, a temporary folder, small IDX files.
#pragma once
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fm::test {

// True when a CUDA device is present. Never touches CUDA in a CPU-only build.
bool gpu_available();
// Reports the case `test_name` as skipped and why (prints "SKIPPED: "NAME": WHY") and, when CTest runs
// this single case, exits with code 77 so CTest shows it as "Skipped", not "Passed". Otherwise the
// caller returns. The one place every skip of the suites goes through.
void report_skipped(const char* test_name, const std::string& why);
// Called when a GPU test has no GPU: report_skipped, counted. Running a whole binary by hand, the case
// returns early and the binary prints how many GPU cases it skipped at the end.
void skip_gpu_test(const char* test_name);
int skipped_gpu_cases();

// Element-wise closeness |a - b| <= atol + rtol * |b| (b is the reference). Returns "" when all
// elements pass, else a report: count of failures, the worst one (index, values) and the first few.
template <typename T>
std::string compare_close(const T* actual, const T* expected, std::size_t n, double atol, double rtol);

// Normalised mean-squared error sum (a-b)^2 / sum b^2 (ggml's metric).
template <typename T>
double normalized_mse(const T* actual, const T* expected, std::size_t n);

// Fill with NaN so an element a kernel forgets to write fails the comparison.
void poison(float* data, std::size_t n);
void poison(double* data, std::size_t n);

// Deterministic random fill for kernel-level tests (uniform in [lo, hi)).
void fill_uniform(float* data, std::size_t n, std::uint64_t seed, float lo = -1.f, float hi = 1.f);
void fill_uniform(double* data, std::size_t n, std::uint64_t seed, double lo = -1.0, double hi = 1.0);

// A fresh, empty folder under the system's temp directory (named `prefix`, the process id and a
// counter), removed with everything in it when the object goes out of scope.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "fm_test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const;                            // path of `name` inside
  std::string write(const std::string& name, const std::string& bytes) const;  // writes it, returns its path
  std::vector<std::string> entries() const;                                   // names inside, sorted
};

// A folder `name` inside this process's scratch folder for `prefix` (a TempDir kept until the process
// exits, so everything the cases wrote is removed then), emptied first. With `create` false the folder
// itself is left absent (its parent exists), for tools that refuse to write into an existing folder.
std::filesystem::path scratch_path(const std::string& prefix, const std::string& name, bool create = true);

// Plain (not gzipped) MNIST-format IDX files for the data-set tests: `count` images of rows×cols whose
// pixel p of image i is (37·i + 11·p) mod 256, so no two of the first 256 images are alike, and, when
// labels_path is given, a label file giving image i the label i mod `classes`.
void write_idx_images(const std::string& images_path, std::uint32_t count, std::uint32_t rows, std::uint32_t cols,
                      const std::string& labels_path = "", int classes = 10);

}  // namespace fm::test

// Skip the current GPU test case visibly when no device is present.
#define FM_REQUIRE_GPU()                                          \
  do {                                                            \
    if (!::fm::test::gpu_available()) {                           \
      ::fm::test::skip_gpu_test(Catch::getResultCapture().getCurrentTestName().c_str()); \
      return;                                                     \
    }                                                             \
  } while (0)

// REQUIRE that two buffers agree within tolerance, printing the report on failure.
#define FM_REQUIRE_CLOSE(actual, expected, n, atol, rtol)                              \
  do {                                                                                 \
    std::string fm_report_ = ::fm::test::compare_close((actual), (expected), (n), (atol), (rtol)); \
    INFO(fm_report_);                                                                  \
    REQUIRE(fm_report_.empty());                                                       \
  } while (0)
