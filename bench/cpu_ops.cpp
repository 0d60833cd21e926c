// bench/cpu_ops.cpp — `fmbench cpu-ops` (see bench/cpu_ops.h): ns per tiny CPU op, in three modes.
//
//   no grad    y = op(x, b) on inputs that do not require grad: checks, output allocation, dispatch,
//              the kernel on a few elements, and freeing the output when it goes out of scope.
//   recording  the same on inputs that require grad: plus the autograd Node (saved shapes/tensors,
//              the backward closure), created and freed with the output every iteration.
//   backward   y.backward(seed) on one recorded output, then the leaves' zero_grad(): the backward
//              closure, the gradients it allocates and their hand-over to the leaves (the forward is
//              not in this time; it is the recording row).
//
// Each row: one untimed warm-up run, a calibration run that picks the iteration count (or exactly
// --iterations N, for instruction counts under callgrind), then `repeats` timed repeats; the median
// and the minimum of the per-op times are printed. The machine's noise shows in median vs minimum.
#include "bench/cpu_ops.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/tensor.h"

namespace fm::bench {
namespace {

// Issue 13's targets (ns per op); the backward has none.
constexpr double kTargetNoGradNs = 300;
constexpr double kTargetRecordingNs = 400;

enum class Mode { NoGrad, Recording, Backward };
const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::NoGrad: return "no grad";
    case Mode::Recording: return "recording";
    case Mode::Backward: return "backward";
  }
  return "?";
}

using OpFunction = Tensor (*)(const Tensor& x, const Tensor& b);

struct OpCase {
  const char* op;
  Shape x_shape;
  Shape b_shape;  // empty: a unary op (b is not used)
  bool binary;
  OpFunction run;
};

// The tiny ops a small MLP's step is made of: the bias add (same shape and broadcast), a product,
// the activations, a reduction and a view.
const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = {
      {"x + b", {1}, {1}, true, [](const Tensor& x, const Tensor& b) { return x + b; }},
      {"x + b", {8}, {8}, true, [](const Tensor& x, const Tensor& b) { return x + b; }},
      {"x + b", {4, 8}, {8}, true, [](const Tensor& x, const Tensor& b) { return x + b; }},
      {"x * b", {8}, {8}, true, [](const Tensor& x, const Tensor& b) { return x * b; }},
      {"matmul", {1, 1}, {1, 1}, true, [](const Tensor& x, const Tensor& b) { return matmul(x, b); }},
      {"relu", {8}, {}, false, [](const Tensor& x, const Tensor&) { return relu(x); }},
      {"gelu", {8}, {}, false, [](const Tensor& x, const Tensor&) { return gelu(x); }},
      {"sum", {8}, {}, false, [](const Tensor& x, const Tensor&) { return sum(x); }},
      {"reshape", {8}, {}, false, [](const Tensor& x, const Tensor&) { return x.reshape({2, 4}); }},
  };
  return cases;
}

// Values of both signs (relu and gelu take both branches), the same on every run.
Tensor input(const Shape& shape, double phase) {
  std::vector<double> values(std::size_t(shape_numel(shape)));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.37 * double(i) - 1.0 + phase;
  return Tensor::from_vector(values, shape);
}

// One measured row: the inputs, the recorded output (backward mode) and a loop of `iterations` ops.
class Row {
 public:
  Row(const OpCase& op_case, Mode mode) : op_case_(op_case), mode_(mode) {
    x_ = input(op_case.x_shape, 0.0);
    if (op_case.binary) b_ = input(op_case.b_shape, 0.5);
    if (mode != Mode::NoGrad) {
      x_.set_requires_grad();
      if (op_case.binary) b_.set_requires_grad();
    }
    if (mode == Mode::Backward) {
      recorded_ = op_case.run(x_, b_);
      seed_ = Tensor::ones(recorded_.shape());
    }
  }

  // Seconds for `iterations` ops.
  double time(std::int64_t iterations) {
    const auto start = std::chrono::steady_clock::now();
    if (mode_ == Mode::Backward) {
      for (std::int64_t i = 0; i < iterations; ++i) {
        recorded_.backward(seed_);
        x_.zero_grad();
        if (op_case_.binary) b_.zero_grad();
      }
    } else {
      for (std::int64_t i = 0; i < iterations; ++i) {
        Tensor y = op_case_.run(x_, b_);  // freed at the end of the iteration, as in a real step
      }
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

 private:
  const OpCase& op_case_;
  Mode mode_;
  Tensor x_, b_, recorded_, seed_;
};

std::string shapes_text(const OpCase& op_case) {
  return op_case.binary ? shape_str(op_case.x_shape) + "+" + shape_str(op_case.b_shape)
                        : shape_str(op_case.x_shape);
}

// Whether --filter (empty: everything) selects the row "OP SHAPES MODE".
bool row_selected(const OpCase& op_case, Mode mode, const std::string& filter) {
  return filter.empty() ||
         cat(op_case.op, " ", shapes_text(op_case), " ", mode_name(mode)).find(filter) != std::string::npos;
}

}  // namespace

int run_cpu_ops(const CpuOpsOptions& requested) {
  CpuOpsOptions options = requested;
  if (options.quick) {
    options.repeats = 3;
    options.seconds_per_repeat = 0.0002;
  }
  // A --filter that matches no row is a typo, not an empty measurement.
  bool any_selected = false;
  for (const OpCase& op_case : op_cases())
    for (Mode mode : {Mode::NoGrad, Mode::Recording, Mode::Backward})
      any_selected = any_selected || row_selected(op_case, mode, options.filter);
  FM_CHECK(any_selected, ConfigError, "--filter \"", options.filter, "\": no row matches (rows are named \"OP SHAPES MODE\", "
           "e.g. \"", op_cases().front().op, " ", shapes_text(op_cases().front()), " ", mode_name(Mode::NoGrad), "\")");
  std::FILE* csv = nullptr;
  if (!options.csv_path.empty()) {
    csv = std::fopen(options.csv_path.c_str(), "w");
    if (!csv) throw IOError(cat("fmbench cpu-ops: cannot open ", options.csv_path, " for writing"));
    std::fprintf(csv, "op,shapes,mode,median_ns,min_ns,iterations,repeats,target_ns\n");
  }

  std::printf("fmbench cpu-ops: per-op cost of tiny float32 CPU ops (checks, allocation, dispatch, autograd)\n");
  std::printf("median and minimum of %d repeats, %s per repeat; targets from issue 13\n\n", options.repeats,
              options.iterations > 0 ? cat(options.iterations, " ops").c_str()
                                     : cat(options.seconds_per_repeat * 1e3, " ms").c_str());
  std::printf("%-8s %-14s %-10s %10s %10s %10s\n", "op", "shapes", "mode", "median ns", "min ns", "target");

  for (const OpCase& op_case : op_cases()) {
    for (Mode mode : {Mode::NoGrad, Mode::Recording, Mode::Backward}) {
      const std::string shapes = shapes_text(op_case);
      if (!row_selected(op_case, mode, options.filter)) continue;
      Row row(op_case, mode);
      row.time(1);  // warm-up: first allocations, first-touch of the code
      std::int64_t iterations = options.iterations;
      if (iterations <= 0) {
        const double probe = row.time(64) / 64;
        iterations = std::max<std::int64_t>(16, std::int64_t(options.seconds_per_repeat / std::max(probe, 1e-9)));
      }
      std::vector<double> ns_per_op;
      for (int r = 0; r < options.repeats; ++r) ns_per_op.push_back(row.time(iterations) / double(iterations) * 1e9);
      std::sort(ns_per_op.begin(), ns_per_op.end());
      const double median = ns_per_op[ns_per_op.size() / 2];
      const double minimum = ns_per_op.front();
      const double target = mode == Mode::NoGrad ? kTargetNoGradNs
                            : mode == Mode::Recording ? kTargetRecordingNs : 0;
      const std::string target_text = target > 0 ? cat("<= ", target) : std::string("-");
      std::printf("%-8s %-14s %-10s %10.0f %10.0f %10s\n", op_case.op, shapes.c_str(), mode_name(mode), median,
                  minimum, target_text.c_str());
      if (csv)
        std::fprintf(csv, "%s,\"%s\",%s,%.1f,%.1f,%lld,%d,%.0f\n", op_case.op, shapes.c_str(), mode_name(mode), median,
                     minimum, static_cast<long long>(iterations), options.repeats, target);
      std::fflush(stdout);
    }
  }
  if (csv) std::fclose(csv);
  std::printf("\nbackward: y.backward(seed) of one recorded op plus the leaves' zero_grad(); no target.\n");
  return 0;
}

}  // namespace fm::bench
