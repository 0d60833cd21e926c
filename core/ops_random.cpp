// core/ops_random.cpp — philox_uniform / philox_normal / philox_times / philox_toy_points: counter-based
// random tensors
// made on their own device (see core/random.h for what they draw, kernels/random.h for the kernels).
#include "core/dispatch.h"
#include "core/random.h"
#include "kernels/random.h"

namespace fm {
namespace {

enum class Distribution { Uniform, Normal };

void check_place(const char* op, std::int64_t step, std::int64_t first_sample, std::int64_t samples) {
  FM_CHECK(step >= 0 && step < (std::int64_t(1) << 32), ValueError, op, ": step ", step,
           " outside [0, 2^32) (the counter holds 32 bits of it)");
  FM_CHECK(first_sample >= 0 && first_sample + samples <= (std::int64_t(1) << 32), ValueError, op, ": samples [",
           first_sample, ", ", first_sample + samples, ") outside [0, 2^32)");
}

void check_step_on_device(const char* op, const std::uint32_t* step_on_device, Device device) {
  FM_CHECK(!step_on_device || device == Device::CUDA, DeviceError, op,
           ": a step read from device memory is for CUDA tensors (a recorded step)");
}

Tensor philox_tensor(const char* op, Distribution distribution, const Shape& shape, PhiloxKey key,
                     std::int64_t step, std::int64_t first_sample, DType dtype, Device device,
                     const std::uint32_t* step_on_device) {
  check_step_on_device(op, step_on_device, device);
  const std::int64_t samples = shape.empty() ? 1 : shape[0];
  const std::int64_t per_sample = samples == 0 ? 0 : shape_numel(shape) / samples;
  check_place(op, step, first_sample, samples);
  FM_CHECK(per_sample <= (std::int64_t(1) << 33), ValueError, op, ": ", per_sample,
           " values per sample, at most 2^33");
  Tensor out = Tensor::empty(shape, dtype, device);
  const kernels::PhiloxPlace place{key.seed, key.stream, std::uint32_t(step), std::uint32_t(first_sample),
                                   step_on_device};
  const bool normal = distribution == Distribution::Normal;
  dispatch_kernel(
      op, device, dtype,
      [&](auto type) {
        using T = element_type<decltype(type)>;
        if (normal) kernels::philox_normal_cpu<T>(out.data<T>(), samples, per_sample, place);
        else kernels::philox_uniform_cpu<T>(out.data<T>(), samples, per_sample, place);
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        if (normal) kernels::philox_normal_cuda(out.data<T>(), samples, per_sample, place);
        else kernels::philox_uniform_cuda(out.data<T>(), samples, per_sample, place);
      });
  return out;
}

}  // namespace

Tensor philox_times(std::int64_t n, PhiloxKey key, std::int64_t step, std::int64_t first_sample, const TimeLaw& law,
                    DType dtype, Device device, const std::uint32_t* step_on_device) {
  FM_CHECK(n >= 0, ValueError, "philox_times: sample count ", n, " is negative");
  check_step_on_device("philox_times", step_on_device, device);
  check_place("philox_times", step, first_sample, n);
  FM_CHECK(law.kind != TimeLawKind::Grid || law.points >= 1, ValueError, "philox_times: a grid law needs >= 1 point, got ",
           law.points);
  Tensor out = Tensor::empty({n}, dtype, device);
  const kernels::PhiloxPlace place{key.seed, key.stream, std::uint32_t(step), std::uint32_t(first_sample),
                                   step_on_device};
  dispatch_kernel(
      "philox_times", device, dtype,
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::philox_times_cpu<T>(out.data<T>(), n, place, law);
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::philox_times_cuda(out.data<T>(), n, place, law);
      });
  return out;
}

Tensor philox_toy_points(std::int64_t n, const ToyLaw& law, PhiloxKey key, std::int64_t step, std::int64_t first_sample,
                         DType dtype, Device device, const std::uint32_t* step_on_device,
                         std::vector<std::int32_t>* labels) {
  FM_CHECK(n >= 0, ValueError, "philox_toy_points: sample count ", n, " is negative");
  check_step_on_device("philox_toy_points", step_on_device, device);
  check_place("philox_toy_points", step, first_sample, n);
  FM_CHECK(!labels || device == Device::CPU, DeviceError,
           "philox_toy_points: labels from the same pass are made on the CPU only (got device ", device_name(device),
           "; a device's labels come from toy_labels)");
  if (labels) labels->resize(std::size_t(n));
  Tensor out = Tensor::empty({n, 2}, dtype, device);
  const kernels::PhiloxPlace place{key.seed, key.stream, std::uint32_t(step), std::uint32_t(first_sample),
                                   step_on_device};
  dispatch_kernel(
      "philox_toy_points", device, dtype,
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::toy_points_cpu<T>(out.data<T>(), labels ? labels->data() : nullptr, n, place, law);
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::toy_points_cuda(out.data<T>(), n, place, law);
      });
  return out;
}

Tensor philox_uniform(const Shape& shape, PhiloxKey key, std::int64_t step, std::int64_t first_sample, DType dtype,
                      Device device) {
  return philox_tensor("philox_uniform", Distribution::Uniform, shape, key, step, first_sample, dtype, device, nullptr);
}

Tensor philox_normal(const Shape& shape, PhiloxKey key, std::int64_t step, std::int64_t first_sample, DType dtype,
                     Device device, const std::uint32_t* step_on_device) {
  return philox_tensor("philox_normal", Distribution::Normal, shape, key, step, first_sample, dtype, device,
                       step_on_device);
}

}  // namespace fm
