// bench/bench_group_norm.cu — GroupNorm (Wu & He 2018) and the fused GroupNorm + SiLU that starts
// every U-Net residual branch, forward and backward (formulas: kernels/group_norm.h).
//   y = γ[c]·(x − μ[n,g])·rstd[n,g] + β[c]        (+ silu for the fused op)
//   dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)),  dx̂ = γ·dz;  dγ = Σ dz·x̂;  dβ = Σ dz
//
// Run:  fmbench group_norm [--shapes small] [--repeats N] [--csv FILE]
//
// Versions:
//   v1 naive:  kernels/cuda/group_norm_naive.cu. Forward: one block per (n, g), three passes over
//              the group (mean, then variance around it, then normalise), scalar loads. Backward:
//              one block per (n, g) for dx (two group sums, then dx) and one block per channel for
//              dγ, dβ (walks every sample and pixel of the channel) — two launches, x and dy read
//              twice.
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
//   bf16:      the engine's kernels (Auto) on bfloat16 activations (x, y, dy, dx; γ, β and the
//              statistics float32), in passes of their own ("fwd bf16", ...) whose fewest bytes are
//              half the float32 ones: compare their time with the float32 rows' "auto".
// There is no GroupNorm in cuDNN's legacy API, so "x base" is v1 naive (GroupNorm) and unfused
// (GroupNorm + SiLU); `python3 bench/unet_pytorch.py --compare-bench` times PyTorch's
// F.group_norm at these shapes for a library number.
//
// The shapes, the tolerances, the fewest bytes of each pass (8 B/element forward, 12 backward) and
// the versions above live in the case table, cases/group_norm.h, which the tests iterate too
// (`fmbench --list group_norm` prints it). Every version's GB/s counts those bytes, so a version
// that moves more shows as slower, not busier. This file adds what is the lab's own: the inputs on
// the device, NaN poison, the check of each version, timing.
//
// CPU reference: group_norm{,_silu}_{forward,backward}_cpu<double> (the tests' reference); the
// backward reference uses the float mean and rstd the GPU forward saved, as the GPU backward does.
#include <string>
#include <vector>

#include "bench/harness.h"
#include "cases/group_norm.h"
#include "kernels/group_norm.h"
#include "kernels/runtime.h"

namespace fm::bench {
namespace {

namespace fk = fm::kernels;
namespace fc = fm::cases;

// The buffers of one shape, on the device: inputs, outputs, the unfused version's z and dz.
struct GroupNormBuffers {
  DeviceArray x, gamma, beta, dy;
  DeviceArray y, z, mean, rstd, dx, dz, dgamma, dbeta;
};

// The case's versions of one pass: the op's GPU implementations that the lab times and that run on
// these groups (v3 only where its shared-memory copy fits), and the baseline's name.
std::vector<const fc::GroupNormImpl*> lab_versions(const fc::GroupNormOp& op, const fc::GroupNormCase& s,
                                                   bool backward, std::string& baseline) {
  std::vector<const fc::GroupNormImpl*> list;
  for (const fc::GroupNormImpl& impl : op.implementations) {
    if (!fc::impl_on_gpu(impl.kind) || !impl.benchmarked || !fc::group_norm_impl_runs(impl, s, backward)) continue;
    list.push_back(&impl);
    if (impl.lab_baseline) baseline = impl.name;
  }
  return list;
}

void bench_forward(const fc::GroupNormOp& op, const fc::GroupNormCase& s, GroupNormBuffers& b,
                   const std::vector<double>& x_host, const std::vector<double>& gamma_host,
                   const std::vector<double>& beta_host, const Options& options) {
  const int N = s.N, C = s.C, HW = s.hw(), G = s.G;
  std::vector<double> y_ref(s.elements()), mean_ref(s.groups()), rstd_ref(s.groups());
  op.reference_forward(x_host.data(), gamma_host.data(), beta_host.data(), y_ref.data(), mean_ref.data(),
                       rstd_ref.data(), N, C, HW, G, double(fc::kGroupNormEps));
  BenchCase c;
  c.op = "group_norm";  // one lab op for both: the pass (fwd, fwd+silu) says which
  c.shape = fc::shape_name(s);
  c.pass = op.forward_pass;
  c.bound = Bound::Memory;
  c.bytes = fc::group_norm_forward_bytes(s);
  for (const fc::GroupNormImpl* impl : lab_versions(op, s, false, c.baseline))
    c.versions.push_back({impl->name, [&b, &s, impl] {
                            impl->forward(b.x.get(), b.gamma.get(), b.beta.get(), b.y.get(), b.mean.get(),
                                          b.rstd.get(), b.z.get(), s.N, s.C, s.hw(), s.G, fc::kGroupNormEps);
                          }});
  c.poison_outputs = [&b] {
    b.y.poison();
    b.mean.poison();
    b.rstd.poison();
  };
  c.check_outputs = [&] {
    Check check;
    check.compare("mean", b.mean.to_host(), mean_ref, fc::group_norm_mean_tolerance(s));
    check.compare("rstd", b.rstd.to_host(), rstd_ref, fc::group_norm_rstd_tolerance());
    check.compare("y", b.y.to_host(), y_ref, fc::group_norm_output_tolerance(y_ref));
    return check;
  };
  run_case(c, options);
}

// mean_saved, rstd_saved: the engine's forward's (as in training); b.z holds its output.
void bench_backward(const fc::GroupNormOp& op, const fc::GroupNormCase& s, GroupNormBuffers& b,
                    const std::vector<double>& x_host, const std::vector<double>& gamma_host,
                    const std::vector<double>& beta_host, const std::vector<double>& dy_host,
                    const std::vector<double>& mean_saved, const std::vector<double>& rstd_saved,
                    const Options& options) {
  const int N = s.N, C = s.C, HW = s.hw(), G = s.G;
  const std::size_t channels = std::size_t(C);
  std::vector<double> dx_ref(s.elements()), dgamma_ref(channels), dbeta_ref(channels);
  op.reference_backward(dy_host.data(), x_host.data(), mean_saved.data(), rstd_saved.data(), gamma_host.data(),
                        beta_host.data(), dx_ref.data(), dgamma_ref.data(), dbeta_ref.data(), N, C, HW, G);
  BenchCase c;
  c.op = "group_norm";
  c.shape = fc::shape_name(s);
  c.pass = op.backward_pass;
  c.bound = Bound::Memory;
  c.bytes = fc::group_norm_backward_bytes(s);
  for (const fc::GroupNormImpl* impl : lab_versions(op, s, true, c.baseline))
    c.versions.push_back({impl->name, [&b, &s, impl] {
                            impl->backward(b.dy.get(), b.x.get(), b.mean.get(), b.rstd.get(), b.gamma.get(),
                                           b.beta.get(), b.z.get(), b.dz.get(), b.dx.get(), b.dgamma.get(),
                                           b.dbeta.get(), s.N, s.C, s.hw(), s.G);
                          }});
  c.poison_outputs = [&b] {
    b.dx.poison();
    b.dgamma.poison();
    b.dbeta.poison();
  };
  c.check_outputs = [&] {
    Check check;
    check.compare("dx", b.dx.to_host(), dx_ref, fc::group_norm_output_tolerance(dx_ref));
    check.compare("dgamma", b.dgamma.to_host(), dgamma_ref, fc::group_norm_output_tolerance(dgamma_ref));
    check.compare("dbeta", b.dbeta.to_host(), dbeta_ref, fc::group_norm_output_tolerance(dbeta_ref));
    return check;
  };
  run_case(c, options);
}

// ---- bfloat16 activations ---------------------------------------------------------------------
std::vector<float> to_float(const std::vector<double>& values) { return {values.begin(), values.end()}; }

// The four passes on bfloat16 activations, each a case of its own. The reference runs on the
// bfloat16 inputs' values (exact in double); the backward's on the mean and rstd the bfloat16
// forward saved.
void bench_bf16(const fc::GroupNormCase& s, GroupNormBuffers& b, const std::vector<double>& x_float,
                const std::vector<double>& gamma_host, const std::vector<double>& beta_host,
                const std::vector<double>& dy_float, const Options& options) {
  const int N = s.N, C = s.C, HW = s.hw(), G = s.G;
  DeviceBf16Array x(to_float(x_float)), dy(to_float(dy_float)), y(s.elements()), dx(s.elements());
  const std::vector<double> x_host = to_double(x.to_host()), dy_host = to_double(dy.to_host());  // the bfloat16 values
  for (bool fused : {false, true}) {
    const std::string suffix = fused ? "+silu bf16" : " bf16";
    std::vector<double> y_ref(s.elements()), mean_ref(s.groups()), rstd_ref(s.groups());
    auto forward_ref = fused ? fk::group_norm_silu_forward_cpu<double> : fk::group_norm_forward_cpu<double>;
    forward_ref(x_host.data(), gamma_host.data(), beta_host.data(), y_ref.data(), mean_ref.data(), rstd_ref.data(), N,
                C, HW, G, double(fc::kGroupNormEps));
    BenchCase f;
    f.op = "group_norm";
    f.shape = fc::shape_name(s);
    f.pass = "fwd" + suffix;
    f.bound = Bound::Memory;
    f.bytes = fc::group_norm_forward_bytes(s) / 2;  // x and y at 2 bytes an element
    f.versions.push_back({"auto bf16", [&, fused] {
                            if (fused)
                              fk::group_norm_silu_forward_cuda(x.get(), b.gamma.get(), b.beta.get(), y.get(), b.mean.get(),
                                                               b.rstd.get(), N, C, HW, G, fc::kGroupNormEps);
                            else
                              fk::group_norm_forward_cuda(x.get(), b.gamma.get(), b.beta.get(), y.get(), b.mean.get(),
                                                          b.rstd.get(), N, C, HW, G, fc::kGroupNormEps);
                          }});
    f.poison_outputs = [&] {
      y.poison();
      b.mean.poison();
      b.rstd.poison();
    };
    f.check_outputs = [&] {
      Check check;
      check.compare("mean", b.mean.to_host(), mean_ref, fc::group_norm_mean_tolerance(s));
      check.compare("rstd", b.rstd.to_host(), rstd_ref, fc::group_norm_rstd_tolerance());
      check.compare("y", y.to_host(), y_ref, fc::group_norm_bf16_output_tolerance(y_ref));
      return check;
    };
    run_case(f, options);

    // The backward on the statistics of the bfloat16 forward (as training would run it).
    if (fused)
      fk::group_norm_silu_forward_cuda(x.get(), b.gamma.get(), b.beta.get(), y.get(), b.mean.get(), b.rstd.get(), N, C,
                                       HW, G, fc::kGroupNormEps);
    else
      fk::group_norm_forward_cuda(x.get(), b.gamma.get(), b.beta.get(), y.get(), b.mean.get(), b.rstd.get(), N, C, HW,
                                  G, fc::kGroupNormEps);
    kernels::cuda_synchronize();
    const std::vector<double> mean_saved = to_double(b.mean.to_host()), rstd_saved = to_double(b.rstd.to_host());
    std::vector<double> dx_ref(s.elements()), dgamma_ref(static_cast<std::size_t>(C)), dbeta_ref(static_cast<std::size_t>(C));
    if (fused)
      fk::group_norm_silu_backward_cpu<double>(dy_host.data(), x_host.data(), mean_saved.data(), rstd_saved.data(),
                                               gamma_host.data(), beta_host.data(), dx_ref.data(), dgamma_ref.data(),
                                               dbeta_ref.data(), N, C, HW, G);
    else
      fk::group_norm_backward_cpu<double>(dy_host.data(), x_host.data(), mean_saved.data(), rstd_saved.data(),
                                          gamma_host.data(), dx_ref.data(), dgamma_ref.data(), dbeta_ref.data(), N, C,
                                          HW, G);
    BenchCase w;
    w.op = "group_norm";
    w.shape = fc::shape_name(s);
    w.pass = "bwd" + suffix;
    w.bound = Bound::Memory;
    w.bytes = fc::group_norm_backward_bytes(s) / 2;  // x, dy and dx at 2 bytes an element
    w.versions.push_back({"auto bf16", [&, fused] {
                            if (fused)
                              fk::group_norm_silu_backward_cuda(dy.get(), x.get(), b.mean.get(), b.rstd.get(),
                                                                b.gamma.get(), b.beta.get(), dx.get(), b.dgamma.get(),
                                                                b.dbeta.get(), N, C, HW, G);
                            else
                              fk::group_norm_backward_cuda(dy.get(), x.get(), b.mean.get(), b.rstd.get(), b.gamma.get(),
                                                           dx.get(), b.dgamma.get(), b.dbeta.get(), N, C, HW, G);
                          }});
    w.poison_outputs = [&] {
      dx.poison();
      b.dgamma.poison();
      b.dbeta.poison();
    };
    w.check_outputs = [&] {
      Check check;
      check.compare("dx", dx.to_host(), dx_ref, fc::group_norm_bf16_output_tolerance(dx_ref));
      check.compare("dgamma", b.dgamma.to_host(), dgamma_ref, fc::group_norm_output_tolerance(dgamma_ref));
      check.compare("dbeta", b.dbeta.to_host(), dbeta_ref, fc::group_norm_output_tolerance(dbeta_ref));
      return check;
    };
    run_case(w, options);
  }
}

// One shape: four cases (fwd, fwd+silu, bwd, bwd+silu), and the same four on bfloat16 activations.
void bench_shape(const fc::GroupNormCase& s, const Options& options) {
  const std::string shape = fc::shape_name(s);
  if (!options.selects(shape)) return;
  const int N = s.N, C = s.C, HW = s.hw(), G = s.G;
  const std::size_t n = s.elements(), groups = s.groups(), channels = std::size_t(C);

  // x in the case's range (a mean away from zero: Welford vs cancellation), γ around 1, β around 0.
  GroupNormBuffers b{random_array(n, options, s.x_low, s.x_high),
                     random_array(channels, options, 0.5f, 1.5f),
                     random_array(channels, options, -0.5f, 0.5f),
                     random_array(n, options),
                     DeviceArray(n),
                     DeviceArray(n),
                     DeviceArray(groups),
                     DeviceArray(groups),
                     DeviceArray(n),
                     DeviceArray(n),
                     DeviceArray(channels),
                     DeviceArray(channels)};
  std::printf("   # %s: %s\n", shape.c_str(), s.where);

  const std::vector<double> x_host = to_double(b.x.to_host()), gamma_host = to_double(b.gamma.to_host()),
                            beta_host = to_double(b.beta.to_host());
  for (const fc::GroupNormOp& op : fc::group_norm_ops()) bench_forward(op, s, b, x_host, gamma_host, beta_host, options);

  // ---- the backward's saved inputs: mean and rstd from the engine's forward (Auto, as in training), and the
  // pre-activation z that the unfused GroupNorm + SiLU backward reads.
  fk::group_norm_forward_cuda(b.x.get(), b.gamma.get(), b.beta.get(), b.z.get(), b.mean.get(), b.rstd.get(), N, C,
                              HW, G, fc::kGroupNormEps);
  kernels::cuda_synchronize();
  const std::vector<double> mean_saved = to_double(b.mean.to_host()), rstd_saved = to_double(b.rstd.to_host());
  const std::vector<double> dy_host = to_double(b.dy.to_host());
  for (const fc::GroupNormOp& op : fc::group_norm_ops())
    bench_backward(op, s, b, x_host, gamma_host, beta_host, dy_host, mean_saved, rstd_saved, options);
  bench_bf16(s, b, x_host, gamma_host, beta_host, dy_host, options);
}

}  // namespace

void run_group_norm(const Options& options) {
  measured_peaks(options);
  print_table_header("group_norm: GroupNorm(8) and fused GroupNorm + SiLU (memory-bound: % of copy bandwidth)",
                     "x base = v1 naive (fwd, bwd) or unfused GroupNorm + v2 SiLU (fwd+silu, bwd+silu); "
                     "GB/s counts 8 B/elt fwd, 12 B/elt bwd for every version (half in the bf16 passes)");
  const unsigned use = options.small_shapes ? fc::kBenchSmall : fc::kBench;
  for (const fc::GroupNormCase& s : fc::group_norm_cases())
    if (s.uses & use) bench_shape(s, options);
}

}  // namespace fm::bench
