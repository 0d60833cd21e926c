// cases/bias_silu.cpp — the bias + SiLU case table (cases/bias_silu.h): the shapes, the tolerances
// and the implementations as kernels/ entry points.
#include "cases/bias_silu.h"

#include "cases/silu.h"
#include "kernels/activation.h"

namespace fm::cases {

namespace fk = fm::kernels;

const std::vector<BiasSiluCase>& bias_silu_cases() {
  static const std::vector<BiasSiluCase> cases = [] {
    // Each shape aligned and shifted one float off 16-byte alignment.
    const BiasSiluCase shapes[] = {
        // NCHW: the U-Net's 14×14 and 28×28 maps at a small batch, odd sizes, many small maps
        {4, 64, 196, kTest, "NCHW: U-Net 14x14 map"},
        {2, 32, 784, kTest, "NCHW: U-Net 28x28 map"},
        {3, 5, 7, kTest, "NCHW: odd sizes"},
        {128, 64, 16, kTest, "NCHW: many small maps"},
        // one element; [rows, C] matrices (inner = 1): tiny, odd, tall, wide
        {1, 1, 1, kTest, "one element"},
        {2, 3, 1, kTest, "[rows, C]: tiny"},
        {33, 128, 1, kTest, "[rows, C]: odd rows"},
        {1000, 12, 1, kTest, "[rows, C]: tall, few channels"},
        {7, 5, 1, kTest, "[rows, C]: odd sizes"},
        {256, 512, 1, kTest, "[rows, C]: wide"},
    };
    std::vector<BiasSiluCase> list;
    for (const BiasSiluCase& s : shapes)
      for (int misalign : {0, 1}) {
        BiasSiluCase c = s;
        c.misalign = misalign;
        list.push_back(c);
      }
    // The float64 gradcheck of the CPU reference (tiny), in both layouts.
    list.push_back({2, 3, 4, kTest | kGradcheck, "gradcheck: NCHW"});
    list.push_back({5, 3, 1, kTest | kGradcheck, "gradcheck: [rows, C]"});
    list.push_back({1, 1, 1, kTest | kGradcheck, "gradcheck: one element"});
    return list;
  }();
  return cases;
}

std::string shape_name(const BiasSiluCase& c) {
  std::string name = "outer=";
  name += std::to_string(c.outer) + " C=" + std::to_string(c.C) + " inner=" + std::to_string(c.inner);
  return name;
}

Tolerance bias_silu_elementwise_tolerance(const std::vector<double>& reference) {
  return scaled_tolerance(reference, kSiluRel, kSiluRel);
}
Tolerance bias_silu_dbias_tolerance(const std::vector<double>& reference) {
  return scaled_tolerance(reference, kBiasSiluReductionRel, kBiasSiluReductionRel);
}

const std::vector<BiasSiluImpl>& bias_silu_implementations() {
  static const std::vector<BiasSiluImpl> list = [] {
    std::vector<BiasSiluImpl> impls = {
        {"cpu float", ImplKind::CpuReference, fk::bias_silu_forward_cpu<float>, fk::bias_silu_backward_cpu<float>},
    };
#ifdef FM_WITH_CUDA
    // dbias from per-block partial sums, then a fixed-order sum: no atomics, bitwise reproducible.
    impls.push_back({"cuda", ImplKind::CudaCustom, fk::bias_silu_forward_cuda, fk::bias_silu_backward_cuda});
#endif
    return impls;
  }();
  return list;
}

OpListing bias_silu_listing() {
  OpListing listing;
  listing.op = "bias_silu";
  for (const BiasSiluCase& c : bias_silu_cases()) {
    std::string shape = shape_name(c);
    if (c.misalign) shape += " misaligned";
    // Fewest bytes of the forward: read x, write y (the bias is negligible).
    listing.cases.push_back({shape, c.where, c.uses, 0.0, 8.0 * double(c.elements())});
  }
  for (const BiasSiluImpl& impl : bias_silu_implementations())
    listing.implementations.push_back({impl.name, impl.kind, "fwd, bwd (dx, dbias)"});
  listing.tolerances = {
      "reference: bias_silu_{forward,backward}_cpu<double> on the same float inputs",
      "y, dx: scaled_tolerance(ref, 2e-6, 2e-6) (SiLU's rule, kSiluRel)",
      "dbias: scaled_tolerance(ref, 1e-4, 1e-4) (float reduction over outer*inner terms, >10x headroom)",
      "not in the kernel lab: no case is timed",
  };
  return listing;
}

}  // namespace fm::cases
