// tools/fmsample_main.cpp — `fmsample`: draw samples from a trained checkpoint.
//
//   fmsample --checkpoint FILE [--n 64] [--out grid.png] [--npy samples.npy] [--solver rk4]
//            [--steps 20] [--rtol 1e-5 --atol 1e-5] [--weights auto|ema|raw] [--seed 1] [--device auto]
//            [--kernels custom|library] [--guidance W] [--class K | --grid-by-class]
//   mpirun -np N fmsample ...   (each rank integrates its share of the samples; rank 0 writes)
//
// Writes a PNG (an image grid, or for 2-D models a scatter over fresh data) and a float32 .npy of
// the N samples, and prints the NFE and the time taken. A class-conditional model samples with
// classifier-free guidance (tools/conditional_sampling.h): every sample of --class K, or one row per
// class sharing its source noise (--grid-by-class), or labels drawn uniformly from the seed; the
// labels go to a float32 .npy beside the samples (samples_labels.npy), and a 2-D picture is coloured
// by the asked class.
//
// Under mpirun every rank loads the checkpoint, integrates its contiguous share of the N samples
// (tools/sharded_sampling.h), and rank 0 alone writes the files and prints: the same bits as one process.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>

#include "core/distributed.h"
#include "core/io/png.h"
#include "core/io/tensor_io.h"
#include "core/kernel_choice.h"
#include "tools/checkpoint_model.h"
#include "tools/cli_args.h"
#include "tools/conditional_sampling.h"
#include "tools/output_files.h"
#include "tools/ranks.h"
#include "tools/run_setup.h"
#include "tools/sharded_sampling.h"
#include "tools/tool_flags.h"

namespace {
const char* kUsage =
    "usage: fmsample --checkpoint FILE [--n 64] [--out samples.png] [--npy FILE] [--solver NAME]\n"
    "                [--steps N] [--rtol X] [--atol X] [--weights auto|ema|raw] [--seed S]\n"
    "                [--device auto|cpu|cuda] [--kernels custom|library]\n"
    "                [--guidance W] [--class K | --grid-by-class]   (class-conditional models only)\n"
    "  solvers: euler, midpoint, heun, rk4 (fixed --steps), dopri5 (adaptive --rtol/--atol)\n"
    "  defaults: the sample section of the run's config; --out samples.png; --npy next to --out\n"
    "  class-conditional models (model.num_classes > 0) sample with classifier-free guidance\n"
    "    v = (1 + W) v(x, t, y) - W v(x, t, null), both branches in one batched forward (--guidance 0, the\n"
    "    default, is plain conditional sampling); --class K: all --n samples of class K; --grid-by-class:\n"
    "    one row per class of --n / classes samples each (rounded down; --n at least the number of classes),\n"
    "    row k from the same source noise as every other\n"
    "    row (rows differ only by the label); neither: labels drawn uniformly from --seed. The labels go to\n"
    "    NPY_labels.npy beside --npy (float32 class indices); a 2-D picture is coloured by asked class.\n"
    "    For an unconditional model these three flags are an error.\n"
    "  mpirun -np R fmsample ...: R ranks share the samples (contiguous shares, every rank drawing the\n"
    "    same noise stream); rank 0 writes the files and prints. The samples are bitwise one process's.\n";
}  // namespace

int main(int argc, char** argv) {
  using namespace fm;
  // Under mpirun: one rank of the job (tools/ranks.h), its errors tagged with the rank.
  return tools::run_ranked("fmsample", &argc, &argv, [&] {
    tools::CliArgs args(argc, argv, tools::fmsample_flags().value_flags, tools::fmsample_flags().switch_flags);
    if (args.has("--help")) {
      if (dist::is_root()) std::fputs(kUsage, stdout);
      return 0;
    }
    FM_CHECK(args.positional().empty(), ConfigError, "unexpected argument \"", args.positional()[0],
             "\" (fmsample takes only --flags; the checkpoint goes after --checkpoint)");
    std::string checkpoint = args.required("--checkpoint");
    Device device = tools::pick_device(args.get("--device", "auto"));
    if (args.has("--kernels")) set_kernel_impl(parse_kernel_impl(args.required("--kernels")));  // else FM_KERNELS or custom
    tools::CheckpointModel loaded = tools::load_checkpoint_model(checkpoint, device, args.get("--weights", "auto"));

    tools::Json sample = loaded.config["sample"];
    if (args.has("--solver")) sample["solver"] = args.required("--solver");
    if (args.has("--steps")) sample["steps"] = args.integer("--steps", 1, 1000000);
    if (args.has("--rtol")) sample["rtol"] = args.number("--rtol", 1e-12, 1.0);
    if (args.has("--atol")) sample["atol"] = args.number("--atol", 1e-12, 1.0);
    const std::int64_t n = args.has("--n") ? args.integer("--n", 1, 10000000) : 64;
    const std::uint64_t seed = args.has("--seed") ? args.seed()
                                                  : sample["seed"].get<std::uint64_t>();
    std::string out = args.get("--out", "samples.png");
    std::string npy = args.get("--npy", std::filesystem::path(out).replace_extension(".npy").string());

    const bool conditional = loaded.model->num_classes() > 0;
    const int classes = loaded.model->num_classes();
    for (const char* flag : {"--guidance", "--class", "--grid-by-class"})
      if (args.has(flag)) tools::require_conditional_model(*loaded.model, flag);
    const double guidance = args.has("--guidance") ? args.number("--guidance", 0.0, 1000.0) : 0.0;
    FM_CHECK(!(args.has("--class") && args.has("--grid-by-class")), ConfigError,
             "--class and --grid-by-class: give one (all samples of one class, or one row per class)");
    const int asked_class = args.has("--class") ? int(args.integer("--class", 0, classes - 1)) : -1;
    const bool grid_by_class = args.has("--grid-by-class");
    FM_CHECK(!grid_by_class || n >= classes, ConfigError, "--n ", n, " with --grid-by-class: one row per class needs at "
             "least one sample for each of the ", classes, " classes; expected --n >= ", classes);
    const std::string labels_npy =
        std::filesystem::path(npy).replace_extension("").string() + "_labels.npy";
    // The files are written after sampling: one that cannot be written, found then, would cost the
    // work or leave the .npy without its picture; one that is the checkpoint would destroy it.
    std::vector<tools::NamedFile> outputs = {{"--out", out, /*png=*/true}, {args.has("--npy") ? "--npy" : "--npy (from --out)", npy}};
    if (conditional) outputs.push_back({"the labels file beside --npy", labels_npy});
    if (dist::is_root()) tools::check_output_files(outputs, {{"--checkpoint", checkpoint}});

    std::unique_ptr<flow::OdeSolver> solver = tools::build_solver(sample);
    bool points = tools::is_2d_dataset(loaded.config["data"]["name"]);
    // Images: the size from the training data's IDX header (28×28 for Fashion-MNIST).
    const Shape example = tools::example_shape(loaded.config);
    Generator gen(seed);
    auto source = tools::build_source(loaded.config);
    // Under mpirun the samplers below split the samples over the ranks and hand every rank all of them.
    const tools::ShardOverRanks shard_over_ranks;
    tools::SampleResult result;
    std::vector<std::int32_t> labels;  // conditional models: the asked class of each sample
    std::int64_t grid_columns = 0;
    if (!conditional) {
      result = tools::generate_samples(*loaded.model, *solver, example, n, gen, device, 512, source.get());
    } else if (grid_by_class) {
      grid_columns = std::max<std::int64_t>(1, n / classes);
      tools::ClassGrid grid = tools::class_grid_noise(classes, grid_columns, example, gen, device, source.get());
      labels = grid.labels;
      result = tools::generate_guided_samples_from_noise(*loaded.model, *solver, grid.noise, labels, guidance);
    } else {
      // Labels from a generator of their own: the source noise stays that of an unconditional run.
      labels = asked_class >= 0 ? std::vector<std::int32_t>(std::size_t(n), asked_class)
                                : tools::labels_from_seed(n, classes, seed);
      result = tools::generate_guided_samples(*loaded.model, *solver, example, labels, guidance, gen, device, 512,
                                              source.get());
    }
    const std::int64_t produced = result.samples.size(0);
    if (!dist::is_root()) return 0;  // rank 0 writes and prints what every rank holds
    // In the data's own coordinates (2-D data is normalised for the model; the checkpoint says how).
    const Tensor samples = tools::samples_in_data_coordinates(result.samples, loaded.config, loaded.metadata);
    io::save_npy(npy, samples);
    if (conditional) tools::save_labels_npy(labels_npy, labels);
    Tensor reference;
    if (points) {
      Generator data_gen(seed + 1000);
      reference = tools::samples_in_data_coordinates(tools::build_toy_distribution(loaded.config)->sample(produced, data_gen),
                                                     loaded.config, loaded.metadata);
    }
    std::string title = cat("step ", loaded.step, " · ", sample["solver"].get<std::string>(), " ", result.nfe, " NFE · ",
                            loaded.ema_weights ? "EMA" : "raw", " weights");
    if (conditional) title += cat(" · guidance ", guidance);
    if (conditional && points) {
      tools::write_class_scatter_png(out, samples, labels, classes, reference, title);
    } else if (grid_by_class) {
      // One row per class: the grid's columns are the shared source draws.
      std::vector<float> pixels = samples.to_float_vector();
      io::write_image_grid_png(out, pixels.data(), int(produced), int(samples.size(1)), int(samples.size(2)),
                               int(samples.size(3)), int(grid_columns), -1.f, 1.f, 2);
    } else {
      tools::write_samples_png(out, samples, reference, title);
    }
    std::printf("fmsample: %lld samples with %s (%lld NFE, %s weights) in %.2f s -> %s, %s\n", (long long)produced,
                sample["solver"].get<std::string>().c_str(), (long long)result.nfe,
                loaded.ema_weights ? "EMA" : "raw", result.seconds, out.c_str(), npy.c_str());
    if (conditional)
      std::printf("fmsample: class-conditional (%d classes), guidance %g, %s; labels -> %s\n", classes, guidance,
                  grid_by_class ? cat("one row per class, ", grid_columns, " columns sharing their noise").c_str()
                  : asked_class >= 0 ? cat("all of class ", asked_class).c_str()
                                     : "labels drawn uniformly from the seed",
                  labels_npy.c_str());
    return 0;
  });
}
