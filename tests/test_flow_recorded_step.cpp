// tests/test_flow_recorded_step.cpp — the training step's forward and backward pass recorded as a
// CUDA graph and replayed (FlowTrainer, TrainerOptions::record_steps; flow/trainer.cpp):
//   * the moons MLP (points drawn on the host) and a tiny U-Net (images on the device) train bitwise
//     as with every step eager: the same loss at every step, the same weights and EMA weights at the
//     end; every step but the first is replayed, and a replayed step launches a fraction of the kernels;
//   * the same with the optimiser's reference path, whose clipping replaces the gradient slots
//     between replays (they are put back before each replay), reading every step or only the last;
//   * a step that cannot be recorded runs eagerly with the same numbers: a path that reads its times
//     on the host (cosine), anomaly mode (its checks read values back);
//   * a resumed run records again after one eager step and continues as the eager run.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"
#include "flow/datasets2d.h"
#include "flow/trainer.h"
#include "flow/training_data.h"
#include "kernels/runtime.h"
#include "nn/ema.h"
#include "nn/mlp.h"
#include "nn/optim.h"
#include "nn/unet.h"
#include "test_util.h"

using namespace fm;
using namespace fm::flow;

namespace {

// Twelve random 8x8 images on the device, served four at a time in turn (a new batch every step).
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
  Shape example_shape() const override { return {1, 8, 8}; }
  std::string describe() const override { return "device images"; }

 private:
  Tensor table_;
  std::int64_t batches_ = 0;
};

struct Run {
  std::vector<double> losses;
  std::vector<double> weights, ema_weights;
  std::int64_t replayed = 0;
  std::string note;                    // FlowTrainer::recording_note()
  kernels::RuntimeCounters last_step;  // the counters of the last step
};

struct TrainSetup {
  bool anomaly_mode = false;
  // The optimiser made from a list of parameters: the trainer's clip + Adam + EMA then takes the
  // reference path (clip_grad_norm replaces each gradient slot with a scaled copy), and a tiny clip
  // norm makes it scale every step.
  bool optimizer_from_list = false;
  bool read_every_step = true;  // else the loss is read at the last step only, as fmtrain's log steps do
};

// Trains `steps` steps (clip 0.5, Adam, EMA 0.9, logit-normal times) and keeps what must match.
template <typename Model, typename Data>
Run train(Model& model, Data& data, const std::string& scheduler, bool record, int steps, TrainSetup setup = {}) {
  model.to(Device::CUDA);
  std::unique_ptr<nn::Adam> optimizer_made = setup.optimizer_from_list
                                                 ? std::make_unique<nn::Adam>(model.named_parameters())
                                                 : std::make_unique<nn::Adam>(model);
  nn::Adam& optimizer = *optimizer_made;
  nn::EMA ema(model, 0.9);
  TrainerOptions options;
  options.batch_size = std::is_same_v<Data, DeviceImages> ? 4 : 32;
  options.grad_clip = setup.optimizer_from_list ? 1e-3 : 0.5;
  options.device = Device::CUDA;
  options.record_steps = record;
  FlowTrainer trainer(model, optimizer, nn::LRSchedule{}, &ema, data, make_path(scheduler),
                      make_time_sampler("logit_normal"), 77, options);
  AnomalyModeGuard anomaly(setup.anomaly_mode);
  Run run;
  for (int i = 0; i < steps; ++i) {
    const kernels::RuntimeCounters before = kernels::runtime_counters();
    trainer.run_step();
    run.last_step = kernels::runtime_counters() - before;
    if (setup.read_every_step || i + 1 == steps) run.losses.push_back(trainer.last_step_stats().loss);
  }
  for (const auto& [name, p] : model.named_parameters())
    for (double v : p.to_vector()) run.weights.push_back(v);
  for (const auto& [name, shadow] : ema.state_dict())
    for (double v : shadow.to_vector()) run.ema_weights.push_back(v);
  run.replayed = trainer.replayed_steps();
  run.note = trainer.recording_note();
  return run;
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
  REQUIRE(recorded.losses == eager.losses);
  REQUIRE(recorded.weights == eager.weights);
  REQUIRE(recorded.ema_weights == eager.ema_weights);
  REQUIRE(recorded.last_step.graph_replays == 1);
  REQUIRE(recorded.last_step.synchronizations == 0);
  REQUIRE(recorded.last_step.kernel_launches * 3 < eager.last_step.kernel_launches);
}

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

TEST_CASE("recorded steps match eager ones with the reference optimiser path clipping every step", "[gpu]") {
  FM_REQUIRE_GPU();
  // Also read only at the end, as between fmtrain's log steps.
  for (bool read_every_step : {true, false}) {
    INFO("read every step " << read_every_step);
    TrainSetup setup;
    setup.optimizer_from_list = true;
    setup.read_every_step = read_every_step;
    Generator init_a(3), init_b(3);
    nn::VelocityMLP model_a(nn::MLPConfig{2, 32, 2}, init_a), model_b(nn::MLPConfig{2, 32, 2}, init_b);
    PointStream data_a(make_toy_distribution("moons")), data_b(make_toy_distribution("moons"));
    const Run eager = train(model_a, data_a, "condot", false, 5, setup);
    const Run recorded = train(model_b, data_b, "condot", true, 5, setup);
    REQUIRE(recorded.replayed == 4);
    REQUIRE(recorded.losses == eager.losses);
    REQUIRE(recorded.weights == eager.weights);
    REQUIRE(recorded.ema_weights == eager.ema_weights);
  }
}

TEST_CASE("a step that cannot be recorded runs eagerly with the same numbers", "[gpu]") {
  FM_REQUIRE_GPU();
  for (bool anomaly_mode : {false, true}) {
    INFO("anomaly mode " << anomaly_mode);
    const std::string scheduler = anomaly_mode ? "condot" : "cosine";  // cosine reads its times on the host
    Generator init_a(3), init_b(3);
    nn::VelocityMLP model_a(nn::MLPConfig{2, 32, 2}, init_a), model_b(nn::MLPConfig{2, 32, 2}, init_b);
    PointStream data_a(make_toy_distribution("moons")), data_b(make_toy_distribution("moons"));
    TrainSetup setup;
    setup.anomaly_mode = anomaly_mode;
    const Run eager = train(model_a, data_a, scheduler, false, 3, setup);
    const Run tried = train(model_b, data_b, scheduler, true, 3, setup);
    REQUIRE(tried.replayed == 0);
    // Anomaly mode was tried and refused (and says so); cosine is never tried.
    if (anomaly_mode) REQUIRE_THAT(tried.note, Catch::Contains("could not be recorded"));
    else REQUIRE(tried.note.empty());
    REQUIRE(tried.losses == eager.losses);
    REQUIRE(tried.weights == eager.weights);
  }
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
