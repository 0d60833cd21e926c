// flow/solver.h — ODE solvers for sampling: integrate dx/dt = v(x, t) from t = 0 (noise) to t = 1
// (data). Fixed-step Euler, Midpoint, Heun and classical RK4, and the adaptive Dormand–Prince 5(4)
// pair (dopri5) with Hairer's step-size controller.
//
// Sits in flow/ on top of core/: the solvers only combine Tensors with core ops, so they run on
// whatever device x lives on. Every solver runs under NoGradGuard and counts velocity evaluations
// (NFE), the cost measure that matters when each evaluation is a U-Net forward pass.
//
// The whole batch is one ODE system: for dopri5 every sample shares the step sizes, and the error
// norm runs over all elements of x (as in torchdiffeq and the flow_matching library).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace fm::flow {

// The right-hand side: the velocity at state x (any shape) and time t. Must return x's shape.
using VelocityField = std::function<Tensor(const Tensor& x, double t)>;
// Called after each (accepted) step with the time reached and the state there; for trajectories
// and animations. Not called for the initial state (the caller has it already).
using StepCallback = std::function<void(double t, const Tensor& x)>;

struct SolveResult {
  Tensor x;                         // the state at t_end
  std::int64_t nfe = 0;             // velocity evaluations, all of them (including rejected steps)
  std::int64_t steps = 0;           // steps taken (accepted steps for dopri5)
  std::int64_t rejected_steps = 0;  // dopri5 only: steps whose error estimate exceeded 1
};

class OdeSolver {
 public:
  OdeSolver(double t_start, double t_end) : t_start_(t_start), t_end_(t_end) {}
  virtual ~OdeSolver() = default;
  virtual std::string name() const = 0;
  // Integrates from (t_start, x_start) to t_end. t_end < t_start integrates backwards in time.
  virtual SolveResult solve(const VelocityField& velocity, const Tensor& x_start,
                            const StepCallback& on_step = {}) const = 0;
  double t_start() const { return t_start_; }
  double t_end() const { return t_end_; }

 protected:
  double t_start_, t_end_;
};

// n equal steps on the grid t_i = t_start + (t_end − t_start)·i/n (each t_i computed from i, so
// the last step lands on t_end exactly and no rounding drift accumulates).
class FixedStepSolver : public OdeSolver {
 public:
  FixedStepSolver(int steps, double t_start, double t_end);
  SolveResult solve(const VelocityField& velocity, const Tensor& x_start,
                    const StepCallback& on_step = {}) const final;
  int steps() const { return steps_; }
  virtual int evaluations_per_step() const = 0;
  // One step of size h from (t, x); calls velocity exactly evaluations_per_step() times.
  virtual Tensor step(const VelocityField& velocity, const Tensor& x, double t, double h) const = 0;

 private:
  int steps_;
};

// x ← x + h·v(x, t). Order 1, 1 evaluation per step (seeds 000, 003, 004).
class EulerSolver final : public FixedStepSolver {
 public:
  explicit EulerSolver(int steps, double t_start = 0.0, double t_end = 1.0)
      : FixedStepSolver(steps, t_start, t_end) {}
  std::string name() const override { return "euler"; }
  int evaluations_per_step() const override { return 1; }
  Tensor step(const VelocityField& velocity, const Tensor& x, double t, double h) const override;
};

// Explicit midpoint: k1 = v(x, t), x ← x + h·v(x + h/2·k1, t + h/2). Order 2, 2 evaluations.
class MidpointSolver final : public FixedStepSolver {
 public:
  explicit MidpointSolver(int steps, double t_start = 0.0, double t_end = 1.0)
      : FixedStepSolver(steps, t_start, t_end) {}
  std::string name() const override { return "midpoint"; }
  int evaluations_per_step() const override { return 2; }
  Tensor step(const VelocityField& velocity, const Tensor& x, double t, double h) const override;
};

// Heun (explicit trapezoid): k1 = v(x, t), k2 = v(x + h·k1, t + h), x ← x + h/2·(k1 + k2).
// Order 2, 2 evaluations (the last step is not shortened to Euler as in EDM's sampler).
class HeunSolver final : public FixedStepSolver {
 public:
  explicit HeunSolver(int steps, double t_start = 0.0, double t_end = 1.0)
      : FixedStepSolver(steps, t_start, t_end) {}
  std::string name() const override { return "heun"; }
  int evaluations_per_step() const override { return 2; }
  Tensor step(const VelocityField& velocity, const Tensor& x, double t, double h) const override;
};

// Classical Runge–Kutta (seed 003): x ← x + h/6·(k1 + 2k2 + 2k3 + k4). Order 4, 4 evaluations.
class RK4Solver final : public FixedStepSolver {
 public:
  explicit RK4Solver(int steps, double t_start = 0.0, double t_end = 1.0)
      : FixedStepSolver(steps, t_start, t_end) {}
  std::string name() const override { return "rk4"; }
  int evaluations_per_step() const override { return 4; }
  Tensor step(const VelocityField& velocity, const Tensor& x, double t, double h) const override;
};

struct AdaptiveStepOptions {
  double rtol = 1e-5, atol = 1e-5;  // per-element tolerance atol + rtol·max(|x_old|, |x_new|)
  double first_step = 0.0;          // 0: Hairer's starting-step heuristic (costs 1 evaluation)
  double max_step = 0.0;            // 0: no bound beyond |t_end − t_start|
  std::int64_t max_steps = 100000;  // accepted + rejected; ValueError beyond
  // Hairer's controller (the DOPRI5 code; "Solving ODEs I", Sec. II.4): h_new = h / fac with
  // fac = clamp(err^(1/5 − 0.75β) / err_prev^β / safety, 1/max_factor, 1/min_factor);
  // after a rejection h_new = h / min(1/min_factor, err^(1/5 − 0.75β) / safety) and the next
  // accepted step may not grow.
  double safety = 0.9;
  double min_factor = 0.2, max_factor = 10.0;  // h_new/h stays in [min_factor, max_factor]
  double stabilization_beta = 0.04;  // DOPRI5's default "stabilised" (PI) control; 0: plain I-control
};

// Dormand & Prince 1980, the 5(4) pair with Hairer's error coefficients (Hairer, Nørsett & Wanner,
// "Solving Ordinary Differential Equations I", 2nd ed., Table II.5.2 and the DOPRI5 code): the
// 5th-order solution is propagated (local extrapolation); the embedded 4th-order one only estimates
// the error. FSAL: the 7th stage, v at the new point, is the next step's 1st, so an attempted step
// costs 6 evaluations. NFE = 1 (initial v) + 1 (step heuristic, unless first_step is set)
// + 6·(accepted + rejected).
class Dopri5Solver final : public OdeSolver {
 public:
  explicit Dopri5Solver(AdaptiveStepOptions options = {}, double t_start = 0.0, double t_end = 1.0);
  std::string name() const override { return "dopri5"; }
  SolveResult solve(const VelocityField& velocity, const Tensor& x_start,
                    const StepCallback& on_step = {}) const override;
  const AdaptiveStepOptions& options() const { return options_; }

 private:
  AdaptiveStepOptions options_;
};

struct SolverOptions {
  int steps = 100;  // fixed-step solvers
  AdaptiveStepOptions adaptive;  // dopri5
  double t_start = 0.0, t_end = 1.0;
};
// "euler", "midpoint", "heun", "rk4", "dopri5"; ConfigError listing these otherwise.
std::unique_ptr<OdeSolver> make_solver(const std::string& name, const SolverOptions& options = {});
std::vector<std::string> solver_names();

}  // namespace fm::flow
