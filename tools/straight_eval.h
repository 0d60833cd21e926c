// tools/straight_eval.h — how good a flow is at each sampling budget, and how straight it is: the
// numbers behind `fmeval straight` and the reflow / OT / distillation comparison (issue 15).
//
// For a checkpoint: from the same n source draws x0, Euler with k steps for each k of the list, and
// dopri5 at a tolerance; each result's distance to the data next to the floor (two real samples), and
// the flow's straightness S (flow/straightness.h) along Euler trajectories of `straightness_steps`.
// The distance is the sliced W2 to n fresh points for 2-D models (straight_eval.cpp), and the Fréchet
// distance of classifier features to n test images for image models (straight_eval_images.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "flow/solver.h"
#include "tools/checkpoint_model.h"
#include "tools/eval_classifier.h"

namespace fm::tools {

struct StraightEvalRequest {
  std::int64_t n = 2000;
  std::vector<int> euler_steps{1, 2, 4, 8, 16, 100};
  double dopri5_tolerance = 1e-5;  // rtol = atol; 0 skips dopri5
  int straightness_steps = 100;
  std::uint64_t seed = 0;          // x0 (and the fresh 2-D data) of repeat r: seed + r
  // 0 picks per kind of model. 2-D: 5, because the sliced W2 of 2,000 points moves by a factor of two
  // between draws (moons, 1-RF at 100 Euler steps: 0.049 to 0.11 over seeds 0-3, 2026-12-02), so every
  // number is a mean over repeats. Images: 1, each repeat costs minutes on a CPU; the floor's spread
  // over 5 draws of real images says how far apart two numbers must be to differ.
  int repeats = 0;
  // Image models: the classifier file (empty: tools::find_classifier beside `checkpoint_path`) and the data.
  std::string classifier;
  std::string checkpoint_path;
  std::string data_dir = kFashionMnistDir;
  // Images integrated at a time (memory). dopri5 picks its steps per chunk (its error norm spans the
  // chunk), so its NFE and FD depend on this a little; the Euler rows do not.
  std::int64_t chunk = 500;
};

struct NfeQuality {
  std::string solver;
  std::int64_t nfe = 0;       // dopri5: the mean over the repeats, rounded
  double distance = 0;        // mean over the repeats
  double distance_std = 0;    // their standard deviation (0 for one repeat)
};

struct StraightEvalResult {
  std::string metric;          // "sliced_w2" (2-D) or "fd" (images)
  int repeats = 0;             // what the request's 0 resolved to
  std::vector<NfeQuality> rows;
  double floor = 0;            // 2-D: two fresh data samples (mean over the repeats); images: train vs test
  double floor_std = 0;        // images: over 5 draws of real train images; 2-D: 0
  double straightness = 0, relative_straightness = 0;  // means over the repeats
  // Pictures of the paths (CPU). 2-D: [steps + 1, count, 2], Euler paths of the first draws. Images:
  // [2, frames, count, C, H, W]: x_t at `frames` evenly spaced times along the Euler path, and the
  // endpoint each x_t predicts, x_t + (1 − t)·v(x_t, t), which never moves along a straight path.
  Tensor trajectories;
  std::vector<double> trajectory_times;  // images: each frame's t
  std::string classifier_path;  // images: the classifier behind the distances
  std::int64_t chunk = 0;       // images: the request's chunk (dopri5's rows depend on it)
  Json to_json() const;
};

// The solvers a request asks for, in the order of the result's rows: Euler with each step count, then
// dopri5 at the tolerance (unless it is 0).
std::vector<std::pair<std::string, flow::SolverOptions>> straight_eval_solvers(const StraightEvalRequest& request);

// The kind of model picks the version below. trajectory_count paths are kept for pictures.
StraightEvalResult evaluate_straightness(CheckpointModel& loaded, const StraightEvalRequest& request,
                                         std::int64_t trajectory_count = 0);
// ConfigError when the checkpoint is not a 2-D model.
StraightEvalResult evaluate_straightness_2d(CheckpointModel& loaded, const StraightEvalRequest& request,
                                            std::int64_t trajectory_count = 0);
// ConfigError when the checkpoint is a 2-D model; IOError / ConfigError for a missing classifier or data.
StraightEvalResult evaluate_straightness_images(CheckpointModel& loaded, const StraightEvalRequest& request,
                                                std::int64_t trajectory_count = 0);

// Several evaluated checkpoints side by side: a CSV (label, solver, nfe, metric, distance, its std,
// floor, floor_std, ratio_to_floor, straightness, relative_straightness), and a log-log plot of the distance against Euler NFE, one line
// per checkpoint, with the floor. Returns the files written.
struct LabelledStraightResult {
  std::string label;
  StraightEvalResult result;
};
std::vector<std::string> write_straight_comparison(const std::vector<LabelledStraightResult>& results,
                                                   const std::string& csv_path, const std::string& png_path);
// The kept 2-D trajectories drawn over fresh data points: each path as a trail of dots from x0 to x1.
void write_trajectory_png(const std::string& path, const StraightEvalResult& result, const Tensor& data_points,
                          const std::string& title);
// The same paths animated (core/io/path_animation.h): the points travel from x0 to x1, each frame one
// time of the Euler grid, trails behind them.
void write_trajectory_gif(const std::string& path, const StraightEvalResult& result, const Tensor& data_points,
                          const std::string& title);
// The kept image paths as a grid: per sample two rows, x_t left to right (t = 0, 0.1, … 1), and under
// it the endpoint x_t predicts at each t.
void write_image_paths_png(const std::string& path, const StraightEvalResult& result);
// The same paths animated over all their frames (core/io/path_animation.h): a row of x_t, one tile per
// sample, over the row of the endpoints they predict; `title` heads each frame, before its t.
void write_image_paths_gif(const std::string& path, const StraightEvalResult& result, const std::string& title);

}  // namespace fm::tools
