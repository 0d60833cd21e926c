// core/ops_cross_entropy.cpp — mean softmax cross-entropy (for the evaluation classifier).
//
// Labels live in a host vector; on CUDA they are copied to the device once per call (a few KB, a
// RowIndex of core/ops.h) and the backward pass reads the same copy.
#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops_nn.h"
#include "core/tensor_internal.h"
#include "kernels/cross_entropy.h"

namespace fm {

Tensor cross_entropy(const Tensor& logits_in, const std::vector<std::int32_t>& labels) {
  internal::check_dim("cross_entropy", logits_in, 2, "logits", "(batch, classes)");
  const int N = int(logits_in.size(0)), C = int(logits_in.size(1));
  FM_CHECK(std::int64_t(labels.size()) == N, ShapeError, "cross_entropy: ", labels.size(),
           " labels for ", N, " rows of logits");
  FM_CHECK(N > 0 && C > 0, ShapeError, "cross_entropy: empty logits ", logits_in.describe());
  for (std::size_t i = 0; i < labels.size(); ++i)
    FM_CHECK(labels[i] >= 0 && labels[i] < C, ValueError, "cross_entropy: label ", labels[i],
             " at row ", i, " outside [0, ", C, ")");
  Tensor logits = logits_in.detach().contiguous();
  Tensor row_loss = Tensor::empty({N}, logits.dtype(), logits.device());
  Tensor probs = Tensor::empty({N, C}, logits.dtype(), logits.device());
  const RowIndex on_device = logits.device() == Device::CUDA ? RowIndex(labels, C, Device::CUDA) : RowIndex();
  dispatch_kernel(
      "cross_entropy", logits.device(), logits.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::cross_entropy_forward_cpu(logits.data<T>(), labels.data(), row_loss.data<T>(), probs.data<T>(), N, C);
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::cross_entropy_forward_cuda(logits.data<T>(), on_device.data(), row_loss.data<T>(), probs.data<T>(),
                                            N, C);
      });
  Tensor loss = mean(row_loss);
  return record_op(loss, "cross_entropy", {logits_in}, [=](const Tensor& g) {
    // d mean / d row_loss = 1/N, times the incoming scalar gradient.
    // (affine reads the broadcast view and writes a fresh contiguous tensor: no copy before it)
    Tensor row_scale = affine(g.reshape({1}).expand({N}), 1.0 / N, 0.0);
    Tensor grad = Tensor::empty({N, C}, probs.dtype(), probs.device());
    dispatch_kernel(
        "cross_entropy", probs.device(), probs.dtype(),
        [&](auto type) {
          using T = element_type<decltype(type)>;
          kernels::cross_entropy_backward_cpu(probs.data<T>(), labels.data(), row_scale.data<T>(), grad.data<T>(), N,
                                              C);
        },
        [&](auto type) {
          using T = element_type<decltype(type)>;
          kernels::cross_entropy_backward_cuda(probs.data<T>(), on_device.data(), row_scale.data<T>(),
                                               grad.data<T>(), N, C);
        });
    return std::vector<Tensor>{grad};
  });
}

}  // namespace fm
