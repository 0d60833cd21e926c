// tests/kernel_test_util.h — helpers shared by the kernel-level tests (tests/test_kernel_*.cpp):
// random host vectors, the float64 central-difference gradient check on Σ y∘r, device buffers
// with NaN poison and deliberate misalignment, and "float result vs float64 reference" checks with
// the tolerance rules of cases/case_table.h.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cases/case_table.h"
#include "kernels/runtime.h"
#include "test_util.h"

namespace fm::test {

inline std::vector<double> random_doubles(std::size_t n, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::vector<double> v(n);
  fill_uniform(v.data(), n, seed, lo, hi);
  return v;
}
inline std::vector<float> random_floats(std::size_t n, std::uint64_t seed, float lo = -1.f, float hi = 1.f) {
  std::vector<float> v(n);
  fill_uniform(v.data(), n, seed, lo, hi);
  return v;
}
inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }
inline std::vector<float> to_float(const std::vector<double>& v) {
  std::vector<float> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = float(v[i]);
  return out;
}
inline double weighted_sum(const std::vector<double>& y, const std::vector<double>& weights) {
  double sum = 0;
  for (std::size_t i = 0; i < y.size(); ++i) sum += y[i] * weights[i];
  return sum;
}

// Central differences of loss() with respect to every element of `input`, compared with the
// analytic gradient: |analytic − numeric| <= 1e-5 + 1e-3·|numeric| (PyTorch's float64 gradcheck
// defaults). With eps = 1e-6 the truncation error is O(eps²) ≈ 1e-12 and the rounding error
// ≈ 1e-16·|loss| / eps ≈ 1e-10, both far inside the tolerance; a wrong formula is not.
inline void require_gradient_matches(const std::string& what, std::vector<double>& input,
                                     const std::vector<double>& analytic, const std::function<double()>& loss) {
  REQUIRE(analytic.size() == input.size());
  const double eps = 1e-6;
  std::vector<double> numeric(input.size());
  for (std::size_t i = 0; i < input.size(); ++i) {
    const double saved = input[i];
    input[i] = saved + eps;
    const double loss_plus = loss();
    input[i] = saved - eps;
    const double loss_minus = loss();
    input[i] = saved;
    numeric[i] = (loss_plus - loss_minus) / (2 * eps);
  }
  INFO("gradient of " << what);
  FM_REQUIRE_CLOSE(analytic.data(), numeric.data(), analytic.size(), 1e-5, 1e-3);
}

// A float result against the float64 reference, with a tolerance from cases/case_table.h.
inline void require_matches_reference(const std::string& what, const std::vector<float>& got,
                                      const std::vector<double>& reference, cases::Tolerance tolerance) {
  REQUIRE(got.size() == reference.size());
  const std::vector<float> ref = to_float(reference);
  double largest = 0;
  for (double r : reference) largest = std::max(largest, std::fabs(r));
  INFO(what << " (max |ref| = " << largest << ", atol " << tolerance.atol << ", rtol " << tolerance.rtol << ")");
  FM_REQUIRE_CLOSE(got.data(), ref.data(), got.size(), tolerance.atol, tolerance.rtol);
}
// The same with the scaled rule: atol = scale_rel·max(max|ref|, 1), rtol = elem_rel.
inline void require_matches_reference(const std::string& what, const std::vector<float>& got,
                                      const std::vector<double>& reference, double scale_rel, double elem_rel) {
  require_matches_reference(what, got, reference, cases::scaled_tolerance(reference, scale_rel, elem_rel));
}

// A float buffer in device memory, filled from the host; freed on scope exit. front_padding shifts
// the data off the allocation's alignment (padding 1 = 4 bytes: not 16-byte aligned), so the
// kernels' unaligned paths are tested too.
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<float>& host, std::size_t front_padding = 0)
      : size_(host.size()), padding_(front_padding) {
    base_ = static_cast<float*>(kernels::cuda_malloc(std::max<std::size_t>(size_ + padding_, 1) * sizeof(float)));
    if (size_) kernels::cuda_copy_to_device(base_ + padding_, host.data(), size_ * sizeof(float));
  }
  // NaN-filled, so an element a kernel forgets to write fails the comparison.
  static DeviceArray poisoned(std::size_t n, std::size_t front_padding = 0) {
    std::vector<float> host(n);
    poison(host.data(), n);
    return DeviceArray(host, front_padding);
  }
  DeviceArray(DeviceArray&& other) noexcept : base_(other.base_), size_(other.size_), padding_(other.padding_) {
    other.base_ = nullptr;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { kernels::cuda_free(base_); }

  float* get() const { return base_ + padding_; }
  std::size_t size() const { return size_; }
  std::vector<float> to_host() const {
    std::vector<float> host(size_);
    if (size_) kernels::cuda_copy_to_host(host.data(), get(), size_ * sizeof(float));
    return host;
  }

 private:
  float* base_ = nullptr;
  std::size_t size_ = 0, padding_ = 0;
};

}  // namespace fm::test
