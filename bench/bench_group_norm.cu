// bench/bench_group_norm.cu — GroupNorm (Wu & He 2018) and the fused GroupNorm + SiLU that starts
// every U-Net residual branch, forward and backward (formulas: kernels/group_norm.h).
//   y = γ[c]·(x − μ[n,g])·rstd[n,g] + β[c]        (+ silu for the fused op)
//   dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)),  dx̂ = γ·dz;  dγ = Σ dz·x̂;  dβ = Σ dz
//
// Run:  fmbench group_norm [--shapes small] [--repeats N] [--csv FILE]
//
// Versions:
//   v1 naive:  (this file) forward: one block per (n, g), three passes over the group (mean, then
//              variance around it, then normalise), scalar loads. Backward: one block per (n, g)
//              for dx (two group sums, then dx) and one block per channel for dγ, dβ (walks every
//              sample and pixel of the channel) — two launches, x and dy read twice.
//   v2:        kernels/cuda/group_norm.cu, GroupNormKernel::Streaming: one-pass Welford statistics
//              and normalisation in the same launch, float4 accesses, the second read of the group
//              served by L2, the group split across blocks when groups are few and large; the
//              backward reduces dγ, dβ through per-(n, c) partial sums in a fixed order.
//   v3:        GroupNormKernel::Cached: the group copied into shared memory with several loads in
//              flight per thread, so DRAM sees x (and dy) once; exact two-pass statistics from the
//              copy. Only for groups whose copy fits in 64 KiB (the row is absent otherwise).
//   unfused:   for GroupNorm + SiLU: GroupNorm (Auto: v3 where it fits) writes z, v2 SiLU reads it
//              back (one extra write and read of the tensor each way; the backward also reads z).
//   fused:     group_norm_silu_{forward,backward}_cuda: SiLU applied in the normalise pass, its
//              derivative recomputed from x, mean and rstd in the backward; v2 and v3 as above.
// There is no GroupNorm in cuDNN's legacy API, so "x base" is v1 naive (GroupNorm) and unfused
// (GroupNorm + SiLU); `python3 bench/unet_pytorch.py --compare-bench` times PyTorch's
// F.group_norm at these shapes for a library number.
//
// Work and traffic, n = N·C·HW elements (memory-bound: ~10 flops per element):
//   forward (either op):  fewest bytes = read x + write y = 8·n   (γ, β, mean, rstd: negligible)
//   backward (either op): fewest bytes = read x, dy + write dx = 12·n
// Every version's GB/s counts these bytes, so a version that moves more shows as slower, not busier.
//
// CPU reference: group_norm{,_silu}_{forward,backward}_cpu<double> (the tests' reference); the
// backward reference uses the float mean and rstd the GPU forward saved, as the GPU backward does.
#include <cuda_runtime.h>

#include <cmath>
#include <string>
#include <vector>

#include "bench/harness.h"
#include "kernels/activation.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/group_norm.h"
#include "kernels/runtime.h"

namespace fm::bench {
namespace {

namespace fk = fm::kernels;

// One-pass reductions over up to a few hundred thousand terms in float: ~√n·ε relative; 1e-4 of the
// output's scale is over 10× that, while a wrong index or formula is off by O(1) (tests' rule).
constexpr double kReductionRel = 1e-4;
constexpr float kEps = 1e-5f;

// ---- the shapes: {N, C, H, W}, 8 groups --------------------------------------------------------
struct NormShape {
  int N, C, H, W, G;
  const char* where;
};
std::vector<NormShape> group_norm_shapes(const Options& options) {
  if (options.small_shapes) return {{8, 32, 28, 28, 8, "small"}, {8, 128, 7, 7, 8, "small"}, {4, 64, 64, 64, 8, "small"}};
  return {
      {256, 32, 28, 28, 8, "downs.0 conv_first"},
      {256, 64, 28, 28, 8, "downs.0 conv_second, ups.1 conv_first"},
      {256, 64, 14, 14, 8, "downs.1 conv_first"},
      {256, 128, 14, 14, 8, "downs.1 conv_second + attention, ups.0 conv_first"},
      {256, 128, 7, 7, 8, "mids.0 resnet_convs.0"},
      {64, 256, 64, 64, 8, "large: 256 MiB per tensor, bandwidth"},
  };
}

// =================================================================================================
// v1 naive kernels (the lesson's starting point; the engine uses v2)
// =================================================================================================

constexpr int kNaiveThreads = 256;

// Sum over the block; every thread gets the result. Warp shuffles, then one value per warp in
// shared memory.
__device__ float block_sum(float value) {
  __shared__ float warp_sums[kNaiveThreads / 32];
  __shared__ float total;
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = value;
  __syncthreads();
  if (threadIdx.x == 0) {
    float sum = 0.f;
    for (int w = 0; w < kNaiveThreads / 32; ++w) sum += warp_sums[w];
    total = sum;
  }
  __syncthreads();
  const float result = total;
  __syncthreads();  // `total` and `warp_sums` are reused by the next call
  return result;
}

// One block per group (n, g); its (C/G)·HW values are contiguous.
__global__ void group_norm_forward_naive_kernel(const float* x, const float* gamma, const float* beta, float* y,
                                                float* mean_out, float* rstd_out, int C, int HW, int G, float eps) {
  const int group = blockIdx.x, g = group % G, channels_per_group = C / G;
  const int span = channels_per_group * HW;
  const float* xg = x + std::size_t(group) * span;
  float* yg = y + std::size_t(group) * span;

  float sum = 0.f;
  for (int i = threadIdx.x; i < span; i += blockDim.x) sum += xg[i];
  const float mean = block_sum(sum) / float(span);
  float squares = 0.f;  // two-pass variance: no cancellation, at the price of a second read
  for (int i = threadIdx.x; i < span; i += blockDim.x) squares += (xg[i] - mean) * (xg[i] - mean);
  const float rstd = rsqrtf(block_sum(squares) / float(span) + eps);
  for (int i = threadIdx.x; i < span; i += blockDim.x) {
    const int c = g * channels_per_group + i / HW;
    yg[i] = (xg[i] - mean) * rstd * gamma[c] + beta[c];
  }
  if (threadIdx.x == 0) {
    mean_out[group] = mean;
    rstd_out[group] = rstd;
  }
}

// dx for one group: with dx̂ = γ·dy, dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)).
__global__ void group_norm_backward_input_naive_kernel(const float* dy, const float* x, const float* mean,
                                                       const float* rstd, const float* gamma, float* dx, int C,
                                                       int HW, int G) {
  const int group = blockIdx.x, g = group % G, channels_per_group = C / G;
  const int span = channels_per_group * HW;
  const std::size_t base = std::size_t(group) * span;
  const float mu = mean[group], r = rstd[group];
  float sum_dxhat = 0.f, sum_dxhat_xhat = 0.f;
  for (int i = threadIdx.x; i < span; i += blockDim.x) {
    const float dxhat = gamma[g * channels_per_group + i / HW] * dy[base + i];
    sum_dxhat += dxhat;
    sum_dxhat_xhat += dxhat * (x[base + i] - mu) * r;
  }
  const float mean_dxhat = block_sum(sum_dxhat) / float(span);
  const float mean_dxhat_xhat = block_sum(sum_dxhat_xhat) / float(span);
  for (int i = threadIdx.x; i < span; i += blockDim.x) {
    const float dxhat = gamma[g * channels_per_group + i / HW] * dy[base + i];
    const float xhat = (x[base + i] - mu) * r;
    dx[base + i] = r * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
  }
}

// dγ[c] = Σ_{n,hw} dy·x̂ and dβ[c] = Σ_{n,hw} dy: one block per channel walks all N samples.
__global__ void group_norm_backward_affine_naive_kernel(const float* dy, const float* x, const float* mean,
                                                        const float* rstd, float* dgamma, float* dbeta, int N,
                                                        int C, int HW, int G) {
  const int c = blockIdx.x, g = c / (C / G);
  float sum_dy_xhat = 0.f, sum_dy = 0.f;
  for (int n = 0; n < N; ++n) {
    const std::size_t base = (std::size_t(n) * C + c) * HW;
    const float mu = mean[n * G + g], r = rstd[n * G + g];
    for (int i = threadIdx.x; i < HW; i += blockDim.x) {
      sum_dy_xhat += dy[base + i] * (x[base + i] - mu) * r;
      sum_dy += dy[base + i];
    }
  }
  const float total_dy_xhat = block_sum(sum_dy_xhat);
  const float total_dy = block_sum(sum_dy);
  if (threadIdx.x == 0) {
    dgamma[c] = total_dy_xhat;
    dbeta[c] = total_dy;
  }
}

void group_norm_forward_naive(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                              float* rstd, int N, int C, int HW, int G, float eps) {
  group_norm_forward_naive_kernel<<<N * G, kNaiveThreads, 0, fk::cuda_stream()>>>(x, gamma, beta, y, mean, rstd, C,
                                                                                  HW, G, eps);
  FM_CUDA_CHECK_LAUNCH();
}

void group_norm_backward_naive(const float* dy, const float* x, const float* mean, const float* rstd,
                               const float* gamma, float* dx, float* dgamma, float* dbeta, int N, int C, int HW,
                               int G) {
  group_norm_backward_input_naive_kernel<<<N * G, kNaiveThreads, 0, fk::cuda_stream()>>>(dy, x, mean, rstd, gamma,
                                                                                         dx, C, HW, G);
  FM_CUDA_CHECK_LAUNCH();
  group_norm_backward_affine_naive_kernel<<<C, kNaiveThreads, 0, fk::cuda_stream()>>>(dy, x, mean, rstd, dgamma,
                                                                                      dbeta, N, C, HW, G);
  FM_CUDA_CHECK_LAUNCH();
}

// =================================================================================================
// One shape: four cases (fwd, fwd+silu, bwd, bwd+silu)
// =================================================================================================

// The fast kernel families that apply to this group: v3 only where its shared-memory copy fits
// (forward: the group, backward: twice the group).
struct Family {
  const char* name;
  fk::GroupNormKernel kernel;
};
std::vector<Family> families(std::size_t group_size, bool backward) {
  std::vector<Family> list{{"v2", fk::GroupNormKernel::Streaming}};
  if (fk::group_norm_cache_bytes(std::int64_t(group_size), backward) <= fk::kGroupNormMaxCacheBytes)
    list.push_back({"v3", fk::GroupNormKernel::Cached});
  return list;
}

void bench_shape(const NormShape& s, const Options& options) {
  const int N = s.N, C = s.C, HW = s.H * s.W, G = s.G;
  const std::size_t n = std::size_t(N) * C * HW, groups = std::size_t(N) * G;
  const std::string shape = dims_string({N, C, s.H, s.W}) + " G" + std::to_string(G);
  if (!options.selects(shape)) return;
  const std::size_t group_size = std::size_t(C / G) * HW;

  // x with a mean away from zero (Welford vs cancellation), γ around 1, β around 0.
  DeviceArray x = random_array(n, options, -1.f, 3.f), gamma = random_array(std::size_t(C), options, 0.5f, 1.5f),
              beta = random_array(std::size_t(C), options, -0.5f, 0.5f), dy = random_array(n, options);
  DeviceArray y(n), z(n), mean(groups), rstd(groups), dx(n), dz(n), dgamma(static_cast<std::size_t>(C)), dbeta(static_cast<std::size_t>(C));
  std::printf("   # %s: %s\n", shape.c_str(), s.where);

  const std::vector<double> x_host = to_double(x.to_host()), gamma_host = to_double(gamma.to_host()),
                            beta_host = to_double(beta.to_host());

  // Checks the forward outputs (y, mean, rstd) against a reference.
  auto forward_check = [&](const std::vector<double>& y_ref, const std::vector<double>& mean_ref,
                           const std::vector<double>& rstd_ref) {
    Check check;
    // The mean is off by rounding at the data's scale (|x| up to 3), not its own (tests' rule).
    check.compare("mean", mean.to_host(), mean_ref, Tolerance{1e-5 * 3.0, 0.0});
    check.compare("rstd", rstd.to_host(), rstd_ref, Tolerance{0.0, kReductionRel});
    check.compare("y", y.to_host(), y_ref, scaled_tolerance(y_ref, kReductionRel, kReductionRel));
    return check;
  };
  auto poison_forward = [&] {
    y.poison();
    mean.poison();
    rstd.poison();
  };

  // ---- forward: GroupNorm
  {
    std::vector<double> y_ref(n), mean_ref(groups), rstd_ref(groups);
    fk::group_norm_forward_cpu<double>(x_host.data(), gamma_host.data(), beta_host.data(), y_ref.data(),
                                       mean_ref.data(), rstd_ref.data(), N, C, HW, G, double(kEps));
    BenchCase c;
    c.op = "group_norm";
    c.shape = shape;
    c.pass = "fwd";
    c.bound = Bound::Memory;
    c.bytes = 8.0 * double(n);
    c.baseline = "v1 naive";
    c.versions = {
        {"v1 naive",
         [&] { group_norm_forward_naive(x.get(), gamma.get(), beta.get(), y.get(), mean.get(), rstd.get(), N, C, HW, G, kEps); }},
    };
    for (const Family& f : families(group_size, false))
      c.versions.push_back({f.name, [&, f] {
                              fk::group_norm_forward_cuda(x.get(), gamma.get(), beta.get(), y.get(), mean.get(),
                                                          rstd.get(), N, C, HW, G, kEps, f.kernel);
                            }});
    c.poison_outputs = poison_forward;
    c.check_outputs = [&] { return forward_check(y_ref, mean_ref, rstd_ref); };
    run_case(c, options);
  }

  // ---- forward: GroupNorm + SiLU
  {
    std::vector<double> y_ref(n), mean_ref(groups), rstd_ref(groups);
    fk::group_norm_silu_forward_cpu<double>(x_host.data(), gamma_host.data(), beta_host.data(), y_ref.data(),
                                            mean_ref.data(), rstd_ref.data(), N, C, HW, G, double(kEps));
    BenchCase c;
    c.op = "group_norm";
    c.shape = shape;
    c.pass = "fwd+silu";
    c.bound = Bound::Memory;
    c.bytes = 8.0 * double(n);
    c.baseline = "unfused";
    c.versions = {
        {"unfused",
         [&] {
           fk::group_norm_forward_cuda(x.get(), gamma.get(), beta.get(), z.get(), mean.get(), rstd.get(), N, C, HW, G, kEps);
           fk::silu_forward_cuda(z.get(), y.get(), std::int64_t(n));
         }},
    };
    for (const Family& f : families(group_size, false))
      c.versions.push_back({std::string("fused ") + f.name, [&, f] {
                              fk::group_norm_silu_forward_cuda(x.get(), gamma.get(), beta.get(), y.get(), mean.get(),
                                                               rstd.get(), N, C, HW, G, kEps, f.kernel);
                            }});
    c.poison_outputs = poison_forward;
    c.check_outputs = [&] { return forward_check(y_ref, mean_ref, rstd_ref); };
    run_case(c, options);
  }

  // ---- the backward's saved inputs: mean and rstd from the engine's forward (Auto, as in training), and the
  // pre-activation z that the unfused GroupNorm + SiLU backward reads.
  fk::group_norm_forward_cuda(x.get(), gamma.get(), beta.get(), z.get(), mean.get(), rstd.get(), N, C, HW, G, kEps);
  kernels::cuda_synchronize();
  const std::vector<double> mean_saved = to_double(mean.to_host()), rstd_saved = to_double(rstd.to_host());
  const std::vector<double> dy_host = to_double(dy.to_host());

  auto backward_check = [&](const std::vector<double>& dx_ref, const std::vector<double>& dgamma_ref,
                            const std::vector<double>& dbeta_ref) {
    Check check;
    check.compare("dx", dx.to_host(), dx_ref, scaled_tolerance(dx_ref, kReductionRel, kReductionRel));
    check.compare("dgamma", dgamma.to_host(), dgamma_ref, scaled_tolerance(dgamma_ref, kReductionRel, kReductionRel));
    check.compare("dbeta", dbeta.to_host(), dbeta_ref, scaled_tolerance(dbeta_ref, kReductionRel, kReductionRel));
    return check;
  };
  auto poison_backward = [&] {
    dx.poison();
    dgamma.poison();
    dbeta.poison();
  };

  // ---- backward: GroupNorm
  {
    std::vector<double> dx_ref(n), dgamma_ref(static_cast<std::size_t>(C)), dbeta_ref(static_cast<std::size_t>(C));
    fk::group_norm_backward_cpu<double>(dy_host.data(), x_host.data(), mean_saved.data(), rstd_saved.data(),
                                        gamma_host.data(), dx_ref.data(), dgamma_ref.data(), dbeta_ref.data(), N, C,
                                        HW, G);
    BenchCase c;
    c.op = "group_norm";
    c.shape = shape;
    c.pass = "bwd";
    c.bound = Bound::Memory;
    c.bytes = 12.0 * double(n);
    c.baseline = "v1 naive";
    c.versions = {
        {"v1 naive",
         [&] {
           group_norm_backward_naive(dy.get(), x.get(), mean.get(), rstd.get(), gamma.get(), dx.get(), dgamma.get(),
                                     dbeta.get(), N, C, HW, G);
         }},
    };
    for (const Family& f : families(group_size, true))
      c.versions.push_back({f.name, [&, f] {
                              fk::group_norm_backward_cuda(dy.get(), x.get(), mean.get(), rstd.get(), gamma.get(),
                                                           dx.get(), dgamma.get(), dbeta.get(), N, C, HW, G, f.kernel);
                            }});
    c.poison_outputs = poison_backward;
    c.check_outputs = [&] { return backward_check(dx_ref, dgamma_ref, dbeta_ref); };
    run_case(c, options);
  }

  // ---- backward: GroupNorm + SiLU
  {
    std::vector<double> dx_ref(n), dgamma_ref(static_cast<std::size_t>(C)), dbeta_ref(static_cast<std::size_t>(C));
    fk::group_norm_silu_backward_cpu<double>(dy_host.data(), x_host.data(), mean_saved.data(), rstd_saved.data(),
                                             gamma_host.data(), beta_host.data(), dx_ref.data(), dgamma_ref.data(),
                                             dbeta_ref.data(), N, C, HW, G);
    BenchCase c;
    c.op = "group_norm";
    c.shape = shape;
    c.pass = "bwd+silu";
    c.bound = Bound::Memory;
    c.bytes = 12.0 * double(n);
    c.baseline = "unfused";
    c.versions = {
        {"unfused",
         [&] {
           // dz = dy·silu'(z), then the GroupNorm backward of dz: z is read back from memory.
           fk::silu_backward_cuda(z.get(), dy.get(), dz.get(), std::int64_t(n));
           fk::group_norm_backward_cuda(dz.get(), x.get(), mean.get(), rstd.get(), gamma.get(), dx.get(), dgamma.get(),
                                        dbeta.get(), N, C, HW, G);
         }},
    };
    for (const Family& f : families(group_size, true))
      c.versions.push_back({std::string("fused ") + f.name, [&, f] {
                              fk::group_norm_silu_backward_cuda(dy.get(), x.get(), mean.get(), rstd.get(), gamma.get(),
                                                                beta.get(), dx.get(), dgamma.get(), dbeta.get(), N, C,
                                                                HW, G, f.kernel);
                            }});
    c.poison_outputs = poison_backward;
    c.check_outputs = [&] { return backward_check(dx_ref, dgamma_ref, dbeta_ref); };
    run_case(c, options);
  }
}

}  // namespace

void run_group_norm(const Options& options) {
  measured_peaks(options);
  print_table_header("group_norm: GroupNorm(8) and fused GroupNorm + SiLU (memory-bound: % of copy bandwidth)",
                     "x base = v1 naive (fwd, bwd) or unfused GroupNorm + v2 SiLU (fwd+silu, bwd+silu); "
                     "GB/s counts 8 B/elt fwd, 12 B/elt bwd for every version");
  for (const NormShape& s : group_norm_shapes(options)) bench_shape(s, options);
}

}  // namespace fm::bench
