// flow/frechet.cpp — Gaussian statistics, the Fréchet distance and the Jacobi eigensolver behind it
// (see frechet.h for the formula and its sources).
#include "flow/frechet.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace fm::flow {
namespace {

// C = A·B for n×n row-major matrices (i-k-j order so the inner loop runs along rows of B and C).
std::vector<double> multiply_square(const std::vector<double>& a, const std::vector<double>& b, std::int64_t n) {
  std::vector<double> c(std::size_t(n * n), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < n; ++k) {
      const double a_ik = a[std::size_t(i * n + k)];
      if (a_ik == 0.0) continue;
      const double* b_row = &b[std::size_t(k * n)];
      double* c_row = &c[std::size_t(i * n)];
      for (std::int64_t j = 0; j < n; ++j) c_row[j] += a_ik * b_row[j];
    }
  return c;
}

double trace(const std::vector<double>& m, std::int64_t n) {
  double sum = 0.0;
  for (std::int64_t i = 0; i < n; ++i) sum += m[std::size_t(i * n + i)];
  return sum;
}

}  // namespace

GaussianStatistics gaussian_statistics(const std::vector<double>& features, std::int64_t count, std::int64_t dim) {
  FM_CHECK(count >= 2, ValueError, "gaussian_statistics: got ", count,
           " feature vectors, expected at least 2 (a covariance needs two points)");
  FM_CHECK(dim >= 1, ValueError, "gaussian_statistics: feature dimension ", dim, ", expected >= 1");
  FM_CHECK(std::int64_t(features.size()) == count * dim, ValueError, "gaussian_statistics: ", features.size(),
           " values for ", count, " vectors of dimension ", dim);
  GaussianStatistics stats;
  stats.dim = dim;
  stats.count = count;
  stats.mean.assign(std::size_t(dim), 0.0);
  for (std::int64_t i = 0; i < count; ++i)
    for (std::int64_t j = 0; j < dim; ++j) stats.mean[std::size_t(j)] += features[std::size_t(i * dim + j)];
  for (double& m : stats.mean) m /= double(count);

  // Centre first, then accumulate: the one-pass E[xxᵀ] − μμᵀ form loses digits when |μ| ≫ σ.
  std::vector<double> centred(features.size());
  for (std::int64_t i = 0; i < count; ++i)
    for (std::int64_t j = 0; j < dim; ++j)
      centred[std::size_t(i * dim + j)] = features[std::size_t(i * dim + j)] - stats.mean[std::size_t(j)];
  stats.covariance.assign(std::size_t(dim * dim), 0.0);
  for (std::int64_t i = 0; i < count; ++i) {
    const double* row = &centred[std::size_t(i * dim)];
    for (std::int64_t p = 0; p < dim; ++p) {
      const double x_p = row[p];
      double* cov_row = &stats.covariance[std::size_t(p * dim)];
      for (std::int64_t q = p; q < dim; ++q) cov_row[q] += x_p * row[q];
    }
  }
  // Unbiased (N − 1), as numpy.cov and pytorch-fid; mirror the upper triangle.
  for (std::int64_t p = 0; p < dim; ++p)
    for (std::int64_t q = p; q < dim; ++q) {
      double value = stats.covariance[std::size_t(p * dim + q)] / double(count - 1);
      stats.covariance[std::size_t(p * dim + q)] = value;
      stats.covariance[std::size_t(q * dim + p)] = value;
    }
  return stats;
}

GaussianStatistics gaussian_statistics(const Tensor& features) {
  FM_CHECK(features.dim() == 2, ShapeError, "gaussian_statistics: features ", features.describe(),
           ", expected 2 dims (count, dim)");
  return gaussian_statistics(features.to_vector(), features.size(0), features.size(1));
}

SymmetricEigen symmetric_eigen(const std::vector<double>& matrix, std::int64_t n) {
  FM_CHECK(n >= 1 && std::int64_t(matrix.size()) == n * n, ValueError, "symmetric_eigen: ", matrix.size(),
           " values for a ", n, "x", n, " matrix");
  for (double v : matrix) FM_CHECK(std::isfinite(v), ValueError, "symmetric_eigen: the matrix has a non-finite entry");
  auto at = [n](std::vector<double>& m, std::int64_t r, std::int64_t c) -> double& { return m[std::size_t(r * n + c)]; };

  std::vector<double> a(matrix.size());
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t c = 0; c < n; ++c) at(a, r, c) = 0.5 * (matrix[std::size_t(r * n + c)] + matrix[std::size_t(c * n + r)]);
  std::vector<double> v(matrix.size(), 0.0);
  for (std::int64_t i = 0; i < n; ++i) at(v, i, i) = 1.0;

  // Golub & Van Loan, "Matrix Computations", Sec. 8.5 (cyclic Jacobi). Each rotation J in the (p, q)
  // plane is chosen so that (Jᵀ A J)_pq = 0: with θ = (a_qq − a_pp) / (2 a_pq) and t = tan φ the
  // smaller root of t² + 2θt − 1 = 0, c = 1/√(1+t²), s = t·c. Taking the smaller root keeps |φ| ≤ π/4,
  // which is what makes the sweeps converge.
  constexpr int kMaxSweeps = 100;
  for (int sweep = 0; sweep < kMaxSweeps; ++sweep) {
    double off_diagonal = 0.0, diagonal = 0.0;
    for (std::int64_t p = 0; p < n; ++p) {
      diagonal += at(a, p, p) * at(a, p, p);
      for (std::int64_t q = p + 1; q < n; ++q) off_diagonal += at(a, p, q) * at(a, p, q);
    }
    // Converged when the off-diagonal part is below rounding of the diagonal (or exactly zero).
    if (off_diagonal == 0.0 || off_diagonal <= 1e-32 * diagonal) break;
    for (std::int64_t p = 0; p < n - 1; ++p)
      for (std::int64_t q = p + 1; q < n; ++q) {
        const double a_pq = at(a, p, q);
        if (a_pq == 0.0) continue;
        const double a_pp = at(a, p, p), a_qq = at(a, q, q);
        // After a few sweeps, an entry too small to change either diagonal entry is set to zero
        // instead of rotated (Numerical Recipes' jacobi): rotating it would only stir rounding noise.
        if (sweep > 3 && std::abs(a_pp) + 100.0 * std::abs(a_pq) == std::abs(a_pp) &&
            std::abs(a_qq) + 100.0 * std::abs(a_pq) == std::abs(a_qq)) {
          at(a, p, q) = at(a, q, p) = 0.0;
          continue;
        }
        const double theta = (a_qq - a_pp) / (2.0 * a_pq);
        // For huge θ, θ² overflows; then t ≈ 1/(2θ).
        const double t = std::abs(theta) > 1e150 ? 0.5 / theta
                                                 : std::copysign(1.0, theta) / (std::abs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
        // A ← A·J (columns p, q), then A ← Jᵀ·A (rows p, q); V ← V·J accumulates the eigenvectors.
        for (std::int64_t k = 0; k < n; ++k) {
          const double a_kp = at(a, k, p), a_kq = at(a, k, q);
          at(a, k, p) = c * a_kp - s * a_kq;
          at(a, k, q) = s * a_kp + c * a_kq;
        }
        for (std::int64_t k = 0; k < n; ++k) {
          const double a_pk = at(a, p, k), a_qk = at(a, q, k);
          at(a, p, k) = c * a_pk - s * a_qk;
          at(a, q, k) = s * a_pk + c * a_qk;
        }
        at(a, p, q) = at(a, q, p) = 0.0;  // zero by construction; remove the rounding residue
        for (std::int64_t k = 0; k < n; ++k) {
          const double v_kp = at(v, k, p), v_kq = at(v, k, q);
          at(v, k, p) = c * v_kp - s * v_kq;
          at(v, k, q) = s * v_kp + c * v_kq;
        }
      }
  }

  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t x, std::int64_t y) { return at(a, x, x) < at(a, y, y); });
  SymmetricEigen result;
  result.values.resize(static_cast<std::size_t>(n));
  result.vectors.resize(std::size_t(n * n));
  for (std::int64_t k = 0; k < n; ++k) {
    const std::int64_t source = order[std::size_t(k)];
    result.values[std::size_t(k)] = at(a, source, source);
    for (std::int64_t r = 0; r < n; ++r) result.vectors[std::size_t(r * n + k)] = at(v, r, source);
  }
  return result;
}

std::vector<double> symmetric_psd_sqrt(const std::vector<double>& matrix, std::int64_t n) {
  SymmetricEigen eigen = symmetric_eigen(matrix, n);
  // V diag(√λ) Vᵀ = Σ_k √λ_k v_k v_kᵀ
  std::vector<double> root(std::size_t(n * n), 0.0);
  for (std::int64_t k = 0; k < n; ++k) {
    const double sqrt_lambda = std::sqrt(std::max(eigen.values[std::size_t(k)], 0.0));
    if (sqrt_lambda == 0.0) continue;
    for (std::int64_t r = 0; r < n; ++r) {
      const double scaled = sqrt_lambda * eigen.vectors[std::size_t(r * n + k)];
      for (std::int64_t c = 0; c < n; ++c) root[std::size_t(r * n + c)] += scaled * eigen.vectors[std::size_t(c * n + k)];
    }
  }
  return root;
}

double frechet_distance(const GaussianStatistics& a, const GaussianStatistics& b) {
  FM_CHECK(a.dim == b.dim, ShapeError, "frechet_distance: feature dimensions differ (", a.dim, " and ", b.dim, ")");
  const std::int64_t n = a.dim;
  FM_CHECK(std::int64_t(a.mean.size()) == n && std::int64_t(b.mean.size()) == n &&
               std::int64_t(a.covariance.size()) == n * n && std::int64_t(b.covariance.size()) == n * n,
           ShapeError, "frechet_distance: statistics of dimension ", n, " hold wrongly sized mean or covariance");
  double mean_term = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double d = a.mean[std::size_t(i)] - b.mean[std::size_t(i)];
    mean_term += d * d;
  }
  // Tr (Σa^½ Σb Σa^½)^½ = Σ √λ_i of the symmetric PSD product (see the header).
  std::vector<double> root_a = symmetric_psd_sqrt(a.covariance, n);
  std::vector<double> product = multiply_square(multiply_square(root_a, b.covariance, n), root_a, n);
  SymmetricEigen eigen = symmetric_eigen(product, n);
  double trace_of_root = 0.0;
  for (double lambda : eigen.values) trace_of_root += std::sqrt(std::max(lambda, 0.0));
  const double distance = mean_term + trace(a.covariance, n) + trace(b.covariance, n) - 2.0 * trace_of_root;
  // Identical sets give 0 up to rounding, which can land slightly below it.
  return std::max(distance, 0.0);
}

double frechet_distance(const Tensor& features_a, const Tensor& features_b) {
  return frechet_distance(gaussian_statistics(features_a), gaussian_statistics(features_b));
}

}  // namespace fm::flow
