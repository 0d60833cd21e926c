// flow/reflow_pairs.cpp — generating, resuming and loading reflow pairs files (see reflow_pairs.h).
#include "flow/reflow_pairs.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/autograd.h"
#include "core/error.h"
#include "core/io/tensor_io.h"
#include "core/ops.h"

namespace fm::flow {
namespace {

// The metadata keys a recipe is compared by (the provenance too: pairs from another teacher are not
// the pairs asked for).
bool same_recipe(const std::map<std::string, std::string>& stored, const std::map<std::string, std::string>& wanted,
                 std::string& difference) {
  for (const auto& [key, value] : wanted) {
    auto it = stored.find(key);
    if (it == stored.end() || it->second != value) {
      difference = key + " is " + (it == stored.end() ? std::string("missing") : "\"" + it->second + "\"") +
                   ", expected \"" + value + "\"";
      return false;
    }
  }
  return true;
}

// t is a float32 CPU tensor as load_safetensors returns it (scanned in place: a pairs file can be
// a gigabyte).
void check_finite(const Tensor& t, const std::string& what) {
  const Tensor c = t.contiguous();
  const float* values = c.data<float>();
  for (std::int64_t i = 0; i < c.numel(); ++i)
    if (!std::isfinite(values[i])) throw FormatError(what + " has a non-finite value");
}

}  // namespace

std::map<std::string, std::string> PairsRecipe::metadata() const {
  std::map<std::string, std::string> m = provenance;
  m["pairs.solver"] = solver;
  m["pairs.steps"] = std::to_string(steps);
  m["pairs.count"] = std::to_string(count);
  m["pairs.seed"] = std::to_string(seed);
  m["pairs.chunk"] = std::to_string(chunk);
  return m;
}

std::string pairs_part_path(const std::string& path, std::int64_t chunk_index) {
  char suffix[48];
  std::snprintf(suffix, sizeof(suffix), ".part-%06lld.safetensors", static_cast<long long>(chunk_index));
  return path + suffix;
}

void generate_pairs(const VelocityField& teacher, const SourceBatch& source, const PairsRecipe& recipe,
                    const std::string& path, const PairsProgress& progress) {
  FM_CHECK(recipe.count > 0, ValueError, "reflow pairs: count must be positive, got ", recipe.count);
  FM_CHECK(recipe.chunk > 0, ValueError, "reflow pairs: chunk must be positive, got ", recipe.chunk);
  const std::map<std::string, std::string> wanted = recipe.metadata();
  std::string difference;
  if (std::filesystem::exists(path)) {
    ReflowPairs existing;
    try {
      existing = load_pairs(path);
    } catch (const FormatError& e) {
      throw FormatError(cat("a file that is not a pairs file is in the way (", e.what(), "); remove it or choose another path"));
    }
    FM_CHECK(same_recipe(existing.metadata, wanted, difference), ValueError, path,
             ": a pairs file made with another recipe is in the way (", difference, "); remove it or choose another path");
    // Parts left by a run killed between writing the joined file and removing them.
    for (std::int64_t k = 0; k < (recipe.count + recipe.chunk - 1) / recipe.chunk; ++k)
      std::filesystem::remove(pairs_part_path(path, k));
    if (progress) progress(recipe.count, recipe.count);
    return;
  }
  SolverOptions options;
  options.steps = recipe.steps;
  std::unique_ptr<OdeSolver> solver = make_solver(recipe.solver, options);
  NoGradGuard no_grad;
  const std::int64_t chunks = (recipe.count + recipe.chunk - 1) / recipe.chunk;
  for (std::int64_t k = 0; k < chunks; ++k) {
    const std::string part = pairs_part_path(path, k);
    const std::int64_t first = k * recipe.chunk, n = std::min(recipe.chunk, recipe.count - first);
    if (std::filesystem::exists(part)) {  // done by an earlier, interrupted run: check and keep it
      io::LoadedTensors loaded = io::load_safetensors(part);
      FM_CHECK(same_recipe(loaded.metadata, wanted, difference), ValueError, part,
               ": this part was made with another recipe (", difference, "); remove the part files to start over");
      if (progress) progress(first + n, recipe.count);
      continue;
    }
    Tensor x0 = source(first, n);
    FM_CHECK(x0.defined() && x0.dim() >= 1 && x0.size(0) == n, ShapeError, "reflow pairs: the source gave ",
             x0.defined() ? shape_str(x0.shape()) : "nothing", " for ", n, " pairs");
    Tensor x1 = solver->solve(teacher, x0).x;
    io::save_safetensors(part, {{"x0", x0.to(Device::CPU)}, {"x1", x1.to(Device::CPU)}}, wanted);
    if (progress) progress(first + n, recipe.count);
  }
  // Join the parts in memory (10k Fashion-MNIST pairs are 63 MB, 200k 1.25 GB) and remove them.
  std::vector<Tensor> x0_parts, x1_parts;
  for (std::int64_t k = 0; k < chunks; ++k) {
    io::LoadedTensors loaded = io::load_safetensors(pairs_part_path(path, k));
    x0_parts.push_back(loaded.tensors.at("x0"));
    x1_parts.push_back(loaded.tensors.at("x1"));
  }
  io::save_safetensors(path, {{"x0", concat(x0_parts, 0)}, {"x1", concat(x1_parts, 0)}}, wanted);
  for (std::int64_t k = 0; k < chunks; ++k) std::filesystem::remove(pairs_part_path(path, k));
}

ReflowPairs load_pairs(const std::string& path) {
  // Read as a checkpoint would be (its 64-bit words too), so that one given here by mistake is named
  // for what it is rather than refused for a word's dtype.
  io::LoadedCheckpoint loaded = io::load_safetensors_with_words(path);
  FM_CHECK(!loaded.metadata.count("config"), FormatError, path,
           ": a training checkpoint, not a pairs file (make pairs from a teacher with fmreflow --teacher ", path, ")");
  FM_CHECK(loaded.words.empty(), FormatError, path, ": not a pairs file: it holds 64-bit words (\"",
           loaded.words.begin()->first, "\"), expected only float32 x0 and x1");
  auto need = [&](const char* name) -> Tensor {
    auto it = loaded.tensors.find(name);
    if (it == loaded.tensors.end()) throw FormatError(cat(path, ": not a pairs file: no tensor '", name, "'"));
    if (it->second.dtype() != DType::Float32)
      throw FormatError(cat(path, ": '", name, "' is ", dtype_name(it->second.dtype()), ", expected float32"));
    return it->second;
  };
  ReflowPairs pairs{need("x0"), need("x1"), loaded.metadata};
  if (pairs.x0.shape() != pairs.x1.shape() || pairs.x0.dim() < 2)
    throw FormatError(cat(path, ": x0 ", shape_str(pairs.x0.shape()), " and x1 ", shape_str(pairs.x1.shape()),
                          " must have the same shape [count, ...]"));
  auto count = loaded.metadata.find("pairs.count");
  if (count == loaded.metadata.end() || count->second != std::to_string(pairs.x0.size(0)))
    throw FormatError(cat(path, ": holds ", pairs.x0.size(0), " pairs but its metadata says pairs.count = ",
                          count == loaded.metadata.end() ? std::string("(missing)") : count->second));
  check_finite(pairs.x0, path + ": x0");
  check_finite(pairs.x1, path + ": x1");
  return pairs;
}

}  // namespace fm::flow
