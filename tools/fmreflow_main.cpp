// tools/fmreflow_main.cpp — `fmreflow`: make the (x0, x1) pairs a rectified flow is retrained on.
//
//   fmreflow --teacher CHECKPOINT --out pairs.safetensors [--count 100000] [--solver rk4] [--steps 20]
//            [--seed 0] [--chunk 4096] [--weights ema|raw] [--device auto|cpu|cuda]
//            [--kernels custom|library] [--quiet]
//
// Draws x0 ~ N(0, I) (pair i's from the Philox place (seed, PairSource, 0, i)), carries each through
// the teacher's flow with the solver, and writes the pairs file of flow/reflow_pairs.h. Killed part-way,
// the same command continues where it stopped. Then train the student on the pairs with fmtrain:
// data.name = "pairs", data.pairs = the file, train.init_from = the teacher (configs/*reflow*.json).
#include <cstdio>
#include <filesystem>
#include <string>

#include "core/io/atomic_file.h"
#include "core/kernel_choice.h"
#include "flow/model_fn.h"
#include "flow/reflow_pairs.h"
#include "flow/step_noise.h"
#include "tools/checkpoint_model.h"
#include "tools/cli_args.h"
#include "tools/progress.h"
#include "tools/run_setup.h"
#include "tools/tool_flags.h"

namespace {
const char* kUsage =
    "usage: fmreflow --teacher CHECKPOINT --out pairs.safetensors [--count 100000] [--solver rk4]\n"
    "                [--steps 20] [--seed 0] [--chunk 4096] [--weights ema|raw]\n"
    "                [--device auto|cpu|cuda] [--kernels custom|library] [--quiet]\n"
    "  x0 ~ N(0, I); x1 = the teacher's ODE solve of x0 (rk4 x 20 steps by default, seed 003's recipe).\n"
    "  Rerun the same command after an interruption: finished chunks are kept.\n";

// FNV-1a over the teacher checkpoint's bytes: pairs made from another teacher are not reused.
std::string fingerprint(const std::string& path) {
  const std::string bytes = fm::io::read_file_bytes(path);
  std::uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : bytes) hash = (hash ^ c) * 1099511628211ull;
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(hash));
  return text;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace fm;
  try {
    tools::CliArgs args(argc, argv, tools::fmreflow_flags().value_flags, tools::fmreflow_flags().switch_flags);
    if (args.has("--help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    FM_CHECK(args.positional().empty(), ConfigError, "unexpected argument \"", args.positional()[0],
             "\" (fmreflow takes only --flags)");
    const std::string teacher_path = args.required("--teacher"), out = args.required("--out");
    const std::filesystem::path folder = std::filesystem::path(out).parent_path();
    FM_CHECK(folder.empty() || std::filesystem::is_directory(folder), IOError, "--out: folder ", folder.string(),
             " does not exist");
    Device device = tools::pick_device(args.get("--device", "auto"));
    if (args.has("--kernels")) set_kernel_impl(parse_kernel_impl(args.required("--kernels")));
    tools::CheckpointModel teacher = tools::load_checkpoint_model(teacher_path, device, args.get("--weights", "ema"));

    flow::PairsRecipe recipe;
    recipe.solver = args.get("--solver", "rk4");
    recipe.steps = args.has("--steps") ? int(args.integer("--steps", 1, 100000)) : 20;
    recipe.count = args.has("--count") ? args.integer("--count", 1, 1LL << 31) : 100000;
    recipe.seed = args.has("--seed") ? std::uint64_t(args.integer("--seed", 0, 1LL << 53)) : 0;
    recipe.chunk = args.has("--chunk") ? args.integer("--chunk", 1, 1 << 24) : 4096;
    FM_CHECK(recipe.solver != "dopri5", ConfigError, "--solver: dopri5 picks its own steps; use a fixed-step solver "
             "(euler, midpoint, heun, rk4)");
    recipe.provenance["teacher.fingerprint"] = fingerprint(teacher_path);
    recipe.provenance["teacher.step"] = std::to_string(teacher.step);
    recipe.provenance["teacher.weights"] = teacher.ema_weights ? "ema" : "raw";
    recipe.provenance["teacher.config"] = teacher.config.dump();

    Shape example;
    if (tools::is_2d_dataset(teacher.config["data"]["name"])) {
      example = {2};
    } else {
      example = tools::build_training_data(teacher.config)->example_shape();
    }
    flow::SourceBatch source = [&](std::int64_t first, std::int64_t count) {
      Shape shape{count};
      shape.insert(shape.end(), example.begin(), example.end());
      const flow::StepNoise noise{recipe.seed, 0, first};
      return philox_normal(shape, noise.key(flow::NoiseStream::PairSource), 0, first, DType::Float32, device);
    };
    nn::VelocityModel& model = *teacher.model;
    model.eval();
    flow::VelocityField field = flow::velocity_field_from_model(
        [&model](const Tensor& x, const Tensor& t) { return model.forward(x, t); });
    tools::ProgressLine progress(recipe.count, 0, "pairs", args.has("--quiet"));
    flow::generate_pairs(field, source, recipe, out, [&](std::int64_t done, std::int64_t) { progress.update(done, ""); });
    progress.finish(cat("fmreflow: ", recipe.count, " pairs (", recipe.solver, " x ", recipe.steps, " steps) -> ", out));
    return 0;
  } catch (const fm::Error& e) {
    std::fprintf(stderr, "fmreflow: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fmreflow: unexpected error: %s\n", e.what());
    return 1;
  }
}
