// tools/reflow_run.cpp — a teacher checkpoint's flow turned into a reflow pairs file (see reflow_run.h).
#include "tools/reflow_run.h"

#include <cstdio>
#include <filesystem>

#include "core/io/atomic_file.h"
#include "flow/model_fn.h"
#include "flow/reflow_pairs.h"
#include "flow/source.h"
#include "tools/checkpoint_model.h"
#include "tools/output_files.h"
#include "tools/run_setup.h"

namespace fm::tools {
namespace {

// FNV-1a over the teacher checkpoint's bytes: pairs made from another teacher are not reused.
std::string fingerprint(const std::string& path) {
  const std::string bytes = io::read_file_bytes(path);
  std::uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : bytes) hash = (hash ^ c) * 1099511628211ull;
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

}  // namespace

void make_reflow_pairs(const ReflowPairsRequest& request,
                       const std::function<void(std::int64_t done, std::int64_t total)>& progress) {
  // An existing --out is a pairs file to go on with (read below); the teacher is never one.
  check_output_files({{"--out", request.out}}, {{"--teacher", request.teacher}});
  FM_CHECK(request.solver != "dopri5", ConfigError,
           "--solver: dopri5 picks its own steps; use a fixed-step solver (euler, midpoint, heun, rk4)");
  CheckpointModel teacher = load_checkpoint_model(request.teacher, request.device, request.weights);
  // Reflow pairs carry no labels (a student on them is unconditional): the teacher runs with its null class.
  if (teacher.model->num_classes() > 0)
    std::fprintf(stderr, "fmreflow: %s is class-conditional (%d classes); its pairs come from its null class "
                 "(unconditional)\n", request.teacher.c_str(), teacher.model->num_classes());

  flow::PairsRecipe recipe;
  recipe.solver = request.solver;
  recipe.steps = request.steps;
  recipe.count = request.count;
  recipe.seed = request.seed;
  recipe.chunk = request.chunk;
  recipe.provenance["teacher.fingerprint"] = fingerprint(request.teacher);
  recipe.provenance["teacher.step"] = std::to_string(teacher.step);
  recipe.provenance["teacher.weights"] = teacher.ema_weights ? "ema" : "raw";
  recipe.provenance["teacher.config"] = teacher.config.dump();

  const Shape example = example_shape(teacher.config);
  // The teacher's own source (data.source: N(0, I) or a 2-D data set), its training draws at
  // (pairs seed, step 0, pair index).
  std::shared_ptr<const flow::SourceDistribution> teacher_source = build_source(teacher.config);
  recipe.provenance["source"] = teacher_source->name();
  flow::SourceBatch source = [&](std::int64_t first, std::int64_t count) {
    Shape shape{count};
    shape.insert(shape.end(), example.begin(), example.end());
    return teacher_source->sample(shape, flow::StepNoise{recipe.seed, 0, first}, DType::Float32, request.device);
  };
  nn::VelocityModel& model = *teacher.model;
  model.eval();
  flow::VelocityField field = flow::velocity_field_from_model(
      [&model](const Tensor& x, const Tensor& t) { return model.forward(x, t); });
  flow::generate_pairs(field, source, recipe, request.out, progress);
}

}  // namespace fm::tools
