// kernels/cpu/random.cpp — Philox uniforms and normals on the CPU (see kernels/random.h).
//
// One loop iteration per Philox block (two values of one sample); blocks are independent, so the
// OpenMP split changes nothing in the result.
#include "kernels/random.h"

#include <cmath>

#include "kernels/philox.h"
#include "kernels/time_law.h"

namespace fm::kernels {
namespace {

template <typename T>
T uniform_of(std::uint64_t word);
template <>
float uniform_of<float>(std::uint64_t word) { return philox::uniform_float(word); }
template <>
double uniform_of<double>(std::uint64_t word) { return philox::uniform_double(word); }

// Runs body(sample, block, j0) for every block; j0 = 2·block is the sample's first element in it.
template <typename Body>
void for_each_block(std::int64_t samples, std::int64_t per_sample, Body body) {
  const std::int64_t blocks_per_sample = (per_sample + 1) / 2, total = samples * blocks_per_sample;
#pragma omp parallel for schedule(static) if (total > 4096)
  for (std::int64_t k = 0; k < total; ++k) body(k / blocks_per_sample, k % blocks_per_sample);
}

}  // namespace

template <typename T>
void philox_uniform_cpu(T* out, std::int64_t samples, std::int64_t per_sample, const PhiloxPlace& p) {
  for_each_block(samples, per_sample, [&](std::int64_t i, std::int64_t b) {
    const philox::Words w =
        philox::block_at(p.seed, p.stream, p.step, std::uint32_t(p.first_sample + i), std::uint32_t(b));
    T* row = out + i * per_sample;
    const std::int64_t j = 2 * b;
    row[j] = uniform_of<T>(philox::join(w.w[0], w.w[1]));
    if (j + 1 < per_sample) row[j + 1] = uniform_of<T>(philox::join(w.w[2], w.w[3]));
  });
}

template <typename T>
void philox_normal_cpu(T* out, std::int64_t samples, std::int64_t per_sample, const PhiloxPlace& p) {
  for_each_block(samples, per_sample, [&](std::int64_t i, std::int64_t b) {
    double first, second;
    philox::normal_pair(
        philox::block_at(p.seed, p.stream, p.step, std::uint32_t(p.first_sample + i), std::uint32_t(b)), first,
        second);
    T* row = out + i * per_sample;
    const std::int64_t j = 2 * b;
    row[j] = T(first);
    if (j + 1 < per_sample) row[j + 1] = T(second);
  });
}

template <typename T>
void philox_times_cpu(T* out, std::int64_t samples, const PhiloxPlace& p, const TimeLaw& law) {
  const double upper = double(std::nextafter(T(1), T(0)));  // the largest T below 1
  for (std::int64_t i = 0; i < samples; ++i)
    out[i] = T(philox::time_at(law, upper, p.seed, p.stream, p.step, std::uint32_t(p.first_sample + i)));
}

template void philox_uniform_cpu<float>(float*, std::int64_t, std::int64_t, const PhiloxPlace&);
template void philox_uniform_cpu<double>(double*, std::int64_t, std::int64_t, const PhiloxPlace&);
template void philox_normal_cpu<float>(float*, std::int64_t, std::int64_t, const PhiloxPlace&);
template void philox_normal_cpu<double>(double*, std::int64_t, std::int64_t, const PhiloxPlace&);
template void philox_times_cpu<float>(float*, std::int64_t, const PhiloxPlace&, const TimeLaw&);
template void philox_times_cpu<double>(double*, std::int64_t, const PhiloxPlace&, const TimeLaw&);

}  // namespace fm::kernels
