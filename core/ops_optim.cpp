// core/ops_optim.cpp — in-place optimiser operations over flat buffers (see core/ops_optim.h).
#include "core/ops_optim.h"

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "core/dispatch.h"
#include "core/tensor_internal.h"
#include "kernels/optimizer.h"
#include "kernels/runtime.h"

namespace fm {
namespace {

template <typename T>
T* pointer_at(const Tensor& buffer, std::int64_t begin) {
  return buffer.defined() ? buffer.data<T>() + begin : nullptr;
}

// The kernel's arguments: each double converted to T as UnaryOp::Affine converts alpha and beta.
template <typename T>
kernels::FusedStepArgs<T> kernel_arguments(const FusedStepBuffers& b, std::int64_t begin, std::int64_t count,
                                           const FusedStepHyperparameters& h) {
  kernels::FusedStepArgs<T> a;
  a.param = pointer_at<T>(b.param, begin);
  a.grad = pointer_at<T>(b.grad, begin);
  a.exp_avg = pointer_at<T>(b.exp_avg, begin);
  a.exp_avg_sq = pointer_at<T>(b.exp_avg_sq, begin);
  a.momentum = pointer_at<T>(b.momentum, begin);
  a.shadow = h.ema ? pointer_at<T>(b.shadow, begin) : nullptr;
  a.count = count;
  a.clip = h.clip;
  a.clip_scale = T(h.clip_scale);
  a.clip_sum_of_squares = h.clip_on_device ? b.clip_sum_of_squares.data<T>() : nullptr;
  a.clip_max_norm = h.clip_max_norm;
  a.rule = h.rule == FusedUpdateRule::SGD    ? kernels::UpdateRule::SGD
           : h.rule == FusedUpdateRule::Adam ? kernels::UpdateRule::Adam
                                             : kernels::UpdateRule::None;
  a.weight_decay = h.weight_decay;
  a.weight_decay_value = T(h.weight_decay_value);
  a.decoupled = h.decoupled;
  a.decoupled_factor = T(h.decoupled_factor);
  a.one_minus_beta1 = T(h.one_minus_beta1);
  a.beta2 = T(h.beta2);
  a.one_minus_beta2 = T(h.one_minus_beta2);
  a.inverse_sqrt_bias2 = T(h.inverse_sqrt_bias2);
  a.eps = T(h.eps);
  a.neg_step_size = T(h.neg_step_size);
  a.has_momentum = h.has_momentum;
  a.first_momentum_step = h.first_momentum_step;
  a.nesterov = h.nesterov;
  a.momentum_value = T(h.momentum);
  a.one_minus_dampening = T(h.one_minus_dampening);
  a.lr = T(h.lr);
  a.ema_decay = T(h.ema_decay);
  a.ema_one_minus_decay = T(h.ema_one_minus_decay);
  a.per_step = b.per_step;
  return a;
}

}  // namespace

void fused_step(const FusedStepBuffers& buffers, std::int64_t begin, std::int64_t count,
                const FusedStepHyperparameters& hyper) {
  const Tensor& param = buffers.param;
  internal::check_defined("fused_step", param, "parameters");
  FM_CHECK(param.dim() == 1 && param.is_contiguous() && begin >= 0 && count >= 0 && begin + count <= param.numel(),
           ShapeError, "fused_step: range [", begin, ", ", begin + count, ") outside the flat buffer ",
           param.describe());
  for (const Tensor* t : {&buffers.grad, &buffers.exp_avg, &buffers.exp_avg_sq, &buffers.momentum, &buffers.shadow})
    if (t->defined()) {
      FM_CHECK(t->shape() == param.shape() && t->is_contiguous(), ShapeError, "fused_step: buffer ", t->describe(),
               " does not match the parameters ", param.describe());
      FM_CHECK(t->dtype() == param.dtype() && t->device() == param.device(), DTypeError, "fused_step: buffer ",
               t->describe(), " does not match the parameters ", param.describe());
    }
  if (hyper.clip_on_device) {
    const Tensor& squares = buffers.clip_sum_of_squares;
    FM_CHECK(param.device() == Device::CUDA, DeviceError,
             "fused_step: clipping decided on the device is for CUDA buffers (the CPU decides on the host)");
    FM_CHECK(squares.defined() && squares.numel() == 1 && squares.dtype() == param.dtype() &&
                 squares.device() == param.device(),
             ShapeError, "fused_step: the squared norm for clipping must be one element like the parameters, got ",
             squares.defined() ? squares.describe() : std::string("undefined"));
  }
  FM_CHECK(!buffers.per_step || param.device() == Device::CUDA, DeviceError,
           "fused_step: per-step scalars from device memory are for CUDA buffers (a recorded step)");
  dispatch_kernel(
      "fused_step", param.device(), param.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::fused_step_cpu<T>(kernel_arguments<T>(buffers, begin, count, hyper));
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::fused_step_cuda(kernel_arguments<T>(buffers, begin, count, hyper));
      });
}

double segment_sum_of_squares(const Tensor& flat_grad, const std::vector<std::int64_t>& offsets,
                              const std::vector<std::int64_t>& counts, std::vector<double>& scratch) {
  FM_CHECK(flat_grad.defined() && flat_grad.dim() == 1 && flat_grad.is_contiguous(), ShapeError,
           "segment_sum_of_squares: expects a flat contiguous gradient");
  FM_CHECK(offsets.size() == counts.size(), ValueError, "segment_sum_of_squares: ", offsets.size(), " offsets but ",
           counts.size(), " counts");
  FM_CHECK(flat_grad.device() == Device::CPU, DeviceError, "segment_sum_of_squares: CPU buffers only");
  if (offsets.empty()) return 0.0;
  scratch.resize(offsets.size());  // no allocation once the scratch has the size
  double total = 0;
  dispatch_kernel<CpuTypes, TypeList<>>(
      "segment_sum_of_squares", flat_grad.device(), flat_grad.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::segment_sum_of_squares_cpu<T>(flat_grad.data<T>(), offsets.data(), counts.data(),
                                               int(offsets.size()), scratch.data());
        // clip_grad_norm adds the per-parameter sums as tensors of the element type, in order.
        T sum = T(scratch[0]);
        for (std::size_t k = 1; k < scratch.size(); ++k) sum = sum + T(scratch[k]);
        total = double(sum);
      },
      [](auto) {});
  return total;
}

Tensor device_sum_of_squares(const Tensor& flat_grad, const std::vector<std::int64_t>& offsets,
                             const std::vector<std::int64_t>& counts) {
  FM_CHECK(flat_grad.defined() && flat_grad.dim() == 1 && flat_grad.is_contiguous(), ShapeError,
           "device_sum_of_squares: expects a flat contiguous gradient");
  FM_CHECK(flat_grad.device() == Device::CUDA, DeviceError, "device_sum_of_squares: CUDA buffers only, got ",
           flat_grad.describe());
  FM_CHECK(offsets.size() == counts.size(), ValueError, "device_sum_of_squares: ", offsets.size(),
           " offsets but ", counts.size(), " counts");
  std::int64_t blocks = 0;
  for (std::size_t k = 0; k < offsets.size(); ++k) {
    FM_CHECK(offsets[k] >= 0 && counts[k] >= 0 && offsets[k] + counts[k] <= flat_grad.numel(), ShapeError,
             "device_sum_of_squares: range [", offsets[k], ", ", offsets[k] + counts[k], ") outside ",
             flat_grad.describe());
    blocks += kernels::norm_blocks(counts[k]);
  }
  Tensor total = Tensor::empty({}, flat_grad.dtype(), Device::CUDA);
  dispatch_cuda_kernel("device_sum_of_squares", flat_grad.dtype(), [&](auto type) {
    using T = element_type<decltype(type)>;
    // The partials live only between the two launches. Freed at once: the caching allocator hands
    // the block out again only to work queued after these launches on the one stream.
    const std::size_t bytes = std::size_t(std::max<std::int64_t>(blocks, 1)) * sizeof(double);
    double* partials = static_cast<double*>(kernels::cuda_malloc(bytes));
    std::int64_t written = 0;
    for (std::size_t k = 0; k < offsets.size(); ++k) {
      kernels::sum_of_squares_partials_cuda(flat_grad.data<T>() + offsets[k], counts[k], partials + written);
      written += kernels::norm_blocks(counts[k]);
    }
    kernels::sum_partials_cuda(partials, blocks, total.data<T>());
    kernels::cuda_free(partials);
  });
  return total;
}

LossAccumulator::~LossAccumulator() { kernels::cuda_free(device_slots_); }

void LossAccumulator::add(const Tensor& loss, bool begins_epoch, const StepScalars* per_step) {
  internal::check_defined("LossAccumulator::add", loss, "loss");
  FM_CHECK(loss.numel() == 1, ShapeError, "LossAccumulator::add: the loss must be one element, got ", loss.describe());
  FM_CHECK(!per_step || (loss.device() == Device::CUDA && device_slots_), DeviceError,
           "LossAccumulator::add: a per-step row is for CUDA losses added after the first one, got ", loss.describe());
  if (loss.device() == Device::CUDA && !device_slots_) {
    device_slots_ = static_cast<double*>(kernels::cuda_malloc(sizeof host_slots_));
    kernels::cuda_copy_to_device(device_slots_, host_slots_, sizeof host_slots_);  // the sums so far
  }
  FM_CHECK(loss.device() == Device::CUDA || !device_slots_, DeviceError,
           "LossAccumulator::add: a CPU loss after CUDA losses (the sums live on the device)");
  dispatch_kernel(
      "accumulate_loss", loss.device(), loss.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::accumulate_loss_cpu<T>(host_slots_, loss.data<T>(), begins_epoch);
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::accumulate_loss_cuda(device_slots_, loss.data<T>(), begins_epoch, per_step);
      });
}

int LossAccumulator::queue(HostReadback& readback) const {
  return device_slots_ ? readback.add_doubles(device_slots_, 4, true) : readback.add_doubles(host_slots_, 4, false);
}

LossAccumulator::Sums LossAccumulator::sums_in(const HostReadback& readback, int region) {
  Sums sums;
  sums.last = readback.value(region, kernels::kLossLast);
  sums.since_restart = readback.value(region, kernels::kLossSinceRestart);
  sums.epoch = readback.value(region, kernels::kLossEpoch);
  sums.finished_epoch = readback.value(region, kernels::kLossFinishedEpoch);
  return sums;
}

HostReadback::~HostReadback() { kernels::cuda_free(staging_); }

void HostReadback::clear() { regions_.clear(); }

int HostReadback::add_doubles(const double* src, std::int64_t count, bool on_device) {
  const std::size_t offset = regions_.empty() ? 0 : regions_.back().offset + regions_.back().bytes;
  regions_.push_back({src, std::size_t(count) * sizeof(double), (offset + 7) / 8 * 8, DType::Float64, on_device, {}});
  return int(regions_.size()) - 1;
}

int HostReadback::add(const Tensor& tensor) {
  internal::check_defined("HostReadback::add", tensor, "tensor");
  // value() reads float32 and float64 elements; the losses and norms it carries are never bfloat16.
  FM_CHECK(tensor.dtype() != DType::BFloat16, DTypeError, "HostReadback::add: ", tensor.describe(),
           " (it reads float32 and float64 tensors)");
  Tensor contiguous = tensor.detach().contiguous();
  const std::size_t offset = regions_.empty() ? 0 : regions_.back().offset + regions_.back().bytes;
  regions_.push_back({contiguous.raw_data(), std::size_t(contiguous.numel()) * dtype_size(contiguous.dtype()),
                      (offset + 7) / 8 * 8, contiguous.dtype(), contiguous.device() == Device::CUDA, contiguous});
  return int(regions_.size()) - 1;
}

void HostReadback::read() {
  const std::size_t total = regions_.empty() ? 0 : regions_.back().offset + regions_.back().bytes;
  host_.resize(total);
  std::size_t device_end = 0;  // the staging buffer holds every region; only device ones are copied into it
  for (const Region& r : regions_)
    if (r.on_device) device_end = r.offset + r.bytes;
  if (device_end > 0) {
    if (staging_bytes_ < device_end) {
      kernels::cuda_free(staging_);
      staging_ = kernels::cuda_malloc(device_end);
      staging_bytes_ = device_end;
    }
    for (const Region& r : regions_)
      if (r.on_device && r.bytes > 0)
        kernels::cuda_copy_device_to_device(static_cast<unsigned char*>(staging_) + r.offset, r.src, r.bytes);
    kernels::cuda_copy_to_host(host_.data(), staging_, device_end);  // the one wait
  }
  for (const Region& r : regions_)
    if (!r.on_device && r.bytes > 0) std::memcpy(host_.data() + r.offset, r.src, r.bytes);
}

double HostReadback::value(int k, std::int64_t i) const {
  const Region& r = regions_.at(std::size_t(k));
  FM_CHECK(i >= 0 && std::size_t(i) * dtype_size(r.dtype) < r.bytes, ValueError, "HostReadback: element ", i,
           " outside region ", k);
  const unsigned char* p = host_.data() + r.offset + std::size_t(i) * dtype_size(r.dtype);
  if (r.dtype == DType::Float32) {
    float f;
    std::memcpy(&f, p, sizeof f);
    return f;
  }
  double d;
  std::memcpy(&d, p, sizeof d);
  return d;
}

std::vector<double> HostReadback::values(int k) const {
  const Region& r = regions_.at(std::size_t(k));
  std::vector<double> out(r.bytes / dtype_size(r.dtype));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = value(k, std::int64_t(i));
  return out;
}

LossAccumulator::Sums LossAccumulator::read() const {
  double slots[4];
  if (device_slots_)
    kernels::cuda_copy_to_host(slots, device_slots_, sizeof slots);
  else
    std::copy(host_slots_, host_slots_ + 4, slots);
  Sums sums;
  sums.last = slots[kernels::kLossLast];
  sums.since_restart = slots[kernels::kLossSinceRestart];
  sums.epoch = slots[kernels::kLossEpoch];
  sums.finished_epoch = slots[kernels::kLossFinishedEpoch];
  return sums;
}

void LossAccumulator::restart_sum() {
  host_slots_[kernels::kLossSinceRestart] = 0;
  if (device_slots_) kernels::cuda_memset_zero(device_slots_ + kernels::kLossSinceRestart, sizeof(double));
}

void LossAccumulator::clear() {
  std::fill(host_slots_, host_slots_ + 4, 0.0);
  if (device_slots_) kernels::cuda_memset_zero(device_slots_, sizeof host_slots_);
}

void add_into(const Tensor& dst, const Tensor& src) {
  internal::check_same_dtype_device("add_into", {&dst, &src});
  FM_CHECK(dst.shape() == src.shape() && dst.is_contiguous(), ShapeError, "add_into: ", dst.describe(), " += ",
           src.describe());
  Tensor source = src.contiguous();
  dispatch_kernel(
      "add_into", dst.device(), dst.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::add_into_cpu<T>(dst.data<T>(), source.data<T>(), dst.numel());
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::add_into_cuda(dst.data<T>(), source.data<T>(), dst.numel());
      });
}

// The device memory: [the current row][the index of the next row, int64][the rows uploaded, int64]
// [padding to 64 bytes][rows].
namespace {
constexpr std::size_t kIndexOffset = sizeof(StepScalars);
constexpr std::size_t kRowCountOffset = kIndexOffset + sizeof(std::int64_t);
constexpr std::size_t kTableOffset = 64;
static_assert(kRowCountOffset + sizeof(std::int64_t) <= kTableOffset && kIndexOffset % 8 == 0,
              "StepScalarsTable: the row must leave room for the index and the row count before the table");
}  // namespace

StepScalarsTable::StepScalarsTable(std::int64_t capacity) : capacity_(capacity) {
  FM_CHECK(capacity >= 1, ValueError, "StepScalarsTable: capacity ", capacity, ", expected at least one row");
  memory_ = static_cast<unsigned char*>(kernels::cuda_malloc(kTableOffset + std::size_t(capacity) * sizeof(StepScalars)));
}

StepScalarsTable::~StepScalarsTable() { kernels::cuda_free(memory_); }

void StepScalarsTable::upload(const std::vector<StepScalars>& rows) {
  FM_CHECK(!rows.empty() && std::int64_t(rows.size()) <= capacity_, ValueError, "StepScalarsTable::upload: ",
           rows.size(), " rows, expected 1 to ", capacity_);
  // One copy: the index (0), the row count and the rows, from the index's offset on.
  const std::size_t bytes = kTableOffset - kIndexOffset + rows.size() * sizeof(StepScalars);
  staging_.assign(bytes, 0);
  const std::int64_t row_count = std::int64_t(rows.size());
  std::memcpy(staging_.data() + (kRowCountOffset - kIndexOffset), &row_count, sizeof row_count);
  std::memcpy(staging_.data() + (kTableOffset - kIndexOffset), rows.data(), rows.size() * sizeof(StepScalars));
  kernels::cuda_copy_to_device(memory_ + kIndexOffset, staging_.data(), bytes);
}

void StepScalarsTable::select_next() {
  dispatch_cuda_kernel("select_step_scalars", DType::Float32, [&](auto) {
    kernels::select_step_scalars_cuda(reinterpret_cast<StepScalars*>(memory_),
                                      reinterpret_cast<std::int64_t*>(memory_ + kIndexOffset),
                                      reinterpret_cast<const std::int64_t*>(memory_ + kRowCountOffset),
                                      reinterpret_cast<const StepScalars*>(memory_ + kTableOffset));
  });
}

const StepScalars* StepScalarsTable::current() const { return reinterpret_cast<const StepScalars*>(memory_); }

const std::uint32_t* StepScalarsTable::current_philox_step() const {
  return reinterpret_cast<const std::uint32_t*>(memory_ + offsetof(StepScalars, philox_step));
}

const std::int64_t* StepScalarsTable::current_batch_start() const {
  return reinterpret_cast<const std::int64_t*>(memory_ + offsetof(StepScalars, batch_start));
}

}  // namespace fm
