// bench/bench_unet.cpp — the whole model: training throughput of the engine's default U-Net
// (nn/unet.h with UNetConfig's defaults = seed 002's architecture) on the GPU, once with the
// project's own kernels and once with the vendor libraries (core/kernel_choice.h).
//
// Run:  fmbench unet [--batch 256] [--steps 20] [--warmup-steps 5] [--csv FILE]
//       (--shapes small: batch 32 unless --batch says otherwise)
//
// One training step, as flow/trainer.cpp does it minus clipping and EMA:
//   t ~ U[0, 1), x0 ~ N(0, I); x_t = (1 − t)·x0 + t·x1, target x1 − x0 (CondOT path, flow/path.h);
//   loss = mean (u_θ(x_t, t) − target)² (flow/loss.h); backward; Adam (lr 1e-3) step.
// The data batch x1 is one fixed random batch in [-1, 1] (Fashion-MNIST scaled as in the seed):
// the step's cost does not depend on pixel values, and the lab must not need the dataset.
//
// Versions:
//   custom:   FM_KERNELS=custom — implicit-GEMM convolutions, flash attention, fused GroupNorm+SiLU
//   library:  FM_KERNELS=library — cuDNN convolutions, cuBLAS + softmax attention
//   bf16-act: under FM_PRECISION=bf16 only (its products are on the bfloat16 tensor cores whatever
//             the precision): the custom kernels with the activations in bfloat16 (model.activations
//             = "bfloat16", nn/unet.h): convolutions, GroupNorm, Linear layers and attention on
//             bfloat16; parameters, optimiser and loss float32
// Measured: warm-up steps, then `steps` steps between two cudaDeviceSynchronize calls on the host
// clock (the GPU and the host overlap inside the run as in training); images/s = batch·steps / time.
// Peak memory: the engine allocator's high-water mark (fm::kernels::cuda_peak_bytes) over model,
// optimiser state and the steps, minus what was in use before (PyTorch's max_memory_allocated
// counts the same way; bench/unet_pytorch.py prints it for the same model and batch).
// Check: every version starts from the same seed, so the first-step losses must agree to float
// rounding (1e-3 relative; 2e-3 for bf16-act, whose activations are rounded to 8 bits: the tiny
// U-Net's first loss moved by 1.2e-4, tests/test_nn_unet.cpp), and every loss must be finite.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/harness.h"
#include "core/kernel_choice.h"
#include "core/ops.h"
#include "core/random.h"
#include "flow/loss.h"
#include "flow/path.h"
#include "flow/time_sampler.h"
#include "kernels/runtime.h"
#include "nn/optim.h"
#include "nn/unet.h"

namespace fm::bench {
namespace {

struct UNetRun {
  KernelImpl impl;
  bool bfloat16_activations = false;
  const char* name() const { return bfloat16_activations ? "bf16-act" : kernel_impl_name(impl); }
  double seconds = 0;
  double ms_per_step = 0, images_per_second = 0;
  double peak_bytes = 0;
  double first_loss = 0, last_loss = 0;
  std::int64_t parameters = 0;
};

UNetRun train_unet(KernelImpl impl, bool bfloat16_activations, int batch, const Options& options) {
  set_kernel_impl(impl);
  UNetRun run;
  run.impl = impl;
  run.bfloat16_activations = bfloat16_activations;
  kernels::cuda_synchronize();
  const double in_use_before = double(kernels::cuda_bytes_in_use());
  kernels::cuda_reset_peak();

  Generator gen(options.seed);
  nn::UNetConfig config;  // the defaults are seed 002's U-Net
  config.bfloat16_activations = bfloat16_activations;
  nn::UNet model(config, gen);
  model.to(Device::CUDA);
  model.train();
  run.parameters = model.parameter_count();
  nn::AdamOptions adam;
  adam.lr = 1e-3;
  nn::Adam optimizer(model, adam);
  const flow::CondOTPath path;
  const flow::UniformTimeSampler time_sampler;
  const Tensor x1 = rand_uniform({batch, 1, 28, 28}, gen, -1.0, 1.0, DType::Float32, Device::CUDA);
  const flow::ModelFn velocity = [&model](const Tensor& x_t, const Tensor& t) { return model.forward(x_t, t); };

  auto step = [&] {
    flow::FlowMatchingLoss result = flow::conditional_flow_matching_loss(velocity, x1, path, time_sampler, gen);
    optimizer.zero_grad();
    result.loss.backward();
    optimizer.step();
    return result.loss.detach();
  };

  run.first_loss = step().item();  // also the first warm-up step
  for (int i = 1; i < options.unet_warmup; ++i) step();
  kernels::cuda_synchronize();

  Tensor loss;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < options.unet_steps; ++i) loss = step();
  kernels::cuda_synchronize();
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  run.last_loss = loss.item();
  run.ms_per_step = run.seconds * 1e3 / options.unet_steps;
  run.images_per_second = double(batch) * options.unet_steps / run.seconds;
  run.peak_bytes = double(kernels::cuda_peak_bytes()) - in_use_before;
  return run;
}

void write_csv(const UNetRun& run, int batch, double speedup, const std::string& validity, const Options& options) {
  if (!options.csv) return;
  // The harness's columns: median_ms holds the mean step time, repeats the timed steps, throughput
  // images/s; the peak memory and losses go to the detail column.
  std::fprintf(options.csv, "\"unet\",\"batch %d\",\"train step\",\"%s\",\"library\",%.6f,,%d,,,%.6g,images/s,,",
               batch, run.name(), run.ms_per_step, options.unet_steps, run.images_per_second);
  if (speedup > 0) std::fprintf(options.csv, "%.4g", speedup);
  std::fprintf(options.csv, ",,%s,\"peak GPU memory %.0f bytes; first loss %.6g; last loss %.6g; parameters %lld\"\n",
               validity.c_str(), run.peak_bytes, run.first_loss, run.last_loss, static_cast<long long>(run.parameters));
  std::fflush(options.csv);
}

}  // namespace

void run_unet(const Options& options) {
  const int batch = options.unet_batch;
  const KernelImpl previous = kernel_impl();
  std::printf("\n== unet: training steps of the default U-Net (seed 002), batch %d, CondOT path, uniform t, Adam 1e-3 ==\n",
              batch);
  std::printf("   %d warm-up steps, then %d timed steps between two device synchronisations (host clock)\n",
              options.unet_warmup, options.unet_steps);

  std::vector<UNetRun> runs;
  for (auto [impl, bfloat16_activations] : {std::pair{KernelImpl::Custom, false}, std::pair{KernelImpl::Custom, true},
                                            std::pair{KernelImpl::Library, false}}) {
    if (bfloat16_activations && precision() != Precision::BF16) continue;
    try {
      runs.push_back(train_unet(impl, bfloat16_activations, batch, options));
    } catch (const std::exception& e) {
      std::printf("   %-8s ERROR: %s\n", bfloat16_activations ? "bf16-act" : kernel_impl_name(impl), e.what());
      count_failed_version();
    }
  }
  set_kernel_impl(previous);
  if (runs.empty()) return;

  std::printf("   parameters: %lld (bench/unet_pytorch.py prints the PyTorch model's count: they must match)\n",
              static_cast<long long>(runs.front().parameters));
  std::printf("%-10s %10s %12s %16s %12s %12s %8s  %s\n", "kernels", "ms/step", "images/s", "peak GPU memory",
              "first loss", "last loss", "x lib", "valid");
  const UNetRun* library = nullptr;
  for (const UNetRun& run : runs)
    if (run.impl == KernelImpl::Library) library = &run;
  for (const UNetRun& run : runs) {
    std::string validity = "OK";
    if (!std::isfinite(run.first_loss) || !std::isfinite(run.last_loss)) validity = "NOT OK: loss is not finite";
    else if (library && std::fabs(run.first_loss - library->first_loss) >
                            (run.bfloat16_activations ? 2e-3 : 1e-3) * std::fabs(library->first_loss))
      validity = "NOT OK: first-step loss differs from the library run's";
    if (validity != "OK") count_failed_version();
    const double ratio = library ? run.images_per_second / library->images_per_second : -1.0;
    char speedup[32] = "-";
    if (ratio > 0) std::snprintf(speedup, sizeof speedup, "%.2fx", ratio);
    std::printf("%-10s %10.2f %12.0f %16s %12.6f %12.6f %8s  %s\n", run.name(), run.ms_per_step,
                run.images_per_second, format_bytes(run.peak_bytes).c_str(), run.first_loss, run.last_loss, speedup,
                validity.c_str());
    write_csv(run, batch, ratio, validity == "OK" ? "OK" : "NOT OK", options);
  }
}

}  // namespace fm::bench
