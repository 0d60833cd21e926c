// flow/solver.cpp — fixed-step Runge–Kutta solvers and adaptive dopri5 (see solver.h).
#include "flow/solver.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace fm::flow {
namespace {

// x + Σ c_i·k_i, skipping zero coefficients (dopri5's tableau has a few).
Tensor add_scaled(const Tensor& x, std::initializer_list<std::pair<double, const Tensor*>> terms) {
  Tensor sum = x;
  for (const auto& [coef, k] : terms)
    if (coef != 0.0) sum = sum + (*k) * coef;
  return sum;
}

// Wraps the user's field: counts every evaluation and checks the returned shape once per call.
class CountedField {
 public:
  CountedField(const char* solver, const VelocityField& field) : solver_(solver), field_(field) {
    FM_CHECK(static_cast<bool>(field_), ValueError, solver_, ": the velocity field is empty");
  }
  Tensor operator()(const Tensor& x, double t) {
    Tensor v = field_(x, t);
    ++count_;
    FM_CHECK(v.defined() && v.shape() == x.shape(), ShapeError, solver_,
             ": the velocity field returned ", v.defined() ? shape_str(v.shape()) : "nothing",
             " for x of shape ", shape_str(x.shape()), " at t = ", t, "; expected x's shape");
    return v;
  }
  std::int64_t count() const { return count_; }

 private:
  const char* solver_;
  const VelocityField& field_;
  std::int64_t count_ = 0;
};

void check_start(const char* solver, const Tensor& x) {
  FM_CHECK(x.defined() && x.numel() > 0, ValueError, solver, ": the start state is empty");
}

}  // namespace

// ---------------------------------------------------------------------------- fixed-step solvers

FixedStepSolver::FixedStepSolver(int steps, double t_start, double t_end)
    : OdeSolver(t_start, t_end), steps_(steps) {
  FM_CHECK(steps >= 1, ValueError, "fixed-step solver: step count ", steps, " must be >= 1");
}

SolveResult FixedStepSolver::solve(const VelocityField& velocity, const Tensor& x_start,
                                   const StepCallback& on_step) const {
  const std::string solver_name = name();
  check_start(solver_name.c_str(), x_start);
  NoGradGuard no_grad;
  CountedField field(solver_name.c_str(), velocity);
  VelocityField counted = [&field](const Tensor& x, double t) { return field(x, t); };
  auto time_at = [&](int i) {
    return i == steps_ ? t_end_ : t_start_ + (t_end_ - t_start_) * (double(i) / double(steps_));
  };
  Tensor x = x_start;
  for (int i = 0; i < steps_; ++i) {
    const double t = time_at(i), t_next = time_at(i + 1);
    x = step(counted, x, t, t_next - t);
    if (on_step) on_step(t_next, x);
  }
  return {x, field.count(), steps_, 0};
}

Tensor EulerSolver::step(const VelocityField& v, const Tensor& x, double t, double h) const {
  return x + v(x, t) * h;
}

Tensor MidpointSolver::step(const VelocityField& v, const Tensor& x, double t, double h) const {
  Tensor k1 = v(x, t);
  Tensor k2 = v(x + k1 * (0.5 * h), t + 0.5 * h);
  return x + k2 * h;
}

Tensor HeunSolver::step(const VelocityField& v, const Tensor& x, double t, double h) const {
  Tensor k1 = v(x, t);
  Tensor k2 = v(x + k1 * h, t + h);
  return x + (k1 + k2) * (0.5 * h);
}

Tensor RK4Solver::step(const VelocityField& v, const Tensor& x, double t, double h) const {
  Tensor k1 = v(x, t);
  Tensor k2 = v(x + k1 * (0.5 * h), t + 0.5 * h);
  Tensor k3 = v(x + k2 * (0.5 * h), t + 0.5 * h);
  Tensor k4 = v(x + k3 * h, t + h);
  return x + (k1 + (k2 + k3) * 2.0 + k4) * (h / 6.0);
}

// ---------------------------------------------------------------------------- dopri5

namespace {

// Dormand–Prince 5(4) tableau (Hairer–Nørsett–Wanner Table II.5.2). c_i: stage times; a_ij: stage
// weights; the 7th row is the 5th-order solution (b = a7·, FSAL); e_i = b_i − b̂_i gives the
// difference to the embedded 4th-order solution, the local error estimate.
namespace dp {
constexpr double c2 = 1.0 / 5, c3 = 3.0 / 10, c4 = 4.0 / 5, c5 = 8.0 / 9;
constexpr double a21 = 1.0 / 5;
constexpr double a31 = 3.0 / 40, a32 = 9.0 / 40;
constexpr double a41 = 44.0 / 45, a42 = -56.0 / 15, a43 = 32.0 / 9;
constexpr double a51 = 19372.0 / 6561, a52 = -25360.0 / 2187, a53 = 64448.0 / 6561,
                 a54 = -212.0 / 729;
constexpr double a61 = 9017.0 / 3168, a62 = -355.0 / 33, a63 = 46732.0 / 5247, a64 = 49.0 / 176,
                 a65 = -5103.0 / 18656;
constexpr double a71 = 35.0 / 384, a73 = 500.0 / 1113, a74 = 125.0 / 192, a75 = -2187.0 / 6784,
                 a76 = 11.0 / 84;
constexpr double e1 = 71.0 / 57600, e3 = -71.0 / 16695, e4 = 71.0 / 1920, e5 = -17253.0 / 339200,
                 e6 = 22.0 / 525, e7 = -1.0 / 40;
}  // namespace dp

// Hairer's weighted RMS norm (HNW eq. II.4.11): sqrt(mean((d_i / sc_i)²)) with
// sc_i = atol + rtol·max(|y_i|, |z_i|). Computed on the host in double: exact |·| and max, and the
// step-size decision needs the number on the host anyway.
double scaled_rms(const std::vector<double>& d, const std::vector<double>& y,
                  const std::vector<double>& z, double atol, double rtol) {
  double sum = 0;
  for (std::size_t i = 0; i < d.size(); ++i) {
    const double scale = atol + rtol * std::max(std::abs(y[i]), std::abs(z[i]));
    const double r = d[i] / scale;
    sum += r * r;
  }
  return std::sqrt(sum / double(d.size()));
}

}  // namespace

Dopri5Solver::Dopri5Solver(AdaptiveStepOptions options, double t_start, double t_end)
    : OdeSolver(t_start, t_end), options_(options) {
  const auto& o = options_;
  FM_CHECK(o.rtol >= 0 && o.atol >= 0 && (o.rtol > 0 || o.atol > 0), ValueError,
           "dopri5: need rtol >= 0, atol >= 0, not both 0; got rtol ", o.rtol, ", atol ", o.atol);
  FM_CHECK(o.first_step >= 0 && o.max_step >= 0, ValueError,
           "dopri5: first_step and max_step must be >= 0 (0 = automatic), got ", o.first_step, ", ",
           o.max_step);
  FM_CHECK(o.max_steps >= 1, ValueError, "dopri5: max_steps ", o.max_steps, " must be >= 1");
  FM_CHECK(o.safety > 0 && o.safety <= 1, ValueError, "dopri5: safety ", o.safety,
           " must be in (0, 1]");
  FM_CHECK(o.min_factor > 0 && o.min_factor < 1 && o.max_factor > 1, ValueError,
           "dopri5: need 0 < min_factor < 1 < max_factor, got ", o.min_factor, ", ", o.max_factor);
  FM_CHECK(o.stabilization_beta >= 0 && o.stabilization_beta <= 0.2, ValueError,
           "dopri5: stabilization_beta ", o.stabilization_beta, " must be in [0, 0.2]");
}

SolveResult Dopri5Solver::solve(const VelocityField& velocity, const Tensor& x_start,
                                const StepCallback& on_step) const {
  check_start("dopri5", x_start);
  NoGradGuard no_grad;
  const auto& o = options_;
  CountedField f("dopri5", velocity);
  SolveResult result;
  result.x = x_start;
  const double span = t_end_ - t_start_;
  if (span == 0.0) return result;
  const double direction = span > 0 ? 1.0 : -1.0;
  const double max_step = o.max_step > 0 ? std::min(o.max_step, std::abs(span)) : std::abs(span);
  const double unit_roundoff = std::numeric_limits<double>::epsilon();

  double t = t_start_;
  Tensor y = x_start;
  std::vector<double> y_host = y.to_vector();
  Tensor k1 = f(y, t);

  // Starting step (HNW Sec. II.4, "Starting step size", and HINIT in DOPRI5): take a step whose
  // Euler error 0.01 would be; then refine with an estimate of the second derivative.
  double h = o.first_step;
  if (h == 0.0) {
    const std::vector<double> f0 = k1.to_vector();
    const std::vector<double> zeros(f0.size(), 0.0);
    const double d0 = scaled_rms(y_host, y_host, zeros, o.atol, o.rtol);
    const double d1 = scaled_rms(f0, y_host, zeros, o.atol, o.rtol);
    double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    h0 = std::min(h0, max_step);
    Tensor f1 = f(y + k1 * (direction * h0), t + direction * h0);
    std::vector<double> df = (f1 - k1).to_vector();
    const double d2 = scaled_rms(df, y_host, zeros, o.atol, o.rtol) / h0;
    const double d12 = std::max(d1, d2);
    const double h1 = d12 <= 1e-15 ? std::max(1e-6, h0 * 1e-3) : std::pow(0.01 / d12, 1.0 / 5.0);
    h = std::min({100.0 * h0, h1, max_step});
  }
  h = direction * std::min(h, max_step);

  const double exponent = 0.2 - 0.75 * o.stabilization_beta;
  double previous_error = 1e-4;  // DOPRI5's FACOLD start
  bool rejected_last = false;
  for (;;) {
    FM_CHECK(result.steps + result.rejected_steps < o.max_steps, ValueError, "dopri5: gave up after ",
             o.max_steps, " steps at t = ", t, " (", result.rejected_steps,
             " rejected); the tolerance may be too tight or the field too stiff");
    FM_CHECK(0.1 * std::abs(h) > std::abs(t) * unit_roundoff, ValueError,
             "dopri5: step size ", h, " underflowed at t = ", t);
    // Stretch the step onto t_end when it would land within 1% of it (avoids a sliver step).
    bool last = false;
    if ((t + 1.01 * h - t_end_) * direction >= 0) {
      h = t_end_ - t;
      last = true;
    }
    using namespace dp;
    Tensor k2 = f(add_scaled(y, {{h * a21, &k1}}), t + c2 * h);
    Tensor k3 = f(add_scaled(y, {{h * a31, &k1}, {h * a32, &k2}}), t + c3 * h);
    Tensor k4 = f(add_scaled(y, {{h * a41, &k1}, {h * a42, &k2}, {h * a43, &k3}}), t + c4 * h);
    Tensor k5 = f(add_scaled(y, {{h * a51, &k1}, {h * a52, &k2}, {h * a53, &k3}, {h * a54, &k4}}),
                  t + c5 * h);
    const double t_new = last ? t_end_ : t + h;
    Tensor k6 = f(add_scaled(y, {{h * a61, &k1}, {h * a62, &k2}, {h * a63, &k3}, {h * a64, &k4},
                                 {h * a65, &k5}}),
                  t_new);
    Tensor y_new = add_scaled(y, {{h * a71, &k1}, {h * a73, &k3}, {h * a74, &k4}, {h * a75, &k5},
                                  {h * a76, &k6}});
    Tensor k7 = f(y_new, t_new);
    Tensor error_estimate = add_scaled(k1 * (h * e1), {{h * e3, &k3}, {h * e4, &k4}, {h * e5, &k5},
                                                       {h * e6, &k6}, {h * e7, &k7}});
    std::vector<double> y_new_host = y_new.to_vector();
    const double err =
        scaled_rms(error_estimate.to_vector(), y_host, y_new_host, o.atol, o.rtol);
    FM_CHECK(!std::isnan(err), ValueError, "dopri5: the error estimate is NaN at t = ", t,
             " (h = ", h, "); the velocity field returned NaN");

    const double err_power = std::pow(err, exponent);
    if (err <= 1.0) {
      // Accept: h_new = h / clamp(err^expo / err_prev^β / safety, 1/max_factor, 1/min_factor).
      double factor = err_power / std::pow(previous_error, o.stabilization_beta) / o.safety;
      factor = std::max(1.0 / o.max_factor, std::min(1.0 / o.min_factor, factor));
      double h_new = std::min(std::abs(h / factor), max_step);
      if (rejected_last) h_new = std::min(h_new, std::abs(h));  // no growth right after a rejection
      previous_error = std::max(err, 1e-4);
      ++result.steps;
      t = t_new;
      y = y_new;
      y_host = std::move(y_new_host);
      k1 = k7;  // FSAL
      if (on_step) on_step(t, y);
      rejected_last = false;
      if (last) break;
      h = direction * h_new;
    } else {
      ++result.rejected_steps;
      rejected_last = true;
      h = h / std::min(1.0 / o.min_factor, err_power / o.safety);
    }
  }
  result.x = y;
  result.nfe = f.count();
  return result;
}

// ---------------------------------------------------------------------------- factory

std::vector<std::string> solver_names() { return {"euler", "midpoint", "heun", "rk4", "dopri5"}; }

std::unique_ptr<OdeSolver> make_solver(const std::string& name, const SolverOptions& options) {
  const double t0 = options.t_start, t1 = options.t_end;
  if (name == "euler") return std::make_unique<EulerSolver>(options.steps, t0, t1);
  if (name == "midpoint") return std::make_unique<MidpointSolver>(options.steps, t0, t1);
  if (name == "heun") return std::make_unique<HeunSolver>(options.steps, t0, t1);
  if (name == "rk4") return std::make_unique<RK4Solver>(options.steps, t0, t1);
  if (name == "dopri5") return std::make_unique<Dopri5Solver>(options.adaptive, t0, t1);
  throw ConfigError(cat("solver: unknown name '", name,
                        "', expected one of euler, midpoint, heun, rk4, dopri5"));
}

}  // namespace fm::flow
