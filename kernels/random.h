// kernels/random.h — tensors of counter-based random numbers (Philox4x32-10, kernels/philox.h).
//
//   out[i, j] = value j of sample (first_sample + i) at (seed, stream, step)     i < samples, j < per_sample
//
// uniform: [0, 1) (float: 24 bits, double: 53 bits of the same word); normal: standard normal,
// computed in double and rounded once to T. Every element is a pure function of its place, so the
// CPU and CUDA versions write the same bits, and drawing samples [a, b) alone gives rows a … b − 1
// of the whole draw. Limits (checked by the caller, core/ops_random.cpp): first_sample + samples
// and the step below 2^32, per_sample below 2^33.
//
// philox_times: one training time t per sample from its own place (the law: kernels/time_law.h).
//
// Layer: kernels/. CPU (float, double; OpenMP over blocks) in kernels/cpu/random.cpp; CUDA (float,
// one thread per block of two values, on cuda_stream()) in kernels/cuda/random.cu.
#pragma once
#include <cstdint>

#include "kernels/time_law.h"

namespace fm::kernels {

struct PhiloxPlace {
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;
  std::uint32_t step = 0;
  std::uint32_t first_sample = 0;
  // CUDA only: when set, the step is read from this device word as the kernel runs, in place of
  // `step` (a recorded training step, whose launches keep the arguments they were recorded with).
  const std::uint32_t* step_on_device = nullptr;
};

template <typename T>
void philox_uniform_cpu(T* out, std::int64_t samples, std::int64_t per_sample, const PhiloxPlace& place);
template <typename T>
void philox_normal_cpu(T* out, std::int64_t samples, std::int64_t per_sample, const PhiloxPlace& place);

// Training times (kernels/time_law.h): out[i] = the time of sample first_sample + i, one per sample.
template <typename T>
void philox_times_cpu(T* out, std::int64_t samples, const PhiloxPlace& place, const TimeLaw& law);

// out is a device pointer.
void philox_uniform_cuda(float* out, std::int64_t samples, std::int64_t per_sample, const PhiloxPlace& place);
void philox_normal_cuda(float* out, std::int64_t samples, std::int64_t per_sample, const PhiloxPlace& place);
void philox_times_cuda(float* out, std::int64_t samples, const PhiloxPlace& place, const TimeLaw& law);

}  // namespace fm::kernels
