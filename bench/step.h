// bench/step.h — `fmbench step`: what one steady-state training step asks of the device runtime.
//
// For the moons MLP and a U-Net, each trained by flow/trainer.h's FlowTrainer exactly as fmtrain
// trains (Adam, EMA, gradient clipping, the loss sums on the device), it runs warm-up steps, then
// counts over the timed steps (kernels/runtime.h, runtime_counters): kernel launches, cuBLAS/cuDNN
// calls, graph launches, host<->device synchronisations, cudaMalloc calls (cache misses) and
// allocator requests, and the copies and bytes each way; and, apart, what one log step's read of the numbers costs and the
// launches of the step's clip + Adam + EMA pass (issue 14: at most 10, whatever the model). Issue 14's
// targets for a steady-state step: 0 syncs, 0 allocations, 0 host->device bytes between log points.
// The U-Net's batch is kept on the device, as fmtrain keeps an image data set there
// (TrainingData::keep_on); the moons points are drawn on the host each step and copied (512 bytes).
// On CUDA each model has two rows from the same initial weights: every step eager, and ", graph",
// with the forward and backward pass recorded once and replayed (TrainerOptions::record_steps, as
// fmtrain trains); both end on the same loss.
//
// On CUDA it then samples with the trained U-Net (Euler, a chunk of the batch's size), eagerly and
// through a recorded graph replayed per chunk (flow/captured_solve.h), and prints both per chunk.
// Then the U-Net on bfloat16 activations (model.activations = "bfloat16"), eager and ", graph" (CUDA
// only). Last, the same U-Net class-conditional (10 classes, label dropout 0.1), eager and ", graph": its
// labels, too, kept on the device and made inside the recording; then its guided sampling (w = 1),
// eager and recorded, the labels set per chunk in the device buffer the field reads.
//
// Runs on whatever device is there: CUDA, the CUDA emulator (use --shapes small: it runs every GPU
// thread on the CPU) or the CPU, where there is no device runtime and the counters do not apply.
// No timing assertion anywhere; the CTest smoke run only checks that both rows print.
#pragma once
#include <string>

namespace fm::bench {

struct StepBenchOptions {
  bool small_shapes = false;  // --shapes small: moons batch 64, a tiny U-Net on 8x8 images, batch 2
  int steps = 5;              // --steps N: counted steps
  int warmup_steps = 3;       // --warmup-steps N: steps before (allocator cache and plans warm up)
  int batch = 0;              // --batch N: the U-Net's batch (0: 64, or 2 with --shapes small)
  std::string device = "auto";  // --device cpu|cuda|auto
};

// Prints the table; returns the exit code (0, or 2 when a step fails).
int run_step_bench(const StepBenchOptions& options);

}  // namespace fm::bench
