// nn/class_embedding.h — the learned class embedding of class-conditional velocity models: a table
// [num_classes + 1, dim] whose last row is the null class ("no label", trained by label dropout and
// used as classifier-free guidance's unconditional branch), looked up per sample with core's
// embedding() op (differentiable in the table). Labels come as a host vector (checked here; on CUDA
// they go to the device with the call) or as a RowIndex already on the table's device (a recorded
// training step refills one buffer between replays; checked when written). No labels at all (the
// null class for every sample) needs no lookup: the null row is broadcast, nothing goes to the device.
//
// Layer: nn/ (uses core/ only). VelocityMLP concatenates the looked-up rows to its input features;
// UNet adds them to its projected time embedding (nn/mlp.h, nn/unet.h).
#pragma once
#include <cstdint>
#include <vector>

#include "core/ops.h"
#include "core/random.h"
#include "core/tensor.h"

namespace fm::nn {

// [num_classes + 1, dim] ~ N(0, 1), PyTorch's nn.Embedding default, drawn from `gen`.
Tensor make_class_embedding_table(int num_classes, int dim, Generator& gen);

// A batch's labels as the models take them, without owning them: none (the null class for every
// sample), a host vector, or device-resident indices.
struct ClassLabelsRef {
  const std::vector<std::int32_t>* host = nullptr;
  const RowIndex* on_device = nullptr;
  std::int64_t size() const { return host ? std::int64_t(host->size()) : on_device ? on_device->size() : 0; }
};

// The rows of `table` for `labels` → [batch, dim]. Empty labels mean the null class for every sample
// (the two-argument forward of a conditional model; its row broadcast, with no copy from the host).
// Otherwise one label per sample, each in [0, num_classes] (num_classes = the null class);
// ShapeError / ValueError naming `who` otherwise.
// Device-resident labels need one per sample and to have been checked against at most the table's
// rows (ShapeError / ValueError likewise).
Tensor class_embedding_rows(const Tensor& table, ClassLabelsRef labels, std::int64_t batch, const char* who);

}  // namespace fm::nn
