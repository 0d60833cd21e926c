// tests/test_device_counters.cpp — the device runtime's counters (kernels/runtime.h) and a training
// step that reads nothing back from the device (flow/trainer.h, issue 14):
//   * every copy, wait and cudaMalloc is counted, and the caching allocator's hits are not mallocs;
//   * every kernel launch is counted: on the emulator, the count equals the grids it ran over whole
//     training steps of the moons MLP and a U-Net (a launch without FM_CUDA_CHECK_LAUNCH would show);
//   * a steady-state moons step between log points: no sync, no cudaMalloc, nothing copied back;
//   * a U-Net step on an image data set kept on the device copies no batch from the host: one copy
//     and a batch's bytes fewer than the same step fed from the host, the order's copy at an
//     epoch's first step instead, and the same loss;
//   * a log step reads everything it logs in one copy (one sync), and clip + Adam + EMA is at most
//     10 launches;
//   * the numbers read at a log step (the loss, its running sums, the epoch's mean, the grad norm,
//     the per-t-bin losses) are bitwise those of reading every step, on the CPU and on the device.
// This file's cases keep the caching allocator in the emulator build (tests/CMakeLists.txt), since
// what they count is what the cache does.
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <vector>

#include "core/ops.h"
#include "flow/datasets2d.h"
#include "flow/trainer.h"
#include "flow/training_data.h"
#include "kernels/runtime.h"
#include "nn/ema.h"
#include "nn/mlp.h"
#include "nn/optim.h"
#include "nn/unet.h"
#include "test_util.h"

#ifdef FM_CUDA_EMULATOR
#include <cuda_runtime.h>  // the emulator's: fm_emu::grids_run()
#endif

using namespace fm;
using namespace fm::flow;

namespace {

// Moons points whose epoch moves on every `steps_per_epoch` batches, so the epoch sums are exercised.
class EpochedPoints : public TrainingData {
 public:
  explicit EpochedPoints(int steps_per_epoch) : steps_per_epoch_(steps_per_epoch) {}
  Tensor next_batch(std::int64_t batch_size, const StepNoise& noise) override {
    epoch_ = batches_++ / steps_per_epoch_;
    return points_.next_batch(batch_size, noise);
  }
  Shape example_shape() const override { return {2}; }
  std::int64_t epoch() const override { return epoch_; }
  std::string describe() const override { return "moons in epochs"; }

 private:
  PointStream points_{make_toy_distribution("moons")};
  int steps_per_epoch_;
  std::int64_t batches_ = 0, epoch_ = -1;
};

// fmtrain's moons recipe, small: MLP, Adam, EMA, clipping (so the clip is decided every step).
struct MoonsRun {
  Generator init{3};
  nn::VelocityMLP model{nn::MLPConfig{2, 32, 2}, init};
  std::unique_ptr<nn::Adam> optimizer;
  std::unique_ptr<nn::EMA> ema;
  EpochedPoints data{3};
  std::unique_ptr<FlowTrainer> trainer;
  explicit MoonsRun(Device device, double grad_clip = 0.5) {
    model.to(device);
    optimizer = std::make_unique<nn::Adam>(model);
    ema = std::make_unique<nn::EMA>(model, 0.9);
    trainer = std::make_unique<FlowTrainer>(model, *optimizer, nn::LRSchedule{}, ema.get(), data, make_path("condot"),
                                            make_time_sampler("logit_normal"), 1234,
                                            TrainerOptions{32, grad_clip, 5, device, nullptr, {}});
  }
};

// Steps `straight` with train_step (every step read) and `deferred` with run_step, reading only at
// the "log steps" 3 and 7 and at the epoch ends (every 3 steps): every number must be the same bits.
void require_deferred_reads_equal_per_step_reads(Device device) {
  MoonsRun straight(device), deferred(device);
  std::vector<double> losses;
  double since_log = 0, epoch_sum = 0, finished_epoch = 0;
  for (int step = 1; step <= 7; ++step) {
    INFO("step " << step);
    const StepStats every = straight.trainer->train_step();
    deferred.trainer->run_step();
    // The epoch moved on with this batch: the previous epoch's sum is final.
    if (deferred.trainer->last_step_began_epoch()) {
      if (step > 1) REQUIRE(deferred.trainer->finished_epoch_loss().sum == epoch_sum);
      finished_epoch = epoch_sum;
      epoch_sum = 0;
    }
    since_log += every.loss;
    epoch_sum += every.loss;
    if (step == 3 || step == 7) {
      const StepStats read = deferred.trainer->last_step_stats();
      REQUIRE(read.step == every.step);
      REQUIRE(read.loss == every.loss);
      REQUIRE(read.grad_norm == every.grad_norm);
      REQUIRE(read.lr == every.lr);
      REQUIRE(read.loss_by_t_bin.size() == every.loss_by_t_bin.size());
      for (std::size_t k = 0; k < read.loss_by_t_bin.size(); ++k)
        REQUIRE((read.loss_by_t_bin[k] == every.loss_by_t_bin[k] ||
                 (std::isnan(read.loss_by_t_bin[k]) && std::isnan(every.loss_by_t_bin[k]))));
      const LossSum sum = deferred.trainer->take_loss_sum();
      REQUIRE(sum.sum == since_log);  // the same doubles added in the same order
      REQUIRE(sum.steps == (step == 3 ? 3 : 4));
      since_log = 0;
    }
  }
  REQUIRE(deferred.trainer->finished_epoch_loss().sum == finished_epoch);
  REQUIRE(deferred.trainer->finished_epoch_loss().steps == 3);
  REQUIRE(deferred.trainer->loss_sum().steps == 0);
}

}  // namespace

TEST_CASE("a CPU training step touches no device counter", "[runtime][counters]") {
  kernels::reset_runtime_counters();
  MoonsRun run(Device::CPU);
  for (int i = 0; i < 3; ++i) run.trainer->train_step();
  const kernels::RuntimeCounters c = kernels::runtime_counters();
  REQUIRE(c.kernel_launches == 0);
  REQUIRE(c.synchronizations == 0);
  REQUIRE(c.allocator_requests == 0);
  REQUIRE(c.host_to_device_bytes == 0);
  REQUIRE(c.device_to_host_bytes == 0);
}

TEST_CASE("the loss sums, epoch sums, grad norm and t-bins read at log steps equal per-step reads (CPU)",
          "[flow][trainer][counters]") {
  require_deferred_reads_equal_per_step_reads(Device::CPU);
}

TEST_CASE("the loss sums, epoch sums, grad norm and t-bins read at log steps equal per-step reads (CUDA)",
          "[flow][trainer][counters][gpu]") {
  FM_REQUIRE_GPU();
  require_deferred_reads_equal_per_step_reads(Device::CUDA);
}

TEST_CASE("the runtime counts copies, waits, cudaMalloc calls and cache hits", "[runtime][counters][gpu]") {
  FM_REQUIRE_GPU();
  using kernels::RuntimeCounters;
  const std::size_t bytes = 12345 * sizeof(float);
  std::vector<float> host(12345, 1.5f), back(12345, 0.f);
  const RuntimeCounters start = kernels::runtime_counters();
  void* block = kernels::cuda_malloc(bytes);
  kernels::cuda_copy_to_device(block, host.data(), bytes);
  RuntimeCounters d = kernels::runtime_counters() - start;
  REQUIRE(d.allocator_requests == 1);
  REQUIRE(d.host_to_device_copies == 1);
  REQUIRE(d.host_to_device_bytes == bytes);
  REQUIRE(d.synchronizations == 0);  // a copy to the device does not wait
  kernels::cuda_copy_to_host(back.data(), block, bytes);
  REQUIRE(back == host);
  kernels::cuda_synchronize();
  d = kernels::runtime_counters() - start;
  REQUIRE(d.device_to_host_copies == 1);
  REQUIRE(d.device_to_host_bytes == bytes);
  REQUIRE(d.synchronizations == 2);  // the copy back and cuda_synchronize
  // A freed block serves the next request of its size from the cache: a request, no cudaMalloc.
  const RuntimeCounters before_reuse = kernels::runtime_counters();
  kernels::cuda_free(block);
  void* again = kernels::cuda_malloc(bytes);
  d = kernels::runtime_counters() - before_reuse;
  REQUIRE(d.allocator_requests == 1);
  REQUIRE(d.device_allocations == 0);
  REQUIRE(d.synchronizations == 0);
  kernels::cuda_free(again);
  // A size the cache cannot serve reaches cudaMalloc.
  const RuntimeCounters before_miss = kernels::runtime_counters();
  void* big = kernels::cuda_malloc(std::size_t(3) << 20);
  REQUIRE((kernels::runtime_counters() - before_miss).device_allocations == 1);
  kernels::cuda_free(big);
  // reset_runtime_counters zeroes every counter.
  kernels::reset_runtime_counters();
  const RuntimeCounters zero = kernels::runtime_counters();
  REQUIRE(zero.allocator_requests + zero.device_allocations + zero.synchronizations + zero.kernel_launches +
              zero.host_to_device_bytes + zero.device_to_host_bytes ==
          0);
}

TEST_CASE("every kernel launch of a training step is counted", "[runtime][counters][gpu]") {
  FM_REQUIRE_GPU();
  // A moons step, then a U-Net step (convolutions, GroupNorm, attention, the optimiser).
  Generator init(5);
  nn::UNetConfig config = nn::UNetConfig::tiny();
  nn::UNet unet(config, init);
  unet.to(Device::CUDA);
  nn::Adam optimizer(unet);
  nn::EMA ema(unet, 0.9);
  class Images : public TrainingData {
   public:
    Tensor next_batch(std::int64_t batch_size, const StepNoise&) override {
      Generator gen(8);
      return rand_uniform({batch_size, 1, 8, 8}, gen, -1.0, 1.0, DType::Float32, Device::CPU);
    }
    Shape example_shape() const override { return {1, 8, 8}; }
    std::string describe() const override { return "random images"; }
  } images;
  FlowTrainer unet_trainer(unet, optimizer, nn::LRSchedule{}, &ema, images, make_path("condot"),
                           make_time_sampler("uniform"), 7, TrainerOptions{2, 1.0, 5, Device::CUDA, nullptr, {}});
  MoonsRun moons(Device::CUDA);

  const kernels::RuntimeCounters before = kernels::runtime_counters();
#ifdef FM_CUDA_EMULATOR
  const std::uint64_t grids_before = fm_emu::grids_run();
#endif
  moons.trainer->train_step();
  unet_trainer.train_step();
  const kernels::RuntimeCounters d = kernels::runtime_counters() - before;
  INFO("launches counted: " << d.kernel_launches << ", library calls " << d.library_calls);
  REQUIRE(d.kernel_launches > 0);
#ifdef FM_CUDA_EMULATOR
  // Our kernels and the emulated cuBLAS (which runs no grid) are all the work there is.
  REQUIRE(d.kernel_launches == fm_emu::grids_run() - grids_before);
  REQUIRE(d.library_calls > 0);  // the MLP's and the attention's GEMMs go through cuBLAS
#endif
}

TEST_CASE("a steady-state training step waits for nothing and reaches no cudaMalloc", "[flow][counters][gpu]") {
  FM_REQUIRE_GPU();
  MoonsRun run(Device::CUDA);
  // Warm-up: the allocator's cache fills with the step's block sizes.
  for (int i = 0; i < 3; ++i) run.trainer->run_step();
  const kernels::RuntimeCounters before = kernels::runtime_counters();
  const int steps = 4;
  for (int i = 0; i < steps; ++i) run.trainer->run_step();
  const kernels::RuntimeCounters d = kernels::runtime_counters() - before;
  // What is still copied to the device each step (the data batch, the times and the path's
  // per-sample coefficients, made on the host) goes in the report, not in an assertion.
  WARN("per moons step (batch 32): " << d.kernel_launches / steps << " launches, " << d.library_calls / steps
                                     << " library calls, " << d.allocator_requests / steps << " allocator requests, "
                                     << d.host_to_device_copies / steps << " H2D copies ("
                                     << d.host_to_device_bytes / steps << " bytes)");
  REQUIRE(d.synchronizations == 0);
  REQUIRE(d.device_allocations == 0);
  REQUIRE(d.device_to_host_copies == 0);
  REQUIRE(d.device_to_host_bytes == 0);
  // The log step's read is where the waiting happens, and it sees every step: everything a log step
  // reads (the loss, the sums, the epoch's, the grad norm, the t-bins) comes back in one copy.
  const kernels::RuntimeCounters before_read = kernels::runtime_counters();
  const StepStats stats = run.trainer->last_step_stats();
  const LossSum sum = run.trainer->take_loss_sum();
  const LossSum epoch = run.trainer->finished_epoch_loss();
  const kernels::RuntimeCounters read = kernels::runtime_counters() - before_read;
  REQUIRE(sum.steps == 3 + steps);
  REQUIRE(std::isfinite(sum.sum));
  REQUIRE(std::isfinite(stats.loss));
  REQUIRE(std::isfinite(stats.grad_norm));
  REQUIRE(std::isfinite(epoch.sum));
  REQUIRE(read.synchronizations == 1);
  REQUIRE(read.device_to_host_copies == 1);
  REQUIRE(read.kernel_launches == 0);
  // Read again before the next step: nothing more is copied. After a step: one copy again.
  const kernels::RuntimeCounters before_again = kernels::runtime_counters();
  REQUIRE(run.trainer->last_step_stats().loss == stats.loss);
  REQUIRE(run.trainer->loss_sum().sum == 0.0);  // take_loss_sum restarted it
  REQUIRE((kernels::runtime_counters() - before_again).synchronizations == 0);
  run.trainer->run_step();
  const kernels::RuntimeCounters before_next = kernels::runtime_counters();
  const LossSum next = run.trainer->take_loss_sum();
  REQUIRE(next.steps == 1);
  REQUIRE(next.sum == run.trainer->last_step_stats().loss);
  REQUIRE((kernels::runtime_counters() - before_next).synchronizations == 1);
}

TEST_CASE("clip + Adam + EMA of a moons training step take at most 10 launches",
          "[flow][counters][gpu]") {
  FM_REQUIRE_GPU();
  // Counted around the optimiser's one call, on a step's real gradients (in the flat buffer). The
  // per-parameter norm took about 3 launches per parameter tensor (a U-Net has dozens).
  MoonsRun run(Device::CUDA);
  for (int i = 0; i < 2; ++i) run.trainer->run_step();
  const kernels::RuntimeCounters before = kernels::runtime_counters();
  run.optimizer->clip_step_and_update_ema_async(run.model, 0.5, run.ema.get());
  const kernels::RuntimeCounters d = kernels::runtime_counters() - before;
  WARN("moons clip + Adam + EMA: " << d.kernel_launches << " launches");
  REQUIRE(d.kernel_launches <= 10);
  REQUIRE(d.synchronizations == 0);
  // The U-Net case is tests/test_nn_grad_norm_cuda.cpp's (the same count through a backward pass).
}

namespace {

// A HostReadback of a loss accumulator, a gradient norm left on the device, and two tensors gives the
// bits of reading each on its own (LossAccumulator::read, GradNorm::value, Tensor::to_vector), with
// one copy back when they live on the device.
void require_readback_equals_separate_reads(Device device) {
  Generator gen(21);
  const Tensor losses = randn({6}, gen).to(device);
  LossAccumulator accumulator;
  for (std::int64_t i = 0; i < 6; ++i) accumulator.add(losses.narrow(0, i, 1), i == 3);
  const Tensor a = randn({37}, gen).to(device), b = rand_uniform({5}, gen, 0.0, 1.0, DType::Float32, Device::CPU);
  const nn::GradNorm norm = device == Device::CUDA ? nn::GradNorm(sum(square(a))) : nn::GradNorm(1.25);
  HostReadback readback;
  const int sums_at = accumulator.queue(readback), norm_at = norm.queue(readback), a_at = readback.add(a),
            b_at = readback.add(b);
  const kernels::RuntimeCounters before = kernels::runtime_counters();
  readback.read();
  const kernels::RuntimeCounters d = kernels::runtime_counters() - before;
  REQUIRE(d.device_to_host_copies == (device == Device::CUDA ? 1u : 0u));
  REQUIRE(d.synchronizations == (device == Device::CUDA ? 1u : 0u));
  const LossAccumulator::Sums together = LossAccumulator::sums_in(readback, sums_at), alone = accumulator.read();
  REQUIRE(together.last == alone.last);
  REQUIRE(together.since_restart == alone.since_restart);
  REQUIRE(together.epoch == alone.epoch);
  REQUIRE(together.finished_epoch == alone.finished_epoch);
  REQUIRE(norm.value_in(readback, norm_at) == norm.value());
  REQUIRE(readback.values(a_at) == a.to_vector());
  REQUIRE(readback.values(b_at) == b.to_vector());
}

}  // namespace

TEST_CASE("a HostReadback reads the bits each value read alone gives (CPU)", "[core][counters]") {
  require_readback_equals_separate_reads(Device::CPU);
}

TEST_CASE("a HostReadback reads the bits each value read alone gives, in one copy (CUDA)", "[core][counters][gpu]") {
  FM_REQUIRE_GPU();
  require_readback_equals_separate_reads(Device::CUDA);
}

namespace {

// Images served from the host every step, whatever the trainer's device: keep_on is the default
// (nothing), so the trainer copies each batch to the device, as every step did before a data set
// could stay there.
class HostServedImages : public TrainingData {
 public:
  explicit HostServedImages(const std::string& path) : images_(path) {}
  Tensor next_batch(std::int64_t batch_size, const StepNoise& noise) override {
    return images_.next_batch(batch_size, noise);
  }
  Shape example_shape() const override { return images_.example_shape(); }
  std::int64_t epoch() const override { return images_.epoch(); }
  std::string describe() const override { return images_.describe(); }

 private:
  ImageEpochs images_;
};

// A tiny U-Net trained on `data` on CUDA, from the same initial weights and seed every time.
struct ImageRun {
  Generator init{5};
  nn::UNet model{nn::UNetConfig::tiny(), init};
  std::unique_ptr<nn::Adam> optimizer;
  std::unique_ptr<FlowTrainer> trainer;
  ImageRun(TrainingData& data, std::int64_t batch) {
    model.to(Device::CUDA);
    optimizer = std::make_unique<nn::Adam>(model);
    trainer = std::make_unique<FlowTrainer>(model, *optimizer, nn::LRSchedule{}, nullptr, data, make_path("condot"),
                                            make_time_sampler("uniform"), 7,
                                            TrainerOptions{batch, 1.0, 5, Device::CUDA, nullptr, {}});
  }
};

}  // namespace

TEST_CASE("a steady-state step on images kept on the device copies no batch from the host",
          "[flow][data][counters][gpu]") {
  FM_REQUIRE_GPU();
  // 9 images of 8x8 in batches of 2: 4 steps an epoch. The same run twice: the data kept on the
  // device (the trainer asks ImageEpochs to keep it there), and fed from the host. Whatever else a
  // step copies (the times, the path's coefficients, ...) is the same in both; the difference is the
  // data's own.
  fm::test::TempDir dir("fm_test_counters_images");
  const std::string path = dir.file("images.idx");
  fm::test::write_idx_images(path, 9, 8, 8);
  const std::int64_t batch = 2, examples = 9;
  const std::uint64_t batch_bytes = std::uint64_t(batch) * 8 * 8 * sizeof(float);
  ImageEpochs kept_data(path);
  HostServedImages host_data(path);
  ImageRun kept(kept_data, batch), fed(host_data, batch);
  for (int i = 0; i < 2; ++i) {  // warm-up: the allocator's cache fills with the step's block sizes
    kept.trainer->run_step();
    fed.trainer->run_step();
  }
  for (int step = 2; step < 6; ++step) {  // steps 2, 3 end epoch 0; step 4 begins epoch 1
    INFO("step " << step);
    kernels::RuntimeCounters before = kernels::runtime_counters();
    kept.trainer->run_step();
    const kernels::RuntimeCounters on_device = kernels::runtime_counters() - before;
    before = kernels::runtime_counters();
    fed.trainer->run_step();
    const kernels::RuntimeCounters from_host = kernels::runtime_counters() - before;
    const bool epoch_begins = kept.trainer->last_step_began_epoch();
    REQUIRE(epoch_begins == (step == 4));
    WARN("step " << step << ": H2D kept on the device " << on_device.host_to_device_copies << " copies ("
                 << on_device.host_to_device_bytes << " bytes), fed from the host "
                 << from_host.host_to_device_copies << " copies (" << from_host.host_to_device_bytes << " bytes)");
    REQUIRE(on_device.synchronizations == 0);
    REQUIRE(on_device.device_to_host_copies == 0);
    if (epoch_begins) {  // the epoch's order (4 bytes an image) is copied instead of the batch
      REQUIRE(on_device.host_to_device_copies == from_host.host_to_device_copies);
      REQUIRE(on_device.host_to_device_bytes ==
              from_host.host_to_device_bytes - batch_bytes + std::uint64_t(examples) * sizeof(std::int32_t));
    } else {  // the batch is gathered on the device: one copy and a batch's bytes fewer
      REQUIRE(on_device.host_to_device_copies + 1 == from_host.host_to_device_copies);
      REQUIRE(on_device.host_to_device_bytes + batch_bytes == from_host.host_to_device_bytes);
      REQUIRE(on_device.device_allocations == 0);
    }
  }
  // The same batches, so the same training: the same loss, to the bit.
  REQUIRE(kept.trainer->last_step_stats().loss == fed.trainer->last_step_stats().loss);
}
