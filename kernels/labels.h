// kernels/labels.h — a class-conditional training batch's labels, made on the device: each sample's
// label looked up through the epoch's order, then replaced by the null class with the label-dropout
// probability (classifier-free guidance trains its unconditional branch on those samples).
//
//   out[i] = u_i < dropout ? null_class : labels[order[position + i]]          i < count
//   u_i    = the uniform of sample first_sample + i, element 0, at the Philox place (seed, stream, step)
//
// u_i is kernels/philox.h's uniform_double of word_at(…, element 0): the numbers flow/trainer.h's
// drop_labels draws on the host (core/random.h philox_uniform_at), so a recorded step drops the labels
// an eager step drops. Indices and labels are checked by the caller (core/ops_gather.cpp take_labels):
// every order entry below the label count, every label below null_class.
//
// Layer: kernels/. CPU reference loop in kernels/cpu/labels.cpp; CUDA (one thread per sample, on
// cuda_stream()) in kernels/cuda/labels.cu. A few hundred integers a step: the point is not speed but
// that a recorded step needs no labels from the host.
#pragma once
#include <cstdint>

#include "kernels/philox.h"
#include "kernels/random.h"

namespace fm::kernels {

// The rule above for one sample: whether sample `sample`'s label becomes the null class, its uniform
// (element 0) at (seed, stream, step) below the probability. The one place of it for every kernel
// that drops labels (these, and kernels/toy_law.h's for 2-D toy data).
FM_PHILOX_FN bool label_dropped(std::uint64_t seed, std::uint32_t stream, std::uint32_t step, std::uint32_t sample,
                                double probability) {
  return philox::uniform_double(philox::word_at(seed, stream, step, sample, 0)) < probability;
}

void batch_labels_cpu(std::int32_t* out, const std::int32_t* labels, const std::int32_t* order, std::int64_t position,
                      int count, double dropout, std::int32_t null_class, const PhiloxPlace& place);

// Device pointers. position_on_device (optional, a device word): the batch starts at that position of
// the order instead, read as the kernel runs; place.step_on_device likewise for the Philox step (a
// recorded training step, whose launches keep the arguments they were recorded with). order holds
// order_size entries, each below label_count: the kernel checks the positions it reads and the entries
// it finds (FM_DEVICE_CHECK, kernels/cuda/common.cuh), stopping rather than reading outside a buffer.
void batch_labels_cuda(std::int32_t* out, const std::int32_t* labels, std::int64_t label_count,
                       const std::int32_t* order, std::int64_t order_size, std::int64_t position,
                       const std::int64_t* position_on_device, int count, double dropout, std::int32_t null_class,
                       const PhiloxPlace& place);

}  // namespace fm::kernels
