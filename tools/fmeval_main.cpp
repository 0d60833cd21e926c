// tools/fmeval_main.cpp — `fmeval`: sample quality of an image flow-matching model as a Fréchet
// distance in the feature space of our own Fashion-MNIST classifier (FID's formula, no downloads).
//
//   fmeval train-classifier [--out classifier.safetensors] [--epochs 2] [--data-dir DIR] [--seed 0]
//                           [--batch-size 128] [--lr 0.002] [--device auto|cpu|cuda]
//   fmeval --checkpoint RUN/checkpoint.safetensors | --samples FILE.npy
//          [--classifier FILE] [--n 2000] [--solver NAME] [--steps N] [--rtol X] [--atol X]
//          [--weights auto|ema|raw] [--seed S] [--floor-draws 5] [--data-dir DIR] [--device auto|cpu|cuda]
//          [--kernels custom|library]
//   fmeval straight CHECKPOINT... [--labels a,b] [--nfe 1,2,4,8,16,100] [--csv F] [--png F] [--trajectories P] ...
//   fmeval sweep RUN_DIR [--classifier FILE] [--n 1000] [--only steps|nfe] [--nfe 4,8,16,32]
//                [--solvers euler,midpoint,heun,rk4,dopri5] [--tolerances 1e-2,1e-3,1e-4] [--data-dir DIR]
//                [--device auto|cpu|cuda] [--kernels custom|library]
//   fmeval guidance CHECKPOINT [--weights-list 0,0.5,1,2,4] [--n PER_CLASS] [--csv F] [--png F] ...
//   fmeval nll CHECKPOINT [--divergence exact|hutchinson] [--probes K] [--steps N] [--n N] ... (tools/nll_eval.h)
//   mpirun -np R fmeval [--checkpoint ...|sweep|guidance|nll] ...   (R ranks share the sampling / examples)
//
// The evaluation prints the distance of the samples to n real t10k images, the floor (n real train
// images against the same t10k images: what a perfect model scores at this n; mean and standard
// deviation over a few draws of train images, since at n = 2000 it varies by about ±25% between
// draws), the NFE, and last one JSON line for scripts. `sweep` repeats that over a run's kept
// checkpoints and over solvers × NFE budgets (tools/quality_sweep.h) and prints a table. Progress
// goes to stderr. Errors are one line on stderr with exit code 2. The library halves
// (tools/eval_classifier.h, tools/quality_sweep.h) are what the tests drive.
//
// Under mpirun the evaluation (--checkpoint), sweep, guidance and nll split their sampling (nll: its
// examples) over the ranks (tools/sharded_sampling.h); every rank gets all the samples, computes the
// same metrics from them, and rank 0 alone prints and writes: the numbers are one process's.
// train-classifier and straight refuse to run on more than one rank.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>
#include <string>
#include <vector>

#include "core/distributed.h"
#include "core/kernel_choice.h"
#include "tools/cli_args.h"
#include "tools/tool_flags.h"
#include "tools/eval_classifier.h"
#include "tools/guidance_eval.h"
#include "tools/nll_eval.h"
#include "tools/output_files.h"
#include "tools/quality_sweep.h"
#include "tools/ranks.h"
#include "tools/run_setup.h"
#include "tools/sharded_sampling.h"
#include "tools/straight_eval.h"

namespace {

const char* kUsage =
    "usage: fmeval --checkpoint RUN/checkpoint.safetensors [--classifier FILE] [--n 2000] [--solver NAME]\n"
    "              [--steps N] [--rtol X] [--atol X] [--weights auto|ema|raw] [--seed S] [--data-dir DIR]\n"
    "              [--floor-draws 5] [--device auto|cpu|cuda] [--kernels custom|library]\n"
    "       fmeval --samples FILE.npy [--classifier FILE] [--n 2000] [--data-dir DIR] [--device ...]\n"
    "       fmeval train-classifier [--out classifier.safetensors] [--epochs 2] [--data-dir DIR] [--seed 0]\n"
    "              [--batch-size 128] [--lr 0.002] [--device auto|cpu|cuda]\n"
    "       fmeval sweep RUN_DIR [--classifier FILE] [--n 1000] [--only steps|nfe] [--nfe 4,8,16,32]\n"
    "              [--solvers euler,midpoint,heun,rk4,dopri5] [--tolerances 1e-2,1e-3,1e-4] [--data-dir DIR]\n"
    "              [--device auto|cpu|cuda] [--kernels custom|library]\n"
    "       fmeval straight CHECKPOINT... [--labels a,b] [--n 2000] [--nfe 1,2,4,8,16,100] [--tolerance 1e-5]\n"
    "              [--seed S] [--repeats N] [--csv FILE] [--png FILE] [--trajectories PREFIX] [--weights auto|ema|raw]\n"
    "              [--classifier FILE] [--data-dir DIR] [--device auto|cpu|cuda] [--kernels custom|library]\n"
    "       fmeval guidance CHECKPOINT [--weights-list 0,0.5,1,2,4] [--n PER_CLASS] [--csv FILE] [--png FILE]\n"
    "              [--solver NAME] [--steps N] [--rtol X] [--atol X] [--weights auto|ema|raw] [--seed S]\n"
    "              [--classifier FILE] [--data-dir DIR] [--device auto|cpu|cuda] [--kernels custom|library]\n"
    "       fmeval nll CHECKPOINT [--divergence exact|hutchinson] [--probes 1] [--probe rademacher|gaussian]\n"
    "              [--solver rk4|...|dopri5] [--steps 50] [--rtol X] [--atol X] [--n N] [--batch 500] [--seed S]\n"
    "              [--weights auto|ema|raw] [--device ...]\n"
    "              [--data-dir DIR] [--csv FILE]   (log-likelihood; `fmeval nll --help` for details)\n"
    "  guidance (class-conditional models): for each guidance weight w, --n samples per class (default 500 for\n"
    "  2-D, 200 for images) from the same noise; 2-D: the fraction landing in the asked mode and the sliced W2\n"
    "  to data of that class; images: the classifier's accuracy against the asked class and the Frechet\n"
    "  distance to t10k images of that class; per class and overall, each distance with its floor (two real\n"
    "  samples). --png writes FILE (fidelity against w) and FILE_distance.png (distance against w). The\n"
    "  checkpoint may also be given as --checkpoint FILE.\n"
    "  straight: the distance to the data after Euler with each --nfe, and dopri5 at --tolerance (0 = skip),\n"
    "  from the same n source draws, and the flow's straightness S along 100-step Euler paths. 2-D models:\n"
    "  sliced W2 to n fresh points, a mean over --repeats (default 5) draws; image models: the Frechet distance\n"
    "  to n t10k images (--classifier and --data-dir as below, one classifier for all rows; --repeats default\n"
    "  1), with the floor's spread over 5 draws of real train images.\n"
    "  --png plots the distance against NFE for all checkpoints, --trajectories writes PREFIX_<label>.png path\n"
    "  pictures (2-D: 96 Euler paths over the data, and PREFIX_<label>.gif, the points travelling along them;\n"
    "  images: 8 paths, x_t over t = 0..1 and under it the endpoint x_t + (1-t) v predicts, and\n"
    "  PREFIX_<label>.gif, the same 8 paths over 21 times); in file names a label keeps letters, digits, '.',\n"
    "  '-' and '_' (others become '_') and loses a .safetensors ending (the default label is the path).\n"
    "  Prints the Frechet distance between classifier features of n samples and of n real t10k images,\n"
    "  and the floor: the same distance between n real train images and those t10k images (mean and\n"
    "  spread over --floor-draws draws of train images; a model within that spread is as good as real data).\n"
    "  --classifier defaults to ./classifier.safetensors, then classifier.safetensors beside the checkpoint.\n"
    "  solvers: euler, midpoint, heun, rk4 (fixed --steps), dopri5 (adaptive --rtol/--atol);\n"
    "  defaults: the sample section of the run's config. --data-dir: /usr/share/datasets/fashion-mnist\n"
    "  sweep: the distance of every checkpoint the run kept (train.keep_checkpoints) with the run's sampler,\n"
    "  and of the final checkpoint for each solver at each NFE budget (dopri5: at each tolerance); writes\n"
    "  RUN_DIR/quality_vs_steps.{csv,png} and RUN_DIR/quality_vs_nfe.{csv,png}.\n"
    "  mpirun -np R fmeval --checkpoint|sweep|guidance|nll ...: R ranks share the sampling (nll: the examples);\n"
    "  rank 0 prints and writes the same numbers as one process. train-classifier and straight run on one.\n";

// Progress on stderr, from rank 0 only under mpirun (every rank does the same work).
void print_line(const std::string& line) {
  if (fm::dist::is_root()) std::fprintf(stderr, "%s\n", line.c_str());
}

// The output files named by those of `flags` that were given (tools/output_files.h checks them).
std::vector<fm::tools::NamedFile> given_outputs(const fm::tools::CliArgs& args, const std::vector<std::string>& flags) {
  std::vector<fm::tools::NamedFile> files;
  for (const std::string& flag : flags)
    if (args.has(flag)) files.push_back({flag, args.get(flag, ""), /*png=*/flag == "--png"});
  return files;
}

// A label as part of a file name: characters other than letters, digits, '.', '-' and '_' become '_'
// (a checkpoint's path, the default label, has folder separators), and a ".safetensors" ending goes.
std::string file_name_part(std::string label) {
  const std::string ending = ".safetensors";
  if (label.size() > ending.size() && label.compare(label.size() - ending.size(), ending.size(), ending) == 0)
    label.resize(label.size() - ending.size());
  for (char& c : label)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  // No leading '_' (a path's first '/') or '.' (a hidden file).
  label.erase(0, std::min(label.size(), label.find_first_not_of("._")));
  return label.empty() ? std::string("model") : label;
}

// Under mpirun with more than one rank, a subcommand that does not split its work refuses in one line:
// rank 0 says it (and ends the job, tools/ranks.h); the others wait for that end instead of saying it too.
void require_one_rank(const char* subcommand) {
  if (!fm::dist::active()) return;
  if (!fm::dist::is_root()) fm::dist::barrier();  // never completes: rank 0 aborts the job
  throw fm::ConfigError(fm::cat(subcommand, ": not sharded over ranks; run it with one process"));
}

int train_classifier_command(int argc, char** argv) {
  using namespace fm;
  // argv[0] is "train-classifier"; CliArgs skips it like a program name.
  tools::CliArgs args(argc, argv, tools::fmeval_train_classifier_flags().value_flags,
                      tools::fmeval_train_classifier_flags().switch_flags);
  if (args.has("--help")) {
    if (fm::dist::is_root()) std::fputs(kUsage, stdout);
    return 0;
  }
  FM_CHECK(args.positional().empty(), ConfigError, "train-classifier: unexpected argument \"", args.positional()[0],
           "\"");
  require_one_rank("train-classifier");
  tools::TrainClassifierRequest request;
  request.out_path = args.get("--out", tools::kClassifierFileName);
  request.data_dir = args.get("--data-dir", tools::kFashionMnistDir);
  if (args.has("--epochs")) request.training.epochs = int(args.integer("--epochs", 1, 1000));
  if (args.has("--seed")) request.training.seed = args.seed();
  if (args.has("--batch-size")) request.training.batch_size = args.integer("--batch-size", 1, 1 << 20);
  if (args.has("--lr")) request.training.lr = args.number("--lr", 1e-8, 1.0);
  request.training.device = tools::pick_device(args.get("--device", "auto"));
  tools::TrainClassifierResult result = tools::train_and_save_classifier(request, print_line);
  std::printf("fmeval train-classifier: test accuracy %.4f, %lld parameters, %.1f s -> %s\n", result.test_accuracy,
              (long long)result.parameter_count, result.training.seconds, request.out_path.c_str());
  tools::Json record = {{"test_accuracy", result.test_accuracy},
                        {"parameters", result.parameter_count},
                        {"train_seconds", result.training.seconds},
                        {"steps", result.training.steps},
                        {"out", request.out_path}};
  std::printf("%s\n", record.dump().c_str());
  return 0;
}

int evaluate_command(int argc, char** argv) {
  using namespace fm;
  tools::CliArgs args(argc, argv, tools::fmeval_evaluate_flags().value_flags, tools::fmeval_evaluate_flags().switch_flags);
  if (args.has("--help")) {
    if (fm::dist::is_root()) std::fputs(kUsage, stdout);
    return 0;
  }
  FM_CHECK(args.positional().empty(), ConfigError, "unexpected argument \"", args.positional()[0],
           "\" (the subcommands are train-classifier, sweep, straight, guidance and nll)");
  tools::FrechetEvalRequest request;
  request.checkpoint = args.get("--checkpoint", "");
  request.samples_path = args.get("--samples", "");
  request.classifier = args.get("--classifier", "");
  request.data_dir = args.get("--data-dir", tools::kFashionMnistDir);
  if (args.has("--n")) request.n = args.integer("--n", 2, 10000000);
  if (args.has("--floor-draws")) request.floor_draws = int(args.integer("--floor-draws", 1, 100));
  if (args.has("--solver")) request.sample_overrides["solver"] = args.required("--solver");
  if (args.has("--steps")) request.sample_overrides["steps"] = args.integer("--steps", 1, 1000000);
  if (args.has("--rtol")) request.sample_overrides["rtol"] = args.number("--rtol", 1e-12, 1.0);
  if (args.has("--atol")) request.sample_overrides["atol"] = args.number("--atol", 1e-12, 1.0);
  request.weights = args.get("--weights", "auto");
  if (args.has("--seed")) request.seed = args.seed();
  FM_CHECK(request.samples_path.empty() || request.sample_overrides.empty(), ConfigError,
           "--solver/--steps/--rtol/--atol: only with --checkpoint (samples read from --samples are already made)");
  request.device = tools::pick_device(args.get("--device", "auto"));
  if (args.has("--kernels")) set_kernel_impl(parse_kernel_impl(args.required("--kernels")));  // else FM_KERNELS or custom

  tools::FrechetEvalResult result = tools::run_frechet_evaluation(request, print_line);
  if (!dist::is_root()) return 0;
  std::printf("fd %.4f  (%lld %s vs %lld real t10k images)\n", result.fd, (long long)result.n,
              request.samples_path.empty() ? "samples" : "images from the file", (long long)result.n);
  std::printf("fd floor %.4f +- %.4f  (%lld real train images vs the same t10k images; mean +- std over %zu draws)\n",
              result.fd_floor_train_vs_test, result.fd_floor_std, (long long)result.n, result.fd_floor_draws.size());
  if (result.nfe >= 0)
    std::printf("solver %s, %lld NFE per sample, sampling %.1f s\n", result.solver.c_str(), (long long)result.nfe,
                result.sampling_seconds);
  else
    std::printf("NFE unknown (samples read from %s)\n", request.samples_path.c_str());
  if (result.clamped_values > 0)
    std::printf("note: %lld sample values outside [-1, 1] were clamped\n", (long long)result.clamped_values);
  std::printf("%s\n", result.to_json().dump().c_str());
  return 0;
}

int sweep_command(int argc, char** argv) {
  using namespace fm;
  tools::CliArgs args(argc, argv, tools::fmeval_sweep_flags().value_flags, tools::fmeval_sweep_flags().switch_flags);
  if (args.has("--help")) {
    if (fm::dist::is_root()) std::fputs(kUsage, stdout);
    return 0;
  }
  FM_CHECK(args.positional().size() == 1, ConfigError, "sweep: expected one run directory, got ",
           args.positional().size(), " arguments");
  tools::QualitySweepRequest request;
  request.run_dir = args.positional()[0];
  request.classifier = args.get("--classifier", "");
  request.data_dir = args.get("--data-dir", tools::kFashionMnistDir);
  if (args.has("--n")) request.n = args.integer("--n", 2, 10000000);
  if (args.has("--only")) {
    const std::string only = args.required("--only");
    FM_CHECK(only == "steps" || only == "nfe", ConfigError, "--only: got \"", only, "\", expected steps or nfe");
    request.sweep_steps = only == "steps";
    request.sweep_nfe = only == "nfe";
  }
  if (args.has("--nfe")) request.nfe_budgets = tools::parse_list<int>("--nfe", args.required("--nfe"));
  if (args.has("--solvers")) request.solvers = tools::parse_list<std::string>("--solvers", args.required("--solvers"));
  if (args.has("--tolerances"))
    request.dopri5_tolerances = tools::parse_list<double>("--tolerances", args.required("--tolerances"));
  request.device = tools::pick_device(args.get("--device", "auto"));
  if (args.has("--kernels")) set_kernel_impl(parse_kernel_impl(args.required("--kernels")));

  tools::QualitySweepResult result = tools::run_quality_sweep(request, print_line);
  if (!dist::is_root()) return 0;  // run_quality_sweep wrote its files from rank 0
  std::printf("Frechet distance, n = %lld; floor (real train vs test) %.4f +- %.4f\n", (long long)result.n,
              result.floor, result.floor_std);
  std::printf("| sweep | checkpoint step | solver | steps | tolerance | NFE | FD | sampling s |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const tools::QualityPoint& p : result.points)
    std::printf("| %s | %lld | %s | %s | %s | %lld | %.4f | %.1f |\n", p.sweep.c_str(), (long long)p.checkpoint_step,
                p.solver.c_str(), p.solver_steps > 0 ? std::to_string(p.solver_steps).c_str() : "",
                p.tolerance > 0 ? cat(p.tolerance).c_str() : "", (long long)p.nfe, p.fd, p.sampling_seconds);
  for (const std::string& file : result.files) std::printf("wrote %s\n", file.c_str());
  return 0;
}

int straight_command(int argc, char** argv) {
  using namespace fm;
  tools::CliArgs args(argc, argv, tools::fmeval_straight_flags().value_flags, tools::fmeval_straight_flags().switch_flags);
  if (args.has("--help")) {
    if (fm::dist::is_root()) std::fputs(kUsage, stdout);
    return 0;
  }
  require_one_rank("straight");
  std::vector<std::string> checkpoints = args.positional();
  if (args.has("--checkpoint")) checkpoints.insert(checkpoints.begin(), args.required("--checkpoint"));
  FM_CHECK(!checkpoints.empty(), ConfigError, "straight: expected a checkpoint (--checkpoint FILE, or files after the subcommand)");
  std::vector<std::string> labels;
  if (args.has("--labels")) {
    labels = tools::parse_list<std::string>("--labels", args.required("--labels"));
    FM_CHECK(labels.size() == checkpoints.size(), ConfigError, "--labels: ", labels.size(), " labels for ",
             checkpoints.size(), " checkpoints");
  } else {
    for (const std::string& c : checkpoints) labels.push_back(c);
  }
  tools::StraightEvalRequest request;
  if (args.has("--n")) request.n = args.integer("--n", 2, 10000000);
  if (args.has("--nfe")) request.euler_steps = tools::parse_list<int>("--nfe", args.required("--nfe"));
  for (int steps : request.euler_steps)
    FM_CHECK(steps >= 1 && steps <= 100000, ConfigError, "--nfe: Euler step counts must be in [1, 100000], got ", steps);
  if (args.has("--tolerance")) request.dopri5_tolerance = args.number("--tolerance", 0.0, 1.0);
  if (args.has("--seed")) request.seed = args.seed();
  if (args.has("--repeats")) request.repeats = int(args.integer("--repeats", 1, 1000));
  request.classifier = args.get("--classifier", "");
  request.data_dir = args.get("--data-dir", tools::kFashionMnistDir);
  const std::string csv = args.get("--csv", ""), png = args.get("--png", ""), trajectories = args.get("--trajectories", "");
  // Every file is written after hours of work: one that cannot be written, or that is an input, is found now.
  // The trajectory pictures are named TRAJECTORIES_<label>.png and .gif, the label made file-safe.
  std::vector<tools::NamedFile> outputs = given_outputs(args, {"--csv", "--png"});
  if (args.has("--trajectories"))
    for (const std::string& label : labels)
      for (const char* ending : {".png", ".gif"})
        outputs.push_back({"--trajectories", cat(trajectories, "_", file_name_part(label), ending)});
  std::vector<tools::NamedFile> inputs = {{"--classifier", request.classifier}};
  for (const std::string& checkpoint : checkpoints) inputs.push_back({"a checkpoint", checkpoint});
  tools::check_output_files(outputs, inputs);
  const Device device = tools::pick_device(args.get("--device", "auto"));
  if (args.has("--kernels")) set_kernel_impl(parse_kernel_impl(args.required("--kernels")));

  // Every checkpoint is read and checked before any is evaluated: a bad last file must not cost the
  // hours the first ones take. One kind of model per table, and one classifier for all image rows
  // (each found beside its own checkpoint would measure each row with other features).
  std::vector<tools::CheckpointModel> models;
  for (const std::string& checkpoint : checkpoints) {
    models.push_back(tools::load_checkpoint_model(checkpoint, device, args.get("--weights", "auto")));
    const bool image = !tools::is_2d_dataset(models.back().config["data"]["name"]);
    const bool first_image = !tools::is_2d_dataset(models.front().config["data"]["name"]);
    FM_CHECK(image == first_image, ConfigError, "straight: ", checkpoint, " is ", image ? "an image" : "a 2-D",
             " model and ", checkpoints[0], " is not; compare like with like");
  }
  const bool images = !tools::is_2d_dataset(models.front().config["data"]["name"]);
  if (images) request.classifier = tools::find_classifier(request.classifier, checkpoints[0]);

  std::vector<tools::LabelledStraightResult> results;
  for (std::size_t i = 0; i < checkpoints.size(); ++i) {
    tools::CheckpointModel& loaded = models[i];
    request.checkpoint_path = checkpoints[i];
    std::fprintf(stderr, "straight: %s (%zu of %zu)...\n", checkpoints[i].c_str(), i + 1, checkpoints.size());
    const std::int64_t kept_paths = trajectories.empty() ? 0 : images ? 8 : 96;
    results.push_back({labels[i], tools::evaluate_straightness(loaded, request, kept_paths)});
    const tools::StraightEvalResult& r = results.back().result;
    if (!trajectories.empty()) {
      const std::string file = cat(trajectories, "_", file_name_part(labels[i]), ".png");
      if (images) {
        tools::write_image_paths_png(file, r);
        const std::string animation = cat(trajectories, "_", file_name_part(labels[i]), ".gif");
        tools::write_image_paths_gif(animation, r, labels[i]);
        std::printf("wrote %s\n", animation.c_str());
      } else {
        Generator data_gen(request.seed + 2000);
        const Tensor data = tools::build_toy_distribution(loaded.config)->sample(1000, data_gen);
        tools::write_trajectory_png(file, r, data, cat(labels[i], ": 96 Euler paths, S = ", r.straightness));
        const std::string animation = cat(trajectories, "_", file_name_part(labels[i]), ".gif");
        tools::write_trajectory_gif(animation, r, data, labels[i]);
        std::printf("wrote %s\n", animation.c_str());
      }
      std::printf("wrote %s\n", file.c_str());
    }
  }
  const tools::StraightEvalResult& first = results.front().result;
  std::printf("| checkpoint | S | S relative |");
  for (const tools::NfeQuality& row : first.rows) std::printf(" %s %lld |", row.solver.c_str(), (long long)row.nfe);
  std::printf("\n|---|---|---|");
  for (std::size_t k = 0; k < first.rows.size(); ++k) std::printf("---|");
  std::printf("\n");
  for (const auto& [label, r] : results) {
    std::printf("| %s | %.4f | %.4f |", label.c_str(), r.straightness, r.relative_straightness);
    for (const tools::NfeQuality& row : r.rows) {
      if (r.repeats > 1)
        std::printf(" %.4f ± %.4f (%.2f×) |", row.distance, row.distance_std, row.distance / r.floor);
      else
        std::printf(" %.4f (%.2f×) |", row.distance, row.distance / r.floor);
    }
    std::printf("\n");
  }
  if (first.metric == "fd")
    std::printf("cells: Frechet distance of %lld samples to %lld t10k images in classifier features, %d draw(s) of x0 (× the "
                "floor %.4f ± %.4f: real train vs test, 5 draws); S: mean over the same draws; dopri5's NFE in the header is "
                "the first checkpoint's, see the JSON for each\n",
                (long long)request.n, (long long)request.n, first.repeats, first.floor, first.floor_std);
  else
    std::printf("cells: sliced W2 to %lld fresh data points, mean ± std over %d draws of x0 and data (× the floor %.4f: two "
                "data samples); S: mean over the same draws; dopri5's NFE in the header is the first checkpoint's, see the "
                "JSON for each\n",
                (long long)request.n, first.repeats, first.floor);
  for (const std::string& file : tools::write_straight_comparison(results, csv, png)) std::printf("wrote %s\n", file.c_str());
  tools::Json all = tools::Json::array();
  for (const auto& [label, r] : results) {
    tools::Json j = r.to_json();
    j["label"] = label;
    all.push_back(j);
  }
  std::printf("%s\n", all.dump().c_str());
  return 0;
}

int guidance_command(int argc, char** argv) {
  using namespace fm;
  tools::CliArgs args(argc, argv, tools::fmeval_guidance_flags().value_flags, tools::fmeval_guidance_flags().switch_flags);
  if (args.has("--help")) {
    if (fm::dist::is_root()) std::fputs(kUsage, stdout);
    return 0;
  }
  // One checkpoint: after the subcommand (as nll and straight take it) or after --checkpoint.
  std::vector<std::string> checkpoints = args.positional();
  if (args.has("--checkpoint")) checkpoints.insert(checkpoints.begin(), args.required("--checkpoint"));
  FM_CHECK(checkpoints.size() == 1, ConfigError,
           "guidance: expected one checkpoint (CHECKPOINT or --checkpoint FILE), got ", checkpoints.size(), checkpoints.size() > 1 ? cat(" (\"", checkpoints[1], "\" is one too many)") : "");
  tools::GuidanceEvalRequest request;
  request.checkpoint_path = checkpoints[0];
  if (args.has("--weights-list")) request.weights = tools::parse_list<double>("--weights-list", args.required("--weights-list"));
  if (args.has("--n")) request.n_per_class = args.integer("--n", 2, 1000000);
  if (args.has("--seed")) request.seed = args.seed();
  if (args.has("--solver")) request.sample_overrides["solver"] = args.required("--solver");
  if (args.has("--steps")) request.sample_overrides["steps"] = args.integer("--steps", 1, 1000000);
  if (args.has("--rtol")) request.sample_overrides["rtol"] = args.number("--rtol", 1e-12, 1.0);
  if (args.has("--atol")) request.sample_overrides["atol"] = args.number("--atol", 1e-12, 1.0);
  request.classifier = args.get("--classifier", "");
  request.data_dir = args.get("--data-dir", tools::kFashionMnistDir);
  const std::string csv = args.get("--csv", ""), png = args.get("--png", "");
  // The files are written after all the sampling: one that cannot be written is found now, not after the work.
  if (dist::is_root()) {
    std::vector<tools::NamedFile> outputs = given_outputs(args, {"--csv", "--png"});
    if (!png.empty()) outputs.push_back({"--png (its _distance picture)", tools::guidance_distance_png_path(png), true});
    tools::check_output_files(outputs, {{"the checkpoint", request.checkpoint_path}, {"--classifier", request.classifier}});
  }
  request.device = tools::pick_device(args.get("--device", "auto"));
  if (args.has("--kernels")) set_kernel_impl(parse_kernel_impl(args.required("--kernels")));
  tools::CheckpointModel loaded = tools::load_checkpoint_model(request.checkpoint_path, request.device, args.get("--weights", "auto"));
  tools::GuidanceEvalResult result = tools::evaluate_guidance(loaded, request, print_line);
  if (!dist::is_root()) return 0;
  std::printf("%s", tools::guidance_table(result).c_str());
  std::printf("%s: %lld samples per class from the same noise at every w, %s %lld NFE; each distance next to its floor "
              "(two real samples of the same size)\n",
              result.hit_name.c_str(), (long long)result.n_per_class, result.solver.c_str(), (long long)result.nfe);
  for (const std::string& file : tools::write_guidance_outputs(result, csv, png)) std::printf("wrote %s\n", file.c_str());
  std::printf("%s\n", result.to_json().dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Under mpirun: one rank of the job (tools/ranks.h), its errors tagged with the rank. The samplers
  // split their work over the ranks for the whole run (tools/sharded_sampling.h).
  return fm::tools::run_ranked("fmeval", &argc, &argv, [&] {
    const fm::tools::ShardOverRanks shard_over_ranks;
    if (argc >= 2 && std::strcmp(argv[1], "train-classifier") == 0) return train_classifier_command(argc - 1, argv + 1);
    if (argc >= 2 && std::strcmp(argv[1], "sweep") == 0) return sweep_command(argc - 1, argv + 1);
    if (argc >= 2 && std::strcmp(argv[1], "straight") == 0) return straight_command(argc - 1, argv + 1);
    if (argc >= 2 && std::strcmp(argv[1], "guidance") == 0) return guidance_command(argc - 1, argv + 1);
    if (argc >= 2 && std::strcmp(argv[1], "nll") == 0) return fm::tools::nll_command(argc - 1, argv + 1);
    return evaluate_command(argc, argv);
  });
}
