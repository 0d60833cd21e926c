// tests/test_flow_device_data.cpp — stored training data kept on the device (TrainingData::keep_on,
// flow/training_data.h, issue 14): ImageEpochs and PairEpochs upload their examples once and gather
// each batch on the device by the epoch's order, uploaded once per epoch.
//   * over several epochs the device batches (and pairs' x0) are bitwise the host path's, in the same
//     order, with the same labels; a resumed copy continues with the same batches;
//   * within an epoch a batch copies nothing from the host; an epoch's first batch copies its order;
//   * keep_on(CPU) serves what a fresh object serves (the CPU path is today's);
//   * a data-parallel rank's slice (next_slice) is bitwise those rows of the whole batch, with their
//     labels and x0, on the CPU and on CUDA, and the slices of 3 ranks walk the epochs in step with
//     one process; a bad slice is refused; on CUDA a slice's labels gathered and dropped there (an
//     eager conditional step's, gather_served_labels) are the host's labels after drop_labels;
//   * fresh 2-D points (PointStream) kept on CUDA are drawn there: the host's bits and labels, no copy.
#include <catch2/catch.hpp>

#include <memory>
#include <vector>

#include "core/io/tensor_io.h"
#include "core/ops.h"
#include "core/random.h"
#include "flow/trainer.h"
#include "flow/training_data.h"
#include "kernels/runtime.h"
#include "test_util.h"

using namespace fm;
using namespace fm::flow;

namespace {

constexpr std::uint32_t kImages = 23;  // batches of 4: 5 per epoch, 3 images left out of each epoch
constexpr std::int64_t kBatch = 4;

// Steps `device_data` (kept on `device`) and `host_data` (served from the host) side by side for
// `steps` batches, requiring the same bits, labels and epochs, and counting what each device batch
// copied from the host: nothing, except an epoch's first batch, which copies the epoch's order.
void require_same_batches(TrainingData& device_data, TrainingData& host_data, Device device, std::int64_t first_step,
                          std::int64_t steps, std::int64_t examples) {
  for (std::int64_t step = first_step; step < first_step + steps; ++step) {
    INFO("step " << step);
    const StepNoise noise{7, step, 0};
    const std::int64_t epoch_before = device_data.epoch();
    const kernels::RuntimeCounters before = kernels::runtime_counters();
    const Tensor on_device = device_data.next_batch(kBatch, noise);
    const Tensor x0_on_device = device_data.paired_source();
    const kernels::RuntimeCounters copied = kernels::runtime_counters() - before;
    const Tensor on_host = host_data.next_batch(kBatch, noise);
    REQUIRE(on_device.device() == device);
    REQUIRE(on_host.device() == Device::CPU);
    REQUIRE(on_device.shape() == on_host.shape());
    REQUIRE(on_device.to_vector() == on_host.to_vector());
    REQUIRE(x0_on_device.defined() == host_data.paired_source().defined());
    if (x0_on_device.defined()) {
      REQUIRE(x0_on_device.device() == device);
      REQUIRE(x0_on_device.to_vector() == host_data.paired_source().to_vector());
    }
    REQUIRE(device_data.batch_labels() == host_data.batch_labels());
    REQUIRE(device_data.epoch() == host_data.epoch());
    if (device == Device::CUDA) {
      const bool new_order = device_data.epoch() != epoch_before || step == first_step;  // also after a resume
      REQUIRE(copied.host_to_device_copies == (new_order ? 1u : 0u));
      REQUIRE(copied.host_to_device_bytes == (new_order ? std::uint64_t(examples) * sizeof(std::int32_t) : 0u));
      REQUIRE(copied.synchronizations == 0);  // (a direct allocator's frees are counted apart)
    }
  }
}

// Kept on `device`: three and a half epochs equal to the host's, then a copy resumed from the state
// mid-epoch continues with the same batches.
template <typename Data, typename... Args>
void require_device_epochs_equal_host_epochs(Device device, std::int64_t examples, const Args&... args) {
  Data kept(args...), host(args...);
  kept.keep_on(device);
  require_same_batches(kept, host, device, 0, 17, examples);  // 5 batches an epoch: epochs 0 … 3
  REQUIRE(kept.epoch() == 3);
  Data resumed(args...);
  resumed.keep_on(device);
  resumed.load_state(kept.state());
  require_same_batches(resumed, host, device, 17, 6, examples);  // the rest of epoch 3, into epoch 4
  REQUIRE(resumed.epoch() == 4);
}

struct ImageFiles {
  fm::test::TempDir dir{"fm_test_device_images"};
  std::string images = dir.file("images.idx"), labels = dir.file("labels.idx");
  ImageFiles() { fm::test::write_idx_images(images, kImages, 3, 5, labels, 4); }  // not square: rows ≠ cols
};

struct PairsFile {
  fm::test::TempDir dir{"fm_test_device_pairs"};
  std::string path = dir.file("pairs.safetensors");
  PairsFile() {
    Generator gen(4);
    const Tensor x0 = randn({kImages, 2, 3}, gen), x1 = randn({kImages, 2, 3}, gen);
    io::save_safetensors(path, {{"x0", x0}, {"x1", x1}}, {{"pairs.count", std::to_string(kImages)}});
  }
};

// Three ranks' slices of a batch of 7 ([0, 3), [3, 5), [5, 7)), each from its own copy of the data
// kept on `device`, against the whole batch of a fourth copy (on the CPU), for 10 steps (3 epochs of
// 3 batches): the rows, labels and x0 of each slice are those of the whole batch.
// An eager step's labels gathered on the device (TrainingData::gather_served_labels) for the rows
// `data` served last, samples noise.first_sample … of a batch of batch_size: the host's labels of
// those rows after drop_labels (dropout 0.4: some dropped at most steps), with no copy to the device
// once the buffer exists.
void require_served_labels_dropped_as_on_host(TrainingData& data, std::int64_t batch_size, const StepNoise& noise) {
  const std::vector<std::int32_t> host = data.batch_labels();
  const std::int32_t null_class = std::int32_t(data.num_classes());
  RowIndex out(std::vector<std::int32_t>(host.size(), 0), null_class + 1, Device::CUDA);
  const kernels::RuntimeCounters before = kernels::runtime_counters();
  data.gather_served_labels(out, batch_size, noise, 0.4, null_class);
  REQUIRE((kernels::runtime_counters() - before).host_to_device_copies == 0);
  REQUIRE(out.to_vector() == drop_labels(host, 0.4, null_class, noise));
}

template <typename Data, typename... Args>
void require_slices_equal_whole_batches(Device device, const Args&... args) {
  constexpr std::int64_t batch = 7;
  const std::int64_t firsts[3] = {0, 3, 5}, counts[3] = {3, 2, 2};
  Data whole(args...);
  std::vector<std::unique_ptr<Data>> ranks;
  for (int r = 0; r < 3; ++r) {
    ranks.push_back(std::make_unique<Data>(args...));
    ranks.back()->keep_on(device);
  }
  for (std::int64_t step = 0; step < 10; ++step) {
    const StepNoise noise{9, step, 0};
    const Tensor all = whole.next_batch(batch, noise);
    const std::vector<std::int32_t> all_labels = whole.batch_labels();
    for (int r = 0; r < 3; ++r) {
      INFO("step " << step << ", rank " << r);
      const Tensor rows = ranks[std::size_t(r)]->next_slice(batch, firsts[r], counts[r], noise);
      REQUIRE(rows.device() == device);
      REQUIRE(rows.to_vector() == all.narrow(0, firsts[r], counts[r]).to_vector());
      if (whole.paired_source().defined())
        REQUIRE(ranks[std::size_t(r)]->paired_source().to_vector() ==
                whole.paired_source().narrow(0, firsts[r], counts[r]).to_vector());
      const std::vector<std::int32_t> labels = ranks[std::size_t(r)]->batch_labels();
      if (all_labels.empty()) {
        REQUIRE(labels.empty());
      } else {
        REQUIRE(labels == std::vector<std::int32_t>(all_labels.begin() + firsts[r],
                                                    all_labels.begin() + firsts[r] + counts[r]));
        if (ranks[std::size_t(r)]->gathers_labels_on_device())
          require_served_labels_dropped_as_on_host(*ranks[std::size_t(r)], batch, StepNoise{9, step, firsts[r]});
      }
      REQUIRE(ranks[std::size_t(r)]->epoch() == whole.epoch());
    }
  }
  REQUIRE(whole.epoch() == 3);
  // Refused: an empty slice, one past the batch, and a noise that does not start at the batch.
  REQUIRE_THROWS_WITH(ranks[0]->next_slice(batch, 3, 0, StepNoise{9, 10, 0}), Catch::Contains("rows [3, 3) of a batch of 7"));
  REQUIRE_THROWS_AS(ranks[0]->next_slice(batch, 5, 3, StepNoise{9, 10, 0}), ValueError);
  REQUIRE_THROWS_AS(ranks[0]->next_slice(batch, 0, 3, StepNoise{9, 10, 3}), ValueError);
}

}  // namespace

TEST_CASE("a rank's slice of a stored set's batch is those rows of the whole batch", "[flow][data]") {
  ImageFiles images;
  require_slices_equal_whole_batches<ImageEpochs>(Device::CPU, images.images, std::int64_t(0), images.labels, 0);
  require_slices_equal_whole_batches<ImageEpochs>(Device::CPU, images.images);  // unlabelled
  PairsFile pairs;
  require_slices_equal_whole_batches<PairEpochs>(Device::CPU, pairs.path);
  // Fresh points: the slice is drawn from its own samples' places, the same bits.
  PointStream whole(make_toy_distribution("moons")), rank(make_toy_distribution("moons"));
  const Tensor all = whole.next_batch(9, StepNoise{2, 4, 0});
  REQUIRE(rank.next_slice(9, 4, 5, StepNoise{2, 4, 0}).to_vector() == all.narrow(0, 4, 5).to_vector());
  const std::vector<std::int32_t> all_labels = whole.batch_labels();
  REQUIRE(all_labels == make_toy_distribution("moons")->sample_labelled(9, StepNoise{2, 4, 0}).labels);
  REQUIRE(rank.batch_labels() == std::vector<std::int32_t>(all_labels.begin() + 4, all_labels.end()));
}

TEST_CASE("a rank's slice of a stored set kept on CUDA is those rows of the whole batch", "[flow][data][gpu]") {
  FM_REQUIRE_GPU();
  ImageFiles images;
  require_slices_equal_whole_batches<ImageEpochs>(Device::CUDA, images.images, std::int64_t(0), images.labels, 0);
  PairsFile pairs;
  require_slices_equal_whole_batches<PairEpochs>(Device::CUDA, pairs.path);
  // Fresh points kept on CUDA: a slice's labels drawn there, dropped by their global sample indices.
  PointStream rank(make_toy_distribution("8gaussians"));
  rank.keep_on(Device::CUDA);
  REQUIRE(rank.gathers_labels_on_device());
  for (std::int64_t step = 0; step < 4; ++step) {
    rank.next_slice(40, 13, 20, StepNoise{2, step, 0});
    require_served_labels_dropped_as_on_host(rank, 40, StepNoise{2, step, 13});
  }
}

TEST_CASE("a data position from a checkpoint is checked as the words it is stored in", "[flow][data]") {
  // The words (position, epoch + 1) are checked before they become signed counts: a position past the
  // images, one past 2^63 (negative as a count), an epoch past the 32-bit Philox counter, and the
  // largest words there are (2^64 − 1: the epoch's − 1 overflowed) are refused naming the value.
  ImageFiles images;
  ImageEpochs data(images.images);
  const std::uint64_t huge = ~std::uint64_t(0);
  const std::vector<std::pair<std::vector<std::uint64_t>, std::string>> refused = {
      {{std::uint64_t(kImages) + 1, 1}, "data position " + std::to_string(kImages + 1) + " is past"},
      {{std::uint64_t(1) << 63, 1}, "data position 9223372036854775808 is past"},
      {{0, (std::uint64_t(1) << 32) + 1}, "data epoch 4294967297 (stored + 1), expected at most 2^32"},
      {{0, huge}, "data epoch 18446744073709551615"}};
  for (const auto& [words, message] : refused) {
    INFO(message);
    REQUIRE_THROWS_WITH(data.load_state({{"data.position_epoch", words}}), Catch::Contains(message));
  }
  // The largest that pass: the end of the set in the last epoch the counter holds (its next batch
  // would begin epoch 2^32, which the order's draw refuses in its own words).
  data.load_state({{"data.position_epoch", {std::uint64_t(kImages), std::uint64_t(1) << 32}}});
  REQUIRE(data.epoch() == (std::int64_t(1) << 32) - 1);
  REQUIRE_THROWS_AS(data.next_batch(kBatch, StepNoise{3, 0, 0}), ValueError);
  data.load_state({{"data.position_epoch", {0, 0}}});  // a cursor before its first epoch
  REQUIRE(data.next_batch(kBatch, StepNoise{3, 0, 0}).size(0) == kBatch);
  REQUIRE(data.epoch() == 0);
}

TEST_CASE("image epochs and pair epochs kept on the CPU serve today's batches", "[flow][data]") {
  ImageFiles images;
  require_device_epochs_equal_host_epochs<ImageEpochs>(Device::CPU, kImages, images.images, std::int64_t(0),
                                                       images.labels, 0);
  PairsFile pairs;
  require_device_epochs_equal_host_epochs<PairEpochs>(Device::CPU, kImages, pairs.path);
}

TEST_CASE("image epochs kept on CUDA serve the host's batches and labels, copying only each epoch's order",
          "[flow][data][gpu]") {
  FM_REQUIRE_GPU();
  ImageFiles images;
  require_device_epochs_equal_host_epochs<ImageEpochs>(Device::CUDA, kImages, images.images, std::int64_t(0),
                                                       images.labels, 0);
  // A limit keeps the first images: the order indexes those only.
  require_device_epochs_equal_host_epochs<ImageEpochs>(Device::CUDA, 21, images.images, std::int64_t(21),
                                                       images.labels, 4);
  // Unlabelled, and back on the CPU after the device.
  ImageEpochs unlabelled(images.images), host(images.images);
  unlabelled.keep_on(Device::CUDA);
  unlabelled.keep_on(Device::CPU);
  for (std::int64_t step = 0; step < 6; ++step) {
    const Tensor batch = unlabelled.next_batch(kBatch, StepNoise{3, step, 0});
    REQUIRE(batch.device() == Device::CPU);
    REQUIRE(batch.to_vector() == host.next_batch(kBatch, StepNoise{3, step, 0}).to_vector());
    REQUIRE(unlabelled.batch_labels().empty());
  }
}

TEST_CASE("pair epochs kept on CUDA serve the host's x1 and x0 rows, copying only each epoch's order",
          "[flow][data][reflow][gpu]") {
  FM_REQUIRE_GPU();
  PairsFile pairs;
  require_device_epochs_equal_host_epochs<PairEpochs>(Device::CUDA, kImages, pairs.path);
}

TEST_CASE("fresh points kept on CUDA are drawn there with the host's bits and labels, copying nothing",
          "[flow][data][gpu]") {
  FM_REQUIRE_GPU();
  for (const std::string& name : toy_distribution_names()) {
    INFO(name);
    PointStream kept(make_toy_distribution(name)), host(make_toy_distribution(name));
    kept.keep_on(Device::CUDA);
    REQUIRE(kept.gathers_on_device());
    REQUIRE_FALSE(host.gathers_on_device());
    for (std::int64_t step = 0; step < 4; ++step) {
      const StepNoise noise{5, step, 0};
      const kernels::RuntimeCounters before = kernels::runtime_counters();
      const Tensor on_device = kept.next_batch(33, noise);
      const kernels::RuntimeCounters drawn = kernels::runtime_counters() - before;
      REQUIRE(drawn.host_to_device_copies == 0);
      REQUIRE(drawn.synchronizations == 0);
      REQUIRE(on_device.device() == Device::CUDA);
      REQUIRE(on_device.to_vector() == host.next_batch(33, noise).to_vector());
      const std::vector<std::int32_t> host_labels = host.batch_labels();
      REQUIRE(host_labels.size() == 33);
      REQUIRE(kept.batch_labels() == host_labels);  // drawn on the host when asked for
      // A rank's slice, and the recording's draw (gather_batch: no position, the step's noise).
      REQUIRE(kept.next_slice(33, 10, 7, noise).to_vector() == on_device.narrow(0, 10, 7).to_vector());
      REQUIRE(kept.batch_labels() == std::vector<std::int32_t>(host_labels.begin() + 10, host_labels.begin() + 17));
      REQUIRE(kept.gather_batch(33, 0, nullptr, noise).to_vector() == on_device.to_vector());
    }
    // Back on the CPU: today's host batches.
    kept.keep_on(Device::CPU);
    REQUIRE(kept.next_batch(8, StepNoise{5, 9, 0}).device() == Device::CPU);
    REQUIRE_THROWS_AS(kept.gather_batch(8, 0, nullptr, StepNoise{5, 9, 0}), DeviceError);
  }
}
