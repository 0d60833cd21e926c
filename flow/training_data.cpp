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

std::vector<std::uint64_t> ImageEpochs::epoch_order(std::int64_t count, std::uint64_t seed, std::int64_t epoch) {
  std::vector<std::uint64_t> order(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) order[std::size_t(i)] = std::uint64_t(i);
  const PhiloxKey key = StepNoise{seed, epoch, 0}.key(NoiseStream::DataOrder);
  for (std::int64_t i = count - 1; i > 0; --i) {
    PhiloxSampleDraws draws(key, epoch, i);  // swap i's own place: no sequential state
    std::swap(order[std::size_t(i)], order[draws.below(std::uint64_t(i + 1))]);
  }
  return order;
}

Tensor ImageEpochs::next_batch(std::int64_t batch_size, const StepNoise& noise) {
  FM_CHECK(batch_size <= count_, ValueError, "train.batch_size: ", batch_size, " is larger than the ",
           count_, " images in ", path_);
  FM_CHECK(noise.first_sample == 0, ValueError, "image epochs serve whole batches (first sample ",
           noise.first_sample, " asked); take a rank's rows from the full batch");
  if (epoch_ < 0 || position_ + batch_size > count_) {  // a new epoch
    position_ = 0;
    ++epoch_;
  }
  if (order_epoch_ != epoch_) {  // also right after a resume: the order is recomputed, not stored
    order_ = epoch_order(count_, noise.seed, epoch_);
    order_epoch_ = epoch_;
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
  return {{"data.position_epoch", {std::uint64_t(position_), std::uint64_t(epoch_ + 1)}}};
}

void ImageEpochs::load_state(const WordState& state) {
  auto pos = state.find("data.position_epoch");
  FM_CHECK(pos != state.end() && pos->second.size() == 2, FormatError,
           "checkpoint: missing the data position of ", path_);
  position_ = std::int64_t(pos->second[0]);
  epoch_ = std::int64_t(pos->second[1]) - 1;
  FM_CHECK(position_ >= 0 && position_ <= count_, FormatError, "checkpoint: data position ", position_,
           " is past the ", count_, " images in ", path_, " (was data.limit changed?)");
  order_epoch_ = -1;
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
