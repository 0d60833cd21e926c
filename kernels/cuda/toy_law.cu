// kernels/cuda/toy_law.cu — 2-D toy data points and their labels from their Philox places, on the GPU
// (see kernels/toy_law.h): one thread per point, the CPU loop's arithmetic, so the points are equal bit
// for bit and a recorded training step draws its batch on the device, its step read from a device word.
#include "kernels/cuda/common.cuh"
#include "kernels/runtime.h"
#include "kernels/toy_law.h"

namespace fm::kernels {
namespace {

constexpr int kThreads = 256;

__global__ void toy_points_kernel(float* out, std::int64_t n, PhiloxPlace place, ToyLaw law) {
  const std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const std::uint32_t step = place.step_on_device ? *place.step_on_device : place.step;
  const std::uint32_t sample = std::uint32_t(place.first_sample + i);
  PhiloxPlaceDraws draws{place.seed, place.stream, step, sample};
  const ToyPoint p = toy_point(law, std::int64_t(sample), draws);
  out[2 * i] = float(p.x), out[2 * i + 1] = float(p.y);
}

__global__ void toy_labels_kernel(std::int32_t* labels, std::int64_t n, PhiloxPlace place, ToyLaw law, double dropout,
                                  std::int32_t null_class, PhiloxPlace dropout_place) {
  const std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const std::uint32_t step = place.step_on_device ? *place.step_on_device : place.step;
  const std::uint32_t dropout_step = dropout_place.step_on_device ? *dropout_place.step_on_device : dropout_place.step;
  const std::uint32_t sample = std::uint32_t(place.first_sample + i);
  PhiloxPlaceDraws draws{place.seed, place.stream, step, sample};
  const bool dropped = dropout > 0 && label_dropped(dropout_place.seed, dropout_place.stream, dropout_step,
                                     std::uint32_t(dropout_place.first_sample + i), dropout);
  labels[i] = dropped ? null_class : toy_point(law, std::int64_t(sample), draws).label;
}

}  // namespace

void toy_labels_cuda(std::int32_t* labels, std::int64_t n, const PhiloxPlace& place, const ToyLaw& law, double dropout,
                     std::int32_t null_class, const PhiloxPlace& dropout_place) {
  if (n == 0) return;
  const unsigned grid = unsigned(ceil_div(n, std::int64_t(kThreads)));
  toy_labels_kernel<<<grid, kThreads, 0, cuda_stream()>>>(labels, n, place, law, dropout, null_class, dropout_place);
  FM_CUDA_CHECK_LAUNCH();
}

void toy_points_cuda(float* out, std::int64_t n, const PhiloxPlace& place, const ToyLaw& law) {
  if (n == 0) return;
  const unsigned grid = unsigned(ceil_div(n, std::int64_t(kThreads)));
  toy_points_kernel<<<grid, kThreads, 0, cuda_stream()>>>(out, n, place, law);
  FM_CUDA_CHECK_LAUNCH();
}

}  // namespace fm::kernels
