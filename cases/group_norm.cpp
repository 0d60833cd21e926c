// cases/group_norm.cpp — the GroupNorm and GroupNorm + SiLU case table (cases/group_norm.h): the
// shapes, the tolerances, the bytes, and the implementations as kernels/ entry points.
#include "cases/group_norm.h"

#include <algorithm>
#include <cmath>

#include "kernels/activation.h"
#include "kernels/group_norm.h"

namespace fm::cases {

namespace fk = fm::kernels;

const std::vector<GroupNormCase>& group_norm_cases() {
  static const std::vector<GroupNormCase> cases = {
      // ---- the lab's default run: the seed U-Net at batch 256 (8 groups everywhere), and one large
      // tensor for bandwidth. x in [-1, 3]: a mean away from zero (Welford vs cancellation).
      {256, 32, 28, 28, 8, kBench, "downs.0 conv_first", -1.f, 3.f},
      {256, 64, 28, 28, 8, kBench, "downs.0 conv_second, ups.1 conv_first", -1.f, 3.f},
      {256, 64, 14, 14, 8, kBench, "downs.1 conv_first", -1.f, 3.f},
      {256, 128, 14, 14, 8, kBench, "downs.1 conv_second + attention, ups.0 conv_first", -1.f, 3.f},
      {256, 128, 7, 7, 8, kBench, "mids.0 resnet_convs.0", -1.f, 3.f},
      {64, 256, 64, 64, 8, kBench, "large: 256 MiB per tensor, bandwidth", -1.f, 3.f},
      // ---- the lab's --shapes small
      {8, 32, 28, 28, 8, kBenchSmall, "small", -1.f, 3.f},
      {8, 128, 7, 7, 8, kBenchSmall, "small", -1.f, 3.f},
      {4, 64, 64, 64, 8, kBenchSmall, "small", -1.f, 3.f},
      // ---- the tests: the U-Net's shapes at a small batch (28×28, 14×14, 7×7 feature maps, 8 groups)
      {2, 32, 28, 28, 8, kTest, "U-Net 28x28 (downs.0 conv_first) at batch 2"},
      {4, 64, 14, 14, 8, kTest, "U-Net 14x14 (downs.1 conv_first) at batch 4"},
      {3, 128, 7, 7, 8, kTest, "U-Net 7x7 (mids.0) at batch 3"},
      {32, 64, 14, 14, 8, kTest, "N·G = 256 groups: more than the SMs"},
      {2, 64, 28, 28, 8, kTest, "the largest U-Net group: v3's backward needs 50 KB (> 48 KB)"},
      {2, 32, 28, 28, 8, kTest, "mean far from zero (x in [2, 4]): Welford must not lose the variance to cancellation",
       2.f, 4.f},
      // awkward: one group, one channel per group, HW = 1, odd sizes, misaligned (scalar path)
      {2, 32, 28, 28, 1, kTest, "one group"},
      {2, 8, 1, 5, 8, kTest, "one channel per group, odd HW"},
      {3, 16, 1, 1, 4, kTest, "HW = 1"},
      {1, 6, 1, 13, 3, kTest, "odd sizes"},
      {5, 12, 1, 7, 4, kTest, "odd sizes"},
      {4, 64, 14, 14, 8, kTest, "misaligned by one float: the scalar path", -1.f, 1.f, 1},
      // few large groups: the split-across-blocks path (vectorised, scalar, chunk ≠ channel)
      {1, 64, 64, 64, 1, kTest, "one large group: split across blocks, vectorised"},
      {2, 32, 64, 64, 8, kTest, "few large groups: split across blocks"},
      {1, 3, 1, 6001, 1, kTest, "one large group of odd size: split across blocks, scalar"},
      {1, 40, 1, 1000, 2, kTest, "split across blocks: the chunk is not a channel"},
      {1, 64, 64, 64, 1, kTest, "one large group, misaligned: split across blocks, scalar", -1.f, 1.f, 1},
      // ---- the float64 gradcheck of the CPU reference (tiny: two forwards per input element); x in
      // [-2, 2]. Also tested: one sample, one channel, one element per channel.
      {2, 6, 1, 5, 3, kTest | kGradcheck, "gradcheck: two channels per group", -2.f, 2.f},
      {1, 4, 1, 3, 1, kTest | kGradcheck, "gradcheck: one group", -2.f, 2.f},
      {2, 3, 2, 2, 3, kTest | kGradcheck, "gradcheck: one channel per group", -2.f, 2.f},
      {1, 2, 1, 1, 1, kTest | kGradcheck, "gradcheck: HW = 1, one group", -2.f, 2.f},
  };
  return cases;
}

std::string shape_name(const GroupNormCase& c) {
  std::string name;
  for (int size : {c.N, c.C, c.H, c.W}) name.append(name.empty() ? "" : "x").append(std::to_string(size));
  return name.append(" G").append(std::to_string(c.G));
}

double group_norm_forward_bytes(const GroupNormCase& c) { return 8.0 * double(c.elements()); }
double group_norm_backward_bytes(const GroupNormCase& c) { return 12.0 * double(c.elements()); }

Tolerance group_norm_mean_tolerance(const GroupNormCase& c) {
  const double data_scale = std::max(std::fabs(double(c.x_low)), std::fabs(double(c.x_high)));
  return {1e-5 * data_scale, 0.0};
}
Tolerance group_norm_rstd_tolerance() { return {0.0, kGroupNormReductionRel}; }
Tolerance group_norm_output_tolerance(const std::vector<double>& reference) {
  return scaled_tolerance(reference, kGroupNormReductionRel, kGroupNormReductionRel);
}

Tolerance group_norm_bf16_output_tolerance(const std::vector<double>& reference) {
  constexpr double kBf16Rounding = 1.0 / 256;  // 2^-8: bfloat16's 8 significant bits
  return scaled_tolerance(reference, kGroupNormReductionRel + kBf16Rounding, kGroupNormReductionRel + kBf16Rounding);
}

bool group_norm_impl_runs(const GroupNormImpl& impl, const GroupNormCase& c, bool backward) {
  return !impl.caches_group || fk::group_norm_cache_bytes(c.group_size(), backward) <= fk::kGroupNormMaxCacheBytes;
}

// ---- the entries: kernels/ functions behind the common signatures ------------------------------------
namespace {

// CPU: the float entry points, i.e. the vectorised fast path the engine trains with (the reference loops
// run for double only; kernels/cpu/group_norm.cpp).
void cpu_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd, float*,
                 int N, int C, int HW, int G, float eps) {
  fk::group_norm_forward_cpu<float>(x, gamma, beta, y, mean, rstd, N, C, HW, G, eps);
}
void cpu_backward(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                  const float*, const float*, float*, float* dx, float* dgamma, float* dbeta, int N, int C, int HW,
                  int G) {
  fk::group_norm_backward_cpu<float>(dy, x, mean, rstd, gamma, dx, dgamma, dbeta, N, C, HW, G);
}
void cpu_silu_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                      float*, int N, int C, int HW, int G, float eps) {
  fk::group_norm_silu_forward_cpu<float>(x, gamma, beta, y, mean, rstd, N, C, HW, G, eps);
}
void cpu_silu_backward(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                       const float* beta, const float*, float*, float* dx, float* dgamma, float* dbeta, int N, int C,
                       int HW, int G) {
  fk::group_norm_silu_backward_cpu<float>(dy, x, mean, rstd, gamma, beta, dx, dgamma, dbeta, N, C, HW, G);
}

// The float64 references, GroupNorm's backward with the common argument list (it has no use for β).
void reference_backward(const double* dy, const double* x, const double* mean, const double* rstd,
                        const double* gamma, const double*, double* dx, double* dgamma, double* dbeta, int N, int C,
                        int HW, int G) {
  fk::group_norm_backward_cpu<double>(dy, x, mean, rstd, gamma, dx, dgamma, dbeta, N, C, HW, G);
}

#ifdef FM_WITH_CUDA
// v1 naive (kernels/cuda/group_norm_naive.cu): three passes per group, scalar loads; GroupNorm only.
void naive_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                   float*, int N, int C, int HW, int G, float eps) {
  fk::group_norm_forward_cuda_naive(x, gamma, beta, y, mean, rstd, N, C, HW, G, eps);
}
void naive_backward(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                    const float*, const float*, float*, float* dx, float* dgamma, float* dbeta, int N, int C,
                    int HW, int G) {
  fk::group_norm_backward_cuda_naive(dy, x, mean, rstd, gamma, dx, dgamma, dbeta, N, C, HW, G);
}

// v2 (Streaming), v3 (Cached) and Auto (the engine's choice) of kernels/cuda/group_norm.cu: one
// function per family, the family a template argument.
template <fk::GroupNormKernel kKernel>
void cuda_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd, float*,
                  int N, int C, int HW, int G, float eps) {
  fk::group_norm_forward_cuda(x, gamma, beta, y, mean, rstd, N, C, HW, G, eps, kKernel);
}
template <fk::GroupNormKernel kKernel>
void cuda_backward(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                   const float*, const float*, float*, float* dx, float* dgamma, float* dbeta, int N, int C, int HW,
                   int G) {
  fk::group_norm_backward_cuda(dy, x, mean, rstd, gamma, dx, dgamma, dbeta, N, C, HW, G, kKernel);
}
template <fk::GroupNormKernel kKernel>
void cuda_silu_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                       float*, int N, int C, int HW, int G, float eps) {
  fk::group_norm_silu_forward_cuda(x, gamma, beta, y, mean, rstd, N, C, HW, G, eps, kKernel);
}
template <fk::GroupNormKernel kKernel>
void cuda_silu_backward(const float* dy, const float* x, const float* mean, const float* rstd, const float* gamma,
                        const float* beta, const float*, float*, float* dx, float* dgamma, float* dbeta, int N,
                        int C, int HW, int G) {
  fk::group_norm_silu_backward_cuda(dy, x, mean, rstd, gamma, beta, dx, dgamma, dbeta, N, C, HW, G, kKernel);
}

// Unfused GroupNorm + SiLU: GroupNorm (Auto) writes z, v2 SiLU reads it back — one extra write and
// read of the tensor each way; the backward also reads the saved z.
void unfused_silu_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                          float* z, int N, int C, int HW, int G, float eps) {
  fk::group_norm_forward_cuda(x, gamma, beta, z, mean, rstd, N, C, HW, G, eps);
  fk::silu_forward_cuda(z, y, std::int64_t(N) * C * HW);
}
void unfused_silu_backward(const float* dy, const float* x, const float* mean, const float* rstd,
                           const float* gamma, const float*, const float* z, float* dz, float* dx, float* dgamma,
                           float* dbeta, int N, int C, int HW, int G) {
  // dz = dy·silu'(z), then the GroupNorm backward of dz: z is read back from memory.
  fk::silu_backward_cuda(z, dy, dz, std::int64_t(N) * C * HW);
  fk::group_norm_backward_cuda(dz, x, mean, rstd, gamma, dx, dgamma, dbeta, N, C, HW, G);
}
#endif  // FM_WITH_CUDA

std::vector<GroupNormImpl> plain_implementations() {
  std::vector<GroupNormImpl> list = {{"cpu float", ImplKind::CpuFast, cpu_forward, cpu_backward}};
#ifdef FM_WITH_CUDA
  using K = fk::GroupNormKernel;
  list.push_back({"v1 naive", ImplKind::CudaNaive, naive_forward, naive_backward, false, true});
  list.push_back({"v2", ImplKind::CudaCustom, cuda_forward<K::Streaming>, cuda_backward<K::Streaming>});
  list.push_back({"v3", ImplKind::CudaCustom, cuda_forward<K::Cached>, cuda_backward<K::Cached>, true});
  list.push_back({"auto", ImplKind::CudaCustom, cuda_forward<K::Auto>, cuda_backward<K::Auto>, false, false, false});
#endif
  return list;
}

std::vector<GroupNormImpl> silu_implementations() {
  std::vector<GroupNormImpl> list = {{"cpu float", ImplKind::CpuFast, cpu_silu_forward, cpu_silu_backward}};
#ifdef FM_WITH_CUDA
  using K = fk::GroupNormKernel;
  list.push_back({"unfused", ImplKind::CudaCustom, unfused_silu_forward, unfused_silu_backward, false, true});
  list.push_back({"fused v2", ImplKind::CudaCustom, cuda_silu_forward<K::Streaming>, cuda_silu_backward<K::Streaming>});
  list.push_back({"fused v3", ImplKind::CudaCustom, cuda_silu_forward<K::Cached>, cuda_silu_backward<K::Cached>, true});
  list.push_back({"fused auto", ImplKind::CudaCustom, cuda_silu_forward<K::Auto>, cuda_silu_backward<K::Auto>, false,
                  false, false});
#endif
  return list;
}

OpListing listing_of(const GroupNormOp& op) {
  OpListing listing;
  listing.op = op.name;
  for (const GroupNormCase& c : group_norm_cases()) {
    std::string shape = shape_name(c);
    if (c.misalign) shape += " misaligned";
    listing.cases.push_back({shape, c.where, c.uses, 0.0, group_norm_forward_bytes(c)});
  }
  const std::string passes = std::string(op.forward_pass) + ", " + op.backward_pass;
  for (const GroupNormImpl& impl : op.implementations) {
    std::string name = impl.name;
    if (impl.lab_baseline) name += " (x base)";
    if (!impl.benchmarked) name += " (engine)";  // runs v2 or v3: not a row of its own in the lab
    listing.implementations.push_back({name, impl.kind, passes});
  }
  listing.tolerances = {
      "reference: group_norm" + std::string(op.silu ? "_silu" : "") +
          "_{forward,backward}_cpu<double>; the backward gets the float mean and rstd of a forward",
      "mean: atol 1e-5 * max|x| (rounding at the data's scale, not the mean's own)",
      "rstd: rtol 1e-4 (kGroupNormReductionRel: float reductions err ~sqrt(n)*eps, >10x headroom)",
      "y, dx, dgamma, dbeta: scaled_tolerance(ref, 1e-4, 1e-4) (an indexing or formula bug is off by O(1))",
      "v3 only where group_norm_cache_bytes(M, bwd) <= 64 KiB; elsewhere it must throw ValueError",
  };
  return listing;
}

}  // namespace

const std::vector<GroupNormOp>& group_norm_ops() {
  static const std::vector<GroupNormOp> ops = {
      {"group_norm", false, "fwd", "bwd", fk::group_norm_forward_cpu<double>, reference_backward,
       plain_implementations()},
      {"group_norm_silu", true, "fwd+silu", "bwd+silu", fk::group_norm_silu_forward_cpu<double>,
       fk::group_norm_silu_backward_cpu<double>, silu_implementations()},
  };
  return ops;
}

OpListing group_norm_listing() { return listing_of(group_norm_ops()[0]); }
OpListing group_norm_silu_listing() { return listing_of(group_norm_ops()[1]); }

}  // namespace fm::cases
