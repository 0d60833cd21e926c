// tools/straight_eval.cpp — quality against NFE and straightness of a 2-D checkpoint (see straight_eval.h).
#include "tools/straight_eval.h"

#include "core/autograd.h"
#include "flow/metrics.h"
#include "flow/model_fn.h"
#include "flow/straightness.h"
#include "tools/run_setup.h"

namespace fm::tools {

Json StraightEvalResult::to_json() const {
  Json table = Json::array();
  for (const NfeQuality& row : rows)
    table.push_back({{"solver", row.solver}, {"nfe", row.nfe}, {"sliced_w2", row.sliced_w2},
                     {"ratio_to_floor", row.sliced_w2 / sliced_w2_floor}});
  return {{"quality_vs_nfe", table},
          {"sliced_w2_floor", sliced_w2_floor},
          {"straightness", straightness},
          {"relative_straightness", relative_straightness}};
}

StraightEvalResult evaluate_straightness_2d(CheckpointModel& loaded, const StraightEvalRequest& request) {
  FM_CHECK(is_2d_dataset(loaded.config["data"]["name"]), ConfigError, "straight: the checkpoint's data \"",
           loaded.config["data"]["name"].get<std::string>(), "\" is not 2-D points (this report is for 2-D models)");
  NoGradGuard no_grad;
  nn::VelocityModel& model = *loaded.model;
  model.eval();
  const Device device = model.parameters().front().device();
  flow::VelocityField field = flow::velocity_field_from_model(
      [&model](const Tensor& x, const Tensor& t) { return model.forward(x, t); });
  Generator gen(request.seed);
  const Tensor x0 = randn({request.n, 2}, gen, DType::Float32, device);
  auto toy = build_toy_distribution(loaded.config);
  Generator data_gen(request.seed + 1000);
  const Tensor fresh = toy->sample(request.n, data_gen);
  flow::SlicedWassersteinOptions sw;
  sw.seed = 7;
  StraightEvalResult result;
  result.sliced_w2_floor = flow::sliced_wasserstein2(toy->sample(request.n, data_gen), toy->sample(request.n, data_gen), sw);
  auto measure = [&](const std::string& name, const flow::SolverOptions& options) {
    flow::SolveResult solved = flow::make_solver(name, options)->solve(field, x0);
    result.rows.push_back({name, solved.nfe, flow::sliced_wasserstein2(solved.x.to(Device::CPU), fresh, sw)});
  };
  for (int steps : request.euler_steps) {
    flow::SolverOptions options;
    options.steps = steps;
    measure("euler", options);
  }
  if (request.dopri5_tolerance > 0) {
    flow::SolverOptions options;
    options.adaptive.rtol = options.adaptive.atol = request.dopri5_tolerance;
    measure("dopri5", options);
  }
  flow::Straightness s = flow::measure_straightness(field, x0, request.straightness_steps);
  result.straightness = s.straightness;
  result.relative_straightness = s.relative_straightness;
  return result;
}

}  // namespace fm::tools
