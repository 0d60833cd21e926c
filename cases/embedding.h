// cases/embedding.h — the case table of the lookup table, out[i, :] = table[index[i], :], and its
// scatter-add backward (formulas: kernels/embedding.h): the shapes, the tolerance, the bytes and
// the implementations.
//
// Read by tests/test_kernel_embedding.cpp (every implementation × every kTest case, forward and
// backward; the float64 gradcheck on the kGradcheck cases); `fmbench --list embedding` prints it.
// Not timed by the lab: a conditional model looks up one row per sample, a negligible cost next to
// a convolution, so the table has no kBench cases (add some, and a bench/bench_embedding.cu, if that
// changes).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cases/case_table.h"

namespace fm::cases {

struct EmbeddingCase {
  int count, rows, dim;  // count indices into a [rows, dim] table
  unsigned uses;         // CaseUse bits
  const char* where;     // what the shape exercises
};
const std::vector<EmbeddingCase>& embedding_cases();
std::string shape_name(const EmbeddingCase& c);  // "256 of 11x256"
// The case's indices: deterministic, every row hit several times when count > rows (so the
// backward really adds), some rows never hit when count < rows (so it must write zeros).
std::vector<std::int32_t> embedding_indices(const EmbeddingCase& c);

// Memory-bound copies: forward reads and writes count·dim floats; backward reads count·dim and
// writes rows·dim. No FLOPs counted.
double embedding_forward_bytes(const EmbeddingCase& c);

// Forward: a copy, exact. Backward: sums of at most count terms in the same order as the float64
// reference, so the only difference is float rounding of each partial sum:
// float_sum_tolerance(count).
Tolerance embedding_forward_tolerance();
Tolerance embedding_backward_tolerance(const EmbeddingCase& c);

// Host pointers (index too) for CPU entries, device pointers for the GPU ones.
using EmbeddingForwardFn = void (*)(const float* table, const std::int32_t* index, float* out, int count,
                                    int rows, int dim);
using EmbeddingBackwardFn = void (*)(const float* dout, const std::int32_t* index, float* dtable, int count,
                                     int rows, int dim);
struct EmbeddingImpl {
  const char* name;
  ImplKind kind;
  EmbeddingForwardFn forward;
  EmbeddingBackwardFn backward;
};
const std::vector<EmbeddingImpl>& embedding_implementations();

OpListing embedding_listing();  // fmbench --list embedding

}  // namespace fm::cases
