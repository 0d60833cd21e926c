// tools/straight_eval.h — how good a 2-D flow is at each sampling budget, and how straight it is:
// the numbers behind `fmeval straight` and the reflow / OT / distillation comparison (issue 15).
//
// For a checkpoint of a 2-D model: from the same n source draws x0, Euler with k steps for each k of
// the list, and dopri5 at a tolerance; each result's sliced W2 to n fresh data points, next to the
// floor (two independent data samples); and the flow's straightness S (flow/straightness.h) along
// Euler trajectories of `straightness_steps` steps.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tools/checkpoint_model.h"

namespace fm::tools {

struct StraightEvalRequest {
  std::int64_t n = 2000;
  std::vector<int> euler_steps{1, 2, 4, 8, 16, 100};
  double dopri5_tolerance = 1e-5;  // rtol = atol; 0 skips dopri5
  int straightness_steps = 100;
  std::uint64_t seed = 0;          // x0 and the fresh data
};

struct NfeQuality {
  std::string solver;
  std::int64_t nfe = 0;
  double sliced_w2 = 0;
};

struct StraightEvalResult {
  std::vector<NfeQuality> rows;
  double sliced_w2_floor = 0;
  double straightness = 0, relative_straightness = 0;
  Json to_json() const;
};

// ConfigError when the checkpoint is not a 2-D model.
StraightEvalResult evaluate_straightness_2d(CheckpointModel& loaded, const StraightEvalRequest& request);

}  // namespace fm::tools
