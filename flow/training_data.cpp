// flow/training_data.cpp — shuffled epochs over IDX images and reflow pairs, served from the host or
// from a copy kept on the training device (see training_data.h).
#include "flow/training_data.h"

#include <algorithm>
#include <cstring>

#include "core/io/idx.h"
#include "flow/reflow_pairs.h"

namespace fm::flow {

namespace {
std::int64_t image_count(const io::IdxImages& images, std::int64_t limit) {
  return limit > 0 ? std::min(limit, images.count) : images.count;
}
}  // namespace

ImageEpochs::ImageEpochs(const std::string& images_path, std::int64_t limit, const std::string& labels_path,
                         int classes)
    : ImageEpochs(images_path, io::read_idx_images(images_path), limit) {
  if (!labels_path.empty()) read_labels(labels_path, classes);
}

void ImageEpochs::read_labels(const std::string& labels_path, int classes) {
  const io::IdxLabels labels = io::read_idx_labels(labels_path);
  FM_CHECK(labels.count == images_in_file_, FormatError, labels_path, ": ", labels.count, " labels, but ", path_,
           " has ", images_in_file_, " images (expected one label per image)");
  num_classes_ = classes;
  for (std::size_t i = 0; i < labels.labels.size(); ++i) {
    const int label = labels.labels[i];
    FM_CHECK(classes == 0 || label < classes, FormatError, labels_path, ": label ", label, " at position ", i,
             ", expected a class below ", classes);
    if (classes == 0) num_classes_ = std::max(num_classes_, label + 1);
  }
  labels_.resize(std::size_t(count_));
  for (std::int64_t i = 0; i < count_; ++i) labels_[std::size_t(i)] = std::int32_t(labels.labels[std::size_t(i)]);
}

ImageEpochs::ImageEpochs(const std::string& images_path, const io::IdxImages& images, std::int64_t limit)
    : path_(images_path), cursor_(image_count(images, limit), cat("the ", image_count(images, limit), " images in ", images_path)) {
  count_ = image_count(images, limit);
  images_in_file_ = images.count;
  rows_ = images.rows;
  cols_ = images.cols;
  pixels_.resize(std::size_t(count_ * rows_ * cols_));
  for (std::size_t i = 0; i < pixels_.size(); ++i) pixels_[i] = pixel_to_unit(images.pixels[i]);
}

std::vector<std::uint64_t> EpochCursor::epoch_order(std::int64_t count, std::uint64_t seed, std::int64_t epoch) {
  std::vector<std::uint64_t> order(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) order[std::size_t(i)] = std::uint64_t(i);
  const PhiloxKey key = StepNoise{seed, epoch, 0}.key(NoiseStream::DataOrder);
  for (std::int64_t i = count - 1; i > 0; --i) {
    PhiloxSampleDraws draws(key, epoch, i);  // swap i's own place: no sequential state
    std::swap(order[std::size_t(i)], order[draws.below(std::uint64_t(i + 1))]);
  }
  return order;
}

Tensor TrainingData::next_slice(std::int64_t, std::int64_t, std::int64_t, const StepNoise&) {
  throw ValueError(cat("next_slice: ", describe(), " serves whole batches only"));
}

namespace {
// A slice [first, first + count) of a batch of batch_size, with a whole-batch noise (first_sample 0).
void check_slice(std::int64_t batch_size, std::int64_t first, std::int64_t count, const StepNoise& noise) {
  FM_CHECK(first >= 0 && count >= 1 && first + count <= batch_size && noise.first_sample == 0, ValueError,
           "next_slice: rows [", first, ", ", first + count, ") of a batch of ", batch_size, " (noise from sample ",
           noise.first_sample, "), expected a non-empty slice of the batch and the whole batch's noise");
}
}  // namespace

Tensor PointStream::next_batch(std::int64_t batch_size, const StepNoise& noise) {
  last_count_ = batch_size;
  last_noise_ = noise;
  // On the CPU each point's label falls out of drawing it: kept for batch_labels (a conditional
  // model's step asks; drawing them again would compute every point twice). Elsewhere they are drawn
  // only if asked for.
  if (device_ == Device::CPU)
    return distribution_->sample(batch_size, noise, DType::Float32, device_, NoiseStream::DataPoint, &last_labels_);
  last_labels_.clear();
  return distribution_->sample(batch_size, noise, DType::Float32, device_);
}

std::vector<std::int32_t> PointStream::batch_labels() const {
  if (std::int64_t(last_labels_.size()) != last_count_) last_labels_ = distribution_->labels(last_count_, last_noise_);
  return last_labels_;
}

Tensor PointStream::gather_batch(std::int64_t batch_size, std::int64_t, const std::int64_t*, const StepNoise& noise) {
  FM_CHECK(device_ == Device::CUDA, DeviceError, "gather_batch: ", describe(), " is drawn on the host");
  last_labels_.clear(), last_count_ = 0;  // (a recording reads no host labels)
  return distribution_->sample(batch_size, noise, DType::Float32, device_);
}

void PointStream::gather_labels(RowIndex& out, std::int64_t, const std::int64_t*, const LabelDropout& dropout,
                                const StepNoise& noise) {
  FM_CHECK(device_ == Device::CUDA, DeviceError, "gather_labels: ", describe(), " is drawn on the host");
  distribution_->labels_into(out, noise, dropout);
}

Tensor PointStream::next_slice(std::int64_t batch_size, std::int64_t first, std::int64_t count, const StepNoise& noise) {
  check_slice(batch_size, first, count, noise);
  StepNoise from_first = noise;
  from_first.first_sample = first;  // point i is drawn from its own place: the slice alone
  return next_batch(count, from_first);
}

void TrainingData::skip_batch(std::int64_t, const StepNoise&) {
  throw ValueError(cat("skip_batch: ", describe(), " makes its batches as it serves them (a recorded step gathers "
                       "only data kept on the device)"));
}

Tensor TrainingData::gather_batch(std::int64_t, std::int64_t, const std::int64_t*, const StepNoise&) {
  throw ValueError(cat("gather_batch: ", describe(), " is not gathered on the device"));
}

void TrainingData::gather_labels(RowIndex&, std::int64_t, const std::int64_t*, const LabelDropout&, const StepNoise&) {
  throw ValueError(cat("gather_labels: ", describe(), " has no labels kept on the device"));
}

void TrainingData::gather_served_labels(RowIndex& out, std::int64_t batch_size, const StepNoise& noise, double dropout,
                                        std::int32_t null_class) {
  FM_CHECK(noise.first_sample >= 0 && noise.first_sample + out.size() <= batch_size, ValueError,
           "gather_served_labels: rows [", noise.first_sample, ", ", noise.first_sample + out.size(),
           ") of a batch of ", batch_size, ", expected rows of the batch (", describe(), ")");
  // The served rows start at the batch's position plus the rows before them (a stored set's order;
  // fresh points ignore it and draw from noise's sample places).
  const LabelDropout drop{dropout, null_class, noise.key(NoiseStream::LabelDropout), noise.step, noise.first_sample,
                          nullptr};
  gather_labels(out, batch_position(0, batch_size) + noise.first_sample, nullptr, drop, noise);
}

const std::uint64_t* EpochCursor::next(std::int64_t batch_size, const StepNoise& noise) {
  FM_CHECK(batch_size <= count_, ValueError, "train.batch_size: ", batch_size, " is larger than ", what_);
  FM_CHECK(noise.first_sample == 0, ValueError, "epochs over stored examples serve whole batches (first sample ",
           noise.first_sample, " asked); take a rank's rows from the full batch");
  if (epoch_ < 0 || position_ + batch_size > count_) {  // a new epoch
    position_ = 0;
    ++epoch_;
  }
  if (order_epoch_ != epoch_) {  // also right after a resume: the order is recomputed, not stored
    order_ = epoch_order(count_, noise.seed, epoch_);
    order_epoch_ = epoch_;
    ++order_version_;
  }
  batch_start_ = position_;
  position_ += batch_size;
  return order_.data() + batch_start_;
}

const RowIndex& EpochCursor::order_on(Device device) {
  if (device_order_version_ != order_version_ || device_order_.device() != device) {
    // One copy of the order per epoch (4 bytes an example), instead of a batch of data per step.
    const std::vector<std::int32_t> rows(order_.begin(), order_.end());
    if (device_order_version_ != 0 && device_order_.device() == device)
      device_order_.overwrite(rows);
    else
      device_order_ = RowIndex(rows, count_, device);
    device_order_version_ = order_version_;
  }
  return device_order_;
}

WordState EpochCursor::state() const {
  return {{"data.position_epoch", {std::uint64_t(position_), std::uint64_t(epoch_ + 1)}}};
}

void EpochCursor::load_state(const WordState& state) {
  auto pos = state.find("data.position_epoch");
  FM_CHECK(pos != state.end() && pos->second.size() == 2, FormatError, "checkpoint: missing the data position of ",
           what_);
  // Checked as words, before any conversion: a word past 2^63 would turn negative, and the epoch's
  // "− 1" overflow. An epoch is a Philox counter of 32 bits (epoch_order), so a larger one cannot
  // come from a run.
  const std::uint64_t position_word = pos->second[0], epoch_word = pos->second[1];
  FM_CHECK(position_word <= std::uint64_t(count_), FormatError, "checkpoint: data position ", position_word,
           " is past ", what_, " (was data.limit changed?)");
  FM_CHECK(epoch_word <= (std::uint64_t(1) << 32), FormatError, "checkpoint: data epoch ", epoch_word,
           " (stored + 1), expected at most 2^32 (the epoch is a 32-bit Philox counter)");
  position_ = std::int64_t(position_word);
  epoch_ = std::int64_t(epoch_word) - 1;
  order_epoch_ = -1;
}

void ImageEpochs::keep_on(Device device) {
  device_ = device;
  // The host pixels stay: the labels, all_images() and a later keep_on(CPU) read them.
  device_images_ = device == Device::CPU ? Tensor() : all_images().to(device);
  // The labels too (4 bytes an image), for a recorded step that makes its batch's labels there.
  device_labels_ = device == Device::CPU || labels_.empty() ? RowIndex() : RowIndex(labels_, num_classes_, device);
}

void ImageEpochs::skip_batch(std::int64_t batch_size, const StepNoise& noise) {
  cursor_.next(batch_size, noise);
  last_labels_.clear();  // a skipped batch has no host labels (the recording makes its own)
  if (device_ != Device::CPU) cursor_.order_on(device_);  // a new epoch's order, into the same buffer
}

Tensor ImageEpochs::gather_batch(std::int64_t batch_size, std::int64_t position, const std::int64_t* position_on_device,
                                 const StepNoise&) {
  FM_CHECK(device_ != Device::CPU, DeviceError, "gather_batch: ", describe(), " is served from the host");
  return take_rows(device_images_, cursor_.order_on(device_), position, batch_size, position_on_device);
}

void ImageEpochs::gather_labels(RowIndex& out, std::int64_t position, const std::int64_t* position_on_device,
                                const LabelDropout& dropout, const StepNoise&) {
  FM_CHECK(gathers_labels_on_device(), DeviceError, "gather_labels: ", describe(),
           labels_.empty() ? " has no labels" : " is served from the host");
  take_labels(out, device_labels_, cursor_.order_on(device_), position, dropout, position_on_device);
}

Tensor ImageEpochs::next_batch(std::int64_t batch_size, const StepNoise& noise) {
  return next_slice(batch_size, 0, batch_size, noise);
}

Tensor ImageEpochs::next_slice(std::int64_t batch_size, std::int64_t first, std::int64_t count, const StepNoise& noise) {
  check_slice(batch_size, first, count, noise);
  const std::uint64_t* indices = cursor_.next(batch_size, noise) + first;  // the whole batch's place in the order
  if (!labels_.empty()) {  // the host copy: the eager step and a coupling read it
    last_labels_.resize(std::size_t(count));
    for (std::int64_t b = 0; b < count; ++b) last_labels_[std::size_t(b)] = labels_[indices[b]];
  }
  if (device_ != Device::CPU)  // the same rows in the same order, gathered on the device
    return take_rows(device_images_, cursor_.order_on(device_), cursor_.batch_start() + first, count);
  const std::int64_t image_size = rows_ * cols_;
  Tensor batch = Tensor::empty({count, 1, rows_, cols_});
  float* out = batch.data<float>();
  for (std::int64_t b = 0; b < count; ++b)
    std::memcpy(out + b * image_size, pixels_.data() + indices[b] * image_size, sizeof(float) * image_size);
  return batch;
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

namespace fm::flow {

PairEpochs::PairEpochs(const std::string& pairs_path)
    : PairEpochs(pairs_path, load_pairs(pairs_path)) {}

PairEpochs::PairEpochs(const std::string& pairs_path, ReflowPairs pairs)
    : path_(pairs_path), x0_(pairs.x0), x1_(pairs.x1), metadata_(std::move(pairs.metadata)),
      cursor_(pairs.x1.size(0), cat("the ", pairs.x1.size(0), " pairs in ", pairs_path)) {}

void PairEpochs::keep_on(Device device) {
  device_ = device;
  device_x0_ = device == Device::CPU ? Tensor() : x0_.to(device);
  device_x1_ = device == Device::CPU ? Tensor() : x1_.to(device);
}

Tensor PairEpochs::next_batch(std::int64_t batch_size, const StepNoise& noise) {
  return next_slice(batch_size, 0, batch_size, noise);
}

Tensor PairEpochs::next_slice(std::int64_t batch_size, std::int64_t first, std::int64_t count, const StepNoise& noise) {
  check_slice(batch_size, first, count, noise);
  const std::uint64_t* indices = cursor_.next(batch_size, noise) + first;  // the whole batch's place in the order
  if (device_ != Device::CPU) {  // the same rows in the same order, gathered on the device
    const RowIndex& order = cursor_.order_on(device_);
    last_x0_ = take_rows(device_x0_, order, cursor_.batch_start() + first, count);
    return take_rows(device_x1_, order, cursor_.batch_start() + first, count);
  }
  const std::int64_t row = x1_.numel() / x1_.size(0);
  Shape shape = x1_.shape();
  shape[0] = count;
  Tensor x0 = Tensor::empty(shape), x1 = Tensor::empty(shape);
  const float *x0_all = x0_.data<float>(), *x1_all = x1_.data<float>();
  for (std::int64_t b = 0; b < count; ++b) {
    std::memcpy(x0.data<float>() + b * row, x0_all + indices[b] * row, sizeof(float) * row);
    std::memcpy(x1.data<float>() + b * row, x1_all + indices[b] * row, sizeof(float) * row);
  }
  last_x0_ = x0;
  return x1;
}

Shape PairEpochs::example_shape() const { return Shape(x1_.shape().begin() + 1, x1_.shape().end()); }

std::string PairEpochs::describe() const {
  return cat(path_, " (", x1_.size(0), " reflow pairs of ", shape_str(example_shape()), ")");
}

}  // namespace fm::flow
