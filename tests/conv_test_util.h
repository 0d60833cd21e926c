// tests/conv_test_util.h — the checks tests/test_kernel_conv2d.cpp and
// tests/test_kernel_conv_transpose2d.cpp share, over the case tables of cases/conv2d.h and
// cases/conv_transpose2d.h (both ops take parameters with the same field names, so every check is
// a template over kernels::Conv2dParams / kernels::ConvTranspose2dParams):
//   - every test case × every implementation of one kind against the float64 reference, with the
//     table's tolerances (each output NaN-poisoned first, so an element a kernel forgets fails);
//   - the float64 central-difference gradcheck of the reference backward;
//   - a double-precision CPU path (im2col<double>) against the reference.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cases/conv2d.h"
#include "kernel_test_util.h"

namespace fm::test::conv {

using cases::ImplKind;
using cases::conv::ConvCase;
using cases::conv::ConvImplementation;
using cases::conv::ConvReference;
using cases::conv::bias_count;
using cases::conv::input_count;
using cases::conv::output_count;
using cases::conv::weight_count;

// NaN-filled outputs: an element a kernel forgets to write fails the comparison.
inline std::vector<double> nan_doubles(std::size_t n) {
  return std::vector<double>(n, std::numeric_limits<double>::quiet_NaN());
}
inline std::vector<float> nan_floats(std::size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

// One case's float inputs in [-1, 1] and the float64 reference's results computed from them.
template <typename Params>
struct ConvProblem {
  Params params;
  std::vector<float> x, w, b, dy;
  std::vector<double> y, y_no_bias, dx, dw, db;
};

template <typename Params>
ConvProblem<Params> make_problem(const Params& p, const ConvReference<Params>& reference, std::uint64_t seed) {
  ConvProblem<Params> problem;
  problem.params = p;
  problem.x = random_floats(input_count(p), seed);
  problem.w = random_floats(weight_count(p), seed + 1);
  problem.b = random_floats(bias_count(p), seed + 2);
  problem.dy = random_floats(output_count(p), seed + 3);
  const std::vector<double> x = to_double(problem.x), w = to_double(problem.w), b = to_double(problem.b),
                            dy = to_double(problem.dy);
  problem.y = nan_doubles(output_count(p));
  problem.y_no_bias = nan_doubles(output_count(p));
  problem.dx = nan_doubles(input_count(p));
  problem.dw = nan_doubles(weight_count(p));
  problem.db = nan_doubles(bias_count(p));
  reference.forward(x.data(), w.data(), b.data(), problem.y.data(), p);
  reference.forward(x.data(), w.data(), nullptr, problem.y_no_bias.data(), p);
  reference.backward_input(dy.data(), w.data(), problem.dx.data(), p);
  reference.backward_weight(x.data(), dy.data(), problem.dw.data(), problem.db.data(), p);
  return problem;
}

// What one implementation computes for a problem: every pass, and the forward without bias and
// the weight gradient without dbias (a null bias must not be read; dW must not depend on whether
// db is wanted).
struct ConvOutputs {
  std::vector<float> y, y_no_bias, dx, dw, db, dw_no_dbias;
};

// A CPU implementation (host pointers), on NaN-poisoned outputs.
template <typename Params>
ConvOutputs run_on_host(const ConvImplementation<Params>& impl, const ConvProblem<Params>& problem) {
  const Params& p = problem.params;
  ConvOutputs out{nan_floats(output_count(p)), nan_floats(output_count(p)), nan_floats(input_count(p)),
                  nan_floats(weight_count(p)), nan_floats(bias_count(p)),   nan_floats(weight_count(p))};
  impl.forward(problem.x.data(), problem.w.data(), problem.b.data(), out.y.data(), p);
  impl.forward(problem.x.data(), problem.w.data(), nullptr, out.y_no_bias.data(), p);
  impl.backward_input(problem.dy.data(), problem.w.data(), out.dx.data(), p);
  impl.backward_weight(problem.x.data(), problem.dy.data(), out.dw.data(), out.db.data(), p);
  impl.backward_weight(problem.x.data(), problem.dy.data(), out.dw_no_dbias.data(), nullptr, p);
  return out;
}

// A GPU implementation (device pointers), on NaN-poisoned device outputs.
template <typename Params>
ConvOutputs run_on_device(const ConvImplementation<Params>& impl, const ConvProblem<Params>& problem) {
  const Params& p = problem.params;
  const DeviceArray x(problem.x), w(problem.w), b(problem.b), dy(problem.dy);
  const DeviceArray y = DeviceArray::poisoned(output_count(p)), y_no_bias = DeviceArray::poisoned(output_count(p)),
                    dx = DeviceArray::poisoned(input_count(p)), dw = DeviceArray::poisoned(weight_count(p)),
                    db = DeviceArray::poisoned(bias_count(p)), dw_no_dbias = DeviceArray::poisoned(weight_count(p));
  impl.forward(x.get(), w.get(), b.get(), y.get(), p);
  impl.forward(x.get(), w.get(), nullptr, y_no_bias.get(), p);
  impl.backward_input(dy.get(), w.get(), dx.get(), p);
  impl.backward_weight(x.get(), dy.get(), dw.get(), db.get(), p);
  impl.backward_weight(x.get(), dy.get(), dw_no_dbias.get(), nullptr, p);
  return {y.to_host(), y_no_bias.to_host(), dx.to_host(), dw.to_host(), db.to_host(), dw_no_dbias.to_host()};
}

// The outputs against the reference, with the table's tolerance of each pass (cases/conv2d.h).
template <typename Params>
void require_outputs_match(const ConvOutputs& out, const ConvProblem<Params>& problem, ImplKind kind) {
  namespace tol = cases::conv;
  const Params& p = problem.params;
  require_matches_reference("forward", out.y, problem.y, tol::forward_tolerance(p));
  require_matches_reference("forward without bias", out.y_no_bias, problem.y_no_bias, tol::forward_tolerance(p));
  require_matches_reference("backward input", out.dx, problem.dx, tol::backward_input_tolerance(p));
  require_matches_reference("backward weight: dW", out.dw, problem.dw, tol::backward_weight_tolerance(p));
  require_matches_reference("backward weight: db", out.db, problem.db, tol::backward_bias_tolerance(p));
  require_matches_reference("backward weight without dbias", out.dw_no_dbias, problem.dw,
                            tol::backward_weight_tolerance(p));
  // The CPU paths compute dW the same way whether or not db is wanted: bitwise equal.
  if (!cases::impl_on_gpu(kind)) {
    INFO("backward weight without dbias, bitwise against with dbias");
    FM_REQUIRE_CLOSE(out.dw_no_dbias.data(), out.dw.data(), out.dw.size(), 0.0, 0.0);
  }
}

// Every implementation of `kind` in `implementations` against the reference on every case of the
// table with kTest; `op` and the case's shape name and `where` go into the failure message. Returns how many
// (case, implementation) pairs were checked.
template <typename Params>
int check_implementations(const char* op, const std::vector<ConvCase<Params>>& table,
                          const std::vector<ConvImplementation<Params>>& implementations, ImplKind kind,
                          const ConvReference<Params>& reference, std::uint64_t seed) {
  int checked = 0;
  for (const ConvCase<Params>& c : table) {
    if (!(c.uses & cases::kTest)) continue;
    const ConvProblem<Params> problem = make_problem(c.params, reference, seed);
    for (const ConvImplementation<Params>& impl : implementations) {
      if (impl.kind != kind || impl.input_rounding != 0) continue;  // tensor cores: check_tensor_core_within_bound
      if (impl.no_error_bound) continue;                             // the lab's to report
      INFO(impl.name << ": " << op << " " << cases::conv::shape_name(c.params) << " (" << c.where << ")");
      const ConvOutputs out = cases::impl_on_gpu(kind) ? run_on_device(impl, problem) : run_on_host(impl, problem);
      require_outputs_match(out, problem, kind);
      ++checked;
    }
  }
  return checked;
}

// A tensor-core implementation (device pointers) against the float64 reference on every test case of
// the table, element by element within the derived bound (tests/test_kernel_gemm.cpp derives it for a
// GEMM; a convolution pass is one): with u = impl.input_rounding (2^-11 for inputs rounded to nearest
// TF32, 2^-8 for bfloat16; the products of either are exact in FP32), v = 2^-23 (FP32
// accumulation, truncation as the worst case) and γ = (K + 258)·v / (1 − (K + 258)·v) for a reduction
// of K products split into at most 256 slices added afterwards (+ 2 for the bias or split sums):
//   |out − exact| ≤ ((2u + u²) + (1 + u)²·γ)·m + 2v·(m + 1),
// where m is the same pass on |x|, |w|, |dy| (Σ|products|) and the 1 covers a bias with |b| ≤ 1.
// K is taken as the largest of the passes' reductions (a bound for each). The bias gradient is
// an FP32 channel sum in both paths: the table's tolerance. Returns the number of cases checked.
// `loose_scale` > 0 replaces the derived ((2u + u²) + (1 + u)²·γ) by that fraction of Σ|products|:
// for the versions with no bound (transform algorithms), a check that they run and land near the
// reference, not a proof of their accuracy.
template <typename Params>
int check_tensor_core_within_bound(const char* op, const std::vector<ConvCase<Params>>& table,
                                   const ConvImplementation<Params>& impl, const ConvReference<Params>& reference,
                                   std::uint64_t seed, double loose_scale = 0) {
  int checked = 0;
  for (const ConvCase<Params>& c : table) {
    if (!(c.uses & cases::kTest)) continue;
    const Params& p = c.params;
    const ConvProblem<Params> problem = make_problem(p, reference, seed);
    INFO(impl.name << ": " << op << " " << cases::conv::shape_name(p) << " (" << c.where << ")");
    const ConvOutputs out = run_on_device(impl, problem);
    // Σ|products| of each pass: the reference on absolute values.
    auto absolute = [](std::vector<float> v) {
      std::vector<double> a(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) a[i] = std::abs(double(v[i]));
      return a;
    };
    const std::vector<double> ax = absolute(problem.x), aw = absolute(problem.w), ady = absolute(problem.dy);
    std::vector<double> my = nan_doubles(output_count(p)), mdx = nan_doubles(input_count(p)),
                        mdw = nan_doubles(weight_count(p)), mdb = nan_doubles(bias_count(p));
    reference.forward(ax.data(), aw.data(), nullptr, my.data(), p);
    reference.backward_input(ady.data(), aw.data(), mdx.data(), p);
    reference.backward_weight(ax.data(), ady.data(), mdw.data(), mdb.data(), p);
    // Reductions: channels × taps (forward, input gradient) or batch × pixels (weight gradient; the
    // output's pixels for conv2d, the input's for conv_transpose2d).
    const double taps = double(p.kernel_h) * p.kernel_w;
    const double reduction = std::max({p.in_channels * taps, p.out_channels * taps,
                                       double(p.batch) * p.out_height() * p.out_width(),
                                       double(p.batch) * p.in_height * p.in_width});
    const double u = impl.input_rounding, v = 0x1p-23, gamma = (reduction + 258) * v / (1 - (reduction + 258) * v);
    const double scale = loose_scale > 0 ? loose_scale : (2 * u + u * u) + (1 + u) * (1 + u) * gamma;
    auto require_within = [&](const char* what, const std::vector<float>& got, const std::vector<double>& want,
                              const std::vector<double>& magnitude) {
      REQUIRE(got.size() == want.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        const double bound = scale * magnitude[i] + 2 * v * (magnitude[i] + 1);
        if (!(std::abs(double(got[i]) - want[i]) <= bound))
          FAIL(what << ": element " << i << " = " << got[i] << ", exact " << want[i] << ", allowed error " << bound);
      }
    };
    require_within("forward", out.y, problem.y, my);
    require_within("forward without bias", out.y_no_bias, problem.y_no_bias, my);
    require_within("backward input", out.dx, problem.dx, mdx);
    require_within("backward weight: dW", out.dw, problem.dw, mdw);
    require_within("backward weight without dbias", out.dw_no_dbias, problem.dw, mdw);
    require_matches_reference("backward weight: db", out.db, problem.db, cases::conv::backward_bias_tolerance(p));
    ++checked;
  }
  return checked;
}

// Every version with no error bound (cuDNN's benchmark choices) through the check above with a loose
// scale: they run, and every element lands within 1% of its Σ|products| of the reference (FFT and
// Winograd in FP32 were 1e-3 off on an H100, docs/ops/conv2d.md).
template <typename Params>
int check_unbounded_near_reference(const char* op, const std::vector<ConvCase<Params>>& table,
                                   const std::vector<ConvImplementation<Params>>& implementations,
                                   const ConvReference<Params>& reference, std::uint64_t seed) {
  int checked = 0;
  for (const ConvImplementation<Params>& impl : implementations)
    if (impl.no_error_bound) checked += check_tensor_core_within_bound(op, table, impl, reference, seed, 1e-2);
  return checked;
}

// Every implementation of a table whose input_rounding is `input_rounding` (2^-11: the TF32 ones,
// 2^-8: the bfloat16 ones) through the check above.
template <typename Params>
int check_tensor_core_within_bound(const char* op, const std::vector<ConvCase<Params>>& table,
                                   const std::vector<ConvImplementation<Params>>& implementations,
                                   const ConvReference<Params>& reference, std::uint64_t seed,
                                   double input_rounding) {
  int checked = 0;
  for (const ConvImplementation<Params>& impl : implementations) {
    if (impl.input_rounding == input_rounding && !impl.no_error_bound)
      checked += check_tensor_core_within_bound(op, table, impl, reference, seed);
  }
  return checked;
}

// The reference backward against float64 central differences of L = Σ y(x, w, b)·r, for x, w, b.
template <typename Params>
void gradcheck_reference(const Params& p, const ConvReference<Params>& reference, std::uint64_t seed) {
  std::vector<double> x = random_doubles(input_count(p), seed), w = random_doubles(weight_count(p), seed + 1),
                      b = random_doubles(bias_count(p), seed + 2);
  const std::vector<double> r = random_doubles(output_count(p), seed + 3);
  std::vector<double> dx = nan_doubles(x.size()), dw = nan_doubles(w.size()), db = nan_doubles(b.size());
  reference.backward_input(r.data(), w.data(), dx.data(), p);
  reference.backward_weight(x.data(), r.data(), dw.data(), db.data(), p);
  auto loss = [&] {
    std::vector<double> y(output_count(p));
    reference.forward(x.data(), w.data(), b.data(), y.data(), p);
    return weighted_sum(y, r);
  };
  require_gradient_matches("x", x, dx, loss);
  require_gradient_matches("weight", w, dw, loss);
  require_gradient_matches("bias", b, db, loss);
}

// A double-precision path (the im2col kernels on double) against the reference, also in double:
// the same sums in another order differ by ~1e-16 per term, and 1e-11 leaves a wide margin.
template <typename Params>
void require_double_path_matches(const Params& p, const ConvReference<Params>& path,
                                 const ConvReference<Params>& reference, std::uint64_t seed) {
  const double atol = 1e-11, rtol = 1e-11;
  const std::vector<double> x = random_doubles(input_count(p), seed), w = random_doubles(weight_count(p), seed + 1),
                            b = random_doubles(bias_count(p), seed + 2),
                            dy = random_doubles(output_count(p), seed + 3);
  const std::size_t nx = x.size(), nw = w.size(), nb = b.size(), ny = dy.size();

  std::vector<double> y_ref = nan_doubles(ny), y = nan_doubles(ny);
  reference.forward(x.data(), w.data(), b.data(), y_ref.data(), p);
  path.forward(x.data(), w.data(), b.data(), y.data(), p);
  FM_REQUIRE_CLOSE(y.data(), y_ref.data(), ny, atol, rtol);

  std::vector<double> dx_ref = nan_doubles(nx), dx = nan_doubles(nx);
  reference.backward_input(dy.data(), w.data(), dx_ref.data(), p);
  path.backward_input(dy.data(), w.data(), dx.data(), p);
  FM_REQUIRE_CLOSE(dx.data(), dx_ref.data(), nx, atol, rtol);

  std::vector<double> dw_ref = nan_doubles(nw), dw = nan_doubles(nw), db_ref = nan_doubles(nb),
                      db = nan_doubles(nb), dw_no_dbias = nan_doubles(nw);
  reference.backward_weight(x.data(), dy.data(), dw_ref.data(), db_ref.data(), p);
  path.backward_weight(x.data(), dy.data(), dw.data(), db.data(), p);
  FM_REQUIRE_CLOSE(dw.data(), dw_ref.data(), nw, atol, rtol);
  FM_REQUIRE_CLOSE(db.data(), db_ref.data(), nb, atol, rtol);
  // A null dbias is allowed and dW must not depend on it.
  path.backward_weight(x.data(), dy.data(), dw_no_dbias.data(), nullptr, p);
  FM_REQUIRE_CLOSE(dw_no_dbias.data(), dw.data(), nw, 0.0, 0.0);
}

}  // namespace fm::test::conv
