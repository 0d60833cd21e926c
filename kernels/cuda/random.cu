// kernels/cuda/random.cu — Philox uniforms and normals on the GPU (see kernels/random.h).
//
// One thread per Philox block (two values of one sample), the same arithmetic as the CPU loop from
// kernels/philox.h, so the tensors are equal bit for bit. The noise is made where it is used: no
// host draw, no copy.
#include "kernels/cuda/common.cuh"
#include "kernels/philox.h"
#include "kernels/random.h"
#include "kernels/time_law.h"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

constexpr int kThreads = 256;

template <bool kNormal>
__global__ void philox_kernel(float* out, std::int64_t samples, std::int64_t per_sample,
                              std::int64_t blocks_per_sample, PhiloxPlace p) {
  const std::int64_t k = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (k >= samples * blocks_per_sample) return;
  const std::int64_t i = k / blocks_per_sample, b = k % blocks_per_sample;
  const std::uint32_t step = p.step_on_device ? *p.step_on_device : p.step;
  const philox::Words w =
      philox::block_at(p.seed, p.stream, step, std::uint32_t(p.first_sample + i), std::uint32_t(b));
  float first, second;
  if (kNormal) {
    double a, c;
    philox::normal_pair(w, a, c);
    first = float(a), second = float(c);
  } else {
    first = philox::uniform_float(philox::join(w.w[0], w.w[1]));
    second = philox::uniform_float(philox::join(w.w[2], w.w[3]));
  }
  float* row = out + i * per_sample;
  const std::int64_t j = 2 * b;
  row[j] = first;
  if (j + 1 < per_sample) row[j + 1] = second;
}

template <bool kNormal>
void launch(float* out, std::int64_t samples, std::int64_t per_sample, const PhiloxPlace& place) {
  const std::int64_t blocks_per_sample = (per_sample + 1) / 2, total = samples * blocks_per_sample;
  if (total == 0) return;
  const unsigned grid = unsigned(ceil_div(total, kThreads));
  philox_kernel<kNormal><<<grid, kThreads, 0, cuda_stream()>>>(out, samples, per_sample, blocks_per_sample, place);
  FM_CUDA_CHECK_LAUNCH();
}

// One thread per sample: its time from its own Philox place (kernels/time_law.h), rounded once to float.
__global__ void philox_times_kernel(float* out, std::int64_t samples, PhiloxPlace p, TimeLaw law) {
  const std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (i >= samples) return;
  const double upper = 0x1.fffffep-1;  // the largest float below 1
  const std::uint32_t step = p.step_on_device ? *p.step_on_device : p.step;
  out[i] = float(philox::time_at(law, upper, p.seed, p.stream, step, std::uint32_t(p.first_sample + i)));
}

}  // namespace

void philox_times_cuda(float* out, std::int64_t samples, const PhiloxPlace& place, const TimeLaw& law) {
  if (samples == 0) return;
  const unsigned grid = unsigned(ceil_div(samples, std::int64_t(kThreads)));
  philox_times_kernel<<<grid, kThreads, 0, cuda_stream()>>>(out, samples, place, law);
  FM_CUDA_CHECK_LAUNCH();
}

void philox_uniform_cuda(float* out, std::int64_t samples, std::int64_t per_sample, const PhiloxPlace& place) {
  launch<false>(out, samples, per_sample, place);
}

void philox_normal_cuda(float* out, std::int64_t samples, std::int64_t per_sample, const PhiloxPlace& place) {
  launch<true>(out, samples, per_sample, place);
}

}  // namespace fm::kernels
