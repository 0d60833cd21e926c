// tests/test_util.cpp — implementation of the shared test helpers (see test_util.h).
#include "test_util.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <sstream>

#include "kernels/runtime.h"

namespace fm::test {
namespace {
int g_skipped = 0;
}

bool gpu_available() { return fm::kernels::cuda_available(); }

void report_skipped(const char* test_name, const std::string& why) {
  std::printf("SKIPPED: \"%s\": %s\n", test_name, why.c_str());
  std::fflush(stdout);
  if (std::getenv("FM_TEST_SINGLE_CASE")) std::exit(77);
}

void skip_gpu_test(const char* test_name) {
  ++g_skipped;
  report_skipped(test_name, "needs a CUDA device and none is available");
}
int skipped_gpu_cases() { return g_skipped; }

template <typename T>
std::string compare_close(const T* actual, const T* expected, std::size_t n, double atol, double rtol) {
  std::size_t failures = 0, worst = 0;
  double worst_excess = -1;
  std::ostringstream first;
  for (std::size_t i = 0; i < n; ++i) {
    double a = actual[i], b = expected[i];
    double diff = std::fabs(a - b);
    double allowed = atol + rtol * std::fabs(b);
    bool ok = diff <= allowed;  // false for NaN
    if (!ok) {
      if (failures < 5) first << "  [" << i << "] got " << a << " expected " << b << "\n";
      ++failures;
      double excess = std::isnan(diff) ? std::numeric_limits<double>::infinity() : diff - allowed;
      if (excess > worst_excess) worst_excess = excess, worst = i;
    }
  }
  if (failures == 0) return "";
  std::ostringstream os;
  os.precision(9);
  os << failures << " of " << n << " elements NOT OK (atol " << atol << ", rtol " << rtol
     << "); worst at [" << worst << "]: got " << actual[worst] << " expected " << expected[worst]
     << "\nfirst failures:\n"
     << first.str();
  return os.str();
}
template std::string compare_close<float>(const float*, const float*, std::size_t, double, double);
template std::string compare_close<double>(const double*, const double*, std::size_t, double, double);

template <typename T>
double normalized_mse(const T* actual, const T* expected, std::size_t n) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < n; ++i) {
    double d = double(actual[i]) - double(expected[i]);
    num += d * d;
    den += double(expected[i]) * double(expected[i]);
  }
  return den > 0 ? num / den : num;
}
template double normalized_mse<float>(const float*, const float*, std::size_t);
template double normalized_mse<double>(const double*, const double*, std::size_t);

void poison(float* data, std::size_t n) {
  std::fill(data, data + n, std::numeric_limits<float>::quiet_NaN());
}
void poison(double* data, std::size_t n) {
  std::fill(data, data + n, std::numeric_limits<double>::quiet_NaN());
}

void fill_uniform(float* data, std::size_t n, std::uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (std::size_t i = 0; i < n; ++i) data[i] = dist(rng);
}
void fill_uniform(double* data, std::size_t n, std::uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (std::size_t i = 0; i < n; ++i) data[i] = dist(rng);
}

TempDir::TempDir(const std::string& prefix) {
  static int counter = 0;
  path = std::filesystem::temp_directory_path() /
         (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
}

std::string TempDir::file(const std::string& name) const { return (path / name).string(); }

std::string TempDir::write(const std::string& name, const std::string& bytes) const {
  const std::string target = file(name);
  std::ofstream out(target, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  return target;
}

std::vector<std::string> TempDir::entries() const {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(path)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::filesystem::path scratch_path(const std::string& prefix, const std::string& name, bool create) {
  // Function-local, so the folders are removed by the static destructors that exit() runs (a skipped
  // case's exit(77) included); forked children leave through _exit and remove nothing.
  static std::map<std::string, std::unique_ptr<TempDir>> roots;
  std::unique_ptr<TempDir>& root = roots[prefix];
  if (!root) root = std::make_unique<TempDir>(prefix);
  const std::filesystem::path dir = root->path / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(create ? dir : dir.parent_path());
  return dir;
}

namespace {
void write_big_endian(std::ofstream& out, std::uint32_t value) {
  const char bytes[4] = {char(value >> 24), char(value >> 16), char(value >> 8), char(value)};
  out.write(bytes, 4);
}
}  // namespace

void write_idx_images(const std::string& images_path, std::uint32_t count, std::uint32_t rows, std::uint32_t cols,
                      const std::string& labels_path, int classes) {
  std::ofstream images(images_path, std::ios::binary);
  for (std::uint32_t word : {0x00000803u, count, rows, cols}) write_big_endian(images, word);
  for (std::uint32_t i = 0; i < count; ++i)
    for (std::uint32_t p = 0; p < rows * cols; ++p) images.put(char((37 * i + 11 * p) % 256));
  if (labels_path.empty()) return;
  std::ofstream labels(labels_path, std::ios::binary);
  for (std::uint32_t word : {0x00000801u, count}) write_big_endian(labels, word);
  for (std::uint32_t i = 0; i < count; ++i) labels.put(char(i % std::uint32_t(classes)));
}

}  // namespace fm::test
