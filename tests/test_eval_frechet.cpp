// tests/test_eval_frechet.cpp — the Fréchet distance math of flow/frechet.h against cases with known
// answers: identical sets, 1-D Gaussians, diagonal covariances, a 2×2 closed form for covariances that
// do not commute, invariance under a common rotation and translation, symmetry; and the Jacobi
// eigensolver and PSD square root it stands on.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/random.h"
#include "flow/frechet.h"

using fm::flow::GaussianStatistics;

namespace {

// count × dim features x = A·z + shift with z standard normal: correlated, non-isotropic.
std::vector<double> correlated_features(std::int64_t count, std::int64_t dim, std::uint64_t seed, double shift = 0.0) {
  fm::Generator gen(seed);
  std::vector<double> mixing(std::size_t(dim * dim));
  for (double& m : mixing) m = gen.normal() / std::sqrt(double(dim));
  for (std::int64_t i = 0; i < dim; ++i) mixing[std::size_t(i * dim + i)] += 1.0;
  std::vector<double> out(std::size_t(count * dim));
  std::vector<double> z(static_cast<std::size_t>(dim));
  for (std::int64_t n = 0; n < count; ++n) {
    for (double& v : z) v = gen.normal();
    for (std::int64_t i = 0; i < dim; ++i) {
      double sum = shift;
      for (std::int64_t j = 0; j < dim; ++j) sum += mixing[std::size_t(i * dim + j)] * z[std::size_t(j)];
      out[std::size_t(n * dim + i)] = sum;
    }
  }
  return out;
}

// A random orthogonal matrix: the eigenvectors of a random symmetric matrix.
std::vector<double> random_rotation(std::int64_t dim, std::uint64_t seed) {
  fm::Generator gen(seed);
  std::vector<double> sym(std::size_t(dim * dim));
  for (std::int64_t i = 0; i < dim; ++i)
    for (std::int64_t j = i; j < dim; ++j) sym[std::size_t(i * dim + j)] = sym[std::size_t(j * dim + i)] = gen.normal();
  return fm::flow::symmetric_eigen(sym, dim).vectors;
}

// Each row x → R·x + offset.
std::vector<double> transform_rows(const std::vector<double>& rows, std::int64_t dim, const std::vector<double>& rotation,
                                   double offset) {
  std::vector<double> out(rows.size());
  for (std::size_t n = 0; n < rows.size() / std::size_t(dim); ++n)
    for (std::int64_t i = 0; i < dim; ++i) {
      double sum = offset;
      for (std::int64_t j = 0; j < dim; ++j) sum += rotation[std::size_t(i * dim + j)] * rows[n * std::size_t(dim) + std::size_t(j)];
      out[n * std::size_t(dim) + std::size_t(i)] = sum;
    }
  return out;
}

GaussianStatistics diagonal_gaussian(const std::vector<double>& mean, const std::vector<double>& variances) {
  GaussianStatistics stats;
  stats.dim = std::int64_t(mean.size());
  stats.count = 100;
  stats.mean = mean;
  stats.covariance.assign(mean.size() * mean.size(), 0.0);
  for (std::size_t i = 0; i < mean.size(); ++i) stats.covariance[i * mean.size() + i] = variances[i];
  return stats;
}

GaussianStatistics gaussian_2x2(std::vector<double> mean, double a, double b, double c) {
  GaussianStatistics stats;
  stats.dim = 2;
  stats.count = 100;
  stats.mean = std::move(mean);
  stats.covariance = {a, b, b, c};
  return stats;
}

}  // namespace

TEST_CASE("the distance between a feature set and itself is zero up to rounding", "[eval][frechet]") {
  for (std::int64_t dim : {1, 7, 128}) {
    std::vector<double> features = correlated_features(600, dim, 11 + std::uint64_t(dim), 3.0);
    GaussianStatistics stats = fm::flow::gaussian_statistics(features, 600, dim);
    double trace = 0;
    for (std::int64_t i = 0; i < dim; ++i) trace += stats.covariance[std::size_t(i * dim + i)];
    const double distance = fm::flow::frechet_distance(stats, stats);
    INFO("dim " << dim << ": distance " << distance << ", trace of the covariance " << trace);
    // Tr Σ + Tr Σ − 2 Tr Σ cancels to rounding of the trace (about 1e-13 of it).
    REQUIRE(distance >= 0.0);
    REQUIRE(distance <= 1e-10 * trace);
  }
}

TEST_CASE("1-D Gaussians give (mu1 - mu2)^2 + (sigma1 - sigma2)^2", "[eval][frechet]") {
  // From the statistics directly.
  struct Case { double mu1, sigma1, mu2, sigma2; };
  for (const Case& c : {Case{0, 1, 0, 1}, Case{1.5, 2.0, -0.5, 0.5}, Case{-3, 0.1, 4, 7}, Case{2, 1e-3, 2, 1e3}}) {
    GaussianStatistics a = diagonal_gaussian({c.mu1}, {c.sigma1 * c.sigma1});
    GaussianStatistics b = diagonal_gaussian({c.mu2}, {c.sigma2 * c.sigma2});
    const double expected = (c.mu1 - c.mu2) * (c.mu1 - c.mu2) + (c.sigma1 - c.sigma2) * (c.sigma1 - c.sigma2);
    INFO("mu1 " << c.mu1 << " sigma1 " << c.sigma1 << " mu2 " << c.mu2 << " sigma2 " << c.sigma2);
    REQUIRE(fm::flow::frechet_distance(a, b) == Approx(expected).epsilon(1e-12).margin(1e-12));
  }
  // From samples: the same formula with the sample mean and the unbiased sample standard deviation.
  fm::Generator gen(5);
  std::vector<double> x(400), y(300);
  for (double& v : x) v = 2.0 + 0.5 * gen.normal();
  for (double& v : y) v = -1.0 + 3.0 * gen.normal();
  auto mean_std = [](const std::vector<double>& v) {
    double m = 0, s = 0;
    for (double e : v) m += e;
    m /= double(v.size());
    for (double e : v) s += (e - m) * (e - m);
    return std::pair<double, double>{m, std::sqrt(s / double(v.size() - 1))};
  };
  auto [mx, sx] = mean_std(x);
  auto [my, sy] = mean_std(y);
  const double expected = (mx - my) * (mx - my) + (sx - sy) * (sx - sy);
  const double got = fm::flow::frechet_distance(fm::flow::gaussian_statistics(x, 400, 1), fm::flow::gaussian_statistics(y, 300, 1));
  REQUIRE(got == Approx(expected).epsilon(1e-12));
}

TEST_CASE("diagonal covariances give the sum of (sqrt a - sqrt b)^2 plus the mean term", "[eval][frechet]") {
  std::vector<double> mean_a = {0.0, 1.0, -2.0, 0.5, 3.0}, mean_b = {1.0, 1.0, 0.0, 0.5, -1.0};
  std::vector<double> var_a = {1.0, 4.0, 0.25, 9.0, 0.0}, var_b = {2.0, 1.0, 0.25, 16.0, 1.0};
  double expected = 0;
  for (std::size_t i = 0; i < mean_a.size(); ++i)
    expected += (mean_a[i] - mean_b[i]) * (mean_a[i] - mean_b[i]) +
                (std::sqrt(var_a[i]) - std::sqrt(var_b[i])) * (std::sqrt(var_a[i]) - std::sqrt(var_b[i]));
  // A zero variance (a degenerate, singular covariance) must work too: Σ^½ has a zero eigenvalue.
  REQUIRE(fm::flow::frechet_distance(diagonal_gaussian(mean_a, var_a), diagonal_gaussian(mean_b, var_b)) ==
          Approx(expected).epsilon(1e-12));
}

TEST_CASE("covariances that do not commute match the 2x2 closed form", "[eval][frechet]") {
  // For 2×2 PSD M = Σ1^½ Σ2 Σ1^½: (Tr M^½)² = Tr M + 2 √det M, with Tr M = Tr(Σ1 Σ2) and
  // det M = det Σ1 · det Σ2 — an answer that needs no eigendecomposition at all.
  GaussianStatistics a = gaussian_2x2({0.3, -1.0}, 2.0, 0.9, 1.0);
  GaussianStatistics b = gaussian_2x2({-0.2, 0.5}, 0.5, -0.3, 3.0);
  const auto& s1 = a.covariance;
  const auto& s2 = b.covariance;
  const double trace_product = s1[0] * s2[0] + s1[1] * s2[2] + s1[2] * s2[1] + s1[3] * s2[3];
  const double det_product = (s1[0] * s1[3] - s1[1] * s1[2]) * (s2[0] * s2[3] - s2[1] * s2[2]);
  const double trace_root = std::sqrt(trace_product + 2.0 * std::sqrt(det_product));
  const double mean_term = 0.5 * 0.5 + 1.5 * 1.5;
  const double expected = mean_term + (s1[0] + s1[3]) + (s2[0] + s2[3]) - 2.0 * trace_root;
  REQUIRE(fm::flow::frechet_distance(a, b) == Approx(expected).epsilon(1e-12));
  // The formula looks asymmetric (Σ1^½ Σ2 Σ1^½) but the distance is not.
  REQUIRE(fm::flow::frechet_distance(b, a) == Approx(expected).epsilon(1e-12));
}

TEST_CASE("a common rotation and translation leave the distance unchanged", "[eval][frechet]") {
  const std::int64_t dim = 12;
  std::vector<double> a = correlated_features(500, dim, 21);
  std::vector<double> b = correlated_features(400, dim, 22, 0.7);
  std::vector<double> rotation = random_rotation(dim, 23);
  const double before = fm::flow::frechet_distance(fm::flow::gaussian_statistics(a, 500, dim),
                                                   fm::flow::gaussian_statistics(b, 400, dim));
  const double after =
      fm::flow::frechet_distance(fm::flow::gaussian_statistics(transform_rows(a, dim, rotation, -4.0), 500, dim),
                                 fm::flow::gaussian_statistics(transform_rows(b, dim, rotation, -4.0), 400, dim));
  INFO("before " << before << " after " << after);
  REQUIRE(before > 0.1);  // a real difference to preserve
  REQUIRE(after == Approx(before).epsilon(1e-10));
}

TEST_CASE("statistics are the sample mean and the unbiased covariance", "[eval][frechet]") {
  // Points (1, 2), (3, 2), (2, 5): mean (2, 3); centred (−1, −1), (1, −1), (0, 2).
  GaussianStatistics stats = fm::flow::gaussian_statistics({1, 2, 3, 2, 2, 5}, 3, 2);
  REQUIRE(stats.mean == std::vector<double>{2.0, 3.0});
  // Σ = (1/2)·[[2, 0], [0, 6]]
  REQUIRE(stats.covariance == std::vector<double>{1.0, 0.0, 0.0, 3.0});
  // The tensor overload reads [N, D] rows the same way.
  GaussianStatistics from_tensor =
      fm::flow::gaussian_statistics(fm::Tensor::from_vector({1, 2, 3, 2, 2, 5}, {3, 2}, fm::DType::Float64));
  REQUIRE(from_tensor.covariance == stats.covariance);
}

TEST_CASE("the Jacobi eigensolver reconstructs symmetric matrices with orthonormal vectors", "[eval][frechet]") {
  for (std::int64_t n : {1, 2, 5, 40, 128}) {
    fm::Generator gen(std::uint64_t(100 + n));
    std::vector<double> a(std::size_t(n * n));
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = i; j < n; ++j) a[std::size_t(i * n + j)] = a[std::size_t(j * n + i)] = gen.normal();
    fm::flow::SymmetricEigen eigen = fm::flow::symmetric_eigen(a, n);
    double worst_reconstruction = 0, worst_orthogonality = 0;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double rebuilt = 0, dot = 0;
        for (std::int64_t k = 0; k < n; ++k) {
          rebuilt += eigen.vectors[std::size_t(i * n + k)] * eigen.values[std::size_t(k)] * eigen.vectors[std::size_t(j * n + k)];
          dot += eigen.vectors[std::size_t(k * n + i)] * eigen.vectors[std::size_t(k * n + j)];
        }
        worst_reconstruction = std::max(worst_reconstruction, std::abs(rebuilt - a[std::size_t(i * n + j)]));
        worst_orthogonality = std::max(worst_orthogonality, std::abs(dot - (i == j ? 1.0 : 0.0)));
      }
    INFO("n " << n << ": max |V diag(l) V^T - A| " << worst_reconstruction << ", max |V^T V - I| " << worst_orthogonality);
    REQUIRE(worst_reconstruction < 1e-12 * double(n));
    REQUIRE(worst_orthogonality < 1e-12 * double(n));
    for (std::int64_t k = 1; k < n; ++k) REQUIRE(eigen.values[std::size_t(k - 1)] <= eigen.values[std::size_t(k)]);
  }
  // Repeated eigenvalues and the zero matrix need no rotation at all.
  fm::flow::SymmetricEigen identity = fm::flow::symmetric_eigen({2, 0, 0, 0, 2, 0, 0, 0, 2}, 3);
  REQUIRE(identity.values == std::vector<double>{2, 2, 2});
  REQUIRE(fm::flow::symmetric_eigen(std::vector<double>(16, 0.0), 4).values == std::vector<double>(4, 0.0));
}

TEST_CASE("the PSD square root squares back to the matrix", "[eval][frechet]") {
  const std::int64_t dim = 9;
  GaussianStatistics stats = fm::flow::gaussian_statistics(correlated_features(300, dim, 31), 300, dim);
  std::vector<double> root = fm::flow::symmetric_psd_sqrt(stats.covariance, dim);
  double worst = 0;
  for (std::int64_t i = 0; i < dim; ++i)
    for (std::int64_t j = 0; j < dim; ++j) {
      double square = 0;
      for (std::int64_t k = 0; k < dim; ++k) square += root[std::size_t(i * dim + k)] * root[std::size_t(k * dim + j)];
      worst = std::max(worst, std::abs(square - stats.covariance[std::size_t(i * dim + j)]));
      REQUIRE(root[std::size_t(i * dim + j)] == Approx(root[std::size_t(j * dim + i)]).margin(1e-14));
    }
  REQUIRE(worst < 1e-12);
}

TEST_CASE("frechet statistics refuse too few points and mismatched dimensions", "[eval][frechet][errors]") {
  REQUIRE_THROWS_MATCHES(fm::flow::gaussian_statistics({1.0, 2.0}, 1, 2), fm::ValueError,
                         Catch::Message("gaussian_statistics: got 1 feature vectors, expected at least 2 (a covariance "
                                        "needs two points)"));
  REQUIRE_THROWS_AS(fm::flow::gaussian_statistics({1.0, 2.0, 3.0}, 2, 2), fm::ValueError);
  REQUIRE_THROWS_MATCHES(
      fm::flow::frechet_distance(diagonal_gaussian({0, 0}, {1, 1}), diagonal_gaussian({0, 0, 0}, {1, 1, 1})),
      fm::ShapeError, Catch::Message("frechet_distance: feature dimensions differ (2 and 3)"));
  REQUIRE_THROWS_WITH(fm::flow::symmetric_eigen({1.0, NAN, NAN, 1.0}, 2), Catch::Contains("non-finite"));
}
