// flow/path.cpp — affine probability paths: per-sample coefficients from the scheduler, applied to
// [N, ...] tensors with broadcasting multiplies (see path.h for the formulas).
#include "flow/path.h"

#include "core/error.h"
#include "core/ops.h"

namespace fm::flow {
namespace {

// x scaled per sample: coefficient c[i] multiplies x[i, ...]. One coefficient scales everything
// (affine op, no tensor built); otherwise a [N, 1, ..., 1] tensor broadcasts over the sample.
Tensor scale_per_sample(const Tensor& x, const std::vector<double>& c) {
  if (c.size() == 1) return x * c[0];
  Shape shape(std::size_t(x.dim()), 1);
  shape[0] = std::int64_t(c.size());
  return mul(x, Tensor::from_vector(c, shape, x.dtype(), x.device()));
}

void check_same_shape(const char* op, const Tensor& a, const char* a_name, const Tensor& b,
                      const char* b_name) {
  FM_CHECK(a.defined() && b.defined(), ValueError, op, ": ", a_name, " or ", b_name, " is undefined");
  FM_CHECK(a.shape() == b.shape(), ShapeError, op, ": ", a_name, " has shape ", shape_str(a.shape()),
           " but ", b_name, " has shape ", shape_str(b.shape()), "; expected equal shapes");
}

bool divides_by_alpha_or_sigma(Parameterization from, Parameterization to) {
  return from != Parameterization::Velocity && from != to;
}

}  // namespace

std::vector<double> TimeArgument::values(const char* op, const Tensor& x) const {
  FM_CHECK(x.defined() && x.dim() >= 1, ShapeError, op, ": x has shape ",
           x.defined() ? shape_str(x.shape()) : "undefined", ", expected [N, ...] with a batch dimension");
  if (is_scalar_) return {scalar_};
  FM_CHECK(tensor_.defined(), ValueError, op, ": t is undefined");
  const bool per_sample = tensor_.dim() == 1 && tensor_.size(0) == x.size(0);
  FM_CHECK(tensor_.numel() == 1 || per_sample, ShapeError, op, ": t has shape ",
           shape_str(tensor_.shape()), ", expected [", x.size(0),
           "] (one time per sample) or a single element");
  return tensor_.to_vector();
}

const char* parameterization_name(Parameterization p) {
  switch (p) {
    case Parameterization::Velocity: return "velocity";
    case Parameterization::DataPrediction: return "x1";
    case Parameterization::NoisePrediction: return "x0";
  }
  return "?";
}

Parameterization parse_parameterization(const std::string& name) {
  if (name == "velocity" || name == "v") return Parameterization::Velocity;
  if (name == "x1" || name == "data") return Parameterization::DataPrediction;
  if (name == "x0" || name == "noise" || name == "epsilon") return Parameterization::NoisePrediction;
  throw ConfigError(cat("parameterization: unknown name '", name,
                        "', expected one of velocity (v), x1 (data), x0 (noise, epsilon)"));
}

AffineProbabilityPath::AffineProbabilityPath(std::shared_ptr<const Scheduler> scheduler)
    : scheduler_(std::move(scheduler)) {
  FM_CHECK(scheduler_ != nullptr, ValueError, "AffineProbabilityPath: scheduler is null");
}

PathSample AffineProbabilityPath::sample(const Tensor& x0, const Tensor& x1, const TimeArgument& t) const {
  check_same_shape("path.sample", x0, "x0", x1, "x1");
  const Tensor* per_sample = t.tensor();
  const std::optional<PathLaw> law = scheduler_->law();
  if (law && per_sample && x1.dim() >= 1 && per_sample->dim() == 1 && per_sample->size(0) == x1.size(0) &&
      per_sample->device() == x1.device() && per_sample->dtype() == x1.dtype()) {
    // Per-sample times where the batch is: the coefficients made there (no read back), rows [N, 1, ...].
    const Tensor c = path_coefficients(*per_sample, *law);
    Shape shape(std::size_t(x1.dim()), 1);
    shape[0] = x1.size(0);
    auto row = [&](std::int64_t k) { return c.narrow(0, k, 1).reshape(shape); };
    return {mul(x1, row(0)) + mul(x0, row(1)), mul(x1, row(2)) + mul(x0, row(3))};
  }
  std::vector<double> times = t.values("path.sample", x1);
  std::vector<double> alpha(times.size()), sigma(times.size()), d_alpha(times.size()),
      d_sigma(times.size());
  for (std::size_t i = 0; i < times.size(); ++i) {
    SchedulerValues s = scheduler_->at(times[i]);
    alpha[i] = s.alpha, sigma[i] = s.sigma, d_alpha[i] = s.d_alpha, d_sigma[i] = s.d_sigma;
  }
  return {scale_per_sample(x1, alpha) + scale_per_sample(x0, sigma),
          scale_per_sample(x1, d_alpha) + scale_per_sample(x0, d_sigma)};
}

ConversionCoefficients AffineProbabilityPath::conversion_coefficients(const SchedulerValues& s,
                                                                      Parameterization from,
                                                                      Parameterization to) {
  using P = Parameterization;
  const double a = s.alpha, sg = s.sigma, da = s.d_alpha, ds = s.d_sigma;
  if (from == to) return {0.0, 1.0};
  // Solving x_t = α·x1 + σ·x0, v = α̇·x1 + σ̇·x0 for the two unknowns given the third.
  if (from == P::Velocity) {
    const double det = a * ds - sg * da;
    if (to == P::DataPrediction) return {ds / det, -sg / det};
    return {-da / det, a / det};  // to noise
  }
  if (from == P::DataPrediction) {
    if (to == P::Velocity) return {ds / sg, da - a * ds / sg};  // eq. 4.56
    return {1.0 / sg, -a / sg};                                 // to noise
  }
  // from noise
  if (to == P::Velocity) return {da / a, ds - sg * da / a};  // eq. 4.57
  return {1.0 / a, -sg / a};                                 // to data
}

ConversionCoefficients AffineProbabilityPath::conversion_coefficients(double t, Parameterization from,
                                                                      Parameterization to) const {
  const double t_eval = divides_by_alpha_or_sigma(from, to) ? clamp_time(t) : t;
  return conversion_coefficients(scheduler_->at(t_eval), from, to);
}

Tensor AffineProbabilityPath::convert(const Tensor& input, Parameterization from,
                                      Parameterization to, const Tensor& x_t,
                                      const TimeArgument& t) const {
  check_same_shape("path.convert", input, "prediction", x_t, "x_t");
  if (from == to) return input;
  std::vector<double> times = t.values("path.convert", x_t);
  std::vector<double> coef_x_t(times.size()), coef_input(times.size());
  for (std::size_t i = 0; i < times.size(); ++i) {
    ConversionCoefficients c = conversion_coefficients(times[i], from, to);
    coef_x_t[i] = c.coef_x_t, coef_input[i] = c.coef_input;
  }
  return scale_per_sample(x_t, coef_x_t) + scale_per_sample(input, coef_input);
}

Tensor AffineProbabilityPath::velocity_to_x1(const Tensor& v, const Tensor& x_t,
                                             const TimeArgument& t) const {
  return convert(v, Parameterization::Velocity, Parameterization::DataPrediction, x_t, t);
}
Tensor AffineProbabilityPath::velocity_to_x0(const Tensor& v, const Tensor& x_t,
                                             const TimeArgument& t) const {
  return convert(v, Parameterization::Velocity, Parameterization::NoisePrediction, x_t, t);
}
Tensor AffineProbabilityPath::x1_to_velocity(const Tensor& x1, const Tensor& x_t,
                                             const TimeArgument& t) const {
  return convert(x1, Parameterization::DataPrediction, Parameterization::Velocity, x_t, t);
}
Tensor AffineProbabilityPath::x0_to_velocity(const Tensor& x0, const Tensor& x_t,
                                             const TimeArgument& t) const {
  return convert(x0, Parameterization::NoisePrediction, Parameterization::Velocity, x_t, t);
}
Tensor AffineProbabilityPath::x1_to_x0(const Tensor& x1, const Tensor& x_t,
                                       const TimeArgument& t) const {
  return convert(x1, Parameterization::DataPrediction, Parameterization::NoisePrediction, x_t, t);
}
Tensor AffineProbabilityPath::x0_to_x1(const Tensor& x0, const Tensor& x_t,
                                       const TimeArgument& t) const {
  return convert(x0, Parameterization::NoisePrediction, Parameterization::DataPrediction, x_t, t);
}

CondOTPath::CondOTPath() : AffineProbabilityPath(std::make_shared<CondOTScheduler>()) {}

PathSample CondOTPath::sample(const Tensor& x0, const Tensor& x1, const TimeArgument& t) const {
  check_same_shape("path.sample", x0, "x0", x1, "x1");
  const Tensor* t_tensor = t.tensor();
  if (t_tensor && t_tensor->defined() && t_tensor->dim() == 1 && t_tensor->size(0) == x1.size(0) &&
      x1.size(0) > 1 && t_tensor->device() == x1.device() && t_tensor->dtype() == x1.dtype()) {
    // Per-sample times on x's device: the coefficients as [N, 1, ..., 1] tensors made there.
    Shape shape(std::size_t(x1.dim()), 1);
    shape[0] = x1.size(0);
    const Tensor alpha = t_tensor->detach().contiguous().view(shape);
    return {mul(x1, alpha) + mul(x0, 1.0 - alpha), x1 - x0};
  }
  std::vector<double> times = t.values("path.sample", x1);
  // (1 − t)·x0 + t·x1 rather than x0 + t·(x1 − x0): exact at both ends (x_0 = x0, x_1 = x1).
  std::vector<double> one_minus_t(times.size());
  for (std::size_t i = 0; i < times.size(); ++i) one_minus_t[i] = 1.0 - times[i];
  return {scale_per_sample(x1, times) + scale_per_sample(x0, one_minus_t), x1 - x0};
}

std::shared_ptr<const AffineProbabilityPath> make_path(const std::string& scheduler_name) {
  auto scheduler = make_scheduler(scheduler_name);
  if (scheduler->name() == "condot") return std::make_shared<CondOTPath>();
  return std::make_shared<AffineProbabilityPath>(std::move(scheduler));
}

}  // namespace fm::flow
