// bench/conv_bench_common.h — the driver shared by bench_conv2d.cu and bench_conv_transpose2d.cu:
// for one layer, random inputs, the CPU reference of each pass, and the three cases (fwd, bwd-data,
// bwd-weight) handed to run_case. The op files keep what differs: the formulas, the layer list and
// the table of implementations.
//
// Both ops share the parameter field names (batch, in_channels, ..., out_height()), so the driver is
// one template over Conv2dParams / ConvTranspose2dParams.
//
// Reference at full batch, on all host threads: the reference loops (kernels/cpu/conv2d_reference.cpp)
// are single-threaded and per-sample independent for fwd and bwd-data, so each thread runs them on a
// contiguous slice of the batch (batch = slice length). bwd-weight sums over the batch: each slice
// writes its own partial dW, db, added afterwards in slice order. All in float64.
#pragma once
#include <cfloat>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench/harness.h"
#include "kernels/conv2d.h"

namespace fm::bench::conv {

// ---- sizes ------------------------------------------------------------------------------------
template <typename Params>
std::size_t input_count(const Params& p) {
  return std::size_t(p.batch) * p.in_channels * p.in_height * p.in_width;
}
template <typename Params>
std::size_t output_count(const Params& p) {
  return std::size_t(p.batch) * p.out_channels * p.out_height() * p.out_width();
}
// conv2d [C_out, C_in, kh, kw] and conv_transpose2d [C_in, C_out, kh, kw] hold the same count.
template <typename Params>
std::size_t weight_count(const Params& p) {
  return std::size_t(p.out_channels) * p.in_channels * p.kernel_h * p.kernel_w;
}

// The longest sum behind one element of each pass's result (sets the float tolerance).
struct SumLengths {
  long forward, backward_input, backward_weight, backward_bias;
};
inline SumLengths sum_lengths(const kernels::Conv2dParams& p) {
  return {long(p.in_channels) * p.kernel_h * p.kernel_w, long(p.out_channels) * p.kernel_h * p.kernel_w,
          long(p.batch) * p.out_height() * p.out_width(), long(p.batch) * p.out_height() * p.out_width()};
}
inline SumLengths sum_lengths(const kernels::ConvTranspose2dParams& p) {
  return {long(p.in_channels) * p.kernel_h * p.kernel_w, long(p.out_channels) * p.kernel_h * p.kernel_w,
          long(p.batch) * p.in_height * p.in_width, long(p.batch) * p.out_height() * p.out_width()};
}

// A float sum of `terms` products of values in [-1, 1], against a float64 reference: each addition
// rounds by up to ε/2 of a partial sum that random-walks to ~√i/3, so the error is typically
// ~ε·terms/8; 4·ε·terms is ~30× that, and one wrong, missing or doubled tap (|x·w| ~ 0.25) is far
// beyond it (tests/test_kernel_conv2d.cpp, float_sum_atol). Plus a few ulps of each element's size.
inline Tolerance float_sum_tolerance(long terms) { return {1e-6 + 4.0 * FLT_EPSILON * double(terms), 1e-5}; }

// ---- implementations and the reference ---------------------------------------------------------
template <typename Params>
struct ConvImplementation {
  const char* name;
  void (*forward)(const float* x, const float* weight, const float* bias, float* y, const Params& p);
  void (*backward_input)(const float* dy, const float* weight, float* dx, const Params& p);
  void (*backward_weight)(const float* x, const float* dy, float* dweight, float* dbias, const Params& p);
};

template <typename Params>
struct ConvReference {
  void (*forward)(const double* x, const double* weight, const double* bias, double* y, const Params& p);
  void (*backward_input)(const double* dy, const double* weight, double* dx, const Params& p);
  void (*backward_weight)(const double* x, const double* dy, double* dweight, double* dbias, const Params& p);
};

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

// ---- one layer: three cases --------------------------------------------------------------------
// flops: of one pass (the three passes of a convolution do the same multiply-adds).
template <typename Params>
void bench_layer(const char* op, const std::string& shape, const char* where, const Params& p, double flops,
                 const std::vector<ConvImplementation<Params>>& implementations, const ConvReference<Params>& ref,
                 const char* baseline, const Options& options) {
  const std::size_t nx = input_count(p), ny = output_count(p), nw = weight_count(p), nb = std::size_t(p.out_channels);
  const SumLengths terms = sum_lengths(p);
  std::printf("   # %s: %s\n", shape.c_str(), where);

  DeviceArray x = random_array(nx, options), w = random_array(nw, options), b = random_array(nb, options),
              dy = random_array(ny, options);
  DeviceArray y(ny), dx(nx), dw(nw), db(nb);
  const std::vector<double> x_host = to_double(x.to_host()), w_host = to_double(w.to_host()),
                            b_host = to_double(b.to_host()), dy_host = to_double(dy.to_host());
  const double bytes_x = 4.0 * double(nx), bytes_y = 4.0 * double(ny), bytes_w = 4.0 * double(nw),
               bytes_b = 4.0 * double(nb);

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

  // forward: y = conv(x, w) + b; fewest bytes: read x, w, b, write y
  {
    std::vector<double> y_ref(ny);
    reference_forward(ref, x_host, w_host, b_host, y_ref, p);
    BenchCase c = make_case("fwd", bytes_x + bytes_w + bytes_b + bytes_y);
    for (const auto& impl : implementations) {
      auto forward = impl.forward;
      c.versions.push_back({impl.name, [&, forward] { forward(x.get(), w.get(), b.get(), y.get(), p); }});
    }
    c.poison_outputs = [&] { y.poison(); };
    c.check_outputs = [&] {
      Check check;
      check.compare("y", y.to_host(), y_ref, float_sum_tolerance(terms.forward));
      return check;
    };
    run_case(c, options);
  }
  // backward w.r.t. the input: dx = convᵀ(dy, w); fewest bytes: read dy, w, write dx
  {
    std::vector<double> dx_ref(nx);
    reference_backward_input(ref, dy_host, w_host, dx_ref, p);
    BenchCase c = make_case("bwd-data", bytes_y + bytes_w + bytes_x);
    for (const auto& impl : implementations) {
      auto backward_input = impl.backward_input;
      c.versions.push_back({impl.name, [&, backward_input] { backward_input(dy.get(), w.get(), dx.get(), p); }});
    }
    c.poison_outputs = [&] { dx.poison(); };
    c.check_outputs = [&] {
      Check check;
      check.compare("dx", dx.to_host(), dx_ref, float_sum_tolerance(terms.backward_input));
      return check;
    };
    run_case(c, options);
  }
  // backward w.r.t. the weight and bias: dW = Σ x ⊗ dy, db = Σ dy; fewest bytes: read x, dy, write dW, db
  {
    std::vector<double> dw_ref(nw), db_ref(nb);
    reference_backward_weight(ref, x_host, dy_host, dw_ref, db_ref, p);
    BenchCase c = make_case("bwd-weight", bytes_x + bytes_y + bytes_w + bytes_b);
    for (const auto& impl : implementations) {
      auto backward_weight = impl.backward_weight;
      c.versions.push_back(
          {impl.name, [&, backward_weight] { backward_weight(x.get(), dy.get(), dw.get(), db.get(), p); }});
    }
    c.poison_outputs = [&] {
      dw.poison();
      db.poison();
    };
    c.check_outputs = [&] {
      Check check;
      check.compare("dW", dw.to_host(), dw_ref, float_sum_tolerance(terms.backward_weight));
      check.compare("db", db.to_host(), db_ref, float_sum_tolerance(terms.backward_bias));
      return check;
    };
    run_case(c, options);
  }
}

}  // namespace fm::bench::conv
