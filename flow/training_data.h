// flow/training_data.h — where training batches come from: a stream of fresh 2-D samples, or
// shuffled epochs over an image data set (MNIST-format IDX files, e.g. Fashion-MNIST).
//
// Batches are produced on the host and moved to the training device by the trainer. The shuffle
// state (permutation, position, epoch) is exported so a resumed run draws the very same batches.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"

namespace fm::flow {

using WordState = std::map<std::string, std::vector<std::uint64_t>>;

class TrainingData {
 public:
  virtual ~TrainingData() = default;
  // The next batch [batch_size, ...] (CPU, float32). `gen` is the run's generator.
  virtual Tensor next_batch(std::int64_t batch_size, Generator& gen) = 0;
  virtual Shape example_shape() const = 0;  // {2} for points, {1, 28, 28} for images
  virtual std::int64_t epoch() const { return 0; }
  virtual WordState state() const { return {}; }
  virtual void load_state(const WordState&) {}
  virtual std::string describe() const = 0;
};

// Fresh draws from a 2-D distribution each step (an infinite data set).
class PointStream : public TrainingData {
 public:
  using Sampler = std::function<Tensor(std::int64_t n, Generator& gen)>;
  PointStream(std::string name, Sampler sampler) : name_(std::move(name)), sampler_(std::move(sampler)) {}
  Tensor next_batch(std::int64_t batch_size, Generator& gen) override { return sampler_(batch_size, gen); }
  Shape example_shape() const override { return {2}; }
  std::string describe() const override { return name_ + " (fresh samples every step)"; }

 private:
  std::string name_;
  Sampler sampler_;
};

// Images from an IDX file scaled to [-1, 1], visited in a fresh random order every epoch; the
// last incomplete batch of an epoch is dropped so every batch has the same size.
class ImageEpochs : public TrainingData {
 public:
  // Reads the file (gzip or plain IDX); limit > 0 keeps only the first `limit` images.
  ImageEpochs(const std::string& images_path, std::int64_t limit = 0);
  Tensor next_batch(std::int64_t batch_size, Generator& gen) override;
  Shape example_shape() const override { return {1, rows_, cols_}; }
  std::int64_t epoch() const override { return epoch_; }
  std::int64_t size() const { return count_; }
  WordState state() const override;
  void load_state(const WordState& state) override;
  std::string describe() const override;
  // All images as one tensor [count, 1, rows, cols] in [-1, 1] (for evaluation).
  Tensor all_images() const;

 private:
  std::string path_;
  std::int64_t count_ = 0, rows_ = 0, cols_ = 0;
  std::vector<float> pixels_;  // count × rows × cols, scaled to [-1, 1]
  std::vector<std::uint64_t> order_;
  std::int64_t position_ = 0, epoch_ = -1;  // epoch -1: no permutation drawn yet
};

// Pixels 0..255 → [-1, 1] (and back for pictures): x = p / 127.5 − 1.
inline float pixel_to_unit(std::uint8_t p) { return float(p) / 127.5f - 1.f; }

}  // namespace fm::flow
