// tests/gradcheck.h — central-difference gradient checking for Tensor ops (float64, CPU).
//
// For y = f(x1..xn) and a fixed random weighting r of y's elements, the scalar L = Σ r∘y has
// dL/dxi = the backward pass's result. Each element of each input is nudged by ±eps and
// (L(x+eps) − L(x−eps)) / 2eps is compared with it: |analytic − numeric| <= atol + rtol·|numeric|
// (PyTorch's float64 defaults: eps 1e-6, atol 1e-5, rtol 1e-3).
#pragma once
#include <catch2/catch.hpp>

#include <functional>
#include <sstream>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"

namespace fm::test {

struct GradcheckOptions {
  double eps = 1e-6, atol = 1e-5, rtol = 1e-3;
  std::uint64_t seed = 1234;
};

// Returns "" if every input's gradient matches, else a description of the first mismatches.
inline std::string gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                             std::vector<Tensor> inputs, GradcheckOptions options = {}) {
  for (auto& x : inputs) {
    REQUIRE(x.dtype() == DType::Float64);
    x = x.detach().contiguous().clone();
    x.set_requires_grad(true);
  }
  Tensor y = f(inputs);
  Generator gen(options.seed);
  Tensor weights = randn(y.shape(), gen, DType::Float64);
  sum(mul(y, weights)).backward();

  auto loss_at = [&](const std::vector<Tensor>& xs) {
    NoGradGuard no_grad;
    return sum(mul(f(xs), weights)).item();
  };
  std::ostringstream report;
  int mismatches = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    Tensor analytic = inputs[i].grad();
    if (!analytic.defined()) {
      report << "input " << i << ": backward produced no gradient\n";
      ++mismatches;
      continue;
    }
    std::vector<double> grad = analytic.to_vector();
    double* data = inputs[i].data<double>();
    for (std::int64_t k = 0; k < inputs[i].numel(); ++k) {
      double saved = data[k];
      data[k] = saved + options.eps;
      double plus = loss_at(inputs);
      data[k] = saved - options.eps;
      double minus = loss_at(inputs);
      data[k] = saved;
      double numeric = (plus - minus) / (2 * options.eps);
      double diff = std::abs(grad[k] - numeric);
      if (!(diff <= options.atol + options.rtol * std::abs(numeric))) {
        if (mismatches < 6)
          report << "input " << i << " element " << k << ": analytic " << grad[k] << " numeric "
                 << numeric << "\n";
        ++mismatches;
      }
    }
  }
  if (mismatches) report << mismatches << " mismatching gradient elements";
  return report.str();
}

inline Tensor random_tensor(const Shape& shape, std::uint64_t seed, double low = -1.0,
                            double high = 1.0, DType dtype = DType::Float64) {
  Generator gen(seed);
  return rand_uniform(shape, gen, low, high, dtype);
}

}  // namespace fm::test

// Usage: FM_REQUIRE_GRADCHECK(function, inputs [, options]).
#define FM_REQUIRE_GRADCHECK(f, ...)                                      \
  do {                                                                    \
    std::string fm_gc_ = ::fm::test::gradcheck((f), __VA_ARGS__);         \
    INFO(fm_gc_);                                                         \
    REQUIRE(fm_gc_.empty());                                              \
  } while (0)
