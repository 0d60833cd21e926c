// tests/test_kernel_embedding.cpp — the lookup-table kernels (kernels/embedding.h), driven by the
// case table cases/embedding.h: every implementation × every kTest case, forward and backward on
// NaN-poisoned outputs, against the float64 reference; the float64 gradcheck of the reference
// backward on the kGradcheck cases. A new implementation is one entry in the table.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "cases/embedding.h"
#include "kernels/embedding.h"
#include "kernel_test_util.h"

namespace fc = fm::cases;
namespace fk = fm::kernels;
using namespace fm::test;

namespace {

// One case's inputs and its float64 reference results.
struct Problem {
  fc::EmbeddingCase c;
  std::vector<std::int32_t> index;
  std::vector<float> table, dout;
  std::vector<double> out_ref, dtable_ref;

  explicit Problem(const fc::EmbeddingCase& shape) : c(shape), index(fc::embedding_indices(shape)) {
    const std::size_t table_size = std::size_t(c.rows) * c.dim, out_size = std::size_t(c.count) * c.dim;
    table = random_floats(table_size, 11);
    dout = random_floats(out_size, 12);
    out_ref.resize(out_size);
    dtable_ref.resize(table_size);
    const auto table_d = to_double(table), dout_d = to_double(dout);
    fk::embedding_forward_cpu<double>(table_d.data(), index.data(), out_ref.data(), c.count, c.rows, c.dim);
    fk::embedding_backward_cpu<double>(dout_d.data(), index.data(), dtable_ref.data(), c.count, c.rows, c.dim);
  }
  void require_matches(const std::vector<float>& out, const std::vector<float>& dtable) const {
    require_matches_reference("out", out, out_ref, fc::embedding_forward_tolerance());
    require_matches_reference("dtable", dtable, dtable_ref, fc::embedding_backward_tolerance(c));
  }
};

// Runs check(impl, problem) for every implementation `wanted` accepts and every kTest case.
template <typename Wanted, typename Check>
void for_each_case_and_implementation(Wanted wanted, Check check) {
  for (const fc::EmbeddingCase& c : fc::embedding_cases()) {
    if (!(c.uses & fc::kTest)) continue;
    const Problem p(c);
    for (const fc::EmbeddingImpl& impl : fc::embedding_implementations()) {
      if (!wanted(impl)) continue;
      INFO(impl.name << ": " << fc::shape_name(c) << " (" << c.where << ")");
      check(impl, p);
    }
  }
}

}  // namespace

TEST_CASE("embedding_forward_cpu and embedding_backward_cpu by hand", "[embedding]") {
  // Table rows [1, 2], [3, 4], [5, 6]; indices 2, 0, 2.
  const std::vector<double> table = {1, 2, 3, 4, 5, 6}, dout = {1, 10, 100, 1000, 5, 50};
  const std::vector<std::int32_t> index = {2, 0, 2};
  std::vector<double> out(6), dtable(6, -1.0);
  fk::embedding_forward_cpu<double>(table.data(), index.data(), out.data(), 3, 3, 2);
  CHECK(out == std::vector<double>{5, 6, 1, 2, 5, 6});
  fk::embedding_backward_cpu<double>(dout.data(), index.data(), dtable.data(), 3, 3, 2);
  // Row 0 gets dout row 1; row 1 nothing (zeroed, not left at -1); row 2 dout rows 0 and 2 summed.
  CHECK(dtable == std::vector<double>{100, 1000, 0, 0, 6, 60});
}

TEST_CASE("gradcheck: embedding_backward_cpu", "[embedding][gradcheck]") {
  for (const fc::EmbeddingCase& c : fc::embedding_cases()) {
    if (!(c.uses & fc::kGradcheck)) continue;
    INFO(fc::shape_name(c));
    const auto index = fc::embedding_indices(c);
    std::vector<double> table = random_doubles(std::size_t(c.rows) * c.dim, 21);
    const std::vector<double> r = random_doubles(std::size_t(c.count) * c.dim, 22);
    std::vector<double> out(r.size()), dtable(table.size());
    fk::embedding_backward_cpu<double>(r.data(), index.data(), dtable.data(), c.count, c.rows, c.dim);
    require_gradient_matches("table", table, dtable, [&] {
      fk::embedding_forward_cpu<double>(table.data(), index.data(), out.data(), c.count, c.rows, c.dim);
      return weighted_sum(out, r);
    });
  }
}

TEST_CASE("embedding CPU implementations match the float64 reference", "[embedding]") {
  for_each_case_and_implementation(
      [](const fc::EmbeddingImpl& impl) { return !fc::impl_on_gpu(impl.kind); },
      [](const fc::EmbeddingImpl& impl, const Problem& p) {
        std::vector<float> out(p.out_ref.size()), dtable(p.dtable_ref.size());
        poison(out.data(), out.size());
        poison(dtable.data(), dtable.size());
        impl.forward(p.table.data(), p.index.data(), out.data(), p.c.count, p.c.rows, p.c.dim);
        impl.backward(p.dout.data(), p.index.data(), dtable.data(), p.c.count, p.c.rows, p.c.dim);
        p.require_matches(out, dtable);
      });
}

TEST_CASE("embedding CUDA implementations match the float64 reference", "[embedding][gpu]") {
  FM_REQUIRE_GPU();
  for_each_case_and_implementation(
      [](const fc::EmbeddingImpl& impl) { return fc::impl_on_gpu(impl.kind); },
      [](const fc::EmbeddingImpl& impl, const Problem& p) {
        // The indices go to the device as raw bytes, four per index.
        std::vector<float> index_bits(p.index.size());
        static_assert(sizeof(float) == sizeof(std::int32_t));
        if (!p.index.empty()) std::memcpy(index_bits.data(), p.index.data(), p.index.size() * sizeof(std::int32_t));
        const DeviceArray table(p.table), dout(p.dout), index(index_bits);
        const auto* index_ptr = reinterpret_cast<const std::int32_t*>(index.get());
        const DeviceArray out = DeviceArray::poisoned(p.out_ref.size()),
                          dtable = DeviceArray::poisoned(p.dtable_ref.size());
        impl.forward(table.get(), index_ptr, out.get(), p.c.count, p.c.rows, p.c.dim);
        impl.backward(dout.get(), index_ptr, dtable.get(), p.c.count, p.c.rows, p.c.dim);
        p.require_matches(out.to_host(), dtable.to_host());
      });
}
