// cases/case_table.cpp — the tolerance rules and the listing printer shared by every op's table.
#include "cases/case_table.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace fm::cases {

const char* impl_kind_name(ImplKind kind) {
  switch (kind) {
    case ImplKind::CpuReference: return "cpu reference";
    case ImplKind::CpuFast: return "cpu fast";
    case ImplKind::CudaNaive: return "cuda naive";
    case ImplKind::CudaCustom: return "cuda custom";
    case ImplKind::Library: return "library";
  }
  return "?";
}

bool impl_on_gpu(ImplKind kind) {
  return kind == ImplKind::CudaNaive || kind == ImplKind::CudaCustom || kind == ImplKind::Library;
}

Tolerance float_sum_tolerance(long terms) { return {1e-6 + 4.0 * FLT_EPSILON * double(terms), 1e-5}; }

Tolerance scaled_tolerance(const std::vector<double>& reference, double scale_rel, double elem_rel) {
  double largest = 0;
  for (double r : reference) largest = std::max(largest, std::fabs(r));
  return {scale_rel * std::max(largest, 1.0), elem_rel};
}

std::string uses_string(unsigned uses) {
  std::string text;
  auto add = [&](const char* word) { text += text.empty() ? word : std::string(" ") + word; };
  if (uses & kTest) add("test");
  if (uses & kGradcheck) add("gradcheck");
  if (uses & kBench) add("bench");
  if (uses & kBenchSmall) add("small");
  return text;
}

void print_listing(std::FILE* out, const std::vector<OpListing>& listings, const std::string& only) {
  for (const OpListing& op : listings) {
    if (!only.empty() && op.op != only) continue;
    std::fprintf(out, "== %s: %zu cases, %zu implementations\n", op.op.c_str(), op.cases.size(),
                 op.implementations.size());
    std::fprintf(out, "  implementations:\n");
    for (const ListedImpl& impl : op.implementations)
      std::fprintf(out, "    %-26s %-14s %s\n", impl.name.c_str(), impl_kind_name(impl.kind), impl.passes.c_str());
    std::fprintf(out, "  tolerances (float result vs float64 reference):\n");
    for (const std::string& rule : op.tolerances) std::fprintf(out, "    %s\n", rule.c_str());
    std::fprintf(out, "  cases (used by: test = tests, gradcheck = float64 gradcheck, bench = fmbench default, small = fmbench --shapes small):\n");
    std::fprintf(out, "    %-26s %-36s %10s %10s  %s\n", "used by", "shape", "fwd GFLOP", "fwd MB", "where");
    for (const ListedCase& c : op.cases) {
      // Memory-bound ops count no FLOPs: a dash, not a misleading 0.000.
      char gflop[32] = "-";
      if (c.flops > 0) std::snprintf(gflop, sizeof gflop, "%.3f", c.flops / 1e9);
      std::fprintf(out, "    %-26s %-36s %10s %10.2f  %s\n", uses_string(c.uses).c_str(), c.shape.c_str(), gflop,
                   c.bytes / 1e6, c.where.c_str());
    }
    std::fprintf(out, "\n");
  }
}

}  // namespace fm::cases
