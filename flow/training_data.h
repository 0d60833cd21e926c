// flow/training_data.h — where training batches come from: a stream of fresh 2-D samples, shuffled
// epochs over an image data set (MNIST-format IDX files, e.g. Fashion-MNIST), or shuffled epochs over
// reflow pairs (x0 and x1 both given).
//
// Stored data sets (images, pairs) can be kept on the training device (TrainingData::keep_on): the
// whole set is uploaded once and each batch is gathered there by the epoch's order, itself uploaded
// once per epoch, so a steady-state step copies no data from the host. Data made on the host each step
// (fresh 2-D points) is moved to the device by the trainer every step. Randomness comes
// from the run's Philox streams (flow/step_noise.h): a toy point from (seed, step, sample index), an
// epoch's order from (seed, epoch). The only state is therefore the position in the epoch and the
// epoch number; exported, it lets a resumed run draw the very same batches.
#pragma once
#include <cstdint>
#include <memory>
#include <map>
#include <string>
#include <vector>

#include "core/io/idx.h"
#include "core/ops.h"
#include "core/random.h"
#include "core/tensor.h"
#include "flow/datasets2d.h"
#include "flow/reflow_pairs.h"
#include "flow/step_noise.h"

namespace fm::flow {

using WordState = std::map<std::string, std::vector<std::uint64_t>>;

class TrainingData {
 public:
  virtual ~TrainingData() = default;
  // The next batch [batch_size, ...] (float32; on the device keep_on named, the CPU by default) for
  // the step noise.step; sample b of the batch is global sample noise.first_sample + b.
  virtual Tensor next_batch(std::int64_t batch_size, const StepNoise& noise) = 0;
  // Serve the batches (and paired_source) on `device` from now on. Stored data sets move there once
  // and gather each batch on the device; fresh points (PointStream) are drawn there. The batches are
  // bitwise those served on the CPU. The default does nothing: the trainer copies each batch.
  virtual void keep_on(Device) {}
  virtual Shape example_shape() const = 0;  // {2} for points, {1, 28, 28} for images
  virtual std::int64_t epoch() const { return 0; }
  // A data-parallel rank's slice (flow/trainer.cpp): rows [first, first + count) of the step's whole
  // batch of batch_size, the same bits as those rows of next_batch(batch_size, noise) (noise for the
  // whole batch: first_sample 0); batch_labels() and paired_source() then hold those rows' too. Fresh
  // points draw only the slice (every number of a sample keyed by its global index); a stored set
  // moves its epoch's order past the whole batch and gathers only the slice's rows. serves_slices()
  // says whether next_slice is there (the default throws ValueError).
  virtual bool serves_slices() const { return false; }
  virtual Tensor next_slice(std::int64_t batch_size, std::int64_t first, std::int64_t count, const StepNoise& noise);
  virtual WordState state() const { return {}; }
  virtual void load_state(const WordState&) {}
  virtual std::string describe() const = 0;
  // Data that brings its own source points (reflow pairs): the x0 rows paired with the last
  // next_batch, same shape; undefined for data that does not (the trainer then draws x0 itself).
  virtual Tensor paired_source() const { return Tensor(); }
  // Labelled data (class-conditional training): how many classes its labels have (0: unlabelled),
  // and the label of each row of the last next_batch (empty when unlabelled).
  virtual int num_classes() const { return 0; }
  virtual std::vector<std::int32_t> batch_labels() const { return {}; }

  // ---- for a recorded training step (flow/trainer.cpp), which makes its batch inside the recording
  // True for data whose batches are made on the device: gathered from a stored table through an epoch
  // order that stays in one device buffer (ImageEpochs after keep_on(CUDA)), or drawn there from
  // each point's Philox place (PointStream after keep_on(CUDA)).
  virtual bool gathers_on_device() const { return false; }
  // next_batch's bookkeeping without the gather: on to the next batch (a new epoch's order copied
  // into the same buffer).
  virtual void skip_batch(std::int64_t batch_size, const StepNoise& noise);
  // Where in its epoch's order the batch `ahead` batches after the last one starts (0: the last one),
  // if no new epoch begins before it: what a recording plans its gathers by.
  virtual std::int64_t batch_position(std::int64_t /*ahead*/, std::int64_t /*batch_size*/) const { return 0; }
  // The batch of batch_size rows from position *position_on_device of the current epoch's order (a
  // device word, read when the gather runs); `position` is the host's value of it, which is checked.
  // Data drawn fresh each step (PointStream) draws it instead from `noise`, its step read from
  // noise.step_on_device as the kernel runs.
  virtual Tensor gather_batch(std::int64_t batch_size, std::int64_t position, const std::int64_t* position_on_device,
                              const StepNoise& noise);
  // Labelled data kept on the device: the labels of gather_batch's rows, made on the device too,
  // with the label dropout applied as they are gathered (core/ops.h take_labels; fresh points:
  // toy_labels, from `noise` as gather_batch), into `out` (the recording's buffer, one label per row).
  virtual bool gathers_labels_on_device() const { return false; }
  virtual void gather_labels(RowIndex& out, std::int64_t position, const std::int64_t* position_on_device,
                             const LabelDropout& dropout, const StepNoise& noise);
  // An eager step's labels, for data that gathers them on the device: those of the rows the last
  // next_batch or next_slice served (noise: theirs, first_sample the global index of the first row,
  // e.g. a rank's slice.first), with the label dropout at the step's places — the labels
  // flow/trainer.h's drop_labels(batch_labels(), …) makes on the host — into `out`, one per row.
  void gather_served_labels(RowIndex& out, std::int64_t batch_size, const StepNoise& noise, double dropout,
                            std::int32_t null_class);
};

// Fresh draws from a 2-D distribution each step (an infinite data set): point i of step s is made
// from the Philox place (seed, DataPoint, s, i). Each point's label is the mode it was drawn from
// (ToyDistribution2D::labelled_point), made by the same draws. The points are drawn by the
// distribution's kernel (core/random.h philox_toy_points: threads on the CPU; kept on CUDA by
// keep_on, on the GPU with the CPU's bits): a step copies nothing, and a recorded step draws its batch
// inside the recording, its labels too (gather_labels). An eager step's labels, which only a
// class-conditional model reads, come with the points on the CPU (the same pass of the kernel), and
// for points kept on CUDA are drawn on the host when batch_labels() asks for them.
class PointStream : public TrainingData {
 public:
  explicit PointStream(std::shared_ptr<const ToyDistribution2D> distribution)
      : distribution_(std::move(distribution)) {}
  Tensor next_batch(std::int64_t batch_size, const StepNoise& noise) override;
  void keep_on(Device device) override { device_ = device; }
  Shape example_shape() const override { return {2}; }
  bool serves_slices() const override { return true; }  // point i is drawn from its place (seed, step, i)
  Tensor next_slice(std::int64_t batch_size, std::int64_t first, std::int64_t count, const StepNoise& noise) override;
  std::string describe() const override { return distribution_->name() + " (fresh samples every step)"; }
  int num_classes() const override { return distribution_->num_classes(); }
  std::vector<std::int32_t> batch_labels() const override;
  bool gathers_on_device() const override { return device_ == Device::CUDA; }
  // Nothing to move on: a point depends only on (seed, step, index).
  void skip_batch(std::int64_t, const StepNoise&) override { last_labels_.clear(), last_count_ = 0; }
  Tensor gather_batch(std::int64_t batch_size, std::int64_t position, const std::int64_t* position_on_device,
                      const StepNoise& noise) override;
  bool gathers_labels_on_device() const override { return device_ == Device::CUDA; }
  void gather_labels(RowIndex& out, std::int64_t position, const std::int64_t* position_on_device,
                     const LabelDropout& dropout, const StepNoise& noise) override;

 private:
  std::shared_ptr<const ToyDistribution2D> distribution_;
  Device device_ = Device::CPU;
  // The last batch's labels, or (drawn on the device) its place, for batch_labels() to draw them from.
  mutable std::vector<std::int32_t> last_labels_;
  std::int64_t last_count_ = 0;
  StepNoise last_noise_;
};

// Shuffled epochs over `count` stored examples: which examples the next batch takes. Epoch e's order
// is a Fisher–Yates shuffle whose swap i takes its 64-bit word from the Philox place (seed, DataOrder,
// e, i): a function of (seed, e) alone, recomputed after a resume instead of being stored. The last
// incomplete batch of an epoch is dropped so every batch has the same size. It serves whole batches
// (noise.first_sample must be 0): a data-parallel rank gathers only its rows of the batch, which
// every rank can compute alike from (seed, epoch, position).
class EpochCursor {
 public:
  EpochCursor(std::int64_t count, std::string what) : count_(count), what_(std::move(what)) {}
  // The example indices of the next batch (starting a new epoch when this one has too few left).
  const std::uint64_t* next(std::int64_t batch_size, const StepNoise& noise);
  // Where the last batch of next() starts in its epoch's order.
  std::int64_t batch_start() const { return batch_start_; }
  // The order of the last batch's epoch as a RowIndex on `device`: uploaded when the order changes
  // (once an epoch, and after a resume), then reused by every batch of the epoch (take_rows). Always
  // the same buffer once made (a new order is copied into it), so a recorded gather keeps reading it.
  const RowIndex& order_on(Device device);
  std::int64_t epoch() const { return epoch_; }
  WordState state() const;
  void load_state(const WordState& state);
  // The order of epoch `epoch` for `seed`: a permutation of 0 … count − 1.
  static std::vector<std::uint64_t> epoch_order(std::int64_t count, std::uint64_t seed, std::int64_t epoch);

 private:
  std::int64_t count_;
  std::string what_;                        // "the 60000 images in FILE", for messages
  std::vector<std::uint64_t> order_;        // the order of epoch order_epoch_ (a cache)
  std::int64_t order_epoch_ = -1;
  std::int64_t position_ = 0, epoch_ = -1;  // epoch -1: no epoch started yet
  std::int64_t batch_start_ = 0;            // of the last next()
  std::uint64_t order_version_ = 0;         // counts recomputations of order_
  RowIndex device_order_;                   // order_ on a device, as of device_order_version_
  std::uint64_t device_order_version_ = 0;  // 0: none uploaded
};

// Images from an IDX file scaled to [-1, 1], visited in shuffled epochs (EpochCursor), with their
// labels from an IDX label file when one is given (class-conditional training).
class ImageEpochs : public TrainingData {
 public:
  // Reads the file (gzip or plain IDX); limit > 0 keeps only the first `limit` images. labels_path
  // (optional): the matching label file; it must hold as many labels as the image file has images.
  // classes: how many classes the labels have (every label must be below it: FormatError naming the
  // file otherwise); 0 takes the largest label + 1 over the whole file (a small file may not show
  // every class, so a caller that knows the data set's count passes it).
  ImageEpochs(const std::string& images_path, std::int64_t limit = 0, const std::string& labels_path = "",
              int classes = 0);
  Tensor next_batch(std::int64_t batch_size, const StepNoise& noise) override;
  bool serves_slices() const override { return true; }  // the rank's rows of the epoch's order
  Tensor next_slice(std::int64_t batch_size, std::int64_t first, std::int64_t count, const StepNoise& noise) override;
  void keep_on(Device device) override;
  bool gathers_on_device() const override { return device_ == Device::CUDA; }
  void skip_batch(std::int64_t batch_size, const StepNoise& noise) override;
  std::int64_t batch_position(std::int64_t ahead, std::int64_t batch_size) const override {
    return cursor_.batch_start() + ahead * batch_size;  // batches follow one another in the order
  }
  Tensor gather_batch(std::int64_t batch_size, std::int64_t position, const std::int64_t* position_on_device,
                      const StepNoise& noise) override;
  bool gathers_labels_on_device() const override { return device_ == Device::CUDA && !labels_.empty(); }
  void gather_labels(RowIndex& out, std::int64_t position, const std::int64_t* position_on_device,
                     const LabelDropout& dropout, const StepNoise& noise) override;
  Shape example_shape() const override { return {1, rows_, cols_}; }
  std::int64_t epoch() const override { return cursor_.epoch(); }
  std::int64_t size() const { return count_; }
  WordState state() const override { return cursor_.state(); }
  void load_state(const WordState& state) override { cursor_.load_state(state); }
  std::string describe() const override;
  int num_classes() const override { return num_classes_; }
  std::vector<std::int32_t> batch_labels() const override { return last_labels_; }
  // All images as one tensor [count, 1, rows, cols] in [-1, 1] (for evaluation).
  Tensor all_images() const;
  static std::vector<std::uint64_t> epoch_order(std::int64_t count, std::uint64_t seed, std::int64_t epoch) {
    return EpochCursor::epoch_order(count, seed, epoch);
  }

 private:
  std::string path_;
  std::int64_t count_ = 0, rows_ = 0, cols_ = 0, images_in_file_ = 0;
  std::vector<float> pixels_;  // count × rows × cols, scaled to [-1, 1]
  Device device_ = Device::CPU;  // where batches are served (keep_on)
  Tensor device_images_;         // all_images() on device_ when that is not the CPU
  std::vector<std::int32_t> labels_, last_labels_;  // labels_: one per kept image (empty: unlabelled)
  RowIndex device_labels_;  // labels_ on device_ when that is not the CPU (for gather_labels)
  int num_classes_ = 0;
  EpochCursor cursor_;
  ImageEpochs(const std::string& images_path, const io::IdxImages& images, std::int64_t limit);
  void read_labels(const std::string& labels_path, int classes);  // fills labels_, num_classes_
};

// Reflow pairs (flow/reflow_pairs.h) visited in shuffled epochs: next_batch gives the x1 rows and
// paired_source() the x0 rows they were made from, in the same order.
class PairEpochs : public TrainingData {
 public:
  explicit PairEpochs(const std::string& pairs_path);
  Tensor next_batch(std::int64_t batch_size, const StepNoise& noise) override;
  bool serves_slices() const override { return true; }  // the rank's rows of the epoch's order
  Tensor next_slice(std::int64_t batch_size, std::int64_t first, std::int64_t count, const StepNoise& noise) override;
  void keep_on(Device device) override;
  Tensor paired_source() const override { return last_x0_; }
  Shape example_shape() const override;
  std::int64_t epoch() const override { return cursor_.epoch(); }
  std::int64_t size() const { return x1_.size(0); }
  WordState state() const override { return cursor_.state(); }
  void load_state(const WordState& state) override { cursor_.load_state(state); }
  std::string describe() const override;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string path_;
  Tensor x0_, x1_;  // [count, ...] float32, CPU
  Device device_ = Device::CPU;      // where batches are served (keep_on)
  Tensor device_x0_, device_x1_;     // x0_ and x1_ on device_ when that is not the CPU
  std::map<std::string, std::string> metadata_;
  EpochCursor cursor_;
  Tensor last_x0_;
  PairEpochs(const std::string& pairs_path, ReflowPairs pairs);
};

// Pixels 0..255 → [-1, 1] (and back for pictures): x = p / 127.5 − 1.
inline float pixel_to_unit(std::uint8_t p) { return float(p) / 127.5f - 1.f; }

}  // namespace fm::flow
