// flow/likelihood.cpp — log p_1(x) by the instantaneous change of variables (see likelihood.h).
#include "flow/likelihood.h"

#include <cmath>
#include <numbers>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace fm::flow {

DivergenceMethod parse_divergence_method(const std::string& name) {
  if (name == "exact") return DivergenceMethod::Exact;
  if (name == "hutchinson") return DivergenceMethod::Hutchinson;
  throw ConfigError(cat("divergence: got \"", name, "\", expected exact or hutchinson"));
}

ProbeDistribution parse_probe_distribution(const std::string& name) {
  if (name == "rademacher") return ProbeDistribution::Rademacher;
  if (name == "gaussian") return ProbeDistribution::Gaussian;
  throw ConfigError(cat("probe: got \"", name, "\", expected rademacher or gaussian"));
}

std::string divergence_method_name(DivergenceMethod method) {
  return method == DivergenceMethod::Exact ? "exact" : "hutchinson";
}

std::string probe_distribution_name(ProbeDistribution probe) {
  return probe == ProbeDistribution::Rademacher ? "rademacher" : "gaussian";
}

namespace {

std::int64_t per_sample_elements(const Tensor& x) { return x.numel() / x.size(0); }

}  // namespace

Tensor standard_normal_log_density(const Tensor& x) {
  FM_CHECK(x.dim() >= 2 && x.size(0) >= 1 && x.numel() > 0, ShapeError, "standard_normal_log_density: x has shape ",
           shape_str(x.shape()), ", expected [N, ...] with N >= 1 and at least one element per sample");
  const std::int64_t n = x.size(0), d = per_sample_elements(x);
  NoGradGuard no_grad;
  Tensor squared_norm = sum(square(x.reshape({n, d})), {1});
  return affine(squared_norm, -0.5, -0.5 * double(d) * std::log(2.0 * std::numbers::pi));
}

Tensor make_probes(const Shape& shape, int probes, ProbeDistribution distribution, std::uint64_t seed,
                   std::int64_t first_sample, DType dtype, Device device) {
  FM_CHECK(probes >= 1, ValueError, "make_probes: probe count ", probes, " must be >= 1");
  FM_CHECK(shape.size() >= 2 && shape[0] >= 1 && shape_numel(shape) > 0, ShapeError, "make_probes: shape ",
           shape_str(shape), ", expected [N, ...] with N >= 1");
  const std::int64_t n = shape[0], d = shape_numel(shape) / n;
  const PhiloxKey key{seed, kLikelihoodProbeStream};
  std::vector<Tensor> rows;
  for (int k = 0; k < probes; ++k) {
    Tensor z;
    if (distribution == ProbeDistribution::Gaussian) {
      z = philox_normal({n, d}, key, /*step=*/k, first_sample, dtype, device);
    } else {
      // One uniform per element, its sign from u < ½ (on the host: the tensor ops have no comparison).
      std::vector<double> u = philox_uniform({n, d}, key, /*step=*/k, first_sample, DType::Float64).to_vector();
      for (double& value : u) value = value < 0.5 ? -1.0 : 1.0;
      z = Tensor::from_vector(u, {n, d}, dtype, device);
    }
    rows.push_back(z.reshape(shape).unsqueeze(0));
  }
  return probes == 1 ? rows.front() : concat(rows, 0);
}

VelocityAndDivergence velocity_and_divergence(const VelocityField& velocity, const Tensor& x, double t,
                                              DivergenceMethod method, const Tensor& probes,
                                              std::int64_t* backward_passes) {
  FM_CHECK(x.dim() >= 2 && x.size(0) >= 1 && x.numel() > 0, ShapeError, "velocity_and_divergence: x has shape ",
           shape_str(x.shape()), ", expected [N, ...] with N >= 1 and at least one element per sample");
  const std::int64_t n = x.size(0), d = per_sample_elements(x);
  if (method == DivergenceMethod::Hutchinson) {
    FM_CHECK(probes.defined() && probes.dim() == x.dim() + 1 && probes.size(0) >= 1, ShapeError,
             "velocity_and_divergence: Hutchinson needs probes [K, ", shape_str(x.shape()).substr(1), ", got ",
             probes.defined() ? shape_str(probes.shape()) : std::string("none"));
    for (int i = 0; i < x.dim(); ++i)
      FM_CHECK(probes.size(i + 1) == x.size(i), ShapeError, "velocity_and_divergence: probes ",
               shape_str(probes.shape()), " do not match x ", shape_str(x.shape()));
  }
  // A fresh leaf: the graph of this evaluation starts here and ends with this function. The solvers
  // call this under NoGradGuard, so grad mode is turned on for the forward pass alone.
  Tensor x_leaf, v;
  {
    EnableGradGuard grad_on;
    x_leaf = x.detach().clone();
    x_leaf.set_requires_grad(true);
    v = velocity(x_leaf, t);
  }
  FM_CHECK(v.defined() && v.shape() == x.shape(), ShapeError, "velocity_and_divergence: the field returned ",
           v.defined() ? shape_str(v.shape()) : std::string("nothing"), " for x ", shape_str(x.shape()));

  NoGradGuard no_grad;
  Tensor divergence;
  if (!v.requires_grad()) {
    divergence = Tensor::zeros({n}, x.dtype(), x.device());  // the field does not depend on x
  } else {
    // Σ over the directions z of (Jᵀz)·z, elementwise; summed per sample at the end. Samples are
    // independent, so the backward of v against z (a [N, ...] tensor) gives every sample's Jᵀz at once.
    Tensor products;
    auto add_direction = [&](const Tensor& direction) {
      x_leaf.zero_grad();
      v.backward(direction);
      if (backward_passes) ++*backward_passes;
      Tensor grad = x_leaf.grad();
      if (!grad.defined()) return;  // v does not reach x along this direction
      Tensor product = grad * direction;
      products = products.defined() ? products + product : product;
    };
    if (method == DivergenceMethod::Exact) {
      // The basis vectors e_i for every sample, made on the host (a plain copy to any device).
      std::vector<double> basis(std::size_t(n * d), 0.0);
      for (std::int64_t i = 0; i < d; ++i) {
        for (std::int64_t row = 0; row < n; ++row) basis[std::size_t(row * d + i)] = 1.0;
        add_direction(Tensor::from_vector(basis, x.shape(), x.dtype(), x.device()));
        for (std::int64_t row = 0; row < n; ++row) basis[std::size_t(row * d + i)] = 0.0;
      }
    } else {
      for (std::int64_t k = 0; k < probes.size(0); ++k) add_direction(probes.narrow(0, k, 1).squeeze(0));
    }
    divergence = products.defined() ? sum(products.reshape({n, d}), {1}) : Tensor::zeros({n}, x.dtype(), x.device());
    if (method == DivergenceMethod::Hutchinson) divergence = divergence * (1.0 / double(probes.size(0)));
  }
  x_leaf.zero_grad();
  return {v.detach(), divergence.detach()};
}

LikelihoodResult log_likelihood(const VelocityField& velocity, const Tensor& x1, const LikelihoodOptions& options) {
  FM_CHECK(static_cast<bool>(velocity), ValueError, "log_likelihood: the velocity field is empty");
  FM_CHECK(x1.defined() && x1.dim() >= 2 && x1.size(0) >= 1 && x1.numel() > 0, ShapeError, "log_likelihood: x1 has shape ",
           x1.defined() ? shape_str(x1.shape()) : std::string("(undefined)"),
           ", expected [N, ...] with N >= 1 and at least one element per sample");
  FM_CHECK(options.steps >= 1, ValueError, "log_likelihood: steps ", options.steps, " must be >= 1");
  FM_CHECK(options.probes >= 1, ValueError, "log_likelihood: probes ", options.probes, " must be >= 1");
  FM_CHECK(options.rtol > 0 && options.atol > 0, ValueError, "log_likelihood: rtol ", options.rtol, " and atol ",
           options.atol, " must be > 0");
  SolverOptions solver_options;
  solver_options.steps = options.steps;
  solver_options.adaptive.rtol = options.rtol;
  solver_options.adaptive.atol = options.atol;
  solver_options.t_start = 1.0;  // from the data ...
  solver_options.t_end = 0.0;    // ... back to the source
  std::unique_ptr<OdeSolver> solver = make_solver(options.solver, solver_options);  // ConfigError on unknown names

  const Shape shape = x1.shape();
  const std::int64_t n = x1.size(0), d = per_sample_elements(x1);
  const Tensor probes =
      options.divergence == DivergenceMethod::Hutchinson
          ? make_probes(shape, options.probes, options.probe, options.seed, options.first_sample, x1.dtype(), x1.device())
          : Tensor();

  LikelihoodResult result;
  // The augmented state [N, D + 1]: the flattened x and ℓ with dℓ/dt = div v, ℓ(1) = 0.
  VelocityField augmented = [&](const Tensor& state, double t) {
    Tensor x = state.narrow(1, 0, d).reshape(shape);
    VelocityAndDivergence vd = velocity_and_divergence(velocity, x, t, options.divergence, probes, &result.backward_passes);
    return concat({vd.velocity.reshape({n, d}), vd.divergence.reshape({n, 1})}, 1);
  };
  Tensor state = concat({x1.detach().reshape({n, d}), Tensor::zeros({n, 1}, x1.dtype(), x1.device())}, 1);
  // The solver runs under NoGradGuard; velocity_and_divergence turns grad mode on for its own forward.
  const SolveResult solved = solver->solve(augmented, state);
  state = solved.x;
  result.nfe = solved.nfe;
  result.steps = solved.steps;
  result.rejected_steps = solved.rejected_steps;
  {
    NoGradGuard no_grad;
    result.x0 = state.narrow(1, 0, d).reshape(shape).contiguous();
    Tensor log_change = state.narrow(1, d, 1).reshape({n}).contiguous();  // ℓ(0) = −∫_0^1 div v dt
    result.source_log_prob = standard_normal_log_density(result.x0);
    result.log_prob = result.source_log_prob + log_change;
    result.divergence_integral = -log_change;
  }
  return result;
}

}  // namespace fm::flow
