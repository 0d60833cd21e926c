// flow/step_noise.h — where a training step's random numbers come from: counter-based Philox streams
// (core/random.h) keyed by the run's seed and addressed by (step, sample index).
//
// Everything random in a training step — the data points of a 2-D toy stream, the times t, the noise
// x0, the label dropout of a class-conditional model — is a pure function of (seed, stream, step,
// global sample index, element). So a resumed run needs only the seed and the step, and a batch split
// across data-parallel ranks (rank r draws samples [a, b) with first_sample = a) gets exactly the
// numbers one process would. An image data set's per-epoch order comes from the same seed with the
// epoch in place of the step.
#pragma once
#include <cstdint>

#include "core/random.h"

namespace fm::flow {

// The stream ids (the counter's fourth word). Never renumber: checkpoints resume by them.
enum class NoiseStream : std::uint32_t {
  X0 = 1,          // the source noise x0 ~ N(0, I)
  Time = 2,        // t, one draw per sample (flow/time_sampler.h)
  DataPoint = 3,   // a 2-D toy point's draws (flow/datasets2d.h)
  DataOrder = 4,   // an image epoch's shuffle (flow/training_data.h), step = epoch
  SourcePoint = 5, // a 2-D source distribution's point x0 (flow/source.h), in place of X0's normals
  Coupling = 6,    // Sinkhorn coupling: the draw of x0[i]'s partner (flow/coupling.h)
  LabelDropout = 7,  // class-conditional training: whether sample i's label becomes the null class (flow/trainer.h)
};

struct StepNoise {
  std::uint64_t seed = 0;
  std::int64_t step = 0;          // the training step (0-based: the steps completed before it)
  std::int64_t first_sample = 0;  // the global index of this batch's first sample
  // A recorded training step (flow/trainer.cpp): the device word its kernels read the step from as
  // they run (core/random.h, step_on_device). Only the draws made on the device follow it — the
  // Gaussian source and the time samplers with a law() — so the trainer records only those.
  const std::uint32_t* step_on_device = nullptr;
  PhiloxKey key(NoiseStream stream) const { return {seed, static_cast<std::uint32_t>(stream)}; }
};

}  // namespace fm::flow
