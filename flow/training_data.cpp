// flow/training_data.cpp — shuffled epochs over IDX images (see training_data.h).
#include "flow/training_data.h"

#include <algorithm>
#include <cstring>

#include "core/io/idx.h"

namespace fm::flow {

ImageEpochs::ImageEpochs(const std::string& images_path, std::int64_t limit) : path_(images_path) {
  io::IdxImages images = io::read_idx_images(images_path);
  count_ = limit > 0 ? std::min(limit, images.count) : images.count;
  rows_ = images.rows;
  cols_ = images.cols;
  pixels_.resize(std::size_t(count_ * rows_ * cols_));
  for (std::size_t i = 0; i < pixels_.size(); ++i) pixels_[i] = pixel_to_unit(images.pixels[i]);
}

Tensor ImageEpochs::next_batch(std::int64_t batch_size, Generator& gen) {
  FM_CHECK(batch_size <= count_, ValueError, "train.batch_size: ", batch_size, " is larger than the ",
           count_, " images in ", path_);
  if (epoch_ < 0 || position_ + batch_size > count_) {
    // A new epoch: Fisher–Yates shuffle driven by the run's generator.
    order_.resize(std::size_t(count_));
    for (std::int64_t i = 0; i < count_; ++i) order_[std::size_t(i)] = std::uint64_t(i);
    for (std::int64_t i = count_ - 1; i > 0; --i) std::swap(order_[std::size_t(i)], order_[gen.below(std::uint64_t(i + 1))]);
    position_ = 0;
    ++epoch_;
  }
  const std::int64_t image_size = rows_ * cols_;
  Tensor batch = Tensor::empty({batch_size, 1, rows_, cols_});
  float* out = batch.data<float>();
  for (std::int64_t b = 0; b < batch_size; ++b) {
    std::uint64_t index = order_[std::size_t(position_ + b)];
    std::memcpy(out + b * image_size, pixels_.data() + index * image_size, sizeof(float) * image_size);
  }
  position_ += batch_size;
  return batch;
}

WordState ImageEpochs::state() const {
  return {{"data.order", order_},
          {"data.position_epoch", {std::uint64_t(position_), std::uint64_t(epoch_ + 1)}}};
}

void ImageEpochs::load_state(const WordState& state) {
  auto order = state.find("data.order");
  auto pos = state.find("data.position_epoch");
  FM_CHECK(order != state.end() && pos != state.end() && pos->second.size() == 2, FormatError,
           "checkpoint: missing the data order of ", path_);
  FM_CHECK(order->second.empty() || std::int64_t(order->second.size()) == count_, FormatError,
           "checkpoint: data order has ", order->second.size(), " entries but ", path_, " has ", count_,
           " images (was data.limit changed?)");
  order_ = order->second;
  position_ = std::int64_t(pos->second[0]);
  epoch_ = std::int64_t(pos->second[1]) - 1;
}

std::string ImageEpochs::describe() const {
  return cat(path_, " (", count_, " images of ", rows_, "x", cols_, ")");
}

Tensor ImageEpochs::all_images() const {
  Tensor t = Tensor::empty({count_, 1, rows_, cols_});
  std::memcpy(t.data<float>(), pixels_.data(), pixels_.size() * sizeof(float));
  return t;
}

}  // namespace fm::flow
