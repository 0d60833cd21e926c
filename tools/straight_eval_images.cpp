// tools/straight_eval_images.cpp — quality against NFE and straightness of an image checkpoint (see
// straight_eval.h): the Fréchet distance of Euler-k and dopri5 samples to the test images, all from
// the same source draws, S along Euler paths, and the picture of a few paths.
//
// Cost: Σ k + dopri5's NFE + (straightness_steps unless it is one of the k) evaluations per image;
// the Euler run with k = straightness_steps measures S on the way (flow::measure_straightness returns
// its endpoint), so the default list costs 131 + dopri5's NFE per image, not 231.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <tuple>

#include "core/autograd.h"
#include "core/io/path_animation.h"
#include "core/io/png.h"
#include "core/ops.h"
#include "flow/captured_solve.h"
#include "flow/model_fn.h"
#include "flow/straightness.h"
#include "tools/run_setup.h"
#include "tools/straight_eval.h"

namespace fm::tools {
namespace {

// The kept paths' states: t = 0, 0.05, …, 1 (when the steps are a multiple of 20), every one a frame
// of the animation; every kPictureEvery-th (t = 0, 0.1, …, 1) a column of the still picture. (Finer
// steps would animate more smoothly, but noise does not compress: 41 frames at 3x made 1.5 MB.)
constexpr int kPathFrames = 21;
constexpr int kPictureEvery = 2;

// A chunked Euler run that also measures S: the endpoints (CPU) and Σ S·count, Σ ‖Z1 − Z0‖²·count.
struct ChunkedStraightness {
  Tensor ends;
  double straightness_sum = 0, displacement_sum = 0;
};
ChunkedStraightness straightness_in_chunks(const flow::VelocityField& field, const Tensor& x0, int steps,
                                           std::int64_t chunk) {
  ChunkedStraightness out;
  std::vector<Tensor> ends;
  for (std::int64_t start = 0; start < x0.size(0); start += chunk) {
    const std::int64_t count = std::min(chunk, x0.size(0) - start);
    flow::Straightness s = flow::measure_straightness(field, x0.narrow(0, start, count), steps);
    out.straightness_sum += s.straightness * double(count);
    out.displacement_sum += s.mean_displacement * double(count);
    ends.push_back(s.end.to(Device::CPU));
  }
  out.ends = concat(ends, 0).contiguous();
  return out;
}

// A chunked solve from x0: the endpoints (CPU) and Σ NFE·count (dopri5 picks its steps per chunk).
std::pair<Tensor, double> solve_in_chunks(const flow::OdeSolver& solver, const flow::VelocityField& field,
                                          const Tensor& x0, std::int64_t chunk) {
  std::vector<Tensor> ends;
  double evaluations = 0;
  flow::CapturedSolve captured(solver, field);  // on the GPU, a fixed-step solve is recorded and replayed
  for (std::int64_t start = 0; start < x0.size(0); start += chunk) {
    const std::int64_t count = std::min(chunk, x0.size(0) - start);
    flow::SolveResult solved = captured.solve(x0.narrow(0, start, count));
    evaluations += double(solved.nfe) * double(count);
    ends.push_back(solved.x.to(Device::CPU));
  }
  return {concat(ends, 0).contiguous(), evaluations};
}

// [2, kPathFrames, count, ...]: x_t at the Euler steps nearest to t = 0, 0.05, …, 1 of a `steps`-step
// path (evenly spaced when steps is a multiple of 20; fewer steps repeat frames), and the endpoint
// each predicts, x_t + (1 − t)·v(x_t, t); `times` gets each frame's t.
Tensor image_paths(const flow::VelocityField& field, const Tensor& x0, int steps, std::vector<double>& times) {
  std::vector<Tensor> states{x0};
  flow::SolverOptions options;
  options.steps = steps;
  flow::make_solver("euler", options)->solve(field, x0, [&](double, const Tensor& x) { states.push_back(x); });
  std::vector<Tensor> positions, predictions;
  Shape frame_shape = x0.shape();
  frame_shape.insert(frame_shape.begin(), 1);
  for (int frame = 0; frame < kPathFrames; ++frame) {
    const int k = int((std::int64_t(frame) * steps + (kPathFrames - 1) / 2) / (kPathFrames - 1));  // nearest step
    const double t = double(k) / steps;
    times.push_back(t);
    const Tensor& x = states[std::size_t(k)];
    positions.push_back(x.to(Device::CPU).reshape(frame_shape));
    predictions.push_back((x + field(x, t) * (1.0 - t)).to(Device::CPU).reshape(frame_shape));
  }
  Tensor both[2] = {concat(positions, 0), concat(predictions, 0)};
  Shape stacked = both[0].shape();
  stacked.insert(stacked.begin(), 1);
  return concat({both[0].reshape(stacked), both[1].reshape(stacked)}, 0);
}

}  // namespace

StraightEvalResult evaluate_straightness_images(CheckpointModel& loaded, const StraightEvalRequest& request,
                                                std::int64_t trajectory_count) {
  const std::string data_name = loaded.config["data"]["name"].get<std::string>();
  FM_CHECK(!is_2d_dataset(data_name), ConfigError, "straight: the checkpoint's data \"", data_name,
           "\" is 2-D points (evaluate_straightness_2d measures those)");
  FM_CHECK(request.repeats >= 0, ConfigError, "straight: repeats must be >= 1 (0: the default), got ", request.repeats);
  FM_CHECK(request.chunk >= 1, ConfigError, "straight: chunk must be >= 1, got ", request.chunk);
  FM_CHECK(request.straightness_steps >= 1, ConfigError, "straight: straightness_steps must be >= 1, got ",
           request.straightness_steps);
  nn::VelocityModel& model = *loaded.model;
  const Device device = model.parameters().front().device();

  // ---- the classifier and the real images first: a missing file fails before any sampling ----
  const std::string classifier_path = find_classifier(request.classifier, request.checkpoint_path);
  LoadedClassifier classifier = load_classifier(classifier_path, device);
  const nn::ClassifierConfig& arch = classifier.model->config();
  const Shape example = example_shape(loaded.config);
  const Shape classifier_example = {arch.in_channels, arch.image_size, arch.image_size};
  FM_CHECK(example == classifier_example, ConfigError, "straight: the model makes images ", shape_str(example),
           ", the classifier ", classifier_path, " takes ", shape_str(classifier_example));
  const LabelledImages test = load_fashion_mnist(request.data_dir, "t10k");
  const LabelledImages train = load_fashion_mnist(request.data_dir, "train");
  const Shape data_example = {test.images.size(1), test.images.size(2), test.images.size(3)};
  FM_CHECK(data_example == classifier_example, ConfigError, "straight: ", request.data_dir, " holds images ",
           shape_str(data_example), ", the classifier ", classifier_path, " takes ", shape_str(classifier_example));
  const FrechetReference reference = frechet_reference(*classifier.model, test, train, request.n, 5);

  NoGradGuard no_grad;
  if (model.num_classes() > 0)
    std::fprintf(stderr, "straight: a class-conditional model (%d classes), evaluated with its null class "
                 "(unconditional)\n", model.num_classes());
  model.eval();
  flow::VelocityField field = flow::velocity_field_from_model(
      [&model](const Tensor& x, const Tensor& t) { return model.forward(x, t); });
  auto source = build_source(loaded.config);
  const auto solvers = straight_eval_solvers(request);

  StraightEvalResult result;
  result.metric = "fd";
  result.classifier_path = classifier_path;
  result.chunk = request.chunk;
  result.repeats = request.repeats > 0 ? request.repeats : 1;
  result.floor = reference.floor_mean();
  result.floor_std = reference.floor_std();
  const double repeats = result.repeats;
  std::vector<double> fd_sum(solvers.size(), 0), fd_squares(solvers.size(), 0), nfe_sum(solvers.size(), 0);
  Shape batch_shape = example;
  batch_shape.insert(batch_shape.begin(), request.n);
  for (int r = 0; r < result.repeats; ++r) {
    Generator gen(request.seed + std::uint64_t(r));
    const Tensor x0 = source->sample(batch_shape, gen, DType::Float32, device);
    bool measured_straightness = false;
    auto add_straightness = [&](const ChunkedStraightness& s) {
      result.straightness += s.straightness_sum / double(request.n) / repeats;
      result.relative_straightness += (s.displacement_sum > 0 ? s.straightness_sum / s.displacement_sum : 0.0) / repeats;
      measured_straightness = true;
    };
    for (std::size_t k = 0; k < solvers.size(); ++k) {
      const auto& [name, options] = solvers[k];
      Tensor samples;
      double evaluations = 0;
      if (name == "euler" && options.steps == request.straightness_steps && !measured_straightness) {
        ChunkedStraightness s = straightness_in_chunks(field, x0, options.steps, request.chunk);
        add_straightness(s);
        samples = s.ends;
        evaluations = double(options.steps) * double(request.n);
      } else {
        std::tie(samples, evaluations) = solve_in_chunks(*flow::make_solver(name, options), field, x0, request.chunk);
      }
      const std::string run = name == "euler" ? cat("Euler with ", options.steps, options.steps == 1 ? " step" : " steps")
                                              : cat(name, " at tolerance ", request.dopri5_tolerance);
      const double fd = frechet_distance_to_reference(*classifier.model, samples, reference,
                                                      cat("straight: ", run, " diverged; its samples"));
      fd_sum[k] += fd;
      fd_squares[k] += fd * fd;
      nfe_sum[k] += evaluations / double(request.n);
    }
    if (!measured_straightness)
      add_straightness(straightness_in_chunks(field, x0, request.straightness_steps, request.chunk));
    if (r == 0 && trajectory_count > 0)
      result.trajectories = image_paths(field, x0.narrow(0, 0, std::min(trajectory_count, request.n)),
                                        request.straightness_steps, result.trajectory_times);
  }
  for (std::size_t k = 0; k < solvers.size(); ++k) {
    const double mean = fd_sum[k] / repeats;
    const double variance =
        repeats > 1 ? std::max(0.0, fd_squares[k] / repeats - mean * mean) * repeats / (repeats - 1) : 0.0;
    result.rows.push_back({solvers[k].first, std::llround(nfe_sum[k] / repeats), mean, std::sqrt(variance)});
  }
  return result;
}

namespace {
void check_image_paths(const char* caller, const StraightEvalResult& result) {
  FM_CHECK(result.trajectories.defined() && result.trajectories.dim() == 6 &&
               result.trajectory_times.size() == std::size_t(result.trajectories.size(1)),
           ValueError, caller, ": expected image paths [2, frames, count, C, H, W] with a time per frame (an image "
           "model evaluated with trajectory_count > 0), got ",
           result.trajectories.defined() ? shape_str(result.trajectories.shape()) : "none");
}
}  // namespace

void write_image_paths_png(const std::string& path, const StraightEvalResult& result) {
  check_image_paths("write_image_paths_png", result);
  // [2, frames, count, C, H, W] → rows: sample i's positions, then its predictions; every
  // kPictureEvery-th frame (t = 0, 0.1, …, 1) left to right.
  std::vector<Tensor> columns;
  for (std::int64_t frame = 0; frame < result.trajectories.size(1); frame += kPictureEvery)
    columns.push_back(result.trajectories.narrow(1, frame, 1));
  const Tensor paths = concat(columns, 1);
  const std::int64_t frames = paths.size(1), count = paths.size(2), channels = paths.size(3);
  const std::int64_t height = paths.size(4), width = paths.size(5);
  Tensor rows = paths.permute({2, 0, 1, 3, 4, 5}).contiguous();  // [count, 2, frames, C, H, W]
  std::vector<float> pixels = rows.to_float_vector();
  io::write_image_grid_png(path, pixels.data(), int(count * 2 * frames), int(channels), int(height), int(width),
                           int(frames), -1.f, 1.f, 2);
}

void write_image_paths_gif(const std::string& path, const StraightEvalResult& result, const std::string& title) {
  check_image_paths("write_image_paths_gif", result);
  const Tensor& paths = result.trajectories;  // [2, frames, count, C, H, W]: the layout the animation reads
  std::vector<float> pixels = paths.contiguous().to_float_vector();
  io::ImagePathAnimationOptions options;
  options.title = title;
  options.row_labels = {"x_t", "x_t + (1-t) v"};
  options.scale = 2;  // as the still picture
  options.frame_delay_cs = 15;
  io::write_image_path_animation_gif(path, pixels.data(), int(paths.size(0)), int(paths.size(1)), int(paths.size(2)),
                                     int(paths.size(3)), int(paths.size(4)), int(paths.size(5)),
                                     result.trajectory_times, options);
}

}  // namespace fm::tools
