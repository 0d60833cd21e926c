// flow/metrics.h — sample-quality metrics: the sliced Wasserstein-2 distance between point clouds,
// and its "floor" (the distance between two independent samples of the same distribution, the
// best a perfect sampler can score at that sample size).
//
// Sits in flow/ on top of core/ (Tensor, Generator). Works for any dimension d: a tensor [N, ...]
// is read as N points of d = numel/N coordinates (images flatten), so the image pipeline can use it.
//
//   SW2(P, Q) = sqrt( (1/K) Σ_k W2²(⟨θ_k, P⟩, ⟨θ_k, Q⟩) ),  θ_k uniform on the unit sphere
// (Bonneel et al. 2015, "Sliced and Radon Wasserstein Barycenters of Measures", Sec. 2, with the
// expectation over directions replaced by K draws). In 1-D, W2 between empirical measures is the L2
// distance between quantile functions: for equal sizes the mean squared difference of the sorted
// projections; for unequal sizes the quantile functions are integrated exactly piecewise.
//
// Exact and deterministic: the K directions come from Generator(seed) (independent of any training
// stream), everything is computed on the host in double, and the per-direction results are summed
// in a fixed order, so a seed gives bitwise the same number whatever the thread count.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"

namespace fm::flow {

struct SlicedWassersteinOptions {
  int directions = 256;     // K
  std::uint64_t seed = 0;   // for the directions
};

// SW2 between a [N, ...] and b [M, ...] (same per-point size d; N and M may differ).
double sliced_wasserstein2(const Tensor& a, const Tensor& b, const SlicedWassersteinOptions& options = {});
// The same on host arrays of n·d and m·d values (row-major points).
double sliced_wasserstein2(const std::vector<double>& a, std::int64_t n, const std::vector<double>& b,
                           std::int64_t m, std::int64_t d, const SlicedWassersteinOptions& options = {});

// W2² between two 1-D empirical measures with uniform weights, given their *sorted* values.
double wasserstein2_squared_1d_sorted(const std::vector<double>& a, const std::vector<double>& b);

// The floor for a distribution you can sample: SW2 between two independent samples of n points
// drawn one after the other with `sample` from `gen`. A model's SW2 against n data points can only be
// judged against this number (finite-sample noise keeps it above 0).
double sliced_wasserstein2_floor(const std::function<Tensor(std::int64_t n, Generator& gen)>& sample,
                                 std::int64_t n, Generator& gen,
                                 const SlicedWassersteinOptions& options = {});
// The floor for a fixed data set [M, ...] (e.g. Fashion-MNIST test images): SW2 between two
// disjoint random subsets of n points each (needs 2n <= M), chosen by a partial Fisher–Yates
// shuffle with `gen`.
double sliced_wasserstein2_floor(const Tensor& data, std::int64_t n, Generator& gen,
                                 const SlicedWassersteinOptions& options = {});

}  // namespace fm::flow
