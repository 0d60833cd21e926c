// tools/straight_eval.cpp — quality against NFE and straightness of a 2-D checkpoint, the comparison
// files and the 2-D path picture (see straight_eval.h; image models: straight_eval_images.cpp).
#include "tools/straight_eval.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "core/autograd.h"
#include "core/io/atomic_file.h"
#include "core/io/path_animation.h"
#include "core/io/png.h"
#include "core/ops.h"
#include "flow/metrics.h"
#include "flow/model_fn.h"
#include "flow/straightness.h"
#include "tools/run_setup.h"

namespace fm::tools {

Json StraightEvalResult::to_json() const {
  Json table = Json::array();
  for (const NfeQuality& row : rows)
    table.push_back({{"solver", row.solver}, {"nfe", row.nfe}, {metric, row.distance}, {metric + "_std", row.distance_std},
                     {"ratio_to_floor", row.distance / floor}});
  Json out = {{"metric", metric},
              {"repeats", repeats},
              {"quality_vs_nfe", table},
              {metric + "_floor", floor},
              {metric + "_floor_std", floor_std},
              {"straightness", straightness},
              {"relative_straightness", relative_straightness}};
  if (!classifier_path.empty()) out["classifier"] = classifier_path;
  if (chunk > 0) out["chunk"] = chunk;
  return out;
}

std::vector<std::pair<std::string, flow::SolverOptions>> straight_eval_solvers(const StraightEvalRequest& request) {
  std::vector<std::pair<std::string, flow::SolverOptions>> solvers;
  for (int steps : request.euler_steps) {
    flow::SolverOptions options;
    options.steps = steps;
    solvers.push_back({"euler", options});
  }
  if (request.dopri5_tolerance > 0) {
    flow::SolverOptions options;
    options.adaptive.rtol = options.adaptive.atol = request.dopri5_tolerance;
    solvers.push_back({"dopri5", options});
  }
  return solvers;
}

StraightEvalResult evaluate_straightness(CheckpointModel& loaded, const StraightEvalRequest& request,
                                         std::int64_t trajectory_count) {
  return is_2d_dataset(loaded.config["data"]["name"]) ? evaluate_straightness_2d(loaded, request, trajectory_count)
                                                      : evaluate_straightness_images(loaded, request, trajectory_count);
}

StraightEvalResult evaluate_straightness_2d(CheckpointModel& loaded, const StraightEvalRequest& request,
                                            std::int64_t trajectory_count) {
  FM_CHECK(is_2d_dataset(loaded.config["data"]["name"]), ConfigError, "straight: the checkpoint's data \"",
           loaded.config["data"]["name"].get<std::string>(), "\" is not 2-D points (this report is for 2-D models)");
  FM_CHECK(request.repeats >= 0, ConfigError, "straight: repeats must be >= 1 (0: the default), got ", request.repeats);
  NoGradGuard no_grad;
  nn::VelocityModel& model = *loaded.model;
  // Straightness is a property of one field; a class-conditional model is measured through its null class.
  if (model.num_classes() > 0)
    std::fprintf(stderr, "straight: a class-conditional model (%d classes), evaluated with its null class "
                 "(unconditional)\n", model.num_classes());
  model.eval();
  const Device device = model.parameters().front().device();
  flow::VelocityField field = flow::velocity_field_from_model(
      [&model](const Tensor& x, const Tensor& t) { return model.forward(x, t); });
  auto toy = build_toy_distribution(loaded.config);
  auto source = build_source(loaded.config);
  flow::SlicedWassersteinOptions sw;
  sw.seed = 7;
  const auto solvers = straight_eval_solvers(request);
  // Per solver: Σ W2, Σ W2², Σ NFE over the repeats.
  std::vector<double> w2_sum(solvers.size(), 0), w2_squares(solvers.size(), 0), nfe_sum(solvers.size(), 0);
  StraightEvalResult result;
  result.metric = "sliced_w2";
  result.repeats = request.repeats > 0 ? request.repeats : 5;
  const double repeats = result.repeats;
  for (int r = 0; r < result.repeats; ++r) {
    Generator gen(request.seed + std::uint64_t(r)), data_gen(request.seed + 1000 + std::uint64_t(r));
    const Tensor x0 = source->sample({request.n, 2}, gen, DType::Float32, device);
    const Tensor fresh = toy->sample(request.n, data_gen);
    result.floor +=
        flow::sliced_wasserstein2(toy->sample(request.n, data_gen), toy->sample(request.n, data_gen), sw) / repeats;
    for (std::size_t k = 0; k < solvers.size(); ++k) {
      flow::SolveResult solved = flow::make_solver(solvers[k].first, solvers[k].second)->solve(field, x0);
      const double w2 = flow::sliced_wasserstein2(solved.x.to(Device::CPU), fresh, sw);
      w2_sum[k] += w2;
      w2_squares[k] += w2 * w2;
      nfe_sum[k] += double(solved.nfe);
    }
    flow::Straightness s = flow::measure_straightness(field, x0, request.straightness_steps);
    result.straightness += s.straightness / repeats;
    result.relative_straightness += s.relative_straightness / repeats;
    if (r == 0 && trajectory_count > 0) {
      const std::int64_t count = std::min(trajectory_count, request.n);
      std::vector<Tensor> states{x0.narrow(0, 0, count).to(Device::CPU)};
      flow::SolverOptions options;
      options.steps = request.straightness_steps;
      flow::make_solver("euler", options)
          ->solve(field, x0.narrow(0, 0, count), [&](double, const Tensor& x) { states.push_back(x.to(Device::CPU)); });
      for (Tensor& state : states) state = state.reshape({1, count, 2});
      result.trajectories = concat(states, 0);
    }
  }
  for (std::size_t k = 0; k < solvers.size(); ++k) {
    const double mean = w2_sum[k] / repeats;
    const double variance = std::max(0.0, w2_squares[k] / repeats - mean * mean) * repeats / std::max(1.0, repeats - 1);
    result.rows.push_back({solvers[k].first, std::llround(nfe_sum[k] / repeats), mean, std::sqrt(variance)});
  }
  return result;
}

std::vector<std::string> write_straight_comparison(const std::vector<LabelledStraightResult>& results,
                                                   const std::string& csv_path, const std::string& png_path) {
  std::vector<std::string> files;
  if (!csv_path.empty()) {
    std::string csv = "label,solver,nfe,metric,distance,distance_std,floor,floor_std,ratio_to_floor,straightness,relative_straightness\n";
    for (const auto& [raw_label, r] : results) {
      // RFC 4180: a label with a comma or a quote (a checkpoint path) goes in quotes, quotes doubled.
      std::string label = raw_label;
      if (label.find_first_of(",\"\n") != std::string::npos) {
        std::string quoted = "\"";
        for (char ch : label) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
        label = quoted + "\"";
      }
      for (const NfeQuality& row : r.rows)
        csv += cat(label, ",", row.solver, ",", row.nfe, ",", r.metric, ",", row.distance, ",", row.distance_std, ",", r.floor,
                   ",", r.floor_std, ",", row.distance / r.floor, ",", r.straightness, ",", r.relative_straightness, "\n");
    }
    io::write_file_atomically(csv_path, csv);
    files.push_back(csv_path);
  }
  if (!png_path.empty() && !results.empty()) {
    std::vector<io::LineSeries> series;
    double lowest = 1e300, highest = 0, floor = 0;
    for (const auto& [label, r] : results) {
      char straightness[32];
      std::snprintf(straightness, sizeof(straightness), "%.3g", r.straightness);
      io::LineSeries line{{}, {}, cat(label, " (S = ", straightness, ")")};
      for (const NfeQuality& row : r.rows) {
        if (row.solver != "euler") continue;
        line.x.push_back(double(row.nfe));
        line.y.push_back(row.distance);
        lowest = std::min(lowest, double(row.nfe));
        highest = std::max(highest, double(row.nfe));
      }
      floor = r.floor;
      series.push_back(line);
    }
    const bool images = results.front().result.metric == "fd";
    series.push_back({{lowest, highest}, {floor, floor}, images ? "floor: real train vs test" : "floor: two data samples"});
    io::LinePlotOptions options;
    options.title = images ? "Frechet distance to the test images against Euler steps" : "sliced W2 to the data against Euler steps";
    options.x_label = "Euler steps (NFE)";
    options.y_label = images ? "Frechet distance (classifier features)" : "sliced W2";
    options.log_y = true;
    io::write_line_plot_png(png_path, series, options);
    files.push_back(png_path);
  }
  return files;
}

void write_trajectory_png(const std::string& path, const StraightEvalResult& result, const Tensor& data_points,
                          const std::string& title) {
  FM_CHECK(result.trajectories.defined(), ValueError, "write_trajectory_png: no trajectories were kept");
  std::vector<float> trail = result.trajectories.to_float_vector(), data = data_points.to_float_vector();
  io::ScatterOptions options;
  options.title = title;
  options.label_a = "trajectories (x0 to x1)";
  options.label_b = "data";
  options.point_radius = 0.9f;
  io::write_scatter_png(path, trail.data(), int(trail.size() / 2), data.data(), int(data.size() / 2), options);
}

void write_trajectory_gif(const std::string& path, const StraightEvalResult& result, const Tensor& data_points,
                          const std::string& title) {
  FM_CHECK(result.trajectories.defined() && result.trajectories.dim() == 3 && result.trajectories.size(2) == 2,
           ValueError, "write_trajectory_gif: no 2-D trajectories were kept");
  std::vector<float> states = result.trajectories.to_float_vector(), data = data_points.to_float_vector();
  io::PathAnimationOptions options;
  options.title = title;
  options.label_paths = "Euler paths (x0 to x1)";
  io::write_path_animation_gif(path, states.data(), int(result.trajectories.size(0)), int(result.trajectories.size(1)),
                               data.data(), int(data.size() / 2), options);
}

}  // namespace fm::tools
