// tests/test_flow_recorded_step.cpp — the training step's forward and backward pass recorded as a
// CUDA graph and replayed (FlowTrainer, TrainerOptions::record_steps; flow/trainer.cpp):
//   * the moons MLP (points drawn on the device) and a tiny U-Net (images on the device; float32 or
//     bfloat16 activations) train bitwise as with every step eager: the same loss at every step, the
//     same weights and EMA weights at the end; every step but the first is replayed, and a replayed
//     step launches a fraction of the kernels;
//   * the same with the optimiser's reference path, whose clipping replaces the gradient slots
//     between replays (they are put back before each replay), reading every step or only the last;
//   * a step that cannot be recorded runs eagerly with the same numbers: a path that reads its times
//     on the host (cosine), anomaly mode (its checks read values back);
//   * a resumed run records again after one eager step and continues as the eager run;
//   * the optimiser pass recorded too, its per-step scalars (learning rate, bias corrections, EMA decay,
//     epoch starts) from the device: Adam, AdamW, SGD with moving schedules, windows of planned steps;
//   * class-conditional models: 8 gaussians' MLP, whose labels (after a dropout that changes them
//     every step) are drawn and dropped inside the recording (copied into a device buffer before each
//     replay under minibatch OT); a U-Net on labelled images kept on the device, whose labels are
//     gathered and dropped inside the recording (one graph launch);
//   * an eager class-conditional step (not recorded) on labelled data kept on the device gathers its
//     labels there: the bits of labels made on the host, and no copy to the device a step;
//   * images kept on the device, and moons points: the batch, x0 and t made inside the recording, a
//     step one graph launch;
//     resumed from a checkpoint into new objects, the run continues as the eager one.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "flow/datasets2d.h"
#include "flow/path.h"
#include "flow/scheduler.h"
#include "flow/trainer.h"
#include "flow/training_data.h"
#include "kernels/runtime.h"
#include "nn/ema.h"
#include "nn/mlp.h"
#include "nn/optim.h"
#include "nn/unet.h"
#include "scheduler_fixtures.h"
#include "test_util.h"

using namespace fm;
using namespace fm::flow;

namespace {

// Twelve random 8x8 images on the device, served four at a time in turn (a new batch every step);
// an epoch is three batches.
class DeviceImages : public TrainingData {
 public:
  DeviceImages() {
    Generator gen(31);
    table_ = rand_uniform({12, 1, 8, 8}, gen, -1.0, 1.0).to(Device::CUDA);
  }
  Tensor next_batch(std::int64_t batch_size, const StepNoise&) override {
    REQUIRE(batch_size == 4);
    return table_.narrow(0, (batches_++ % 3) * 4, 4);
  }
  std::int64_t epoch() const override { return (batches_ - 1) / 3; }
  Shape example_shape() const override { return {1, 8, 8}; }
  std::string describe() const override { return "device images"; }

 private:
  Tensor table_;
  std::int64_t batches_ = 0;
};

// Labelled data kept on the device whose eager steps take their labels from the host: `data` in all
// but gathers_labels_on_device(), which says no (what every eager conditional step did before labels
// were gathered on the device). Forwards what an eager step calls.
class HostLabels : public TrainingData {
 public:
  explicit HostLabels(TrainingData& data) : data_(data) {}
  Tensor next_batch(std::int64_t batch_size, const StepNoise& noise) override { return data_.next_batch(batch_size, noise); }
  void keep_on(Device device) override { data_.keep_on(device); }
  Shape example_shape() const override { return data_.example_shape(); }
  std::int64_t epoch() const override { return data_.epoch(); }
  std::string describe() const override { return data_.describe() + " (labels from the host)"; }
  int num_classes() const override { return data_.num_classes(); }
  std::vector<std::int32_t> batch_labels() const override { return data_.batch_labels(); }
  bool gathers_labels_on_device() const override { return false; }

 private:
  TrainingData& data_;
};

std::shared_ptr<const AffineProbabilityPath> path_named(const std::string& name) {
  if (name == "host_cosine")
    return std::make_shared<AffineProbabilityPath>(std::make_shared<fm::test::HostValuesOnly>(make_scheduler("cosine")));
  return make_path(name);
}

struct Run {
  std::vector<double> losses, grad_norms, epoch_losses;
  std::vector<double> weights, ema_weights;
  std::int64_t replayed = 0;
  bool update_recorded = false;        // FlowTrainer::update_recorded() at the end
  std::string note;                    // FlowTrainer::recording_note()
  kernels::RuntimeCounters last_step;  // the counters of the last step
  kernels::RuntimeCounters replayed_steps;  // the counters of steps 3 … (all replayed), summed
};

struct TrainSetup {
  bool anomaly_mode = false;
  // The optimiser made from a list of parameters: the trainer's clip + Adam + EMA then takes the
  // reference path (clip_grad_norm replaces each gradient slot with a scaled copy), and a tiny clip
  // norm makes it scale every step.
  bool optimizer_from_list = false;
  bool read_every_step = true;  // else the loss is read at the last step only, as fmtrain's log steps do
  std::string optimizer = "adam";  // "adam", "adamw" (weight decay 0.1), "sgd" (Nesterov momentum)
  // The learning rate and the EMA's decay change every step: warm-up, then cosine; EMA warm-up.
  bool moving_scalars = false;
  std::int64_t step_scalars_window = 256;  // TrainerOptions::step_scalars_window
  double label_dropout = 0.1;              // TrainerOptions::label_dropout (conditional models)
  CouplingKind coupling = CouplingKind::Independent;  // TrainerOptions::coupling.kind
  bool points = false;  // 2-D points (batches of 32) rather than images (batches of 4)
};

// Trains `steps` steps (clip 0.5, Adam, EMA 0.9, logit-normal times) and keeps what must match.
template <typename Model, typename Data>
Run train(Model& model, Data& data, const std::string& scheduler, bool record, int steps, TrainSetup setup = {}) {
  if constexpr (std::is_same_v<Data, PointStream>) setup.points = true;
  model.to(Device::CUDA);
  std::unique_ptr<nn::Optimizer> optimizer_made;
  if (setup.optimizer == "sgd") {
    optimizer_made = std::make_unique<nn::SGD>(model, nn::SGDOptions{0.05, 0.9, 0.0, 1e-3, true});
  } else if (setup.optimizer == "adamw") {
    nn::AdamOptions adamw = nn::AdamW::default_options();
    adamw.weight_decay = 0.1;
    optimizer_made = std::make_unique<nn::AdamW>(model, adamw);
  } else {
    optimizer_made = setup.optimizer_from_list ? std::make_unique<nn::Adam>(model.named_parameters())
                                               : std::make_unique<nn::Adam>(model);
  }
  nn::Optimizer& optimizer = *optimizer_made;
  nn::EMA ema(model, 0.9, /*warmup=*/setup.moving_scalars);
  nn::LRSchedule schedule;
  if (setup.moving_scalars) {
    schedule.kind = nn::LRSchedule::Kind::Cosine;
    schedule.base_lr = 3e-3;
    schedule.warmup_steps = 3;
    schedule.total_steps = steps;
    schedule.final_lr = 1e-4;
  }
  TrainerOptions options;
  options.batch_size = setup.points ? 32 : 4;
  options.grad_clip = setup.optimizer_from_list ? 1e-3 : 0.5;
  options.device = Device::CUDA;
  options.record_steps = record;
  options.step_scalars_window = setup.step_scalars_window;
  options.label_dropout = setup.label_dropout;
  options.coupling.kind = setup.coupling;
  FlowTrainer trainer(model, optimizer, schedule, &ema, data, path_named(scheduler),
                      make_time_sampler("logit_normal"), 77, options);
  AnomalyModeGuard anomaly(setup.anomaly_mode);
  Run run;
  for (int i = 0; i < steps; ++i) {
    const kernels::RuntimeCounters before = kernels::runtime_counters();
    trainer.run_step();
    run.last_step = kernels::runtime_counters() - before;
    if (i >= 2) {  // (the counters have no operator+: a − (−b) sums them field by field)
      const kernels::RuntimeCounters none{};
      run.replayed_steps = run.replayed_steps - (none - run.last_step);
    }
    if (setup.read_every_step || i + 1 == steps) {
      const StepStats stats = trainer.last_step_stats();
      run.losses.push_back(stats.loss);
      run.grad_norms.push_back(stats.grad_norm);
      if (trainer.last_step_began_epoch()) run.epoch_losses.push_back(trainer.finished_epoch_loss().sum);
    }
  }
  run.epoch_losses.push_back(trainer.take_loss_sum().sum);
  for (const auto& [name, p] : model.named_parameters())
    for (double v : p.to_vector()) run.weights.push_back(v);
  for (const auto& [name, shadow] : ema.state_dict())
    for (double v : shadow.to_vector()) run.ema_weights.push_back(v);
  run.replayed = trainer.replayed_steps();
  run.update_recorded = trainer.update_recorded();
  run.note = trainer.recording_note();
  return run;
}

// The moons MLP trained eagerly and recorded, from the same weights and data.
struct EagerAndRecorded {
  Run eager, recorded;
};
EagerAndRecorded train_moons_both_ways(int steps, const TrainSetup& setup, const std::string& scheduler = "condot") {
  Generator init_a(3), init_b(3);
  nn::VelocityMLP model_a(nn::MLPConfig{2, 32, 2}, init_a), model_b(nn::MLPConfig{2, 32, 2}, init_b);
  PointStream data_a(make_toy_distribution("moons")), data_b(make_toy_distribution("moons"));
  EagerAndRecorded runs;
  runs.eager = train(model_a, data_a, scheduler, false, steps, setup);
  runs.recorded = train(model_b, data_b, scheduler, true, steps, setup);
  return runs;
}

void require_same_training(const Run& recorded, const Run& eager) {
  REQUIRE(recorded.losses == eager.losses);
  REQUIRE(recorded.grad_norms == eager.grad_norms);
  REQUIRE(recorded.epoch_losses == eager.epoch_losses);
  REQUIRE(recorded.weights == eager.weights);
  REQUIRE(recorded.ema_weights == eager.ema_weights);
}

// model_a trained on data_a eagerly and model_b on data_b recorded, from the same weights and data:
// every step but the first replayed, nothing refused, the optimiser's pass recorded, the same bits.
// Returns the recorded run.
template <typename Model, typename Data>
Run require_recorded_like_eager(Model& model_a, Data& data_a, Model& model_b, Data& data_b, int steps,
                                const TrainSetup& setup) {
  const Run eager = train(model_a, data_a, "condot", false, steps, setup);
  const Run recorded = train(model_b, data_b, "condot", true, steps, setup);
  REQUIRE(recorded.replayed == steps - 1);
  REQUIRE(recorded.note.empty());
  REQUIRE(recorded.update_recorded);
  require_same_training(recorded, eager);
  return recorded;
}

// An 8-step run whose steps are recorded whole: steps 3 … 8 launch no kernel of the host's own, one
// graph each, read nothing back, allocate nothing, and copy to the device `copies` times. On 14
// stored images in batches of 4 (epochs begin at steps 1, 4 and 7) that is 4: at the epochs' first
// steps (4 and 7), the new order (into the buffer the recording gathers from) and a new plan of scalars.
void require_whole_steps_replayed(const Run& recorded, std::uint64_t copies = 4) {
  REQUIRE(recorded.replayed_steps.graph_replays == 6);
  REQUIRE(recorded.replayed_steps.kernel_launches == 0);
  REQUIRE(recorded.replayed_steps.library_calls == 0);
  REQUIRE(recorded.replayed_steps.synchronizations == 0);
  REQUIRE(recorded.replayed_steps.allocator_requests == 0);
  REQUIRE(recorded.replayed_steps.host_to_device_copies == copies);
}

template <typename MakeModel, typename MakeData>
void require_recorded_equals_eager(MakeModel make_model, MakeData make_data, int steps) {
  auto model_a = make_model();
  auto data_a = make_data();
  const Run eager = train(*model_a, *data_a, "condot", false, steps);
  auto model_b = make_model();
  auto data_b = make_data();
  const Run recorded = train(*model_b, *data_b, "condot", true, steps);
  REQUIRE(eager.replayed == 0);
  REQUIRE(recorded.replayed == steps - 1);  // the first step flattens the parameters, eagerly
  REQUIRE(recorded.note.empty());
  REQUIRE(recorded.update_recorded);
  require_same_training(recorded, eager);
  REQUIRE(recorded.last_step.graph_replays == 1);
  REQUIRE(recorded.last_step.synchronizations == 0);
  REQUIRE(recorded.last_step.kernel_launches * 3 < eager.last_step.kernel_launches);
}

// Two class-conditional 8-gaussians MLPs with the same initial weights, and a point stream for each.
struct LabelledMLPs {
  nn::MLPConfig config = [] {
    nn::MLPConfig c{2, 32, 2};
    c.num_classes = 8;
    return c;
  }();
  Generator init_a{3}, init_b{3};
  nn::VelocityMLP model_a{config, init_a}, model_b{config, init_b};
  PointStream data_a{make_toy_distribution("8gaussians")}, data_b{make_toy_distribution("8gaussians")};
};

// 14 labelled 8x8 images of 10 classes in a temporary folder.
struct LabelledImageFiles {
  test::TempDir dir{"fm_labelled_images"};
  std::string images = dir.file("images.idx"), labels = dir.file("labels.idx");
  LabelledImageFiles() { test::write_idx_images(images, 14, 8, 8, labels, 10); }
};

// Two tiny class-conditional U-Nets with the same initial weights, and those images for each (kept
// on the device when the step runs there).
struct LabelledUNets {
  LabelledImageFiles files;
  nn::UNetConfig config = [] {
    nn::UNetConfig c = nn::UNetConfig::tiny();
    c.num_classes = 10;
    return c;
  }();
  Generator init_a{5}, init_b{5};
  nn::UNet model_a{config, init_a}, model_b{config, init_b};
  ImageEpochs data_a{files.images, 0, files.labels, 10}, data_b{files.images, 0, files.labels, 10};
};

}  // namespace

TEST_CASE("a recorded moons MLP step replays bitwise the eager step", "[gpu]") {
  FM_REQUIRE_GPU();
  require_recorded_equals_eager(
      [] {
        Generator init(3);
        return std::make_unique<nn::VelocityMLP>(nn::MLPConfig{2, 32, 2}, init);
      },
      [] { return std::make_unique<PointStream>(make_toy_distribution("moons")); }, 5);
}

TEST_CASE("a recorded U-Net step replays bitwise the eager step", "[gpu]") {
  FM_REQUIRE_GPU();
  require_recorded_equals_eager(
      [] {
        Generator init(5);
        return std::make_unique<nn::UNet>(nn::UNetConfig::tiny(), init);
      },
      [] { return std::make_unique<DeviceImages>(); }, 4);
}

TEST_CASE("a recorded step of a U-Net on bfloat16 activations replays bitwise the eager step", "[gpu][bfloat16]") {
  FM_REQUIRE_GPU();
  // model.activations = "bfloat16": every layer's output, attention's included, is a bfloat16 tensor
  // made inside the recording; the parameters, gradients and optimiser state stay float32.
  require_recorded_equals_eager(
      [] {
        Generator init(5);
        nn::UNetConfig config = nn::UNetConfig::tiny();
        config.bfloat16_activations = true;
        return std::make_unique<nn::UNet>(config, init);
      },
      [] { return std::make_unique<DeviceImages>(); }, 4);
}

TEST_CASE("recorded steps match eager ones with the reference optimiser path clipping every step", "[gpu]") {
  FM_REQUIRE_GPU();
  // Also read only at the end, as between fmtrain's log steps.
  for (bool read_every_step : {true, false}) {
    INFO("read every step " << read_every_step);
    TrainSetup setup;
    setup.optimizer_from_list = true;
    setup.read_every_step = read_every_step;
    const auto [eager, recorded] = train_moons_both_ways(5, setup);
    REQUIRE(recorded.replayed == 4);
    REQUIRE_FALSE(recorded.update_recorded);  // the reference path: its pass stays eager
    require_same_training(recorded, eager);
  }
}

TEST_CASE("a recorded step runs the optimiser pass in the graph with each step's scalars", "[gpu]") {
  FM_REQUIRE_GPU();
  // Warm-up then cosine learning rates and the EMA's warm-up change the scalars every step; a data
  // epoch of three batches makes every third step's row differ from the plan (planned again there).
  // Adam, AdamW and Nesterov SGD, each recorded against eager: the same bits.
  for (const std::string optimizer : {"adam", "adamw", "sgd"}) {
    INFO("optimizer " << optimizer);
    TrainSetup setup;
    setup.optimizer = optimizer;
    setup.moving_scalars = true;
    Generator init_a(5), init_b(5);
    nn::UNet model_a(nn::UNetConfig::tiny(), init_a), model_b(nn::UNetConfig::tiny(), init_b);
    DeviceImages data_a, data_b;
    const Run eager = train(model_a, data_a, "condot", false, 8, setup);
    const Run recorded = train(model_b, data_b, "condot", true, 8, setup);
    REQUIRE(recorded.replayed == 7);
    REQUIRE(recorded.update_recorded);
    REQUIRE(eager.epoch_losses.size() == 3);  // two finished epochs and the sum of all eight
    require_same_training(recorded, eager);
    // Steps 3 … 8 are replays: nothing is read back, and the only copies to the device are the plans
    // made again at the epochs' first steps (4 and 7), one copy each.
    REQUIRE(recorded.replayed_steps.graph_replays == 6);
    REQUIRE(recorded.replayed_steps.synchronizations == 0);
    REQUIRE(recorded.replayed_steps.host_to_device_copies == 2);
  }
}

TEST_CASE("a recorded step of images kept on the device is one graph launch and nothing else", "[gpu]") {
  FM_REQUIRE_GPU();
  // ImageEpochs on the device: the recording gathers the batch, draws x0 and t, steps Adam and the
  // EMA and adds the loss, reading the batch position and the Philox step from the step's row. 14
  // images in batches of 4: an epoch is 3 batches (the last 2 images dropped), with a new order.
  test::TempDir dir("fm_recorded_images");
  const std::string images = dir.file("images.idx");
  test::write_idx_images(images, 14, 8, 8);
  TrainSetup setup;
  setup.moving_scalars = true;
  Generator init_a(5), init_b(5);
  nn::UNet model_a(nn::UNetConfig::tiny(), init_a), model_b(nn::UNetConfig::tiny(), init_b);
  ImageEpochs data_a(images), data_b(images);
  const Run eager = train(model_a, data_a, "condot", false, 8, setup);
  const Run recorded = train(model_b, data_b, "condot", true, 8, setup);
  REQUIRE(recorded.replayed == 7);
  REQUIRE(recorded.update_recorded);
  REQUIRE(eager.epoch_losses.size() == 4);  // epochs begin at steps 1, 4 and 7; then the sum of all eight
  require_same_training(recorded, eager);
  require_whole_steps_replayed(recorded);
}

TEST_CASE("a recorded run longer than one upload of step scalars plans the next window", "[gpu]") {
  FM_REQUIRE_GPU();
  // 12 steps, windows of 4: the recording (step 2) plans steps 2-5, then steps 6 and 10 plan the
  // next four. Over steps 3 … 12 those are the only two copies to the device (the moons points are
  // drawn there, in both runs).
  TrainSetup setup;
  setup.moving_scalars = true;
  setup.step_scalars_window = 4;
  const auto [eager, recorded] = train_moons_both_ways(12, setup);
  REQUIRE(recorded.replayed == 11);
  REQUIRE(recorded.update_recorded);
  require_same_training(recorded, eager);
  REQUIRE(eager.replayed_steps.host_to_device_copies == 0);
  REQUIRE(recorded.replayed_steps.host_to_device_copies == 2);
}

TEST_CASE("a recorded moons step draws its points inside the recording and is one graph launch", "[gpu]") {
  FM_REQUIRE_GPU();
  // PointStream kept on the device: the recording draws the batch (its step from the step's row, as
  // x0 and t), steps Adam and the EMA, adds the loss. Steps 3 … 8 launch nothing of their own and copy
  // nothing: the window of 256 planned rows covers them.
  TrainSetup setup;
  setup.moving_scalars = true;
  const auto [eager, recorded] = train_moons_both_ways(8, setup);
  REQUIRE(recorded.replayed == 7);
  REQUIRE(recorded.note.empty());
  REQUIRE(recorded.update_recorded);
  require_same_training(recorded, eager);
  require_whole_steps_replayed(recorded, 0);
}

TEST_CASE("a step that cannot be recorded runs eagerly with the same numbers", "[gpu]") {
  FM_REQUIRE_GPU();
  for (bool anomaly_mode : {false, true}) {
    INFO("anomaly mode " << anomaly_mode);
    // A path whose scheduler has no law() reads its times on the host.
    const std::string scheduler = anomaly_mode ? "condot" : "host_cosine";
    TrainSetup setup;
    setup.anomaly_mode = anomaly_mode;
    const auto [eager, tried] = train_moons_both_ways(3, setup, scheduler);
    REQUIRE(tried.replayed == 0);
    // Anomaly mode was tried and refused (and says so); the host-values path is never tried.
    if (anomaly_mode) REQUIRE_THAT(tried.note, Catch::Contains("could not be recorded"));
    else REQUIRE(tried.note.empty());
    REQUIRE(tried.losses == eager.losses);
    REQUIRE(tried.weights == eager.weights);
  }
}

TEST_CASE("steps on the cosine and VP paths are recorded and replay bitwise the eager steps", "[gpu]") {
  FM_REQUIRE_GPU();
  // Their per-sample coefficients are made on the device from the device times (core's
  // path_coefficients), so the whole step records as CondOT's does.
  for (const std::string scheduler : {"cosine", "vp"}) {
    INFO(scheduler);
    const auto [eager, recorded] = train_moons_both_ways(5, TrainSetup{}, scheduler);
    REQUIRE(recorded.replayed == 4);
    REQUIRE(recorded.note.empty());
    REQUIRE(recorded.update_recorded);
    require_same_training(recorded, eager);
    REQUIRE(recorded.last_step.graph_replays == 1);
    REQUIRE(recorded.last_step.synchronizations == 0);
  }
  // The device's coefficients are the host's: an eager cosine run equals one whose path reads the
  // times' host values, bit for bit.
  const Run on_device = train_moons_both_ways(3, TrainSetup{}, "cosine").eager;
  const Run on_host = train_moons_both_ways(3, TrainSetup{}, "host_cosine").eager;
  REQUIRE(on_host.losses == on_device.losses);
  REQUIRE(on_host.weights == on_device.weights);
}

TEST_CASE("a recorded run resumed from a checkpoint records again and continues as the eager run", "[gpu]") {
  FM_REQUIRE_GPU();
  test::TempDir dir("fm_recorded_step");
  // Three steps, a checkpoint, three more steps in a new trainer: eagerly, then recorded.
  auto run = [&](bool record) {
    Generator init(3);
    nn::VelocityMLP model(nn::MLPConfig{2, 32, 2}, init);
    model.to(Device::CUDA);
    nn::Adam optimizer(model);
    PointStream data(make_toy_distribution("moons"));
    TrainerOptions options;
    options.batch_size = 32;
    options.device = Device::CUDA;
    options.record_steps = record;
    const std::string checkpoint = dir.file(record ? "recorded.safetensors" : "eager.safetensors");
    std::vector<double> losses;
    {
      FlowTrainer trainer(model, optimizer, nn::LRSchedule{}, nullptr, data, make_path("condot"),
                          make_time_sampler("uniform"), 9, options);
      for (int i = 0; i < 3; ++i) losses.push_back(trainer.train_step().loss);
      trainer.save_checkpoint(checkpoint, {});
    }
    FlowTrainer resumed(model, optimizer, nn::LRSchedule{}, nullptr, data, make_path("condot"),
                        make_time_sampler("uniform"), 9, options);
    resumed.load_checkpoint(checkpoint);
    for (int i = 0; i < 3; ++i) losses.push_back(resumed.train_step().loss);
    REQUIRE(resumed.replayed_steps() == (record ? 2 : 0));  // the first step after the load is eager
    return losses;
  };
  REQUIRE(run(true) == run(false));
}

TEST_CASE("a recorded image run resumed into new objects continues as the eager run", "[gpu]") {
  FM_REQUIRE_GPU();
  // As fmtrain --resume does: four steps, a checkpoint, then a new model, optimiser, EMA and data
  // set load it and take four more. Epochs of three batches, so the resumed run begins one (step 7)
  // and its first replays gather from an order recomputed after the load.
  test::TempDir dir("fm_recorded_resume");
  const std::string images = dir.file("images.idx");
  test::write_idx_images(images, 14, 8, 8);
  auto run = [&](bool record) {
    TrainerOptions options;
    options.batch_size = 4;
    options.grad_clip = 0.5;
    options.device = Device::CUDA;
    options.record_steps = record;
    nn::LRSchedule schedule;
    schedule.warmup_steps = 5;
    const std::string checkpoint = dir.file(record ? "recorded.safetensors" : "eager.safetensors");
    std::vector<double> losses, weights;
    auto train_steps = [&](bool resume) {
      Generator init(5);
      nn::UNet model(nn::UNetConfig::tiny(), init);
      model.to(Device::CUDA);
      nn::AdamW optimizer(model);
      nn::EMA ema(model, 0.99, /*warmup=*/true);
      ImageEpochs data(images);
      FlowTrainer trainer(model, optimizer, schedule, &ema, data, make_path("condot"),
                          make_time_sampler("logit_normal"), 21, options);
      if (resume) trainer.load_checkpoint(checkpoint);
      for (int i = 0; i < 4; ++i) losses.push_back(trainer.train_step().loss);
      if (!resume) trainer.save_checkpoint(checkpoint, {});
      if (resume) {
        REQUIRE(trainer.replayed_steps() == (record ? 3 : 0));  // the first step after the load is eager
        REQUIRE(trainer.update_recorded() == record);
        for (const auto& [name, p] : model.named_parameters())
          for (double v : p.to_vector()) weights.push_back(v);
        for (const auto& [name, shadow] : ema.state_dict())
          for (double v : shadow.to_vector()) weights.push_back(v);
      }
    };
    train_steps(false);
    train_steps(true);
    return std::make_pair(losses, weights);
  };
  const auto recorded = run(true), eager = run(false);
  REQUIRE(recorded.first == eager.first);
  REQUIRE(recorded.second == eager.second);
}

TEST_CASE("sampling with the EMA weights between recorded steps leaves the EMA as in the eager run", "[gpu]") {
  FM_REQUIRE_GPU();
  // fmtrain's sample pictures swap the EMA weights into the model and back (ScopedEMAWeights) between
  // steps; the recorded update keeps writing the flat shadow buffer, so the swap must leave every
  // shadow there. Swapped after the first (eager) step, just before the recording, and later.
  for (int swap_after : {1, 2, 4}) {
    INFO("swap after step " << swap_after);
    auto run = [&](bool record) {
      Generator init(3);
      nn::VelocityMLP model(nn::MLPConfig{2, 32, 2}, init);
      model.to(Device::CUDA);
      nn::Adam optimizer(model);
      nn::EMA ema(model, 0.9);
      PointStream data(make_toy_distribution("moons"));
      TrainerOptions options;
      options.batch_size = 32;
      options.device = Device::CUDA;
      options.record_steps = record;
      FlowTrainer trainer(model, optimizer, nn::LRSchedule{}, &ema, data, make_path("condot"),
                          make_time_sampler("uniform"), 9, options);
      for (int i = 1; i <= 8; ++i) {
        trainer.run_step();
        if (i == swap_after) nn::ScopedEMAWeights with_ema(ema);  // in and out again
      }
      REQUIRE(trainer.update_recorded() == record);
      std::vector<double> out;
      for (const auto& [name, shadow] : ema.state_dict())
        for (double v : shadow.to_vector()) out.push_back(v);
      for (const auto& [name, p] : model.named_parameters())
        for (double v : p.to_vector()) out.push_back(v);
      return out;
    };
    REQUIRE(run(true) == run(false));
  }
}

TEST_CASE("a recorded class-conditional step reads each step's labels from the device", "[gpu]") {
  FM_REQUIRE_GPU();
  // Label dropout 0.3: the labels differ from step to step, and so would the losses of a recording
  // that kept its first step's labels. Both models, recorded against eager: the same bits.
  TrainSetup setup;
  setup.label_dropout = 0.3;
  setup.moving_scalars = true;
  SECTION("8 gaussians MLP (points and labels drawn on the device) with independent and minibatch OT pairs") {
    // Independent pairs: the points and their labels (dropped) are drawn inside the recording, a step
    // is one graph launch and copies nothing. With minibatch OT the labels are re-paired with their
    // points on the host (its assignment reads the cost matrix back: one wait a step), so x1, x0, t
    // and the labels are made eagerly and copied into the recording's buffers.
    for (CouplingKind coupling : {CouplingKind::Independent, CouplingKind::MinibatchOT}) {
      INFO("minibatch OT " << (coupling == CouplingKind::MinibatchOT));
      setup.coupling = coupling;
      LabelledMLPs m;
      const Run recorded = require_recorded_like_eager(m.model_a, m.data_a, m.model_b, m.data_b, 6, setup);
      REQUIRE(recorded.last_step.graph_replays == 1);
      if (coupling == CouplingKind::Independent) {
        REQUIRE(recorded.replayed_steps.kernel_launches == 0);
        REQUIRE(recorded.replayed_steps.synchronizations == 0);
        REQUIRE(recorded.replayed_steps.host_to_device_copies == 0);
      } else {
        REQUIRE(recorded.replayed_steps.host_to_device_copies > 0);  // the labels, at least
      }
    }
    setup.coupling = CouplingKind::Independent;
  }
  SECTION("U-Net on labelled images kept on the device (labels gathered and dropped in the recording)") {
    LabelledUNets m;
    const Run recorded = require_recorded_like_eager(m.model_a, m.data_a, m.model_b, m.data_b, 8, setup);
    require_whole_steps_replayed(recorded);  // the labels too are made in the recording
  }
}

TEST_CASE("an eager class-conditional step gathers its labels on the device and copies nothing", "[gpu]") {
  FM_REQUIRE_GPU();
  // Steps that are not recorded (a data-parallel rank's, the first after a start; here all, with
  // record_steps off) on labelled data kept on the device: the labels are gathered and dropped there.
  // The same bits as labels made on the host and copied with each step (HostLabels), and from the
  // third step on no copy to the device but each new epoch's order. Dropout 0.3: labels change every step.
  TrainSetup setup;
  setup.label_dropout = 0.3;
  SECTION("8 gaussians MLP on fresh points") {
    LabelledMLPs m;
    HostLabels host_b(m.data_b);
    setup.points = true;
    const Run on_device = train(m.model_a, m.data_a, "condot", false, 6, setup);
    const Run from_host = train(m.model_b, host_b, "condot", false, 6, setup);
    require_same_training(on_device, from_host);
    REQUIRE(on_device.replayed == 0);
    REQUIRE(on_device.replayed_steps.host_to_device_copies == 0);
    REQUIRE(from_host.replayed_steps.host_to_device_copies == 4);  // the labels, one copy a step
  }
  SECTION("U-Net on labelled images") {
    LabelledUNets m;
    HostLabels host_b(m.data_b);
    const Run on_device = train(m.model_a, m.data_a, "condot", false, 8, setup);
    const Run from_host = train(m.model_b, host_b, "condot", false, 8, setup);
    require_same_training(on_device, from_host);
    // Steps 3 … 8: epochs begin at steps 4 and 7, each uploading its order.
    REQUIRE(on_device.replayed_steps.host_to_device_copies == 2);
    REQUIRE(from_host.replayed_steps.host_to_device_copies == 2 + 6);
  }
}
