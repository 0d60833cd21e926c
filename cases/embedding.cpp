// cases/embedding.cpp — the embedding case table (cases/embedding.h).
#include "cases/embedding.h"

#include "kernels/embedding.h"

namespace fm::cases {

const std::vector<EmbeddingCase>& embedding_cases() {
  static const std::vector<EmbeddingCase> cases = {
      {1, 1, 1, kTest, "one index into a one-element table"},
      {256, 11, 256, kTest, "a batch of class labels (10 classes + the unconditional row), width 256"},
      {7, 20, 33, kTest, "fewer indices than rows: untouched rows get zero gradient; odd width"},
      {1000, 3, 5, kTest, "many indices per row: long scatter-add sums"},
      {0, 4, 8, kTest, "no indices: empty output, all-zero gradient"},
      {9, 4, 3, kTest | kGradcheck, "gradcheck"},
  };
  return cases;
}

std::string shape_name(const EmbeddingCase& c) {
  return std::to_string(c.count) + " of " + std::to_string(c.rows) + "x" + std::to_string(c.dim);
}

std::vector<std::int32_t> embedding_indices(const EmbeddingCase& c) {
  std::vector<std::int32_t> index(std::size_t(c.count));
  for (int i = 0; i < c.count; ++i) index[std::size_t(i)] = std::int32_t((i * 7 + 3) % c.rows);
  return index;
}

double embedding_forward_bytes(const EmbeddingCase& c) { return 8.0 * double(c.count) * c.dim; }

Tolerance embedding_forward_tolerance() { return {0.0, 0.0}; }
Tolerance embedding_backward_tolerance(const EmbeddingCase& c) { return float_sum_tolerance(c.count); }

namespace {
void cpu_forward(const float* table, const std::int32_t* index, float* out, int count, int rows, int dim) {
  kernels::embedding_forward_cpu<float>(table, index, out, count, rows, dim);
}
void cpu_backward(const float* dout, const std::int32_t* index, float* dtable, int count, int rows, int dim) {
  kernels::embedding_backward_cpu<float>(dout, index, dtable, count, rows, dim);
}
#ifdef FM_WITH_CUDA
void cuda_forward(const float* table, const std::int32_t* index, float* out, int count, int rows, int dim) {
  kernels::embedding_forward_cuda(table, index, out, count, rows, dim);  // (no index offset)
}
#endif
}  // namespace

const std::vector<EmbeddingImpl>& embedding_implementations() {
  static const std::vector<EmbeddingImpl> list = [] {
    std::vector<EmbeddingImpl> impls = {{"cpu float", ImplKind::CpuReference, cpu_forward, cpu_backward}};
#ifdef FM_WITH_CUDA
    impls.push_back({"cuda", ImplKind::CudaCustom, cuda_forward, kernels::embedding_backward_cuda});
#endif
    return impls;
  }();
  return list;
}

OpListing embedding_listing() {
  OpListing listing;
  listing.op = "embedding";
  for (const EmbeddingCase& c : embedding_cases())
    listing.cases.push_back({shape_name(c), c.where, c.uses, 0.0, embedding_forward_bytes(c)});
  for (const EmbeddingImpl& impl : embedding_implementations())
    listing.implementations.push_back({impl.name, impl.kind, "fwd, bwd"});
  listing.tolerances = {
      "reference: embedding_{forward,backward}_cpu<double> on the same float inputs",
      "out: exact (a copy)",
      "dtable: float_sum_tolerance(count) (a sum of up to count terms in the reference's order)",
  };
  return listing;
}

}  // namespace fm::cases
