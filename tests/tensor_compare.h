// tests/tensor_compare.h — the largest element-wise difference between two tensors, for the flow
// tests that compare a formula with its closed form (header-only: these suites link core/).
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/tensor.h"

namespace fm::test {

// Largest |a_i − b_i| over all elements (same number of elements required).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> va = a.to_vector(), vb = b.to_vector();
  REQUIRE(va.size() == vb.size());
  double largest = 0;
  for (std::size_t i = 0; i < va.size(); ++i) largest = std::max(largest, std::abs(va[i] - vb[i]));
  return largest;
}

}  // namespace fm::test
