// kernels/cpu/cross_entropy.cpp — softmax cross-entropy reference loops (see kernels/cross_entropy.h).
#include <cmath>

#include "kernels/cross_entropy.h"

namespace fm::kernels {

template <typename T>
void cross_entropy_forward_cpu(const T* logits, const std::int32_t* labels, T* row_loss, T* probs,
                               int N, int C) {
  for (int r = 0; r < N; ++r) {
    const T* z = logits + std::int64_t(r) * C;
    T* p = probs + std::int64_t(r) * C;
    T max_logit = z[0];
    for (int c = 1; c < C; ++c) max_logit = z[c] > max_logit ? z[c] : max_logit;
    T total = 0;
    for (int c = 0; c < C; ++c) total += std::exp(z[c] - max_logit);
    T log_total = std::log(total);
    for (int c = 0; c < C; ++c) p[c] = std::exp(z[c] - max_logit - log_total);
    row_loss[r] = log_total + max_logit - z[labels[r]];
  }
}

template <typename T>
void cross_entropy_backward_cpu(const T* probs, const std::int32_t* labels, const T* row_scale,
                                T* grad_logits, int N, int C) {
  for (int r = 0; r < N; ++r)
    for (int c = 0; c < C; ++c) {
      std::int64_t i = std::int64_t(r) * C + c;
      grad_logits[i] = row_scale[r] * (probs[i] - (c == labels[r] ? T(1) : T(0)));
    }
}

template void cross_entropy_forward_cpu<float>(const float*, const std::int32_t*, float*, float*, int, int);
template void cross_entropy_forward_cpu<double>(const double*, const std::int32_t*, double*, double*, int, int);
template void cross_entropy_backward_cpu<float>(const float*, const std::int32_t*, const float*, float*, int, int);
template void cross_entropy_backward_cpu<double>(const double*, const std::int32_t*, const double*, double*, int, int);

}  // namespace fm::kernels
