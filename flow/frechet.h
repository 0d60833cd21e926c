// flow/frechet.h — the Fréchet distance between two sets of feature vectors, each summarised by a
// Gaussian (mean and covariance): the formula behind FID, here used with the penultimate features of
// our own Fashion-MNIST classifier (nn/classifier.h) instead of Inception-v3's.
//
// Sits in flow/ on top of core/ (Tensor for the convenience overloads); all arithmetic is on the host
// in double. The distance (Dowson & Landau 1982, the closed-form 2-Wasserstein distance between two
// Gaussians; used as "FID" by Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule
// Converge to a Local Nash Equilibrium", NeurIPS, Eq. 6):
//
//   d²(N(μ1, Σ1), N(μ2, Σ2)) = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1^½ Σ2 Σ1^½)^½)
//
// Heusel et al. write the last term as 2 (Σ1 Σ2)^½; the two traces agree because Σ1 Σ2 is similar to
// the symmetric PSD matrix Σ1^½ Σ2 Σ1^½ (conjugate it by Σ1^½), so they have the same eigenvalues
// λ_i ≥ 0 and Tr (·)^½ = Σ √λ_i either way. The symmetric form lets us use only symmetric
// eigendecompositions (no general matrix square root, no complex parts from rounding, as scipy's
// sqrtm in pytorch-fid can produce):
//   1. Σ1 = V diag(d) Vᵀ  →  Σ1^½ = V diag(√max(d, 0)) Vᵀ
//   2. M = Σ1^½ Σ2 Σ1^½   (symmetric PSD up to rounding)
//   3. Tr M^½ = Σ √max(λ_i(M), 0)
// Eigenvalues come from the cyclic Jacobi method (below), which is accurate for small eigenvalues of
// symmetric matrices and simple enough to read; 128×128 takes a few milliseconds.
//
// Statistics follow pytorch-fid / numpy: the covariance is the unbiased sample covariance (divisor
// N − 1). Like FID, the value is biased upward at small N, so compare a model's distance with the
// "floor" (two real samples of the same size N), never with 0.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace fm::flow {

// Mean and covariance of `count` vectors of dimension `dim`.
struct GaussianStatistics {
  std::int64_t dim = 0;
  std::int64_t count = 0;
  std::vector<double> mean;        // dim
  std::vector<double> covariance;  // dim × dim, row-major, symmetric
};

// From host features, row after row (count × dim values). Needs count >= 2 (a covariance needs two
// points); throws fm::ValueError otherwise or when the buffer size does not match.
GaussianStatistics gaussian_statistics(const std::vector<double>& features, std::int64_t count, std::int64_t dim);
// From a [N, D] tensor on any device and in any float dtype (copied to the host as double).
GaussianStatistics gaussian_statistics(const Tensor& features);

// The Fréchet distance d² above (a squared distance, like FID; never negative: rounding that would
// make it so is clamped to 0). Throws fm::ShapeError when the dimensions differ.
double frechet_distance(const GaussianStatistics& a, const GaussianStatistics& b);
// Convenience: statistics of two [N, D] / [M, D] feature tensors, then the distance.
double frechet_distance(const Tensor& features_a, const Tensor& features_b);

// ---- the linear algebra it stands on (public so the tests can check it alone) ----

// Eigenvalues and eigenvectors of a symmetric matrix: A = V diag(values) Vᵀ, V orthogonal.
struct SymmetricEigen {
  std::vector<double> values;   // n, in ascending order
  std::vector<double> vectors;  // n × n, row-major; column k is the eigenvector of values[k]
};
// Cyclic Jacobi: sweeps over all off-diagonal pairs, each rotation zeroing one pair, until the
// off-diagonal mass is negligible against the diagonal (quadratic convergence; ~6–10 sweeps).
// Only the upper triangle's symmetry is assumed, not checked: the matrix is symmetrised first as
// (A + Aᵀ)/2. Throws fm::ValueError for a size mismatch or non-finite entries.
SymmetricEigen symmetric_eigen(const std::vector<double>& matrix, std::int64_t n);

// The PSD square root V diag(√max(λ, 0)) Vᵀ of a symmetric matrix (negative rounding noise in the
// eigenvalues is clamped to 0).
std::vector<double> symmetric_psd_sqrt(const std::vector<double>& matrix, std::int64_t n);

}  // namespace fm::flow
