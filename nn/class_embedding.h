// nn/class_embedding.h — the learned class embedding of class-conditional velocity models: a table
// [num_classes + 1, dim] whose last row is the null class ("no label", trained by label dropout and
// used as classifier-free guidance's unconditional branch), looked up per sample with core's
// embedding() op (differentiable in the table; on CUDA the labels go to the device with the call).
//
// Layer: nn/ (uses core/ only). VelocityMLP concatenates the looked-up rows to its input features;
// UNet adds them to its projected time embedding (nn/mlp.h, nn/unet.h).
#pragma once
#include <cstdint>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"

namespace fm::nn {

// [num_classes + 1, dim] ~ N(0, 1), PyTorch's nn.Embedding default, drawn from `gen`.
Tensor make_class_embedding_table(int num_classes, int dim, Generator& gen);

// The rows of `table` for `labels` → [batch, dim]. Empty labels mean the null class for every sample
// (the two-argument forward of a conditional model). Otherwise one label per sample, each in
// [0, num_classes] (num_classes = the null class); ShapeError / ValueError naming `who` otherwise.
Tensor class_embedding_rows(const Tensor& table, const std::vector<std::int32_t>& labels,
                            std::int64_t batch, const char* who);

}  // namespace fm::nn
