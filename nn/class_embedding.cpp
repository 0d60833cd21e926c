// nn/class_embedding.cpp — the class embedding table and its per-sample lookup (see class_embedding.h).
#include "nn/class_embedding.h"

#include "core/error.h"
#include "core/ops_nn.h"

namespace fm::nn {

Tensor make_class_embedding_table(int num_classes, int dim, Generator& gen) {
  FM_CHECK(num_classes > 0 && dim > 0, ValueError, "class embedding: need num_classes > 0 and dim > 0, got ",
           num_classes, " and ", dim);
  return randn({num_classes + 1, dim}, gen);
}

Tensor class_embedding_rows(const Tensor& table, ClassLabelsRef given, std::int64_t batch, const char* who) {
  const std::int32_t null_class = std::int32_t(table.size(0) - 1);
  if (!given.on_device && (!given.host || given.host->empty()))
    // The null class for every sample: its row broadcast to the batch and copied (the same values as
    // a lookup; clone, not contiguous, so a batch of one gets its own copy too, not a view of the
    // table). No indices, so nothing goes to the device: a solve through the null class (unguided
    // sampling, fmeval nll) sends no labels per evaluation and can be recorded as a graph.
    return table.narrow(0, null_class, 1).expand({batch, table.size(1)}).clone();
  FM_CHECK(given.size() == batch, ShapeError, who, ": ", given.size(), " class labels for a batch of ", batch,
           ", expected one per sample");
  if (given.on_device) {
    FM_CHECK(given.on_device->table_rows() <= null_class + 1, ValueError, who, ": class labels checked against ",
             given.on_device->table_rows(), " classes, expected at most ", null_class + 1, " (with the null class)");
    return embedding_by_index(table, *given.on_device);
  }
  const std::vector<std::int32_t>& labels = *given.host;
  for (std::size_t i = 0; i < labels.size(); ++i)
    FM_CHECK(labels[i] >= 0 && labels[i] <= null_class, ValueError, who, ": class label ", labels[i],
             " at position ", i, ", expected 0 … ", null_class - 1, " or the null class ", null_class);
  return embedding(table, labels);
}

}  // namespace fm::nn
