// tools/fmreflow_main.cpp — `fmreflow`: make the (x0, x1) pairs a rectified flow is retrained on.
//
//   fmreflow --teacher CHECKPOINT --out pairs.safetensors [--count 100000] [--solver rk4] [--steps 20]
//            [--seed 0] [--chunk 4096] [--weights auto|ema|raw] [--device auto|cpu|cuda]
//            [--kernels custom|library] [--quiet]
//
// Draws x0 from the teacher's source (N(0, I) unless its data.source says otherwise), carries each
// through the teacher's flow with the solver, and writes the pairs file of flow/reflow_pairs.h
// (tools/reflow_run.h does the work). Killed part-way, the same command continues where it stopped.
// Then train the student on the pairs with fmtrain: data.pairs = the file, train.init_from = the
// teacher (configs/moons_reflow.json; tools/straight_pipeline.sh runs the whole pipeline).
#include <cstdio>
#include <string>

#include "core/distributed.h"
#include "core/kernel_choice.h"
#include "tools/cli_args.h"
#include "tools/progress.h"
#include "tools/ranks.h"
#include "tools/reflow_run.h"
#include "tools/run_setup.h"
#include "tools/tool_flags.h"

namespace {
const char* kUsage =
    "usage: fmreflow --teacher CHECKPOINT --out pairs.safetensors [--count 100000] [--solver rk4]\n"
    "                [--steps 20] [--seed 0] [--chunk 4096] [--weights auto|ema|raw]\n"
    "                [--device auto|cpu|cuda] [--kernels custom|library] [--quiet]\n"
    "  x0 ~ the teacher's source (N(0, I) by default); x1 = the teacher's ODE solve of x0 (rk4 x 20 steps by\n"
    "  default, seed 003's recipe). Rerun the same command after an interruption: finished chunks are kept.\n";
}  // namespace

int main(int argc, char** argv) {
  using namespace fm;
  // Not sharded over ranks: under mpirun with several ranks it refuses in one line (tools/ranks.h)
  // rather than run N copies that write the same pairs file.
  return tools::run_ranked("fmreflow", &argc, &argv, [&] {
    FM_CHECK(!dist::active(), ConfigError, "not sharded over ranks (", dist::world_size(),
             " under mpirun); expected one process: run fmreflow without mpirun");
    tools::CliArgs args(argc, argv, tools::fmreflow_flags().value_flags, tools::fmreflow_flags().switch_flags);
    if (args.has("--help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    FM_CHECK(args.positional().empty(), ConfigError, "unexpected argument \"", args.positional()[0],
             "\" (fmreflow takes only --flags)");
    tools::ReflowPairsRequest request;
    request.teacher = args.required("--teacher");
    request.out = args.required("--out");
    request.solver = args.get("--solver", request.solver);
    if (args.has("--steps")) request.steps = int(args.integer("--steps", 1, 100000));
    if (args.has("--count")) request.count = args.integer("--count", 1, 1LL << 31);
    if (args.has("--seed")) request.seed = args.seed();
    if (args.has("--chunk")) request.chunk = args.integer("--chunk", 1, 1 << 24);
    request.weights = args.get("--weights", request.weights);
    request.device = tools::pick_device(args.get("--device", "auto"));
    if (args.has("--kernels")) set_kernel_impl(parse_kernel_impl(args.required("--kernels")));
    tools::ProgressLine progress(request.count, 0, "pairs", args.has("--quiet"));
    tools::make_reflow_pairs(request, [&](std::int64_t done, std::int64_t) { progress.update(done, ""); });
    progress.finish(cat("fmreflow: ", request.count, " pairs (", request.solver, " x ", request.steps, " steps) -> ",
                        request.out));
    return 0;
  });
}
