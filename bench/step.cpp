// bench/step.cpp — `fmbench step` (see step.h): a training step's device-runtime counters and time.
#include "bench/step.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/random.h"
#include "flow/captured_solve.h"
#include "flow/datasets2d.h"
#include "flow/guidance.h"
#include "flow/model_fn.h"
#include "flow/path.h"
#include "flow/time_sampler.h"
#include "flow/trainer.h"
#include "kernels/runtime.h"
#include "nn/ema.h"
#include "nn/mlp.h"
#include "nn/optim.h"
#include "nn/unet.h"

namespace fm::bench {
namespace {

// Images for the U-Net: one fixed random batch in [-1, 1], served every step (the step's work does
// not depend on pixel values, and the bench must not need the dataset). One epoch, as a stream.
// Like a stored data set (flow::ImageEpochs) it is kept on the training device, so the counted steps
// copy no batch from the host, as fmtrain's image steps do not; and like one it can be gathered inside
// a recorded step (its order: the rows as they are), so the ", graph" row records the whole step.
// With classes > 0 image i has label i mod classes (a class-conditional model's step), its labels kept
// on the device as well and made inside a recorded step with the label dropout, as ImageEpochs does.
class RandomImages : public flow::TrainingData {
 public:
  RandomImages(std::int64_t batch, std::int64_t side, int classes = 0) : shape_{1, side, side}, classes_(classes) {
    Generator gen(20240601);
    batch_ = rand_uniform({batch, 1, side, side}, gen, -1.0, 1.0, DType::Float32, Device::CPU);
    for (std::int64_t i = 0; classes > 0 && i < batch; ++i) labels_.push_back(std::int32_t(i % classes));
  }
  void keep_on(Device device) override {
    batch_ = batch_.to(device);
    std::vector<std::int32_t> rows(std::size_t(batch_.size(0)));
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = std::int32_t(i);
    order_ = RowIndex(rows, batch_.size(0), device);
    if (classes_ > 0) device_labels_ = RowIndex(labels_, classes_, device);
  }
  int num_classes() const override { return classes_; }
  std::vector<std::int32_t> batch_labels() const override { return labels_; }
  bool gathers_labels_on_device() const override { return classes_ > 0 && gathers_on_device(); }
  void gather_labels(RowIndex& out, std::int64_t position, const std::int64_t* position_on_device,
                     const LabelDropout& dropout, const flow::StepNoise&) override {
    take_labels(out, device_labels_, order_, position, dropout, position_on_device);
  }
  Tensor next_batch(std::int64_t batch_size, const flow::StepNoise& noise) override {
    skip_batch(batch_size, noise);
    return batch_;
  }
  bool gathers_on_device() const override { return batch_.device() == Device::CUDA; }
  void skip_batch(std::int64_t batch_size, const flow::StepNoise&) override {
    FM_CHECK(batch_size == batch_.size(0), ValueError, "RandomImages: batch ", batch_size, " asked, ",
             batch_.size(0), " made");
  }
  Tensor gather_batch(std::int64_t batch_size, std::int64_t position, const std::int64_t* position_on_device,
                      const flow::StepNoise&) override {
    return take_rows(batch_, order_, position, batch_size, position_on_device);
  }
  Shape example_shape() const override { return shape_; }
  std::string describe() const override { return "random images"; }

 private:
  Shape shape_;
  Tensor batch_;
  RowIndex order_;  // 0, 1, …, batch − 1 on the device
  int classes_ = 0;
  std::vector<std::int32_t> labels_;  // one per image (empty: unlabelled)
  RowIndex device_labels_;
};

// A U-Net small enough for the emulator: two levels, 4 and 8 channels, attention in the lower one.
nn::UNetConfig tiny_unet_config() { return nn::UNetConfig::tiny(); }

struct StepRow {
  std::string model;
  std::int64_t parameters = 0, batch = 0;
  double ms_per_step = 0;
  kernels::RuntimeCounters steps;     // over the counted steps
  kernels::RuntimeCounters log_read;  // one log step's reads (last_step_stats + take_loss_sum)
  kernels::RuntimeCounters optimizer;  // one clip + Adam + EMA pass (clip_step_and_update_ema_async)
  double bookkeeping_us = -1;          // the host's part of a replayed update (-1: no fused CUDA pass)
  std::size_t parameter_tensors = 0;
  int counted_steps = 0;
  double last_loss = 0;
};

// Trains `model` with the fmtrain recipe (Adam 1e-3, EMA 0.999, clip 1.0, CondOT, logit-normal t).
// `record`: the trainer records the step and replays it (TrainerOptions::record_steps).
StepRow measure(const std::string& name, nn::VelocityModel& model, flow::TrainingData& data, std::int64_t batch,
                Device device, const StepBenchOptions& options, bool record) {
  model.to(device);
  nn::Adam optimizer(model);
  nn::EMA ema(model, 0.999);
  flow::TrainerOptions trainer_options;
  trainer_options.batch_size = batch;
  trainer_options.grad_clip = 1.0;
  trainer_options.device = device;
  trainer_options.record_steps = record;
  flow::FlowTrainer trainer(model, optimizer, nn::LRSchedule{}, &ema, data, flow::make_path("condot"),
                            flow::make_time_sampler("logit_normal"), 1234, trainer_options);
  for (int i = 0; i < options.warmup_steps; ++i) trainer.run_step();
  trainer.take_loss_sum();
  kernels::cuda_synchronize();  // nothing of the warm-up left running in the timed window

  StepRow row;
  row.model = name;
  row.parameters = model.parameter_count();
  row.batch = batch;
  row.counted_steps = options.steps;
  const kernels::RuntimeCounters before = kernels::runtime_counters();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < options.steps; ++i) trainer.run_step();
  row.steps = kernels::runtime_counters() - before;
  kernels::cuda_synchronize();
  row.ms_per_step =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / options.steps;

  const kernels::RuntimeCounters before_read = kernels::runtime_counters();
  const flow::StepStats stats = trainer.last_step_stats();
  const flow::LossSum sum = trainer.take_loss_sum();
  row.log_read = kernels::runtime_counters() - before_read;
  row.last_loss = stats.loss;
  // The optimiser's share of a step, alone: one more clip + Adam + EMA pass on the last step's
  // gradients (still in the flat buffer; the next step would zero them). After every measurement,
  // so the extra update changes none of the numbers above.
  const kernels::RuntimeCounters before_optimizer = kernels::runtime_counters();
  optimizer.clip_step_and_update_ema_async(model, trainer_options.grad_clip, &ema);
  row.optimizer = kernels::runtime_counters() - before_optimizer;
  // The host's bookkeeping of a replayed update (flow/trainer.cpp replay_whole_step): the check that
  // one row of scalars serves the fused pass, with that row, then the step counts a replay advances
  // (Adam's, the EMA's). Many calls timed together; the counts are taken back afterwards, so nothing
  // above changes.
  StepScalars scalars;
  row.parameter_tensors = model.parameters().size();
  if (optimizer.step_scalars_ahead(model, &ema, 0, optimizer.lr(), scalars)) {
    constexpr int kCalls = 5000;
    const auto begin = std::chrono::steady_clock::now();
    for (int i = 0; i < kCalls; ++i) {
      optimizer.step_scalars_ahead(model, &ema, 0, optimizer.lr(), scalars);
      optimizer.count_replayed_update(&ema);
    }
    row.bookkeeping_us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - begin).count() / kCalls;
    for (int i = 0; i < kCalls; ++i) optimizer.uncount_recorded_update(&ema);
  }
  FM_CHECK(std::isfinite(stats.loss) && std::isfinite(sum.sum), NumericError, "fmbench step: ", name,
           " diverged (loss ", stats.loss, ")");
  return row;
}

void print_row(const StepRow& r, bool counters_apply) {
  const double n = r.counted_steps;
  auto per = [n](std::uint64_t v) { return double(v) / n; };
  std::printf("%-27s %9lld %6lld %9.3f", r.model.c_str(), (long long)r.parameters, (long long)r.batch, r.ms_per_step);
  if (counters_apply) {
    const kernels::RuntimeCounters& c = r.steps;
    std::printf(" %9.1f %8.1f %6.1f %6.1f %8.1f %9.1f %8.1f %10.0f %8.1f %10.0f", per(c.kernel_launches),
                per(c.library_calls), per(c.graph_replays), per(c.synchronizations), per(c.device_allocations),
                per(c.allocator_requests),
                per(c.host_to_device_copies), per(c.host_to_device_bytes), per(c.device_to_host_copies),
                per(c.device_to_host_bytes));
  } else {
    std::printf("  (CPU: no device runtime, the counters do not apply)");
  }
  std::printf("   loss %.4f\n", r.last_loss);
  if (counters_apply)
    std::printf("%-27s a log step's read of the numbers adds: %llu syncs, %llu D2H copies (%llu bytes), %llu launches\n",
                "", (unsigned long long)r.log_read.synchronizations, (unsigned long long)r.log_read.device_to_host_copies,
                (unsigned long long)r.log_read.device_to_host_bytes, (unsigned long long)r.log_read.kernel_launches);
  if (counters_apply)
    std::printf("%-27s of a step, clip + Adam + EMA (one fused pass): %llu launches, %llu syncs\n", "",
                (unsigned long long)r.optimizer.kernel_launches, (unsigned long long)r.optimizer.synchronizations);
  if (r.bookkeeping_us >= 0)
    std::printf("%-27s the host's bookkeeping of a replayed update (row check, step counts): %.2f us for %zu "
                "parameter tensors\n",
                "", r.bookkeeping_us, r.parameter_tensors);
}

// Sampling with a trained U-Net, chunk by chunk: an Euler solve issued eagerly, and the same solve
// recorded once and replayed (flow/captured_solve.h). Per chunk: time, kernel launches the host
// issues, graph replays, copies from the host; the replayed chunk must be bitwise the eager one (else
// the bench fails). before_chunk runs before every chunk's solve, eager or replayed (a guided
// sampler sets the chunk's labels there).
void print_sampling(const std::string& name, nn::UNet& unet, std::int64_t batch, std::int64_t side,
                    const StepBenchOptions& options, const flow::VelocityField& field,
                    const std::function<void()>& before_chunk) {
  NoGradGuard no_grad;
  unet.eval();
  const flow::EulerSolver solver(options.small_shapes ? 2 : 10);
  flow::CapturedSolve captured(solver, field);
  Generator gen(11);
  const Tensor noise = randn({batch, 1, side, side}, gen).to(Device::CUDA);
  before_chunk();
  const std::vector<double> eager_bits = solver.solve(field, noise).x.to_vector();
  before_chunk();
  captured.solve(noise);  // eager (fills the cache), then the recording with its first replay
  before_chunk();
  FM_CHECK(captured.solve(noise).x.to_vector() == eager_bits, NumericError, "fmbench step: the recorded ", name,
           " solve differs from the eager one");
  FM_CHECK(captured.recorded(), DeviceError, "fmbench step: the U-Net's ", name, " solve could not be recorded");
  auto per_chunk = [&](auto&& solve_chunk, kernels::RuntimeCounters& counted) {
    kernels::cuda_synchronize();
    const kernels::RuntimeCounters before = kernels::runtime_counters();
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < options.steps; ++i) {
      before_chunk();
      solve_chunk();
    }
    counted = kernels::runtime_counters() - before;
    kernels::cuda_synchronize();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / options.steps;
  };
  kernels::RuntimeCounters eager, replayed;
  const double eager_ms = per_chunk([&] { solver.solve(field, noise); }, eager);
  const double replayed_ms = per_chunk([&] { captured.solve(noise); }, replayed);
  const double steps = options.steps;
  std::printf("%s, Euler %d steps, chunk %lld (per chunk): eager %.3f ms, %.1f launches, %.1f H2D | recorded graph "
              "%.3f ms, %.1f launches + %.1f graph replay, %.1f H2D; same bits\n",
              name.c_str(), solver.steps(), (long long)batch, eager_ms, double(eager.kernel_launches) / steps,
              double(eager.host_to_device_copies) / steps, replayed_ms, double(replayed.kernel_launches) / steps,
              double(replayed.graph_replays) / steps, double(replayed.host_to_device_copies) / steps);
  unet.train();
}

void print_unconditional_sampling(nn::UNet& unet, std::int64_t batch, std::int64_t side,
                                  const StepBenchOptions& options) {
  const flow::VelocityField field =
      flow::velocity_field_from_model([&unet](const Tensor& x, const Tensor& t) { return unet.forward(x, t); });
  print_sampling("sampling", unet, batch, side, options, field, [] {});
}

// Classifier-free guidance at w = 1 (flow/guidance.h): one forward of [x; x] with labels [y; ∅] per
// evaluation, the chunk's labels set in the device buffer the field reads before each chunk.
void print_guided_sampling(nn::UNet& unet, std::int64_t batch, std::int64_t side, const StepBenchOptions& options) {
  auto labels = std::make_shared<flow::GuidanceLabels>(1.0, unet.num_classes(), Device::CUDA);
  const flow::ConditionalModelFn forward = [&unet](const Tensor& x, const Tensor& t, const RowIndex& y) {
    return unet.forward(x, t, y);
  };
  std::vector<std::int32_t> chunk_labels(static_cast<std::size_t>(batch));
  for (std::size_t i = 0; i < chunk_labels.size(); ++i) chunk_labels[i] = std::int32_t(i % std::size_t(unet.num_classes()));
  print_sampling("guided sampling (w = 1)", unet, batch, side, options, flow::guided_velocity_field(forward, labels),
                 [&] { labels->set(chunk_labels); });
}

}  // namespace

int run_step_bench(const StepBenchOptions& options) {
  try {
    Device device = Device::CPU;
    if (options.device == "cuda" || (options.device == "auto" && kernels::cuda_available())) {
      FM_CHECK(kernels::cuda_available(), DeviceError, "fmbench step --device cuda: no CUDA device here");
      device = Device::CUDA;
    } else {
      FM_CHECK(options.device == "cpu" || options.device == "auto", ConfigError,
               "--device: expected cpu, cuda or auto, got \"", options.device, "\"");
    }
    const bool counters_apply = device == Device::CUDA;
    std::printf("fmbench step: device %s%s | %d warm-up steps, then %d counted; per step:\n",
                device == Device::CUDA ? kernels::cuda_device_name() : "cpu",
                device == Device::CUDA && kernels::cuda_emulated() ? " (times are the emulator's, not a GPU's)" : "",
                options.warmup_steps, options.steps);
    std::printf("%-27s %9s %6s %9s", "model", "params", "batch", "ms/step");
    if (counters_apply)
      std::printf(" %9s %8s %6s %6s %8s %9s %8s %10s %8s %10s", "launches", "library", "graphs", "syncs", "mallocs",
                  "alloc-req", "H2D", "H2D bytes", "D2H", "D2H bytes");
    std::printf("\n");

    // On CUDA each model trains twice from the same initial weights: every step eager, then with the
    // step recorded and replayed (", graph"); the two rows end on the same loss.
    Generator init(3), copies_init(4);
    nn::MLPConfig mlp_config;  // fmtrain's moons model (configs/moons.json keeps the defaults)
    nn::VelocityMLP mlp(mlp_config, init), mlp_recorded(mlp_config, copies_init);
    mlp_recorded.load_state_dict(mlp.state_dict());
    const std::int64_t moons_batch = options.small_shapes ? 64 : 256;
    flow::PointStream moons(flow::make_toy_distribution("moons")), moons_again(flow::make_toy_distribution("moons"));
    print_row(measure("moons MLP", mlp, moons, moons_batch, device, options, false), counters_apply);
    if (device == Device::CUDA)
      print_row(measure("moons MLP, graph", mlp_recorded, moons_again, moons_batch, device, options, true), true);
    std::fflush(stdout);

    const std::int64_t unet_batch = options.batch > 0 ? options.batch : options.small_shapes ? 2 : 64;
    const nn::UNetConfig unet_config = options.small_shapes ? tiny_unet_config() : nn::UNetConfig{};
    nn::UNet unet(unet_config, init), unet_recorded(unet_config, copies_init);
    unet_recorded.load_state_dict(unet.state_dict());
    // The same U-Net on bfloat16 activations (model.activations = "bfloat16"), from the same weights:
    // its loss after the counted steps sits beside the float32 rows'.
    nn::UNetConfig half_config = unet_config;
    half_config.bfloat16_activations = true;
    Generator half_init(7);
    nn::UNet half_unet(half_config, half_init), half_recorded(half_config, half_init);
    half_unet.load_state_dict(unet.state_dict());
    half_recorded.load_state_dict(unet.state_dict());
    RandomImages images(unet_batch, options.small_shapes ? 8 : 28);
    const std::string unet_name = options.small_shapes ? "tiny U-Net" : "U-Net";
    print_row(measure(unet_name, unet, images, unet_batch, device, options, false), counters_apply);
    if (device == Device::CUDA) {
      print_row(measure(unet_name + ", graph", unet_recorded, images, unet_batch, device, options, true), true);
      print_unconditional_sampling(unet, unet_batch, options.small_shapes ? 8 : 28, options);
      // bfloat16 activations, eager and recorded (CUDA only: the CPU's bfloat16 layers are the
      // reference, not a fast path).
      print_row(measure("bf16-act " + unet_name, half_unet, images, unet_batch, device, options, false), true);
      print_row(measure("bf16-act " + unet_name + ", graph", half_recorded, images, unet_batch, device, options, true),
                true);
    }
    std::fflush(stdout);

    // The same U-Net class-conditional (10 classes, label dropout 0.1, as configs/fashion_mnist_cond*.json):
    // one more embedding lookup per step, and on CUDA the labels made inside the recording too.
    nn::UNetConfig cond_config = unet_config;
    cond_config.num_classes = 10;
    Generator cond_init(5), cond_copies_init(6);
    nn::UNet cond_unet(cond_config, cond_init), cond_unet_recorded(cond_config, cond_copies_init);
    cond_unet_recorded.load_state_dict(cond_unet.state_dict());
    RandomImages labelled(unet_batch, options.small_shapes ? 8 : 28, 10);
    print_row(measure("cond " + unet_name, cond_unet, labelled, unet_batch, device, options, false), counters_apply);
    if (device == Device::CUDA) {
      print_row(
          measure("cond " + unet_name + ", graph", cond_unet_recorded, labelled, unet_batch, device, options, true),
          true);
      print_guided_sampling(cond_unet, unet_batch, options.small_shapes ? 8 : 28, options);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fmbench step: %s\n", e.what());
    return 2;
  }
  return 0;
}

}  // namespace fm::bench
