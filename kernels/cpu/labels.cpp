// kernels/cpu/labels.cpp — a batch's labels with label dropout, the reference loop (see kernels/labels.h).
#include "kernels/labels.h"

namespace fm::kernels {

void batch_labels_cpu(std::int32_t* out, const std::int32_t* labels, const std::int32_t* order, std::int64_t position,
                      int count, double dropout, std::int32_t null_class, const PhiloxPlace& place) {
  for (int i = 0; i < count; ++i) {
    const std::uint32_t sample = std::uint32_t(place.first_sample + std::uint32_t(i));
    out[i] = label_dropped(place.seed, place.stream, place.step, sample, dropout) ? null_class
                                                                                 : labels[order[position + i]];
  }
}

}  // namespace fm::kernels
