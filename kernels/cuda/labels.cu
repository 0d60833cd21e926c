// kernels/cuda/labels.cu — a batch's labels with label dropout on the GPU (see kernels/labels.h).
//
// One thread per sample: its Philox word (the CPU loop's arithmetic, integers and one exact scaling,
// so the same bits), its label through the order. The batch position and the Philox step may be read
// from device words, as a recorded training step's gather and noise do.
#include "kernels/cuda/common.cuh"
#include "kernels/labels.h"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

constexpr int kThreads = 256;

__global__ void batch_labels_kernel(std::int32_t* out, const std::int32_t* labels, std::int64_t label_count,
                                    const std::int32_t* order, std::int64_t order_size, std::int64_t position,
                                    const std::int64_t* position_on_device, int count, double dropout,
                                    std::int32_t null_class, PhiloxPlace p) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= count) return;
  const std::uint32_t step = p.step_on_device ? *p.step_on_device : p.step;
  const std::int64_t start = position_on_device ? *position_on_device : position;
  const std::uint32_t sample = std::uint32_t(p.first_sample + std::uint32_t(i));
  if (label_dropped(p.seed, p.stream, step, sample, dropout)) {
    out[i] = null_class;
    return;
  }
  FM_DEVICE_CHECK(start >= 0 && start + i < order_size);
  const std::int32_t example = order[start + i];
  FM_DEVICE_CHECK(example >= 0 && example < label_count);
  out[i] = labels[example];
}

}  // namespace

void batch_labels_cuda(std::int32_t* out, const std::int32_t* labels, std::int64_t label_count,
                       const std::int32_t* order, std::int64_t order_size, std::int64_t position,
                       const std::int64_t* position_on_device, int count, double dropout, std::int32_t null_class,
                       const PhiloxPlace& place) {
  if (count == 0) return;
  const unsigned grid = unsigned(ceil_div(std::int64_t(count), std::int64_t(kThreads)));
  batch_labels_kernel<<<grid, kThreads, 0, cuda_stream()>>>(out, labels, label_count, order, order_size, position,
                                                            position_on_device, count, dropout, null_class, place);
  FM_CUDA_CHECK_LAUNCH();
}

}  // namespace fm::kernels
