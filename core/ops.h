// core/ops.h — the differentiable operations on Tensors.
//
// Each op: checks shapes, dtypes and devices (throwing an error that names the op and what it got),
// allocates its output, dispatches to a CPU or CUDA kernel in kernels/, and records its backward
// (core/autograd.h) beside the forward. Elementwise ops broadcast NumPy-style.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "kernels/path_law.h"

namespace fm {

// ---- elementwise, broadcasting (core/ops_elementwise.cpp) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& x);
Tensor affine(const Tensor& x, double scale, double shift);  // scale·x + shift
Tensor pow_scalar(const Tensor& x, double exponent);
Tensor square(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor silu(const Tensor& x);  // x·sigmoid(x)
Tensor gelu(const Tensor& x);  // exact: x·Φ(x), Φ the standard normal CDF (erf form)

// ---- reductions (core/ops_reduce.cpp) ----
Tensor sum(const Tensor& x);  // all elements -> shape []
Tensor sum(const Tensor& x, std::vector<int> dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, std::vector<int> dims, bool keepdim = false);

// ---- matrix products (core/ops_matmul.cpp) ----
// a [..., M, K] · b [..., K, N]; batch dims must match, or b may be 2-D and shared across the batch.
Tensor matmul(const Tensor& a, const Tensor& b);
// x·Wᵀ + b for x [..., in], weight [out, in], bias [out] (or undefined: no bias), the Linear layer.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

// ---- a whole MLP forward for inference (core/ops_mlp.cpp) ----
enum class Activation { Silu, Gelu, Relu, Tanh };
Tensor activate(const Tensor& x, Activation activation);  // silu, gelu, relu or tanh of x
struct DenseLayer {
  Tensor weight, bias;  // [out, in] and [out] (bias may be undefined: no bias)
};
// x [N, in] through the layers: h = x·Wᵀ + b, then `activation` after every layer but the last.
// Without autograd (sampling, evaluation): throws ValueError when grad mode is on and any input
// requires grad. Bitwise what linear() and activate() give layer by layer, and that is how it runs
// on CUDA and in double; on the CPU in float the layers run fused, a block of rows at a time
// (kernels/mlp_inference.h), which is several times fewer parallel regions and memory passes.
Tensor mlp_inference(const Tensor& x, const std::vector<DenseLayer>& layers, Activation activation);

// ---- joining and copying (core/ops_shape.cpp) ----
Tensor concat(const std::vector<Tensor>& tensors, int dim);

// ---- gathering rows by a device-resident index (core/ops_gather.cpp) ----
// Row indices into a table, held where the table is: a host vector on the CPU, a device buffer on
// CUDA, uploaded once when the RowIndex is made. A training set kept on the GPU gathers every batch
// through one (its epoch order), so a step copies no indices and no data from the host. Every index
// is checked here, once, against the table's row count (ValueError naming the first bad one); a
// copy of a RowIndex shares its buffer.
struct LabelDropout;  // (below, with take_labels)
class RowIndex {
 public:
  RowIndex() = default;  // no rows, on the CPU
  // Each index checked against table_rows once, here; `what` names the caller in the error.
  RowIndex(const std::vector<std::int32_t>& rows, std::int64_t table_rows, Device device, const char* what = "RowIndex");
  std::int64_t size() const { return size_; }
  std::int64_t table_rows() const { return table_rows_; }  // what every index was checked against
  Device device() const { return device_; }
  const std::int32_t* data() const;  // a host pointer on the CPU, a device pointer on CUDA
  // New indices in the same buffer (same count, same table rows, checked likewise): a recorded step
  // that gathers through this index keeps reading it. On CUDA one copy queued on the stream, so
  // gathers queued before it read the old indices.
  void overwrite(const std::vector<std::int32_t>& rows);
  // The indices as a host vector: on CUDA one copy to the host and a wait (refused while a graph is
  // recorded: a model that reads its labels on the host cannot be recorded).
  std::vector<std::int32_t> to_vector() const;

 private:
  // take_labels writes its labels into a RowIndex's buffer (each below table_rows(), by its checks).
  friend void take_labels(RowIndex& out, const RowIndex& labels, const RowIndex& index, std::int64_t first,
                          const LabelDropout& dropout, const std::int64_t* first_on_device);
  friend void toy_labels(RowIndex& out, const ToyLaw& law, std::int32_t num_classes, PhiloxKey key, std::int64_t step,
                         std::int64_t first_sample, const std::uint32_t* step_on_device, const LabelDropout& dropout);
  std::int32_t* data_to_write() { return const_cast<std::int32_t*>(rows_.get()); }

  std::shared_ptr<const std::int32_t> rows_;  // host array or device buffer (freed by its deleter)
  std::int64_t size_ = 0, table_rows_ = 0;
  Device device_ = Device::CPU;
};
// Rows index[first], …, index[first + count − 1] of table [rows, ...] (any trailing shape) stacked
// into [count, ...], on the table's device, which must be the index's. Data only: the result has no
// history (no gradient reaches the table; embedding() is the differentiable lookup).
// first_on_device (CUDA only, a device word): the rows start at that position instead, read when the
// gather runs (a recorded training step: one recording serves every batch of an epoch); `first` is
// what the host checks, so the word must hold a position as valid as it.
Tensor take_rows(const Tensor& table, const RowIndex& index, std::int64_t first, std::int64_t count,
                 const std::int64_t* first_on_device = nullptr);

// A class-conditional batch's labels written into `out` (its buffer, on its device; a recorded
// training step's labels): out[i] = labels[index[first + i]] for i < out.size() — `labels` holds one
// label per example, `index` the epoch's order — or dropout.null_class where sample
// dropout.first_sample + i's label-dropout uniform, philox_uniform_at(dropout.key, dropout.step, ·, 0),
// is below dropout.probability (flow/trainer.h's drop_labels on the host draws the same numbers).
// first_on_device / dropout.step_on_device (CUDA only, device words): the position and the Philox
// step read when the kernel runs, as take_rows and philox_times do in a recorded step.
// Checked: one device for all three; the index's entries below labels.size(); labels below the null
// class; out's table_rows() = null_class + 1; the step and samples within the Philox counter's 2^32.
struct LabelDropout {
  double probability = 0;  // in [0, 1)
  std::int32_t null_class = 0;
  PhiloxKey key;
  std::int64_t step = 0, first_sample = 0;
  const std::uint32_t* step_on_device = nullptr;
};
void take_labels(RowIndex& out, const RowIndex& labels, const RowIndex& index, std::int64_t first,
                 const LabelDropout& dropout, const std::int64_t* first_on_device = nullptr);
// The labels (num_classes of them) of 2-D toy points first_sample … first_sample + out.size() − 1 of
// `law` at `step` in key's stream — the modes their points are drawn from (core/random.h
// philox_toy_points) — with the label dropout applied as take_labels applies it, into `out` (checked
// as take_labels' output): a recorded step of a class-conditional model on fresh points makes its
// labels on the device. step_on_device (CUDA): the points' step read from that word as the kernel runs.
void toy_labels(RowIndex& out, const ToyLaw& law, std::int32_t num_classes, PhiloxKey key, std::int64_t step,
                std::int64_t first_sample, const std::uint32_t* step_on_device, const LabelDropout& dropout);

// ---- an affine path's coefficients at per-sample times (core/ops_path.cpp) ----
// Rows α_t, σ_t, α̇_t, σ̇_t of each time t[i] (t [N]; the result [4, N] on t's device, in its dtype),
// computed in double by kernels/path_law.h and rounded once: the numbers path_at gives on the host,
// made where t is (a recorded training step reads no time back). Data only: no gradient reaches t.
using PathLaw = kernels::PathLaw;
using PathLawKind = kernels::PathLawKind;
using PathCoefficients = kernels::PathCoefficients;
Tensor path_coefficients(const Tensor& t, const PathLaw& law);
// The same at one time, on the host.
PathCoefficients path_coefficients_at(const PathLaw& law, double t);

// ---- losses (core/ops_loss.cpp) ----
Tensor mse_loss(const Tensor& prediction, const Tensor& target);  // mean((p - t)²)

}  // namespace fm
