// flow/reflow_pairs.h — the (x0, x1) pairs a rectified flow is retrained on ("reflow", Liu et al. 2023):
// x0 from the source, x1 where the teacher flow carries it (an ODE solve, RK4 × 20 steps by default as
// in seed 003). Training a student on these pairs instead of independent (x0, x1) gives it a
// coupling whose straight interpolations barely cross, so its own flow is straighter.
//
// The pairs file is safetensors: "x0" and "x1", float32 [count, ...], and the recipe in the metadata
// (solver, steps, seed, count, plus whatever provenance the caller adds, e.g. the teacher checkpoint's
// checksum). Generation runs in chunks, each written atomically to its own part file next to the
// target (`<path>.part-<k>.safetensors`); an interrupted generation picks up at the first missing part,
// and the parts are joined into `<path>` (atomically) and removed at the end. Pair i's x0 depends only on
// (seed, i), so a resumed generation produces exactly the pairs an uninterrupted one would.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "core/tensor.h"
#include "flow/solver.h"

namespace fm::flow {

struct PairsRecipe {
  std::string solver = "rk4";
  int steps = 20;
  std::int64_t count = 0;
  std::uint64_t seed = 0;
  std::int64_t chunk = 4096;                    // pairs per part file
  std::map<std::string, std::string> provenance;  // stored in the metadata as given (teacher, ...)
  std::map<std::string, std::string> metadata() const;
};

// x0 for pairs [first, first + count): [count, ...] on the device the teacher runs on.
using SourceBatch = std::function<Tensor(std::int64_t first, std::int64_t count)>;
// Called after each chunk with the pairs done so far and the total.
using PairsProgress = std::function<void(std::int64_t done, std::int64_t total)>;

// Makes (or completes) the pairs file at `path`. An existing complete `path` is checked against the
// recipe and kept (ValueError if it was made with another recipe).
void generate_pairs(const VelocityField& teacher, const SourceBatch& source, const PairsRecipe& recipe,
                    const std::string& path, const PairsProgress& progress = {});

struct ReflowPairs {
  Tensor x0, x1;  // [count, ...] float32, CPU
  std::map<std::string, std::string> metadata;
};
// Reads and checks a pairs file: both tensors present, float32, the same shape, as many pairs as
// the metadata says, every value finite. FormatError naming the file and the problem otherwise.
ReflowPairs load_pairs(const std::string& path);

// The part file of chunk k of the pairs file at `path`.
std::string pairs_part_path(const std::string& path, std::int64_t chunk_index);

}  // namespace fm::flow
