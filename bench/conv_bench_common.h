// bench/conv_bench_common.h — the driver shared by bench_conv2d.cu and bench_conv_transpose2d.cu:
// for one case of the op's table (cases/conv2d.h, cases/conv_transpose2d.h), random inputs, the
// float64 reference of each pass, and the three lab cases (fwd, bwd-data, bwd-weight) handed to
// run_case, with every GPU implementation of the table as a version, plus the project's kernels on
// bfloat16 activations ("v2 bf16-act": x, y, dy, dx bfloat16, the weights float32). The shapes, FLOPs, fewest
// bytes, tolerances and implementations all come from the table; what stays here is lab-only: the
// device buffers, the NaN poison, and a reference fast enough for batch 256.
//
// Both ops share the parameter field names (batch, in_channels, ..., out_height()), so the driver is
// one template over Conv2dParams / ConvTranspose2dParams.
//
// Reference at full batch, on all host threads: the reference loops (kernels/cpu/conv2d_reference.cpp)
// are single-threaded and per-sample independent for fwd and bwd-data, so each thread runs them on a
// contiguous slice of the batch (batch = slice length). bwd-weight sums over the batch: each slice
// writes its own partial dW, db, added afterwards in slice order. All in float64.
#pragma once
#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench/harness.h"
#include "cases/conv2d.h"
#include "kernels/conv2d.h"

namespace fm::bench::conv {

using cases::conv::bias_count;
using cases::conv::ConvCase;
using cases::conv::ConvImplementation;
using cases::conv::ConvReference;
using cases::conv::input_count;
using cases::conv::output_count;
using cases::conv::weight_count;

// Whether the lab runs this case: the default run takes the kBench cases (the U-Net at batch 256),
// --shapes small the kBenchSmall ones, and --filter TEXT only shapes whose name contains TEXT.
template <typename Params>
bool lab_runs(const ConvCase<Params>& c, const Options& options) {
  const unsigned use = options.small_shapes ? cases::kBenchSmall : cases::kBench;
  return (c.uses & use) && options.selects(cases::conv::shape_name(c.params));
}

// ---- the reference at full batch ---------------------------------------------------------------

// The batch cut into contiguous slices, one or more per host thread.
template <typename Params>
std::vector<std::pair<int, int>> batch_slices(const Params& p) {
  const int threads = std::max(1, int(std::thread::hardware_concurrency()));
  const int count = std::max(1, std::min(p.batch, threads));
  std::vector<std::pair<int, int>> slices;
  for (int s = 0; s < count; ++s) slices.push_back({p.batch * s / count, p.batch * (s + 1) / count});
  return slices;
}

template <typename Params>
void reference_forward(const ConvReference<Params>& ref, const std::vector<double>& x, const std::vector<double>& w,
                       const std::vector<double>& b, std::vector<double>& y, const Params& p) {
  const std::size_t x_per_sample = input_count(p) / p.batch, y_per_sample = output_count(p) / p.batch;
  const auto slices = batch_slices(p);
  parallel_for(std::int64_t(slices.size()), [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t s = first; s < last; ++s) {
      Params slice = p;
      slice.batch = slices[s].second - slices[s].first;
      ref.forward(x.data() + slices[s].first * x_per_sample, w.data(), b.data(),
                  y.data() + slices[s].first * y_per_sample, slice);
    }
  });
}

template <typename Params>
void reference_backward_input(const ConvReference<Params>& ref, const std::vector<double>& dy,
                              const std::vector<double>& w, std::vector<double>& dx, const Params& p) {
  const std::size_t x_per_sample = input_count(p) / p.batch, y_per_sample = output_count(p) / p.batch;
  const auto slices = batch_slices(p);
  parallel_for(std::int64_t(slices.size()), [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t s = first; s < last; ++s) {
      Params slice = p;
      slice.batch = slices[s].second - slices[s].first;
      ref.backward_input(dy.data() + slices[s].first * y_per_sample, w.data(),
                         dx.data() + slices[s].first * x_per_sample, slice);
    }
  });
}

template <typename Params>
void reference_backward_weight(const ConvReference<Params>& ref, const std::vector<double>& x,
                               const std::vector<double>& dy, std::vector<double>& dw, std::vector<double>& db,
                               const Params& p) {
  const std::size_t x_per_sample = input_count(p) / p.batch, y_per_sample = output_count(p) / p.batch;
  const auto slices = batch_slices(p);
  std::vector<std::vector<double>> partial_dw(slices.size(), std::vector<double>(dw.size()));
  std::vector<std::vector<double>> partial_db(slices.size(), std::vector<double>(db.size()));
  parallel_for(std::int64_t(slices.size()), [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t s = first; s < last; ++s) {
      Params slice = p;
      slice.batch = slices[s].second - slices[s].first;
      ref.backward_weight(x.data() + slices[s].first * x_per_sample, dy.data() + slices[s].first * y_per_sample,
                          partial_dw[s].data(), partial_db[s].data(), slice);
    }
  });
  std::fill(dw.begin(), dw.end(), 0.0);
  std::fill(db.begin(), db.end(), 0.0);
  for (std::size_t s = 0; s < slices.size(); ++s) {
    for (std::size_t i = 0; i < dw.size(); ++i) dw[i] += partial_dw[s][i];
    for (std::size_t i = 0; i < db.size(); ++i) db[i] += partial_db[s][i];
  }
}

// The lab's check of a tensor-core version (the tests hold every element to the exact bound of
// tests/conv_test_util.h; the lab has no Σ|products| per element, so it bounds them by their
// largest possible value): inputs are in [-1, 1], so an output sums at most K products of size ≤ 1,
// and the error is at most (2u + u² + (1 + u)²·γ)·K with u the inputs' rounding (2^-11 TF32, 2^-8
// bfloat16: the entry's input_rounding), γ = (K + 258)·2^-23 (see docs/ops/tensor_cores.md), on top
// of the table's FP32 tolerance. K: the longest reduction of the three passes. Loose next to the
// tests' bound, but an index error is off by O(√K), far outside it.
template <typename Params>
Tolerance tensor_core_tolerance(const Params& p, double u, Tolerance fp32) {
  const double taps = double(p.kernel_h) * p.kernel_w;
  const double K = std::max({p.in_channels * taps, p.out_channels * taps, double(p.batch) * p.out_height() * p.out_width(),
                             double(p.batch) * p.in_height * p.in_width});
  const double gamma = (K + 258) * 0x1p-23;
  fp32.atol += (2 * u + u * u + (1 + u) * (1 + u) * gamma) * K;
  return fp32;
}

// The project's convolution on bfloat16 activations (kernels/conv2d.h's bf16 overloads): x, y, dy, dx
// bfloat16, weight, bias and their gradients float32, on the bfloat16 tensor cores.
template <typename Params>
struct Bf16ActivationKernels {
  void (*forward)(const bf16* x, const float* weight, const float* bias, bf16* y, const Params& p);
  void (*backward_input)(const bf16* dy, const float* weight, bf16* dx, const Params& p);
  void (*backward_weight)(const bf16* x, const bf16* dy, float* dweight, float* dbias, const Params& p);
};

// Its check, against the float64 reference on the float32 inputs: x (or dy) and the weights are
// rounded to bfloat16 as the bfloat16-math version's are, so its bound applies (u = 2^-8); y and dx
// are also rounded once on store, a further 2^-8 of each element. The bias gradient sums dy rounded:
// within u·Σ|dy| ≤ u·K, inside the same bound.
template <typename Params>
Tolerance bf16_activation_tolerance(const Params& p, Tolerance fp32, bool rounded_output) {
  Tolerance t = tensor_core_tolerance(p, 0x1p-8, fp32);
  if (rounded_output) t.rtol += 0x1p-8;
  return t;
}

// ---- one case of the table: three lab cases ------------------------------------------------------
// flops: of one pass (the three passes of a convolution do the same multiply-adds). The versions
// are the table's GPU implementations and "v2 bf16-act" (bf16_kernels, on the same inputs rounded to
// bfloat16); the baseline is the one the table marks (cuDNN).
template <typename Params>
void bench_case(const char* op, const ConvCase<Params>& table_case, double flops,
                const std::vector<ConvImplementation<Params>>& implementations, const ConvReference<Params>& ref,
                const Bf16ActivationKernels<Params>& bf16_kernels, const Options& options) {
  namespace table = cases::conv;  // the shape name, byte counts and tolerances
  const Params& p = table_case.params;
  const std::string shape = table::shape_name(p);
  std::vector<ConvImplementation<Params>> gpu_versions;
  std::string baseline;
  for (const auto& impl : implementations) {
    if (!cases::impl_on_gpu(impl.kind)) continue;
    gpu_versions.push_back(impl);
    if (impl.baseline) baseline = impl.name;
  }
  const std::size_t nx = input_count(p), ny = output_count(p), nw = weight_count(p), nb = bias_count(p);
  std::printf("   # %s: %s\n", shape.c_str(), table_case.where);

  DeviceArray x = random_array(nx, options), w = random_array(nw, options), b = random_array(nb, options),
              dy = random_array(ny, options);
  DeviceArray y(ny), dx(nx), dw(nw), db(nb);
  const std::vector<double> x_host = to_double(x.to_host()), w_host = to_double(w.to_host()),
                            b_host = to_double(b.to_host()), dy_host = to_double(dy.to_host());
  DeviceBf16Array x_bf16(x.to_host()), dy_bf16(dy.to_host()), y_bf16(ny), dx_bf16(nx);
  constexpr const char* kBf16Version = "v2 bf16-act";

  auto make_case = [&](const char* pass, double bytes) {
    BenchCase c;
    c.op = op;
    c.shape = shape;
    c.pass = pass;
    c.bound = Bound::Compute;
    c.flops = flops;
    c.bytes = bytes;
    c.baseline = baseline;
    return c;
  };

  // forward: y = conv(x, w) + b
  {
    std::vector<double> y_ref(ny);
    reference_forward(ref, x_host, w_host, b_host, y_ref, p);
    BenchCase c = make_case("fwd", table::forward_bytes(p));
    for (const auto& impl : gpu_versions) {
      auto forward = impl.forward;
      c.versions.push_back({impl.name, [&, forward] { forward(x.get(), w.get(), b.get(), y.get(), p); }});
      if (impl.input_rounding != 0)
        c.versions.back().check = [&] {
          Check check;
          check.compare("y", y.to_host(), y_ref,
                        tensor_core_tolerance(p, impl.input_rounding, table::forward_tolerance(p)));
          return check;
        };
    }
    c.versions.push_back(
        {kBf16Version, [&] { bf16_kernels.forward(x_bf16.get(), w.get(), b.get(), y_bf16.get(), p); }});
    c.versions.back().check = [&] {
      Check check;
      check.compare("y", y_bf16.to_host(), y_ref, bf16_activation_tolerance(p, table::forward_tolerance(p), true));
      return check;
    };
    c.poison_outputs = [&] {
      y.poison();
      y_bf16.poison();
    };
    c.check_outputs = [&] {
      Check check;
      check.compare("y", y.to_host(), y_ref, table::forward_tolerance(p));
      return check;
    };
    run_case(c, options);
  }
  // backward w.r.t. the input: dx = convᵀ(dy, w)
  {
    std::vector<double> dx_ref(nx);
    reference_backward_input(ref, dy_host, w_host, dx_ref, p);
    BenchCase c = make_case("bwd-data", table::backward_input_bytes(p));
    for (const auto& impl : gpu_versions) {
      auto backward_input = impl.backward_input;
      c.versions.push_back({impl.name, [&, backward_input] { backward_input(dy.get(), w.get(), dx.get(), p); }});
      if (impl.input_rounding != 0)
        c.versions.back().check = [&] {
          Check check;
          check.compare("dx", dx.to_host(), dx_ref,
                        tensor_core_tolerance(p, impl.input_rounding, table::backward_input_tolerance(p)));
          return check;
        };
    }
    c.versions.push_back(
        {kBf16Version, [&] { bf16_kernels.backward_input(dy_bf16.get(), w.get(), dx_bf16.get(), p); }});
    c.versions.back().check = [&] {
      Check check;
      check.compare("dx", dx_bf16.to_host(), dx_ref,
                    bf16_activation_tolerance(p, table::backward_input_tolerance(p), true));
      return check;
    };
    c.poison_outputs = [&] {
      dx.poison();
      dx_bf16.poison();
    };
    c.check_outputs = [&] {
      Check check;
      check.compare("dx", dx.to_host(), dx_ref, table::backward_input_tolerance(p));
      return check;
    };
    run_case(c, options);
  }
  // backward w.r.t. the weight and bias: dW = Σ x ⊗ dy, db = Σ dy
  {
    std::vector<double> dw_ref(nw), db_ref(nb);
    reference_backward_weight(ref, x_host, dy_host, dw_ref, db_ref, p);
    BenchCase c = make_case("bwd-weight", table::backward_weight_bytes(p));
    for (const auto& impl : gpu_versions) {
      auto backward_weight = impl.backward_weight;
      c.versions.push_back(
          {impl.name, [&, backward_weight] { backward_weight(x.get(), dy.get(), dw.get(), db.get(), p); }});
      if (impl.input_rounding != 0)
        c.versions.back().check = [&] {
          Check check;
          check.compare("dW", dw.to_host(), dw_ref,
                        tensor_core_tolerance(p, impl.input_rounding, table::backward_weight_tolerance(p)));
          check.compare("db", db.to_host(), db_ref, table::backward_bias_tolerance(p));  // an FP32 sum either way
          return check;
        };
    }
    c.versions.push_back({kBf16Version, [&] {
                            bf16_kernels.backward_weight(x_bf16.get(), dy_bf16.get(), dw.get(), db.get(), p);
                          }});
    c.versions.back().check = [&] {
      Check check;
      check.compare("dW", dw.to_host(), dw_ref, bf16_activation_tolerance(p, table::backward_weight_tolerance(p), false));
      check.compare("db", db.to_host(), db_ref, bf16_activation_tolerance(p, table::backward_bias_tolerance(p), false));
      return check;
    };
    c.poison_outputs = [&] {
      dw.poison();
      db.poison();
    };
    c.check_outputs = [&] {
      Check check;
      check.compare("dW", dw.to_host(), dw_ref, table::backward_weight_tolerance(p));
      check.compare("db", db.to_host(), db_ref, table::backward_bias_tolerance(p));
      return check;
    };
    run_case(c, options);
  }
}

}  // namespace fm::bench::conv
