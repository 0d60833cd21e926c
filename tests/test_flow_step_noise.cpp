// tests/test_flow_step_noise.cpp — the training step's counter-based randomness (flow/step_noise.h):
// the loss's x0 and t by (seed, step, sample index) and independent of the batch split, an image
// epoch's order by (seed, epoch), bitwise resume of a FlowTrainer from its checkpoint (seed, step and
// data position only), and the clear refusal of a checkpoint from the older generator format.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

#include "core/io/tensor_io.h"
#include "core/ops.h"
#include "flow/checkpoint_format.h"
#include "flow/datasets2d.h"
#include "flow/loss.h"
#include "flow/trainer.h"
#include "nn/mlp.h"
#include "kernels/runtime.h"
#include "kernels/runtime_counters.h"
#include "test_util.h"

using namespace fm;
using namespace fm::flow;

namespace {

// The velocity a model would predict: anything differentiable of (x_t, t) will do here.
Tensor half_of(const Tensor& x_t, const Tensor&) { return x_t * 0.5; }

}  // namespace

TEST_CASE("the loss draws x0 and t by (seed, step, sample index), whatever the batch split", "[flow][noise]") {
  Generator data_gen(1);
  const Tensor x1 = Tensor::from_vector(randn({12, 3, 2}, data_gen, DType::Float64).to_vector(), {12, 3, 2},
                                        DType::Float64);
  const StepNoise step{99, 5, 0};
  FlowMatchingLoss whole = conditional_flow_matching_loss(half_of, x1, CondOTPath(), LogitNormalTimeSampler(), step);
  REQUIRE(whole.x0.to_vector() ==
          philox_normal({12, 3, 2}, step.key(NoiseStream::X0), 5, 0, DType::Float64).to_vector());
  // A "rank" holding samples [4, 10) with first_sample 4 draws exactly those rows of x0 and t, so
  // its per-sample losses are the whole batch's.
  const std::vector<double> x1_values = x1.to_vector();
  const Tensor x1_part = Tensor::from_vector(std::vector<double>(x1_values.begin() + 4 * 6, x1_values.begin() + 10 * 6),
                                             {6, 3, 2}, DType::Float64);
  FlowMatchingLoss part =
      conditional_flow_matching_loss(half_of, x1_part, CondOTPath(), LogitNormalTimeSampler(), StepNoise{99, 5, 4});
  const std::vector<double> x0 = whole.x0.to_vector(), t = whole.t.to_vector(), l = whole.per_sample_loss.to_vector();
  REQUIRE(part.x0.to_vector() == std::vector<double>(x0.begin() + 24, x0.begin() + 60));
  REQUIRE(part.t.to_vector() == std::vector<double>(t.begin() + 4, t.begin() + 10));
  REQUIRE(part.per_sample_loss.to_vector() == std::vector<double>(l.begin() + 4, l.begin() + 10));
  // x0 and t are different streams: not the same numbers.
  REQUIRE(whole.x0.to_vector() != philox_normal({12, 3, 2}, step.key(NoiseStream::Time), 5, 0, DType::Float64).to_vector());
  // Another step gives other noise.
  FlowMatchingLoss next = conditional_flow_matching_loss(half_of, x1, CondOTPath(), LogitNormalTimeSampler(),
                                                         StepNoise{99, 6, 0});
  REQUIRE(next.x0.to_vector() != x0);
  REQUIRE(next.t.to_vector() != t);
}

TEST_CASE("an image epoch's order is a permutation fixed by (seed, epoch)", "[flow][noise][data]") {
  const std::int64_t count = 1000;
  std::vector<std::uint64_t> order = ImageEpochs::epoch_order(count, 7, 3);
  std::vector<std::uint64_t> sorted = order, identity(count);
  std::sort(sorted.begin(), sorted.end());
  std::iota(identity.begin(), identity.end(), 0);
  REQUIRE(sorted == identity);
  REQUIRE(order != identity);
  REQUIRE(order == ImageEpochs::epoch_order(count, 7, 3));
  REQUIRE(order != ImageEpochs::epoch_order(count, 7, 4));
  REQUIRE(order != ImageEpochs::epoch_order(count, 8, 3));
  // Each image lands in each half of the order about equally often over many epochs (a biased
  // shuffle would favour some places): image 0 in the first half ~ Binomial(400, ½), sd 10.
  int first_half = 0;
  for (std::int64_t epoch = 0; epoch < 400; ++epoch) {
    std::vector<std::uint64_t> o = ImageEpochs::epoch_order(count, 7, epoch);
    first_half += std::find(o.begin(), o.end(), 0u) - o.begin() < count / 2;
  }
  REQUIRE(std::abs(first_half - 200) < 50);
  REQUIRE(ImageEpochs::epoch_order(1, 7, 0) == std::vector<std::uint64_t>{0});
  REQUIRE(ImageEpochs::epoch_order(0, 7, 0).empty());
}

namespace {

// A small moons run: MLP, Adam, EMA, a FlowTrainer over fresh points.
struct SmallRun {
  Generator init{3};
  nn::VelocityMLP model{nn::MLPConfig{2, 16, 2}, init};
  nn::Adam optimizer{model};
  nn::EMA ema{model, 0.9};
  PointStream data{make_toy_distribution("moons")};
  FlowTrainer trainer{model, optimizer, nn::LRSchedule{}, &ema, data, make_path("condot"),
                      make_time_sampler("logit_normal"), 1234, TrainerOptions{16, 1.0, 5, Device::CPU, nullptr, {}}};
  std::vector<double> weights() const {
    std::vector<double> all;
    for (const auto& [name, t] : model.state_dict()) {
      std::vector<double> v = t.to_vector();
      all.insert(all.end(), v.begin(), v.end());
    }
    for (const auto& [name, t] : ema.state_dict()) {
      std::vector<double> v = t.to_vector();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  }
};

}  // namespace

TEST_CASE("a trainer resumed from its checkpoint continues bitwise", "[flow][noise][checkpoint]") {
  fm::test::TempDir dir("fm_step_noise");
  SmallRun straight;
  std::vector<double> losses;
  for (int i = 0; i < 6; ++i) losses.push_back(straight.trainer.train_step().loss);

  SmallRun first;
  for (int i = 0; i < 3; ++i) REQUIRE(first.trainer.train_step().loss == losses[std::size_t(i)]);
  first.trainer.save_checkpoint(dir.file("ckpt.safetensors"), {});
  // The checkpoint holds the seed and the step, not a generator's state.
  io::LoadedCheckpoint saved = io::load_safetensors_with_words(dir.file("ckpt.safetensors"));
  REQUIRE(saved.words.at(kCheckpointSeedKey) == std::vector<std::uint64_t>{1234});
  REQUIRE(saved.words.at(kCheckpointStepKey) == std::vector<std::uint64_t>{3});
  REQUIRE(!saved.words.count(kCheckpointOldGeneratorKey));

  SmallRun resumed;
  resumed.trainer.load_checkpoint(dir.file("ckpt.safetensors"));
  REQUIRE(resumed.trainer.step() == 3);
  REQUIRE(resumed.trainer.seed() == 1234);
  for (int i = 3; i < 6; ++i) REQUIRE(resumed.trainer.train_step().loss == losses[std::size_t(i)]);
  REQUIRE(resumed.weights() == straight.weights());
}

TEST_CASE("a checkpoint of the older generator format is refused with one clear line", "[flow][noise][checkpoint]") {
  fm::test::TempDir dir("fm_step_noise_old");
  SmallRun run;
  run.trainer.train_step();
  run.trainer.save_checkpoint(dir.file("new.safetensors"), {});
  // Rewrite it as the older version did: the generator's six words instead of the seed.
  io::LoadedCheckpoint ckpt = io::load_safetensors_with_words(dir.file("new.safetensors"));
  ckpt.words.erase(kCheckpointSeedKey);
  ckpt.words[kCheckpointOldGeneratorKey] = {1, 2, 3, 4, 0, 0};
  io::save_safetensors_with_words(dir.file("old.safetensors"), ckpt.tensors, ckpt.words, ckpt.metadata);
  SmallRun fresh;
  REQUIRE_THROWS_AS(fresh.trainer.load_checkpoint(dir.file("old.safetensors")), FormatError);
  REQUIRE_THROWS_WITH(fresh.trainer.load_checkpoint(dir.file("old.safetensors")),
                      Catch::Contains("xoshiro256** generator") && Catch::Contains("cannot be resumed") &&
                          !Catch::Contains("\n"));
  // Without the seed (and without the old key) the message names what is missing.
  ckpt.words.erase(kCheckpointOldGeneratorKey);
  io::save_safetensors_with_words(dir.file("none.safetensors"), ckpt.tensors, ckpt.words, ckpt.metadata);
  REQUIRE_THROWS_WITH(fresh.trainer.load_checkpoint(dir.file("none.safetensors")),
                      Catch::Contains("missing trainer.seed or trainer.step"));
}

TEST_CASE("training on CUDA draws the same x0 and t as on the CPU", "[flow][noise][gpu]") {
  FM_REQUIRE_GPU();
  Generator data_gen(2);
  const Tensor x1_cpu = randn({32, 2}, data_gen);
  const StepNoise step{5, 11, 0};
  FlowMatchingLoss cpu = conditional_flow_matching_loss(half_of, x1_cpu, CondOTPath(), UniformTimeSampler(), step);
  FlowMatchingLoss gpu =
      conditional_flow_matching_loss(half_of, x1_cpu.to(Device::CUDA), CondOTPath(), UniformTimeSampler(), step);
  REQUIRE(gpu.x0.device() == Device::CUDA);
  REQUIRE(gpu.x0.to_vector() == cpu.x0.to_vector());
  REQUIRE(gpu.t.to_vector() == cpu.t.to_vector());
  // Every sampler: the times are drawn on the device (no copy to it), and with CondOT the path's
  // coefficients are made there too; x_t, hence the loss, is the CPU's bit for bit.
  TimeSamplerOptions options;
  options.grid_points = 4;
  for (const std::string& name : time_sampler_names()) {
    INFO(name);
    auto sampler = make_time_sampler(name, options);
    const Tensor x1 = x1_cpu.to(Device::CUDA);
    const FlowMatchingLoss on_cpu = conditional_flow_matching_loss(half_of, x1_cpu, CondOTPath(), *sampler, step);
    const kernels::RuntimeCounters before = kernels::runtime_counters();
    const FlowMatchingLoss on_gpu = conditional_flow_matching_loss(half_of, x1, CondOTPath(), *sampler, step);
    const kernels::RuntimeCounters used = kernels::runtime_counters() - before;
    REQUIRE(used.host_to_device_copies == 0);
    REQUIRE(used.device_to_host_copies == 0);
    REQUIRE(on_gpu.t.to_vector() == on_cpu.t.to_vector());
    REQUIRE(on_gpu.per_sample_loss.to_vector() == on_cpu.per_sample_loss.to_vector());
    // The batch mean is a reduction whose order differs between the devices: equal to rounding.
    REQUIRE(on_gpu.loss.item() == Approx(on_cpu.loss.item()).epsilon(1e-6));
  }
}
