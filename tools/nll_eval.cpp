// tools/nll_eval.cpp — `fmeval nll` (see nll_eval.h).
//
// Bits per dimension of images, the standard definition (Theis, van den Oord & Bethge 2016; the
// dequantisation of RealNVP, Glow, FFJORD). An image is D pixels p ∈ {0, …, 255}. Dequantised, it is
// y = (p + u)/256 ∈ [0, 1)^D with u ~ U[0, 1)^D, and y maps to model space as training maps pixels,
// [0, 1] → [−1, 1]: x = 2y − 1 (flow/training_data.h: x = p/127.5 − 1 = 2·(p/255) − 1). The model's
// density q_X on x gives a density on y, q_Y(y) = q_X(2y − 1)·2^D, and a discrete model
//   P(p) = ∫_{[p, p+1)/256} q_Y(y) dy = 256^−D · E_u[q_Y((p + u)/256)].
// By Jensen, log P(p) ≥ −D·log 256 + E_u[log q_Y] = −D·log 256 + D·log 2 + E_u[log q_X(x)], so
//   −log P(p) ≤ E_u[−log q_X(x)] + D·log 128,    bpd = −log P(p) / (D·ln 2) ≤ E_u[−log q_X(x)]/(D ln 2) + 7.
// We report that bound (one u per image; its mean over the test images estimates the expectation, and
// the standard error covers the data, the dequantisation noise and the Hutchinson probes together).
//
// 2-D data: the model works on m = (d − center)·scale (flow/datasets2d.h), so p_data(d) = p_model(m)·scale^D
// and −log p_data = −log p_model − D·log scale. The normalisation is the checkpoint's own (the one it was
// trained with; tools/run_setup.h data_normalization), and the data set's closed-form density (8
// gaussians) is evaluated on the same points mapped back to data coordinates, where it is defined.
#include "tools/nll_eval.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <numbers>

#include "core/autograd.h"
#include "core/distributed.h"
#include "core/io/atomic_file.h"
#include "core/io/idx.h"
#include "core/kernel_choice.h"
#include "core/ops.h"
#include "flow/datasets2d.h"
#include "flow/model_fn.h"
#include "tools/cli_args.h"
#include "tools/nll_progress.h"
#include "tools/output_files.h"
#include "tools/run_setup.h"
#include "tools/sharded_sampling.h"
#include "tools/tool_flags.h"

namespace fm::tools {

const char* const kNllUsage =
    "usage: fmeval nll CHECKPOINT [--divergence exact|hutchinson] [--probes 1] [--probe rademacher|gaussian]\n"
    "              [--solver euler|midpoint|heun|rk4|dopri5] [--steps 50] [--rtol 1e-5] [--atol 1e-5]\n"
    "              [--n N] [--batch 500] [--seed S]\n"
    "              [--weights auto|ema|raw] [--device auto|cpu|cuda] [--data-dir DIR] [--csv FILE]\n"
    "              [--condition null|label]\n"
    "  The negative log-likelihood of held-out data under the model (instantaneous change of variables,\n"
    "  integrating x and the divergence from t = 1 back to t = 0): mean nats per example +- standard error.\n"
    "  2-D models: --n fresh draws of the run's data set (default 2000), in the data's own coordinates,\n"
    "  next to the data's entropy where it is known (8 gaussians). Images: the first --n Fashion-MNIST t10k\n"
    "  images (default 1000) with uniform dequantisation, as bits per dimension. --divergence defaults to\n"
    "  exact for 2-D (one backward pass per dimension) and hutchinson for images (--probes per evaluation).\n"
    "  --solver dopri5 is adaptive (--rtol/--atol on the state [x, log-density]; the NFE reported is the most\n"
    "  any batch needed); the others take --steps fixed steps. --csv writes one row per example (with its\n"
    "  label under --condition label).\n"
    "  With --csv FILE the examples finished so far are kept in FILE.partial.json after every batch: the\n"
    "  same command started again after a stop goes on from there (other settings are refused), with the\n"
    "  numbers of an uninterrupted run; the file is removed when FILE is written.\n"
    "  mpirun -np R fmeval nll ...: R ranks share the examples (dopri5: whole --batch batches); rank 0 prints\n"
    "  and writes the same numbers as one process.\n"
    "  A class-conditional model is evaluated with its null class (its unconditional density log p(x)),\n"
    "  or with --condition label given each example's own class, log p(x | y): the t10k label of an image,\n"
    "  the mode a 2-D point was drawn from (8 gaussians: next to the conditional entropy H(X | Y)).\n";

namespace {

// The mean and its standard error (sample standard deviation / √n).
std::pair<double, double> mean_and_standard_error(const std::vector<double>& values) {
  const double n = double(values.size());
  double mean = 0;
  for (double v : values) mean += v / n;
  double squares = 0;
  for (double v : values) squares += (v - mean) * (v - mean);
  const double variance = values.size() > 1 ? squares / (n - 1) : 0.0;
  return {mean, std::sqrt(variance / n)};
}

// For its scope: the model in evaluation mode with requires_grad off on every parameter (only the inputs
// need gradients; parameters that required grad would get their own, wasted, backward). Afterwards both
// are as the caller had them, so evaluate_nll leaves the caller's model unchanged.
class EvaluationScope {
 public:
  explicit EvaluationScope(nn::VelocityModel& model) : model_(model), was_training_(model.is_training()) {
    for (Tensor& p : model.parameters()) {
      required_.emplace_back(p, p.requires_grad());
      p.set_requires_grad(false);
    }
    model.eval();
  }
  ~EvaluationScope() {
    for (auto& [p, required] : required_) p.set_requires_grad(required);
    model_.train(was_training_);
  }
  EvaluationScope(const EvaluationScope&) = delete;
  EvaluationScope& operator=(const EvaluationScope&) = delete;

 private:
  nn::VelocityModel& model_;
  bool was_training_;
  std::vector<std::pair<Tensor, bool>> required_;
};

}  // namespace

Tensor dequantised_test_images(const std::string& data_dir, std::int64_t n, const Shape& example_shape,
                               std::uint64_t seed) {
  const std::string path = fashion_mnist_images_path(data_dir, "t10k");
  io::IdxImages images = io::read_idx_images(path);
  const Shape file_shape{1, images.rows, images.cols};
  FM_CHECK(file_shape == example_shape, ConfigError, "nll: ", path, " holds images of ", shape_str(file_shape),
           ", but the model was trained on ", shape_str(example_shape));
  FM_CHECK(n <= images.count, ConfigError, "--n: ", n, " is more than the ", images.count, " images in ", path);
  const std::int64_t d = images.rows * images.cols;
  Generator gen(seed);
  std::vector<double> values(std::size_t(n * d));
  for (std::size_t i = 0; i < values.size(); ++i)
    values[i] = 2.0 * (double(images.pixels[i]) + gen.uniform()) / 256.0 - 1.0;
  Shape shape = example_shape;
  shape.insert(shape.begin(), n);
  return Tensor::from_vector(values, shape, DType::Float32);
}

std::vector<std::int32_t> test_labels(const std::string& data_dir, std::int64_t n) {
  const std::string path = fashion_mnist_labels_path(data_dir, "t10k");
  const io::IdxLabels file = io::read_idx_labels(path);
  FM_CHECK(n <= file.count, ConfigError, "--n: ", n, " is more than the ", file.count, " labels in ", path);
  return std::vector<std::int32_t>(file.labels.begin(), file.labels.begin() + n);
}

bool toy_log_density(const Json& config, const Tensor& data_points, std::vector<double>& log_density, std::string& note,
                     const std::vector<std::int32_t>* labels) {
  auto toy = build_toy_distribution(config);
  const auto* gaussians = dynamic_cast<const flow::EightGaussiansDistribution*>(toy.get());
  if (gaussians == nullptr || gaussians->std() <= 0) {
    note = cat("not available for ", config["data"]["name"].get<std::string>(), " (no closed-form density)");
    return false;
  }
  // p = (1/8)·Σ_k N(c_k, σ² I), by log-sum-exp. The mixture's centres and σ are the data set's own
  // definition, in data coordinates (as make_moons' are for moons), so no Jacobian enters here.
  const double sigma = gaussians->std();
  const std::vector<double> points = data_points.to_vector();
  FM_CHECK(labels == nullptr || 2 * labels->size() == points.size(), ShapeError, "toy_log_density: ",
           labels ? labels->size() : 0, " labels for ", points.size() / 2, " points");
  const double gaussian_log_normaliser = -std::log(2.0 * std::numbers::pi * sigma * sigma);
  std::array<std::array<double, 2>, 8> centres;  // once, not per point
  for (int k = 0; k < 8; ++k) centres[std::size_t(k)] = gaussians->centre(k);
  log_density.clear();
  if (labels != nullptr) {
    // log N(x; c_y, σ² I): class y is the Gaussian centred at c_y (flow/datasets2d.h).
    for (std::size_t i = 0; i < labels->size(); ++i) {
      const std::int32_t y = (*labels)[i];
      FM_CHECK(y >= 0 && y < 8, ValueError, "toy_log_density: label ", y, " of point ", i, ", expected 0..7");
      const auto [cx, cy] = centres[std::size_t(y)];
      const double dx = points[2 * i] - cx, dy = points[2 * i + 1] - cy;
      log_density.push_back(-0.5 * (dx * dx + dy * dy) / (sigma * sigma) + gaussian_log_normaliser);
    }
    return true;
  }
  for (std::size_t i = 0; i + 1 < points.size(); i += 2) {
    double exponents[8], largest = -std::numeric_limits<double>::infinity();
    for (int k = 0; k < 8; ++k) {
      const auto [cx, cy] = centres[std::size_t(k)];
      const double dx = points[i] - cx, dy = points[i + 1] - cy;
      exponents[k] = -0.5 * (dx * dx + dy * dy) / (sigma * sigma);
      largest = std::max(largest, exponents[k]);
    }
    double sum = 0;
    for (double e : exponents) sum += std::exp(e - largest);
    log_density.push_back(largest + std::log(sum) - std::log(8.0) + gaussian_log_normaliser);
  }
  return true;
}

bool toy_entropy(const Json& config, std::int64_t samples, std::uint64_t seed, double& entropy, double& standard_error,
                 std::string& note, bool given_label) {
  Generator gen(seed);
  std::vector<double> log_density;
  // sample_labelled() draws in the model's coordinates (the points of sample(), with their classes);
  // the density is defined in the data's.
  const flow::ToyDistribution2D::LabelledPoints drawn =
      build_toy_distribution(config)->sample_labelled(samples, gen, DType::Float64);
  const Tensor points = samples_in_data_coordinates(drawn.points, config);
  if (!toy_log_density(config, points, log_density, note, given_label ? &drawn.labels : nullptr)) return false;
  for (double& v : log_density) v = -v;
  std::tie(entropy, standard_error) = mean_and_standard_error(log_density);
  note = cat("Monte-Carlo over ", samples, " draws of the mixture", given_label ? " and their modes" : "");
  return true;
}

NllEvalResult evaluate_nll(CheckpointModel& loaded, const NllEvalRequest& request,
                           const std::function<void(const std::string&)>& progress) {
  const std::string data_name = loaded.config["data"]["name"].get<std::string>();
  const std::string source = loaded.config["data"].value("source", std::string("gaussian"));
  FM_CHECK(source == "gaussian", ConfigError, "nll: the checkpoint's data.source is \"", source,
           "\"; the log-likelihood needs the density of the source, known here only for \"gaussian\" (N(0, I))");
  FM_CHECK(request.batch >= 1, ConfigError, "--batch: ", request.batch, " must be >= 1");
  NllEvalResult result;
  result.data = data_name;
  result.images = !is_2d_dataset(data_name);
  result.checkpoint_step = loaded.step;
  const std::int64_t n = request.n > 0 ? request.n : (result.images ? 1000 : 2000);
  result.n = n;

  flow::LikelihoodOptions options = request.likelihood;
  if (!request.divergence_given)
    options.divergence = result.images ? flow::DivergenceMethod::Hutchinson : flow::DivergenceMethod::Exact;
  options.seed = request.seed;

  nn::VelocityModel& model = *loaded.model;
  result.given_label = request.given_label;
  FM_CHECK(!request.given_label || model.num_classes() > 0, ConfigError,
           "--condition label: ", request.checkpoint, " holds an unconditional model (model.num_classes is 0); "
           "only a class-conditional model has a density given a label");
  const EvaluationScope evaluation(model);
  const Device device = model.parameters().front().device();

  Tensor data;
  std::vector<std::int32_t> labels;  // each example's own class (given_label only)
  if (result.images) {
    data = dequantised_test_images(request.data_dir, n, example_shape(loaded.config), request.seed);
    if (request.given_label) labels = test_labels(request.data_dir, n);
  } else {
    Generator gen(request.seed);
    // The points of sample(n, gen), bit for bit, with the mode each was drawn from.
    flow::ToyDistribution2D::LabelledPoints drawn = build_toy_distribution(loaded.config)->sample_labelled(n, gen);
    data = drawn.points;
    if (request.given_label) labels = std::move(drawn.labels);
    result.normalization_log_jacobian = 2.0 * std::log(data_normalization(loaded.config, loaded.metadata).scale);
  }
  for (std::size_t i = 0; i < labels.size(); ++i)
    FM_CHECK(labels[i] >= 0 && labels[i] < model.num_classes(), ConfigError, "--condition label: example ", i,
             " has class ", labels[i], ", but the model knows ", model.num_classes(), " classes (0..",
             model.num_classes() - 1, ")");
  result.dims = data.numel() / n;
  const double d = double(result.dims);

  // The velocity of the examples [first, first + count): the null class (forward without labels), or
  // their own classes.
  const auto field_of = [&](std::int64_t first, std::int64_t count) {
    if (!request.given_label)
      return flow::velocity_field_from_model([&model](const Tensor& x, const Tensor& t) { return model.forward(x, t); });
    // Made where the model is, once per piece: the solver's many evaluations then copy no labels.
    const RowIndex piece_labels(std::vector<std::int32_t>(labels.begin() + first, labels.begin() + first + count),
                                model.num_classes(), device, "--condition label");
    return flow::velocity_field_from_model([&model, piece_labels](const Tensor& x, const Tensor& t) {
      return model.forward(x, t, piece_labels);
    });
  };
  // Examples finished in an earlier run (request.progress_file, nll_progress.h), NaN for the others.
  NllProgress state;
  state.values.assign(std::size_t(n), std::numeric_limits<double>::quiet_NaN());
  if (!request.progress_file.empty()) {
    // What every value depends on: a progress file made with other settings is refused.
    state.settings = {{"checkpoint", std::filesystem::absolute(request.checkpoint).lexically_normal().string()},
                      {"checkpoint_step", loaded.step},
                      {"checkpoint_bytes", std::int64_t(std::filesystem::file_size(request.checkpoint))},
                      {"weights", loaded.ema_weights ? "ema" : "raw"},
                      {"device", device_name(device)},
                      {"kernels", kernel_impl_name(kernel_impl())},
                      {"precision", precision_name(precision())},
                      {"data", data_name},
                      {"data_dir", result.images ? request.data_dir : std::string()},
                      {"n", n},
                      {"batch", request.batch},
                      {"seed", request.seed},
                      {"solver", options.solver},
                      {"steps", options.steps},
                      {"rtol", options.rtol},
                      {"atol", options.atol},
                      {"divergence", flow::divergence_method_name(options.divergence)},
                      {"probe", flow::probe_distribution_name(options.probe)},
                      {"probes", options.probes}};
    // Only when not the default, so progress files made before --condition existed still go on.
    if (request.given_label) state.settings["condition"] = "label";
    // Rank 0 reads the file (the one that writes it; other ranks may not see the same copy, or any)
    // and hands every rank what it holds, so all skip the same pieces.
    std::vector<double> indices, values;
    double nfe = 0, seconds = 0;
    if (dist::is_root()) {
      io::remove_stale_temp_files_of(request.progress_file);  // a save killed mid-write left its temp file
      if (load_nll_progress(request.progress_file, state)) {
        for (std::size_t i = 0; i < state.values.size(); ++i)
          if (!std::isnan(state.values[i])) indices.push_back(double(i)), values.push_back(state.values[i]);
        nfe = double(state.nfe), seconds = state.seconds;
      }
    }
    indices = gather_over_ranks(indices);
    values = gather_over_ranks(values);
    for (std::size_t k = 0; k < values.size(); ++k) state.values[std::size_t(indices[k])] = values[k];
    state.nfe = std::int64_t(max_over_ranks(nfe));
    state.seconds = max_over_ranks(seconds);
    result.resumed = state.finished();
    if (result.resumed > 0 && progress)
      progress(cat("nll: going on from ", request.progress_file, ": ", result.resumed, " of ", n,
                   " examples finished earlier, ", std::lround(state.seconds), " s"));
  }
  const double earlier_seconds = state.seconds;
  const auto start = std::chrono::steady_clock::now();
  // Under mpirun (tools/sharded_sampling.h) this rank evaluates only its share of the examples: each
  // example's probes are keyed by its global index, and dopri5 (which steps by a whole batch's error)
  // gets whole batches, so every value is the one a single process computes. The share is worked in
  // pieces along the --batch grid, in rounds: in round k every rank works its k-th piece (unless the
  // progress file has it), then the values are shared, so all ranks hold every value so far and rank 0
  // can save them. Every rank makes as many rounds as the rank with the most pieces.
  const bool whole_batches = options.solver == "dopri5";
  const auto pieces_of = [&](ItemRange share) {
    std::vector<ItemRange> pieces;
    for (std::int64_t first = 0; first < n; first += request.batch) {
      const ItemRange piece{std::max(first, share.begin), std::min({first + request.batch, n, share.end})};
      if (piece.count() > 0) pieces.push_back(piece);
    }
    return pieces;
  };
  const std::vector<ItemRange> mine = pieces_of(my_share(n, request.batch, whole_batches));
  std::size_t rounds = mine.size();
  if (sharding_over_ranks())
    for (int r = 0; r < dist::world_size(); ++r)
      rounds = std::max(rounds, pieces_of(rank_share(n, request.batch, whole_batches, r, dist::world_size())).size());
  for (std::size_t round = 0; round < rounds; ++round) {
    std::vector<double> indices, values;  // worked by this rank in this round
    std::int64_t nfe = 0;
    if (round < mine.size() && !state.finished(mine[round].begin, mine[round].end)) {
      const ItemRange piece = mine[round];
      options.first_sample = piece.begin;
      flow::LikelihoodResult batch = flow::log_likelihood(field_of(piece.begin, piece.count()),
                                                          data.narrow(0, piece.begin, piece.count()).to(device), options);
      nfe = batch.nfe;
      const std::vector<double> log_probs = batch.log_prob.to_vector();
      for (std::int64_t i = 0; i < piece.count(); ++i) {
        // Images: the discrete bound −log q_X(x) + D·log 128; 2-D: −log p in data coordinates.
        const double log_prob = log_probs[std::size_t(i)];
        indices.push_back(double(piece.begin + i));
        values.push_back(result.images ? -log_prob + d * std::log(128.0) : -(log_prob + result.normalization_log_jacobian));
      }
    }
    indices = gather_over_ranks(indices);
    values = gather_over_ranks(values);
    state.nfe = std::max(state.nfe, std::int64_t(max_over_ranks(double(nfe))));  // dopri5: the most any batch needed
    for (std::size_t k = 0; k < values.size(); ++k) {
      // Checked as soon as it is known (every rank sees the same values), not after the whole run.
      FM_CHECK(std::isfinite(values[k]), NumericError, "nll: a non-finite log-likelihood (", values[k], ") for example ",
               std::int64_t(indices[k]), "; try more --steps");
      state.values[std::size_t(indices[k])] = values[k];
    }
    const double seconds =
        earlier_seconds + max_over_ranks(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    state.seconds = seconds;
    if (values.empty()) continue;  // nothing new this round (all of it from the progress file)
    if (!request.progress_file.empty() && dist::is_root()) save_nll_progress(request.progress_file, state);
    if (progress) progress(cat("nll: ", state.finished(), "/", n, " examples, ", std::lround(seconds), " s"));
  }
  FM_CHECK(state.finished() == n, ValueError, "nll: ", state.finished(), " of ", n, " examples evaluated");
  result.per_example_nll = state.values;
  result.labels = labels;
  result.seconds = state.seconds;
  const std::int64_t nfe = state.nfe;
  std::tie(result.nll, result.nll_se) = mean_and_standard_error(result.per_example_nll);
  if (result.images) {
    result.bpd = result.nll / (d * std::log(2.0));
    result.bpd_se = result.nll_se / (d * std::log(2.0));
  } else {
    result.entropy_known = toy_entropy(loaded.config, 200000, request.seed + 1, result.entropy, result.entropy_se,
                                       result.entropy_note, request.given_label);
    // KL(p_data ‖ p_model) = E_data[log p_data − log p_model] ≥ 0 on the very points evaluated: paired,
    // so its standard error is far below that of NLL − entropy from two independent means.
    std::vector<double> log_density;
    std::string note;
    if (toy_log_density(loaded.config, samples_in_data_coordinates(data, loaded.config, loaded.metadata), log_density,
                        note, request.given_label ? &labels : nullptr)) {
      std::vector<double> gap;
      for (std::size_t i = 0; i < log_density.size(); ++i) gap.push_back(result.per_example_nll[i] + log_density[i]);
      std::tie(result.kl, result.kl_se) = mean_and_standard_error(gap);
    }
  }
  result.solver = options.solver;
  result.steps = options.steps;
  result.rtol = options.rtol;
  result.atol = options.atol;
  result.divergence = flow::divergence_method_name(options.divergence);
  result.probe = flow::probe_distribution_name(options.probe);
  result.probes = options.probes;
  result.nfe_per_example = nfe;
  return result;
}

Json NllEvalResult::to_json() const {
  Json j = {{"data", data},           {"n", n},         {"dims", dims},   {"checkpoint_step", checkpoint_step},
            {"nll", nll},             {"nll_se", nll_se}, {"solver", solver}, {"steps", steps},
            {"divergence", divergence}, {"nfe", nfe_per_example}, {"seconds", seconds}};
  if (divergence == "hutchinson") j["probes"] = probes, j["probe"] = probe;
  if (solver == "dopri5") j.erase("steps"), j["rtol"] = rtol, j["atol"] = atol;
  if (images) j["bpd"] = bpd, j["bpd_se"] = bpd_se;
  j["condition"] = given_label ? "label" : "null";
  if (resumed > 0) j["resumed"] = resumed;
  if (entropy_known) j["entropy"] = entropy, j["entropy_se"] = entropy_se, j["kl"] = kl, j["kl_se"] = kl_se;
  if (!images) j["entropy_note"] = entropy_note;
  return j;
}

NllEvalRequest parse_nll_args(int argc, char** argv) {
  CliArgs args(argc, argv, fmeval_nll_flags().value_flags, fmeval_nll_flags().switch_flags);
  NllEvalRequest request;
  std::vector<std::string> positional = args.positional();
  if (args.has("--checkpoint")) positional.insert(positional.begin(), args.required("--checkpoint"));
  FM_CHECK(positional.size() == 1, ConfigError, "nll: expected one checkpoint, got ", positional.size(),
           " (fmeval nll CHECKPOINT [flags])");
  request.checkpoint = positional[0];
  if (args.has("--divergence")) {
    const std::string name = args.required("--divergence");
    FM_CHECK(name == "exact" || name == "hutchinson", ConfigError, "--divergence: got \"", name,
             "\", expected exact or hutchinson");
    request.likelihood.divergence = flow::parse_divergence_method(name);
    request.divergence_given = true;
  }
  if (args.has("--probes")) request.likelihood.probes = int(args.integer("--probes", 1, 100000));
  if (args.has("--probe")) {
    const std::string name = args.required("--probe");
    FM_CHECK(name == "rademacher" || name == "gaussian", ConfigError, "--probe: got \"", name,
             "\", expected rademacher or gaussian");
    request.likelihood.probe = flow::parse_probe_distribution(name);
  }
  FM_CHECK(!(request.divergence_given && request.likelihood.divergence == flow::DivergenceMethod::Exact &&
             (args.has("--probes") || args.has("--probe"))),
           ConfigError, "--probes/--probe: only with --divergence hutchinson");
  request.likelihood.solver = args.get("--solver", "rk4");
  const std::vector<std::string> solvers = flow::solver_names();
  FM_CHECK(std::find(solvers.begin(), solvers.end(), request.likelihood.solver) != solvers.end(), ConfigError,
           "--solver: got \"", request.likelihood.solver, "\", expected euler, midpoint, heun, rk4 or dopri5");
  request.likelihood.steps = int(args.has("--steps") ? args.integer("--steps", 1, 1000000) : 50);
  if (args.has("--rtol")) request.likelihood.rtol = args.number("--rtol", 1e-12, 1.0);
  if (args.has("--atol")) request.likelihood.atol = args.number("--atol", 1e-12, 1.0);
  FM_CHECK(request.likelihood.solver == "dopri5" || !(args.has("--rtol") || args.has("--atol")), ConfigError,
           "--rtol/--atol: only with --solver dopri5 (the others take --steps)");
  if (args.has("--n")) request.n = args.integer("--n", 2, 100000000);
  if (args.has("--batch")) request.batch = args.integer("--batch", 1, 1 << 20);
  if (args.has("--seed")) request.seed = args.seed();
  request.weights = args.get("--weights", "auto");
  FM_CHECK(is_weights_choice(request.weights), ConfigError, "--weights: got \"", request.weights,
           "\", expected auto, ema or raw");
  request.data_dir = args.get("--data-dir", request.data_dir);
  request.csv = args.get("--csv", "");
  // The CSV (and its progress file) is written after the work: a path that cannot be written, or that
  // is the checkpoint, is found now.
  if (args.has("--csv") && dist::is_root())
    check_output_files({{"--csv", request.csv}}, {{"the checkpoint", request.checkpoint}});
  request.device = pick_device(args.get("--device", "auto"));
  const std::string condition = args.get("--condition", "null");
  FM_CHECK(condition == "null" || condition == "label", ConfigError, "--condition: got \"", condition,
           "\", expected null (the unconditional density) or label (each example's own class)");
  request.given_label = condition == "label";
  return request;
}

int nll_command(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--help") {
      if (dist::is_root()) std::fputs(kNllUsage, stdout);
      return 0;
    }
  NllEvalRequest request = parse_nll_args(argc, argv);
  if (!request.csv.empty()) request.progress_file = nll_progress_path(request.csv);
  CheckpointModel loaded = load_checkpoint_model(request.checkpoint, request.device, request.weights);
  // Under mpirun every rank ends with all the values (tools/sharded_sampling.h): rank 0 reports them.
  NllEvalResult r = evaluate_nll(loaded, request, [](const std::string& line) {
    if (dist::is_root()) std::fprintf(stderr, "%s\n", line.c_str());
  });
  if (!dist::is_root()) return 0;
  std::string how = r.solver == "dopri5" ? cat("dopri5 rtol ", r.rtol, " atol ", r.atol, ", ", r.divergence, " divergence")
                                         : cat(r.solver, " ", r.steps, " steps, ", r.divergence, " divergence");
  if (r.divergence == "hutchinson") how += cat(" (", r.probes, " ", r.probe, " probe", r.probes > 1 ? "s" : "", ")");
  std::printf("checkpoint %s (step %lld, %s weights), data %s\n", request.checkpoint.c_str(), (long long)r.checkpoint_step,
              loaded.ema_weights ? "EMA" : "raw", r.data.c_str());
  if (loaded.model->num_classes() > 0)
    std::printf(request.given_label
                    ? "note: a class-conditional model, evaluated given each example's own class (log p(x | y))\n"
                    : "note: a class-conditional model, evaluated with its null class (its unconditional density; "
                      "--condition label for log p(x | y))\n");
  if (r.images) {
    std::printf("bits per dimension %.4f +- %.4f  (NLL %.2f +- %.2f nats per image, %lld t10k images, uniform "
                "dequantisation; %s; %lld NFE, %.1f s)\n",
                r.bpd, r.bpd_se, r.nll, r.nll_se, (long long)r.n, how.c_str(), (long long)r.nfe_per_example, r.seconds);
  } else {
    std::printf("NLL %.4f +- %.4f nats  (%lld fresh points, data coordinates; %s; %lld NFE, %.1f s)\n", r.nll, r.nll_se,
                (long long)r.n, how.c_str(), (long long)r.nfe_per_example, r.seconds);
    if (r.entropy_known)
    {
      std::printf("data entropy%s %.4f +- %.4f nats  (%s): a perfect model's NLL\n",
                  r.given_label ? " given the class, H(X | Y)," : "", r.entropy, r.entropy_se, r.entropy_note.c_str());
      std::printf("KL(data || model%s) %.4f +- %.4f nats  (NLL minus the data's log-density, on the same points)\n",
                  r.given_label ? " | class" : "", r.kl, r.kl_se);
    }
    else
      std::printf("data entropy %s\n", r.entropy_note.c_str());
  }
  if (!request.csv.empty()) {
    io::write_file_atomically(request.csv, [&](std::ostream& out) {
      // Given labels, each row names its example's class (per-class numbers need no second file).
      out << "index" << (r.given_label ? ",label" : "") << (r.images ? ",nll_nats,bpd\n" : ",nll_nats\n");
      char line[96];
      for (std::size_t i = 0; i < r.per_example_nll.size(); ++i) {
        out << i;
        if (r.given_label) out << ',' << r.labels[i];
        if (r.images)
          std::snprintf(line, sizeof line, ",%.9g,%.9g\n", r.per_example_nll[i],
                        r.per_example_nll[i] / (double(r.dims) * std::log(2.0)));
        else
          std::snprintf(line, sizeof line, ",%.9g\n", r.per_example_nll[i]);
        out << line;
      }
    });
    std::printf("wrote %s\n", request.csv.c_str());
    // Finished: the CSV holds every value now. A file that cannot be removed is only in the way of
    // nothing (a new run with the same settings would find everything done), so it is said, not fatal.
    std::error_code error;
    std::filesystem::remove(request.progress_file, error);
    if (error)
      std::fprintf(stderr, "fmeval: note: could not remove %s (%s)\n", request.progress_file.c_str(),
                   error.message().c_str());
  }
  std::printf("%s\n", r.to_json().dump().c_str());
  return 0;
}

}  // namespace fm::tools
