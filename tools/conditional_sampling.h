// tools/conditional_sampling.h — sampling a class-conditional model with classifier-free guidance
// (flow/guidance.h): per-sample labels, the guidance weight, the labels a run draws when none is asked,
// the per-class grid whose rows share their source noise, and the 2-D scatter coloured by class.
// Used by fmsample (--guidance, --class, --grid-by-class), `fmeval guidance` (tools/guidance_eval.h), and
// fmtrain / fmeval for the samples of a run (generate_run_samples).
//
// Layer: tools/ (on flow/guidance.h, nn::VelocityModel, core/io/plot_canvas.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/random.h"
#include "flow/solver.h"
#include "flow/source.h"
#include "nn/ema.h"
#include "nn/velocity_model.h"
#include "tools/run_setup.h"

namespace fm::tools {

// ConfigError naming `what` (the flag or command) unless the model is class-conditional.
void require_conditional_model(const nn::VelocityModel& model, const std::string& what);

// n labels drawn uniformly from 0..num_classes−1 by a generator of its own seeded with `seed`, so the
// source noise (drawn from the sampling generator) is the same as an unconditional run's.
std::vector<std::int32_t> uniform_labels(std::int64_t n, int num_classes, std::uint64_t seed);

// The labels a run draws when none is asked (fmtrain's pictures and final samples from sample.seed,
// fmsample and fmeval from their seed): uniform_labels with a seed of their own derived from `seed`.
std::vector<std::int32_t> labels_from_seed(std::int64_t n, int num_classes, std::uint64_t seed);

// Integrates `noise` [n, ...] (on the model's device) from t = 0 to 1 through the guided field of the
// model (guided_velocity_field with the model's forward(x, t, labels)), chunk samples at a time, in
// eval mode without autograd. labels.size() must be n.
SampleResult generate_guided_samples_from_noise(nn::VelocityModel& model, const flow::OdeSolver& solver,
                                                const Tensor& noise, const std::vector<std::int32_t>& labels,
                                                double guidance, std::int64_t chunk = 512);
// The same with the noise drawn chunk by chunk from `gen` exactly as generate_samples draws it (source
// null: N(0, I)): at guidance 0 with every label the null class this is generate_samples.
SampleResult generate_guided_samples(nn::VelocityModel& model, const flow::OdeSolver& solver,
                                     const Shape& example_shape, const std::vector<std::int32_t>& labels,
                                     double guidance, Generator& gen, Device device, std::int64_t chunk = 512,
                                     const flow::SourceDistribution* source = nullptr);

// The samples of a run that asks for no class: n samples from the noise of Generator(seed) with the EMA's
// weights swapped in (ema null: the model's own). A class-conditional model samples labels_from_seed(n,
// num_classes, seed) at guidance 0 (plain conditional sampling; `labels` holds them); an unconditional one
// is generate_samples (`labels` empty). fmtrain's pictures and final samples, and fmeval's FD, use it.
struct RunSamples {
  SampleResult result;
  std::vector<std::int32_t> labels;
};
RunSamples generate_run_samples(nn::VelocityModel& model, nn::EMA* ema, const flow::OdeSolver& solver,
                                const Shape& example_shape, std::int64_t n, std::uint64_t seed, Device device,
                                const flow::SourceDistribution* source = nullptr);

// A per-class grid: `columns` source draws, repeated for every class, so row k (class k) differs from
// the other rows only by its label. Labels row by row: 0 × columns, 1 × columns, ...
struct ClassGrid {
  Tensor noise;                       // [num_classes·columns, ...] on `device`
  std::vector<std::int32_t> labels;   // num_classes·columns
};
ClassGrid class_grid_noise(int num_classes, std::int64_t columns, const Shape& example_shape, Generator& gen,
                           Device device, const flow::SourceDistribution* source = nullptr);

// A scatter of 2-D points [n, 2] coloured by label (tab10 colours without grey, cycling past nine classes), over
// `reference` points [m, 2] in light grey (may be undefined), with a legend "class k (n=…)".
void write_class_scatter_png(const std::string& path, const Tensor& points, const std::vector<std::int32_t>& labels,
                             int num_classes, const Tensor& reference, const std::string& title);

// Labels as a float32 .npy [n] (the project's .npy writer holds floats; class indices are exact).
void save_labels_npy(const std::string& path, const std::vector<std::int32_t>& labels);

}  // namespace fm::tools
