// tests/test_flow_labels.cpp — class labels in training: those of the 2-D toy data (flow/datasets2d.h:
// the labelled draw gives bitwise the points of the plain draw, class_of recovers the drawn label,
// exactly where the modes are disjoint and nearly always where noise lets them touch), the labels of
// the training data (flow/training_data.h: 2-D streams, IDX label files), label dropout
// (flow/trainer.h: its rate, and its numbers fixed by seed, step and sample index; core's take_labels,
// which a recorded step makes its labels with, drops the same ones), labels following
// their rows through a coupling (flow/coupling.h), and the trainer's refusal of mismatched data.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/ops.h"
#include "flow/coupling.h"
#include "flow/datasets2d.h"
#include "flow/trainer.h"
#include "flow/training_data.h"
#include "kernels/runtime.h"
#include "nn/mlp.h"
#include "test_util.h"

using namespace fm;
using namespace fm::flow;

namespace {

double agreement(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b) {
  REQUIRE(a.size() == b.size());
  std::size_t same = 0;
  for (std::size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  return double(same) / double(a.size());
}

}  // namespace

TEST_CASE("the labelled draw gives bitwise the plain draw's points and labels in range", "[flow][data][labels]") {
  for (const std::string& name : toy_distribution_names()) {
    INFO(name);
    auto dist = make_toy_distribution(name);
    Generator a(7), b(7);
    const Tensor plain = dist->sample(300, a);
    const auto labelled = dist->sample_labelled(300, b);
    REQUIRE(labelled.points.to_vector() == plain.to_vector());
    REQUIRE(labelled.labels.size() == 300);
    std::vector<int> count(std::size_t(dist->num_classes()), 0);
    for (std::int32_t label : labelled.labels) {
      REQUIRE(label >= 0);
      REQUIRE(label < dist->num_classes());
      ++count[std::size_t(label)];
    }
    for (int c : count) REQUIRE(c > 0);  // every class occurs in 300 draws (P(miss) < 8·(7/8)^300)
    // The training form: (seed, step, first_sample) places, split anywhere.
    const StepNoise whole{11, 3, 0}, tail{11, 3, 100};
    const auto all = dist->sample_labelled(300, whole);
    REQUIRE(all.points.to_vector() == dist->sample(300, whole).to_vector());
    const auto part = dist->sample_labelled(200, tail);
    REQUIRE(std::vector<std::int32_t>(all.labels.begin() + 100, all.labels.end()) == part.labels);
  }
}

TEST_CASE("class_of recovers the drawn label", "[flow][data][labels]") {
  const std::int64_t n = 20000;
  SECTION("8 gaussians and checkerboard: exactly (disjoint modes)") {
    // 8 gaussians: the decision boundary lies 2·sin(π/8) = 0.77 = 7.7 std from each centre, so a
    // miss in 20000 draws has probability about 20000·e^(−7.7²/2) ≈ 3e-9.
    for (const char* name : {"8gaussians", "checkerboard"}) {
      INFO(name);
      auto dist = make_toy_distribution(name);
      Generator gen(21);
      const auto drawn = dist->sample_labelled(n, gen, DType::Float64);
      REQUIRE(dist->class_of(drawn.points) == drawn.labels);
    }
  }
  SECTION("moons and spiral: all but the points noise carries across a boundary") {
    // Moons (noise 0.05): the moons come within 0.5 of each other only at their tips, where a point
    // needs a 5-std excursion to cross. Spiral (noise 0.1·scale): along the arm, turn k ends where
    // turn k + 1 begins, so a point drawn within about a noise std of θ = 2π or 4π can land on the
    // other side; that is ≈ 2·(2·0.1)/(arc length 9π ≈ 28) ≈ 1.5% at most; 97% leaves room for it.
    auto moons = make_toy_distribution("moons");
    Generator gen(22);
    const auto drawn_moons = moons->sample_labelled(n, gen, DType::Float64);
    CHECK(agreement(moons->class_of(drawn_moons.points), drawn_moons.labels) > 0.999);
    auto spiral = make_toy_distribution("spiral");
    const auto drawn_spiral = spiral->sample_labelled(n, gen, DType::Float64);
    CHECK(agreement(spiral->class_of(drawn_spiral.points), drawn_spiral.labels) > 0.97);
  }
  SECTION("unnormalised moons and float32 points") {
    MoonsDistribution raw(0.05, false);
    Generator gen(23);
    const auto drawn = raw.sample_labelled(n, gen);
    CHECK(agreement(raw.class_of(drawn.points), drawn.labels) > 0.999);
  }
}

TEST_CASE("class_of labels the modes' centres and rejects bad shapes", "[flow][data][labels]") {
  EightGaussiansDistribution gaussians;
  for (int k = 0; k < 8; ++k) {
    const double angle = 2.0 * M_PI * k / 8.0;
    REQUIRE(gaussians.class_of_point(2 * std::cos(angle), 2 * std::sin(angle)) == k);
    REQUIRE(gaussians.class_of_point(5 * std::cos(angle + 0.3), 5 * std::sin(angle + 0.3)) == k);
  }
  CheckerboardDistribution board;
  REQUIRE(board.class_of_point(-1.5, -1.5) == 0);  // column −2, lower filled cell [−2, −1)
  REQUIRE(board.class_of_point(-1.5, 0.5) == 1);   // column −2, upper filled cell [0, 1)
  REQUIRE(board.class_of_point(1.5, 1.5) == 7);    // column 1, upper filled cell [1, 2)
  REQUIRE(board.class_of_point(-2.5, -1.5) == 0);  // outside: the nearest filled square
  MoonsDistribution moons;
  REQUIRE(moons.class_of_point((0.0 - 0.5) * 2, (1.0 - 0.25) * 2) == 0);  // top of the outer moon
  REQUIRE(moons.class_of_point((1.0 - 0.5) * 2, (-0.5 - 0.25) * 2) == 1);  // bottom of the inner moon
  REQUIRE_THROWS_AS(gaussians.class_of(Tensor::zeros({4, 3})), ShapeError);
}

namespace {

namespace fs = std::filesystem;

void write_big_endian(std::ofstream& out, std::uint32_t value) {
  const char bytes[4] = {char(value >> 24), char(value >> 16), char(value >> 8), char(value)};
  out.write(bytes, 4);
}

// Plain IDX files: `count` 2×2 images whose pixels all equal 10·i (so a batch row names its image),
// and `label_count` labels i % 3.
fs::path write_idx_pair(const std::string& name, std::uint32_t count, std::uint32_t label_count) {
  static const fm::test::TempDir root("fm_test_labels");  // removed when the test process ends
  const fs::path dir = root.path / name;
  fs::create_directories(dir);
  std::ofstream images(dir / "images.idx", std::ios::binary), labels(dir / "labels.idx", std::ios::binary);
  write_big_endian(images, 0x00000803);
  write_big_endian(images, count);
  write_big_endian(images, 2);
  write_big_endian(images, 2);
  for (std::uint32_t i = 0; i < count; ++i)
    for (int p = 0; p < 4; ++p) images.put(char(10 * i));
  write_big_endian(labels, 0x00000801);
  write_big_endian(labels, label_count);
  for (std::uint32_t i = 0; i < label_count; ++i) labels.put(char(i % 3));
  return dir;
}

}  // namespace

TEST_CASE("a 2-D point stream labels each point by the mode it was drawn from", "[flow][data][labels]") {
  auto dist = make_toy_distribution("8gaussians");
  PointStream stream(dist);
  REQUIRE(stream.num_classes() == 8);
  REQUIRE(stream.batch_labels().empty());  // before any batch
  const Tensor batch = stream.next_batch(500, StepNoise{5, 2, 0});
  REQUIRE(stream.batch_labels().size() == 500);
  REQUIRE(stream.batch_labels() == dist->class_of(batch));
  REQUIRE(batch.to_vector() == dist->sample(500, StepNoise{5, 2, 0}).to_vector());  // the points of before
}

TEST_CASE("image epochs carry the label file's labels with their images", "[flow][data][labels]") {
  const fs::path dir = write_idx_pair("epochs", 12, 12);
  ImageEpochs unlabelled((dir / "images.idx").string());
  REQUIRE(unlabelled.num_classes() == 0);
  unlabelled.next_batch(4, StepNoise{1, 0, 0});
  REQUIRE(unlabelled.batch_labels().empty());

  ImageEpochs labelled((dir / "images.idx").string(), 0, (dir / "labels.idx").string());
  REQUIRE(labelled.num_classes() == 3);
  for (int step = 0; step < 5; ++step) {  // crosses an epoch boundary (3 batches of 4 per epoch)
    const Tensor batch = labelled.next_batch(4, StepNoise{1, step, 0});
    const std::vector<double> pixels = batch.to_vector();
    const std::vector<std::int32_t> labels = labelled.batch_labels();
    REQUIRE(labels.size() == 4);
    for (std::size_t b = 0; b < 4; ++b) {
      // pixel = 10·i / 127.5 − 1 names image i, whose label is i % 3
      const int image = int(std::lround((pixels[4 * b] + 1.0) * 127.5 / 10.0));
      INFO("step " << step << " row " << b << " image " << image);
      REQUIRE(labels[b] == image % 3);
    }
  }
  // A limit keeps the first images' labels; the class count is the whole file's.
  ImageEpochs limited((dir / "images.idx").string(), 2, (dir / "labels.idx").string());
  REQUIRE(limited.num_classes() == 3);
  limited.next_batch(2, StepNoise{1, 0, 0});
  std::vector<std::int32_t> first_two = limited.batch_labels();
  std::sort(first_two.begin(), first_two.end());
  REQUIRE(first_two == std::vector<std::int32_t>{0, 1});

  // A caller that knows the data set's class count passes it: more classes than the file shows are
  // fine, a label at or above the count is refused.
  REQUIRE(ImageEpochs((dir / "images.idx").string(), 0, (dir / "labels.idx").string(), 10).num_classes() == 10);
  REQUIRE_THROWS_WITH(ImageEpochs((dir / "images.idx").string(), 0, (dir / "labels.idx").string(), 2),
                      Catch::Contains("label 2 at position 2") && Catch::Contains("below 2"));

  const fs::path short_labels = write_idx_pair("short", 12, 11);
  REQUIRE_THROWS_WITH(ImageEpochs((short_labels / "images.idx").string(), 0, (short_labels / "labels.idx").string()),
                      Catch::Contains("11 labels") && Catch::Contains("12 images"));
}

TEST_CASE("take_labels drops the labels drop_labels drops", "[flow][labels]") {
  // A recorded step makes its labels with core's take_labels (kernels/labels.h); an eager step with
  // drop_labels on the host. Both at run_step's places: the same labels, for several seeds and steps.
  std::vector<std::int32_t> labels, order;
  for (int i = 0; i < 300; ++i) labels.push_back(i % 10);
  for (int i = 0; i < 300; ++i) order.push_back((101 * i + 7) % 300);
  const RowIndex on_cpu(labels, 10, Device::CPU), order_on_cpu(order, 300, Device::CPU);
  RowIndex out(std::vector<std::int32_t>(256, 0), 11, Device::CPU);
  for (const StepNoise noise : {StepNoise{1, 0, 0}, StepNoise{9, 4, 0}, StepNoise{77, 123456, 0}}) {
    INFO("seed " << noise.seed << " step " << noise.step);
    const std::int64_t first = 30;
    std::vector<std::int32_t> gathered;
    for (std::int64_t i = 0; i < 256; ++i) gathered.push_back(labels[std::size_t(order[std::size_t(first + i)])]);
    take_labels(out, on_cpu, order_on_cpu, first,
                LabelDropout{0.1, 10, noise.key(NoiseStream::LabelDropout), noise.step, 0, nullptr});
    const std::vector<std::int32_t> made(out.data(), out.data() + out.size());
    REQUIRE(made == drop_labels(gathered, 0.1, 10, noise));
    REQUIRE(made != gathered);  // some were dropped
  }
}

TEST_CASE("label dropout replaces labels by the null class at its rate by seed step and index", "[flow][labels]") {
  const std::size_t n = 20000;
  const std::vector<std::int32_t> labels(n, 3);
  const StepNoise noise{9, 4, 0};
  const double p = 0.25;
  const std::vector<std::int32_t> dropped = drop_labels(labels, p, 8, noise);
  std::size_t nulls = 0;
  for (std::int32_t label : dropped) {
    REQUIRE((label == 3 || label == 8));
    nulls += label == 8;
  }
  // Binomial(n, p): the rate within 5 standard deviations, sqrt(p(1 − p)/n) = 0.0031.
  REQUIRE(std::abs(double(nulls) / double(n) - p) < 5 * std::sqrt(p * (1 - p) / double(n)));
  REQUIRE(drop_labels(labels, p, 8, noise) == dropped);             // a resumed step drops alike
  REQUIRE(drop_labels(labels, p, 8, StepNoise{9, 5, 0}) != dropped);  // another step, other draws
  REQUIRE(drop_labels(labels, p, 8, StepNoise{10, 4, 0}) != dropped);  // another seed, other draws
  REQUIRE(drop_labels(labels, 0.0, 8, noise) == labels);
  // Sample i's decision is its own: a slice starting at sample 100 gets rows 100… of the whole.
  const std::vector<std::int32_t> tail = drop_labels(std::vector<std::int32_t>(n - 100, 3), p, 8, StepNoise{9, 4, 100});
  REQUIRE(tail == std::vector<std::int32_t>(dropped.begin() + 100, dropped.end()));
  // Its own stream: not the numbers of the time draws at the same places (flow/step_noise.h).
  std::size_t same_as_time = 0;
  for (std::size_t i = 0; i < 1000; ++i)
    same_as_time += philox_uniform_at(noise.key(NoiseStream::LabelDropout), 4, std::int64_t(i), 0) ==
                    philox_uniform_at(noise.key(NoiseStream::Time), 4, std::int64_t(i), 0);
  REQUIRE(same_as_time == 0);
}

TEST_CASE("labels follow their data rows through minibatch OT and Sinkhorn couplings", "[flow][labels][coupling]") {
  auto dist = make_toy_distribution("8gaussians");
  const StepNoise noise{3, 7, 0};
  const auto drawn = dist->sample_labelled(128, noise);
  Generator gen(4);
  const Tensor x0 = randn({128, 2}, gen);
  for (CouplingKind kind : {CouplingKind::MinibatchOT, CouplingKind::Sinkhorn}) {
    CouplingOptions options;
    options.kind = kind;
    const std::vector<std::int32_t> partners = coupling_partners(x0, drawn.points, options, noise);
    REQUIRE(partners.size() == 128);
    const Tensor coupled = take_partners(drawn.points, partners);
    REQUIRE(coupled.to_vector() == couple(x0, drawn.points, options, noise).to_vector());  // couple() unchanged
    const std::vector<std::int32_t> labels = take_partners(drawn.labels, partners);
    REQUIRE(labels == dist->class_of(coupled));  // each row's label is its point's mode
    REQUIRE(labels != drawn.labels);               // the rows did move (P(identity) is nil)
  }
  CouplingOptions independent;
  REQUIRE(coupling_partners(x0, drawn.points, independent, noise).empty());
  REQUIRE(take_partners(drawn.labels, {}) == drawn.labels);
}

TEST_CASE("the trainer refuses a conditional model on data without its classes", "[flow][labels]") {
  Generator gen(1);
  nn::MLPConfig config;
  config.num_classes = 8;
  nn::VelocityMLP model(config, gen);
  nn::Adam optimizer(model);
  auto build = [&](TrainingData& data, double dropout) {
    TrainerOptions options;
    options.label_dropout = dropout;
    FlowTrainer trainer(model, optimizer, nn::LRSchedule{}, nullptr, data, make_path("condot"),
                        make_time_sampler("uniform"), 1, options);
  };
  PointStream gaussians(make_toy_distribution("8gaussians")), moons(make_toy_distribution("moons"));
  REQUIRE_NOTHROW(build(gaussians, 0.1));
  REQUIRE_THROWS_WITH(build(moons, 0.1), Catch::Contains("model.num_classes: 8") && Catch::Contains("has 2 classes"));
  REQUIRE_THROWS_WITH(build(gaussians, 1.0), Catch::Contains("train.label_dropout"));
  const fs::path dir = write_idx_pair("trainer", 12, 12);
  ImageEpochs unlabelled((dir / "images.idx").string());
  REQUIRE_THROWS_WITH(build(unlabelled, 0.1), Catch::Contains("has no labels"));
}

TEST_CASE("a conditional training step on CUDA with minibatch OT waits for nothing but the coupling", "[flow][labels][counters][gpu]") {
  FM_REQUIRE_GPU();
  // The labels reach the device by an asynchronous copy (into the recorded step's label buffer, or
  // with the embedding op's call when a step runs eagerly), so label conditioning and dropout add no
  // wait: the only one per step is the exact OT assignment's read of the cost matrix (it is solved on
  // the host). Independent pairs: no wait at all.
  for (CouplingKind kind : {CouplingKind::Independent, CouplingKind::MinibatchOT}) {
    Generator gen(1);
    nn::MLPConfig config;
    config.num_classes = 8;
    nn::VelocityMLP model(config, gen);
    model.to(Device::CUDA);
    nn::Adam optimizer(model);
    PointStream data(make_toy_distribution("8gaussians"));
    TrainerOptions options;
    options.batch_size = 32;
    options.device = Device::CUDA;
    options.coupling.kind = kind;
    FlowTrainer trainer(model, optimizer, nn::LRSchedule{}, nullptr, data, make_path("condot"),
                        make_time_sampler("uniform"), 1, options);
    for (int i = 0; i < 3; ++i) trainer.run_step();  // the allocator's cache fills
    const kernels::RuntimeCounters before = kernels::runtime_counters();
    const int steps = 4;
    for (int i = 0; i < steps; ++i) trainer.run_step();
    const kernels::RuntimeCounters d = kernels::runtime_counters() - before;
    const std::uint64_t expected_waits = kind == CouplingKind::MinibatchOT ? steps : 0;
    REQUIRE(d.synchronizations == expected_waits);
    REQUIRE(d.device_to_host_copies == expected_waits);
    if (!kernels::cuda_allocator_direct()) REQUIRE(d.device_allocations == 0);  // else each one is
    REQUIRE(std::isfinite(trainer.last_step_stats().loss));
  }
}
