// kernels/cross_entropy.h — softmax cross-entropy over the rows of logits [N, C].
//
// Forward writes each row's loss −log softmax(z)[label] = logsumexp(z) − z[label] (computed with
// the row max subtracted, so large logits cannot overflow) and the softmax probabilities, which the
// backward needs: d loss_r / d z_rc = p_rc − [c = label_r].
#pragma once
#include <cstdint>

#include "kernels/runtime.h"

namespace fm::kernels {

template <typename T>
void cross_entropy_forward_cpu(const T* logits, const std::int32_t* labels, T* row_loss, T* probs,
                               int N, int C);
// grad_logits[r, c] = row_scale[r]·(probs[r, c] − [c = labels[r]]).
template <typename T>
void cross_entropy_backward_cpu(const T* probs, const std::int32_t* labels, const T* row_scale,
                                T* grad_logits, int N, int C);

void cross_entropy_forward_cuda(const float* logits, const std::int32_t* labels, float* row_loss,
                                float* probs, int N, int C);
void cross_entropy_backward_cuda(const float* probs, const std::int32_t* labels,
                                 const float* row_scale, float* grad_logits, int N, int C);

}  // namespace fm::kernels
