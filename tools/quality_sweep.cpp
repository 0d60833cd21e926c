// tools/quality_sweep.cpp — `fmeval sweep` (see quality_sweep.h): runs Fréchet evaluations over
// kept checkpoints and over solvers × NFE budgets, and writes CSV tables and plots.
#include "tools/quality_sweep.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <sstream>

#include "core/distributed.h"
#include "core/error.h"
#include "core/io/atomic_file.h"
#include "core/io/png.h"
#include "flow/solver.h"

namespace fm::tools {
namespace {

namespace fs = std::filesystem;

void say(const std::function<void(const std::string&)>& log, const std::string& line) {
  if (log) log(line);
}

// checkpoint_step_NNNNNNN.safetensors files of a run, sorted by step.
std::vector<std::pair<std::int64_t, fs::path>> kept_checkpoints(const fs::path& run_dir) {
  static const std::regex pattern(R"(checkpoint_step_(\d+)\.safetensors)");
  std::vector<std::pair<std::int64_t, fs::path>> found;
  for (const auto& entry : fs::directory_iterator(run_dir)) {
    std::smatch match;
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && std::regex_match(name, match, pattern))
      found.emplace_back(std::stoll(match[1].str()), entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

// Evaluations per step of a fixed-step solver; 0 for the adaptive one.
int evaluations_per_step(const std::string& solver) {
  std::unique_ptr<flow::OdeSolver> made = flow::make_solver(solver);  // ConfigError for unknown names
  const auto* fixed = dynamic_cast<const flow::FixedStepSolver*>(made.get());
  return fixed ? fixed->evaluations_per_step() : 0;
}

std::string csv_number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

void write_csv(const fs::path& path, const std::vector<QualityPoint>& points, const QualitySweepResult& result) {
  std::ostringstream out;
  out << "checkpoint_step,solver,solver_steps,tolerance,nfe,fd,fd_floor,fd_floor_std,n,sampling_seconds\n";
  for (const QualityPoint& p : points)
    out << p.checkpoint_step << ',' << p.solver << ',' << p.solver_steps << ',' << csv_number(p.tolerance) << ','
        << p.nfe << ',' << csv_number(p.fd) << ',' << csv_number(result.floor) << ',' << csv_number(result.floor_std)
        << ',' << result.n << ',' << csv_number(p.sampling_seconds) << '\n';
  io::write_file_atomically(path.string(), out.str());
}

// The floor as a flat series across [x_min, x_max].
io::LineSeries floor_line(double x_min, double x_max, const QualitySweepResult& result) {
  return {{x_min, x_max}, {result.floor, result.floor}, cat("floor: real train vs test (n = ", result.n, ")")};
}

}  // namespace

QualitySweepResult run_quality_sweep(const QualitySweepRequest& request,
                                     const std::function<void(const std::string&)>& log) {
  // ---- cheap checks first ----
  const fs::path run_dir = request.run_dir;
  FM_CHECK(fs::is_directory(run_dir), IOError, "sweep: run directory ", request.run_dir,
           fs::exists(run_dir) ? " is a file, expected the folder of an fmtrain run" : " does not exist");
  const fs::path final_checkpoint = run_dir / "checkpoint.safetensors";
  FM_CHECK(fs::is_regular_file(final_checkpoint), IOError, "sweep: ", final_checkpoint.string(),
           " does not exist (fmtrain writes it; is ", request.run_dir, " a run directory?)");
  FM_CHECK(request.sweep_steps || request.sweep_nfe, ConfigError, "sweep: nothing to do (both sweeps switched off)");
  std::map<std::string, int> per_step;
  for (const std::string& solver : request.solvers) per_step[solver] = evaluations_per_step(solver);
  for (int budget : request.nfe_budgets)
    FM_CHECK(budget >= 1, ConfigError, "--nfe: got ", budget, ", expected budgets of at least 1 evaluation");
  for (double tolerance : request.dopri5_tolerances)
    FM_CHECK(tolerance > 0 && tolerance < 1, ConfigError, "--tolerances: got ", tolerance, ", expected values in (0, 1)");
  auto kept = kept_checkpoints(run_dir);
  // Said after the first evaluation went through, so that a refused input gets one line.
  const bool only_final_checkpoint = kept.empty();
  if (kept.empty()) kept.emplace_back(-1, final_checkpoint);

  QualitySweepResult result;
  result.n = request.n;
  bool have_floor = false;
  auto evaluate = [&](const fs::path& checkpoint, const Json& overrides) {
    FrechetEvalRequest eval;
    eval.checkpoint = checkpoint.string();
    eval.classifier = request.classifier;
    eval.data_dir = request.data_dir;
    eval.n = request.n;
    eval.device = request.device;
    eval.sample_overrides = overrides;
    // The floor is the same for every point (same real images, same draws); measure its spread once.
    eval.floor_draws = have_floor ? 1 : 5;
    FrechetEvalResult r = run_frechet_evaluation(eval, nullptr);
    if (!have_floor) {
      result.floor = r.fd_floor_train_vs_test;
      result.floor_std = r.fd_floor_std;
      have_floor = true;
    }
    return r;
  };
  auto point_from = [](const std::string& sweep, const FrechetEvalResult& r) {
    QualityPoint p;
    p.sweep = sweep;
    p.checkpoint_step = r.checkpoint_step;
    p.solver = r.solver;
    p.nfe = r.nfe;
    p.fd = r.fd;
    p.sampling_seconds = r.sampling_seconds;
    return p;
  };

  // ---- quality against training steps ----
  std::vector<QualityPoint> step_points;
  if (request.sweep_steps) {
    for (const auto& [step, path] : kept) {
      FrechetEvalResult r = evaluate(path, Json::object());
      if (only_final_checkpoint)
        say(log, cat("sweep: ", request.run_dir, " kept no checkpoint_step_*.safetensors (train with "
                     "train.keep_checkpoints = true); the steps sweep has only the final checkpoint"));
      QualityPoint p = point_from("steps", r);
      const int evals = evaluations_per_step(r.solver);
      p.solver_steps = evals > 0 ? r.nfe / evals : 0;
      step_points.push_back(p);
      say(log, cat("step ", r.checkpoint_step, ": fd ", r.fd, " (", r.solver, ", ", r.nfe, " NFE)"));
    }
  }

  // ---- quality against NFE, per solver ----
  std::vector<QualityPoint> nfe_points;
  if (request.sweep_nfe) {
    for (const std::string& solver : request.solvers) {
      const int evals = per_step[solver];
      if (evals == 0) {
        for (double tolerance : request.dopri5_tolerances) {
          FrechetEvalResult r =
              evaluate(final_checkpoint, {{"solver", solver}, {"rtol", tolerance}, {"atol", tolerance}});
          QualityPoint p = point_from("nfe", r);
          p.tolerance = tolerance;
          nfe_points.push_back(p);
          say(log, cat(solver, " tol ", tolerance, ": ", r.nfe, " NFE, fd ", r.fd));
        }
        continue;
      }
      for (int budget : request.nfe_budgets) {
        if (budget < evals) continue;  // not even one step fits
        const int steps = budget / evals;
        FrechetEvalResult r = evaluate(final_checkpoint, {{"solver", solver}, {"steps", steps}});
        QualityPoint p = point_from("nfe", r);
        p.solver_steps = steps;
        nfe_points.push_back(p);
        say(log, cat(solver, " ", steps, steps == 1 ? " step: " : " steps: ", r.nfe, " NFE, fd ", r.fd));
      }
    }
  }

  // ---- files ----
  // Under mpirun every rank holds the same points (the sampling is gathered, tools/sharded_sampling.h);
  // rank 0 alone writes them.
  const bool writes = dist::is_root();
  if (writes && !step_points.empty()) {
    write_csv(run_dir / "quality_vs_steps.csv", step_points, result);
    io::LineSeries series{{}, {}, "samples (EMA weights, the run's sampler)"};
    for (const QualityPoint& p : step_points) {
      series.x.push_back(double(p.checkpoint_step));
      series.y.push_back(p.fd);
    }
    io::LinePlotOptions options;
    options.title = cat("Frechet distance vs training step (", run_dir.filename().string(), ")");
    options.x_label = "training step";
    options.y_label = "Frechet distance (classifier features)";
    options.log_y = true;
    io::write_line_plot_png((run_dir / "quality_vs_steps.png").string(),
                            {series, floor_line(series.x.front(), series.x.back(), result)}, options);
    result.files.push_back((run_dir / "quality_vs_steps.csv").string());
    result.files.push_back((run_dir / "quality_vs_steps.png").string());
  }
  if (writes && !nfe_points.empty()) {
    write_csv(run_dir / "quality_vs_nfe.csv", nfe_points, result);
    std::vector<io::LineSeries> series;
    double x_min = 1e300, x_max = 0;
    for (const std::string& solver : request.solvers) {
      // (NFE, FD) of this solver, left to right: dopri5's NFE need not grow with the tolerance.
      std::vector<std::pair<double, double>> curve;
      for (const QualityPoint& p : nfe_points)
        if (p.solver == solver) curve.emplace_back(double(p.nfe), p.fd);
      if (curve.empty()) continue;
      std::sort(curve.begin(), curve.end());
      io::LineSeries line{{}, {}, solver};
      for (const auto& [nfe, fd] : curve) {
        line.x.push_back(nfe);
        line.y.push_back(fd);
      }
      x_min = std::min(x_min, line.x.front());
      x_max = std::max(x_max, line.x.back());
      series.push_back(line);
    }
    series.push_back(floor_line(x_min, x_max, result));
    io::LinePlotOptions options;
    options.title = cat("Frechet distance vs NFE per solver (", run_dir.filename().string(), ", step ",
                        nfe_points.front().checkpoint_step, ")");
    options.x_label = "velocity evaluations per sample (NFE)";
    options.y_label = "Frechet distance (classifier features)";
    options.log_y = true;
    io::write_line_plot_png((run_dir / "quality_vs_nfe.png").string(), series, options);
    result.files.push_back((run_dir / "quality_vs_nfe.csv").string());
    result.files.push_back((run_dir / "quality_vs_nfe.png").string());
  }
  result.points = step_points;
  result.points.insert(result.points.end(), nfe_points.begin(), nfe_points.end());
  return result;
}

}  // namespace fm::tools
