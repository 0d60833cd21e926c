// flow/metrics.cpp — sliced Wasserstein-2 and its finite-sample floor (see metrics.h).
#include "flow/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace fm::flow {
namespace {

// K directions uniform on the unit sphere in R^d: normalised standard Gaussian vectors.
std::vector<double> random_unit_directions(int count, std::int64_t d, std::uint64_t seed) {
  Generator gen(seed);
  std::vector<double> dirs(std::size_t(count) * std::size_t(d));
  for (int k = 0; k < count; ++k) {
    double* dir = dirs.data() + std::size_t(k) * std::size_t(d);
    double norm2 = 0;
    do {  // a zero vector has probability 0, but redraw rather than divide by it
      norm2 = 0;
      for (std::int64_t j = 0; j < d; ++j) {
        dir[j] = gen.normal();
        norm2 += dir[j] * dir[j];
      }
    } while (norm2 == 0);
    const double inv = 1.0 / std::sqrt(norm2);
    for (std::int64_t j = 0; j < d; ++j) dir[j] *= inv;
  }
  return dirs;
}

// Sorted projections ⟨dir, p_i⟩ of n points.
std::vector<double> sorted_projections(const std::vector<double>& points, std::int64_t n,
                                       std::int64_t d, const double* dir) {
  std::vector<double> proj(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const double* p = points.data() + std::size_t(i) * std::size_t(d);
    double s = 0;
    for (std::int64_t j = 0; j < d; ++j) s += p[j] * dir[j];
    proj[std::size_t(i)] = s;
  }
  std::sort(proj.begin(), proj.end());
  return proj;
}

// A [N, ...] tensor as N points of d coordinates on the host.
struct HostPoints {
  std::vector<double> values;
  std::int64_t n = 0, d = 0;
};
HostPoints host_points(const char* what, const Tensor& x) {
  FM_CHECK(x.defined() && x.dim() >= 1 && x.size(0) > 0, ShapeError, "sliced_wasserstein2: ", what,
           " has shape ", x.defined() ? shape_str(x.shape()) : "undefined",
           ", expected [N, ...] with N > 0 points");
  HostPoints p;
  p.n = x.size(0);
  p.d = x.numel() / p.n;
  p.values = x.to_vector();
  return p;
}

}  // namespace

double wasserstein2_squared_1d_sorted(const std::vector<double>& a, const std::vector<double>& b) {
  FM_CHECK(!a.empty() && !b.empty(), ValueError, "wasserstein2_squared_1d_sorted: empty input (",
           a.size(), " and ", b.size(), " values)");
  const std::size_t n = a.size(), m = b.size();
  if (n == m) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += (a[i] - b[i]) * (a[i] - b[i]);
    return sum / double(n);
  }
  // ∫_0^1 (F_a⁻¹(u) − F_b⁻¹(u))² du with piecewise-constant quantile functions: a_i on
  // (i/n, (i+1)/n], b_j on (j/m, (j+1)/m]. Positions are counted in units of 1/(n·m), so the
  // breakpoints (i+1)·m and (j+1)·n are integers and compare exactly.
  double sum = 0;
  std::size_t i = 0, j = 0;
  std::uint64_t position = 0;
  while (i < n && j < m) {
    const std::uint64_t end_a = std::uint64_t(i + 1) * m, end_b = std::uint64_t(j + 1) * n;
    const std::uint64_t end = std::min(end_a, end_b);
    const double diff = a[i] - b[j];
    sum += double(end - position) * diff * diff;
    position = end;
    if (end_a == end) ++i;
    if (end_b == end) ++j;
  }
  return sum / (double(n) * double(m));
}

double sliced_wasserstein2(const std::vector<double>& a, std::int64_t n, const std::vector<double>& b,
                           std::int64_t m, std::int64_t d, const SlicedWassersteinOptions& options) {
  FM_CHECK(n > 0 && m > 0 && d > 0, ValueError, "sliced_wasserstein2: need points, got n = ", n,
           ", m = ", m, ", d = ", d);
  FM_CHECK(std::int64_t(a.size()) == n * d && std::int64_t(b.size()) == m * d, ShapeError,
           "sliced_wasserstein2: ", a.size(), " and ", b.size(), " values for ", n, " and ", m,
           " points of ", d, " coordinates");
  FM_CHECK(options.directions >= 1, ValueError, "sliced_wasserstein2: directions ",
           options.directions, " must be >= 1");
  const std::vector<double> dirs = random_unit_directions(options.directions, d, options.seed);
  std::vector<double> per_direction(std::size_t(options.directions));
  // Directions are independent: each thread fills its own slots; the sum below runs in order.
#pragma omp parallel for schedule(dynamic)
  for (int k = 0; k < options.directions; ++k) {
    const double* dir = dirs.data() + std::size_t(k) * std::size_t(d);
    per_direction[std::size_t(k)] = wasserstein2_squared_1d_sorted(sorted_projections(a, n, d, dir),
                                                                   sorted_projections(b, m, d, dir));
  }
  double total = 0;
  for (double w : per_direction) total += w;
  return std::sqrt(total / double(options.directions));
}

double sliced_wasserstein2(const Tensor& a, const Tensor& b, const SlicedWassersteinOptions& options) {
  HostPoints pa = host_points("first point cloud", a), pb = host_points("second point cloud", b);
  FM_CHECK(pa.d == pb.d, ShapeError, "sliced_wasserstein2: point clouds ", shape_str(a.shape()),
           " and ", shape_str(b.shape()), " have different point sizes (", pa.d, " vs ", pb.d, ")");
  return sliced_wasserstein2(pa.values, pa.n, pb.values, pb.n, pa.d, options);
}

double sliced_wasserstein2_floor(const std::function<Tensor(std::int64_t, Generator&)>& sample,
                                 std::int64_t n, Generator& gen,
                                 const SlicedWassersteinOptions& options) {
  FM_CHECK(static_cast<bool>(sample), ValueError, "sliced_wasserstein2_floor: the sampler is empty");
  FM_CHECK(n > 0, ValueError, "sliced_wasserstein2_floor: sample size ", n, " must be > 0");
  Tensor first = sample(n, gen);
  Tensor second = sample(n, gen);
  return sliced_wasserstein2(first, second, options);
}

double sliced_wasserstein2_floor(const Tensor& data, std::int64_t n, Generator& gen,
                                 const SlicedWassersteinOptions& options) {
  FM_CHECK(data.defined() && data.dim() >= 1, ShapeError,
           "sliced_wasserstein2_floor: data must be [M, ...]");
  const std::int64_t total = data.size(0);
  FM_CHECK(n > 0 && 2 * n <= total, ValueError, "sliced_wasserstein2_floor: two disjoint subsets of ",
           n, " points need at least ", 2 * n, " points, data has ", total);
  const std::int64_t d = data.numel() / total;
  // Partial Fisher–Yates: the first 2n slots become a uniformly random ordered subset.
  std::vector<std::int64_t> order(static_cast<std::size_t>(total));
  std::iota(order.begin(), order.end(), 0);
  for (std::int64_t i = 0; i < 2 * n; ++i)
    std::swap(order[std::size_t(i)], order[std::size_t(i + std::int64_t(gen.below(std::uint64_t(total - i))))]);
  // Any dtype, read as doubles (exact for every one).
  const std::vector<double> values = data.to(Device::CPU).to(DType::Float64).to_vector();
  auto gather = [&](std::int64_t first_slot) {
    std::vector<double> points(std::size_t(n * d));
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t row = order[std::size_t(first_slot + i)];
      for (std::int64_t j = 0; j < d; ++j) points[std::size_t(i * d + j)] = values[std::size_t(row * d + j)];
    }
    return points;
  };
  return sliced_wasserstein2(gather(0), n, gather(n), n, d, options);
}

}  // namespace fm::flow
