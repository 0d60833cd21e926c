// tools/fmsample_main.cpp — `fmsample`: draw samples from a trained checkpoint.
//
//   fmsample --checkpoint FILE [--n 64] [--out grid.png] [--npy samples.npy] [--solver rk4]
//            [--steps 20] [--rtol 1e-5 --atol 1e-5] [--weights ema|raw] [--seed 1] [--device auto]
//            [--kernels custom|library]
//
// Writes a PNG (an image grid, or for 2-D models a scatter over fresh data) and a float32 .npy of
// the N samples, and prints the NFE and the time taken.
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>

#include "core/io/tensor_io.h"
#include "core/kernel_choice.h"
#include "tools/checkpoint_model.h"
#include "tools/cli_args.h"
#include "tools/tool_flags.h"
#include "tools/run_setup.h"

namespace {
const char* kUsage =
    "usage: fmsample --checkpoint FILE [--n 64] [--out samples.png] [--npy FILE] [--solver NAME]\n"
    "                [--steps N] [--rtol X] [--atol X] [--weights ema|raw] [--seed S]\n"
    "                [--device auto|cpu|cuda] [--kernels custom|library]\n"
    "  solvers: euler, midpoint, heun, rk4 (fixed --steps), dopri5 (adaptive --rtol/--atol)\n"
    "  defaults: the sample section of the run's config; --out samples.png; --npy next to --out\n";
}  // namespace

int main(int argc, char** argv) {
  using namespace fm;
  try {
    tools::CliArgs args(argc, argv, tools::fmsample_flags().value_flags, tools::fmsample_flags().switch_flags);
    if (args.has("--help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    FM_CHECK(args.positional().empty(), ConfigError, "unexpected argument \"", args.positional()[0],
             "\" (fmsample takes only --flags; the checkpoint goes after --checkpoint)");
    std::string checkpoint = args.required("--checkpoint");
    Device device = tools::pick_device(args.get("--device", "auto"));
    if (args.has("--kernels")) set_kernel_impl(parse_kernel_impl(args.required("--kernels")));  // else FM_KERNELS or custom
    tools::CheckpointModel loaded = tools::load_checkpoint_model(checkpoint, device, args.get("--weights", "ema"));

    tools::Json sample = loaded.config["sample"];
    if (args.has("--solver")) sample["solver"] = args.required("--solver");
    if (args.has("--steps")) sample["steps"] = args.integer("--steps", 1, 1000000);
    if (args.has("--rtol")) sample["rtol"] = args.number("--rtol", 1e-12, 1.0);
    if (args.has("--atol")) sample["atol"] = args.number("--atol", 1e-12, 1.0);
    const std::int64_t n = args.has("--n") ? args.integer("--n", 1, 10000000) : 64;
    const std::uint64_t seed = args.has("--seed") ? std::uint64_t(args.integer("--seed", 0, 1LL << 53))
                                                  : sample["seed"].get<std::uint64_t>();
    std::string out = args.get("--out", "samples.png");
    std::string npy = args.get("--npy", std::filesystem::path(out).replace_extension(".npy").string());
    // Both files are written after sampling: a missing folder found then would leave the .npy without
    // its picture (or fail only after the work).
    for (const auto& [flag, file] : {std::pair{"--out", out}, std::pair{"--npy", npy}}) {
      const std::filesystem::path folder = std::filesystem::path(file).parent_path();
      FM_CHECK(folder.empty() || std::filesystem::is_directory(folder), IOError, flag, ": folder ", folder.string(),
               " does not exist");
    }

    std::unique_ptr<flow::OdeSolver> solver = tools::build_solver(sample);
    bool points = tools::is_2d_dataset(loaded.config["data"]["name"]);
    // Images: the size from the training data's IDX header (28×28 for Fashion-MNIST).
    const Shape example = tools::example_shape(loaded.config);
    Generator gen(seed);
    auto source = tools::build_source(loaded.config);
    tools::SampleResult result = tools::generate_samples(*loaded.model, *solver, example, n, gen, device, 512, source.get());
    // In the data's own coordinates (2-D data is normalised for the model; the checkpoint says how).
    const Tensor samples = tools::samples_in_data_coordinates(result.samples, loaded.config, loaded.metadata);
    io::save_npy(npy, samples);
    Tensor reference;
    if (points) {
      Generator data_gen(seed + 1000);
      reference = tools::samples_in_data_coordinates(tools::build_toy_distribution(loaded.config)->sample(n, data_gen),
                                                     loaded.config, loaded.metadata);
    }
    tools::write_samples_png(out, samples, reference,
                             cat("step ", loaded.step, " · ", sample["solver"].get<std::string>(), " ", result.nfe,
                                 " NFE · ", loaded.ema_weights ? "EMA" : "raw", " weights"));
    std::printf("fmsample: %lld samples with %s (%lld NFE, %s weights) in %.2f s -> %s, %s\n", (long long)n,
                sample["solver"].get<std::string>().c_str(), (long long)result.nfe,
                loaded.ema_weights ? "EMA" : "raw", result.seconds, out.c_str(), npy.c_str());
    return 0;
  } catch (const fm::Error& e) {
    std::fprintf(stderr, "fmsample: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fmsample: unexpected error: %s\n", e.what());
    return 1;
  }
}
