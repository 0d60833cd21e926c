// tools/run_setup.h — turning a resolved config into the objects of a run: device, model, data,
// path, time sampler, optimiser, solver, and all of them with the trainer for fmtrain; and the
// sampling + picture-writing shared by fmtrain and fmsample.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/random.h"
#include "flow/datasets2d.h"
#include "flow/path.h"
#include "flow/solver.h"
#include "flow/source.h"
#include "flow/time_sampler.h"
#include "flow/trainer.h"
#include "flow/training_data.h"
#include "nn/ema.h"
#include "nn/lr_schedule.h"
#include "nn/optim.h"
#include "nn/velocity_model.h"
#include "tools/config.h"

namespace fm::tools {

// "auto" → CUDA when a GPU answers, else CPU (also in the CUDA emulator build); "cuda" without a
// device, or any other word, is a ConfigError.
Device pick_device(const std::string& setting);

std::unique_ptr<nn::VelocityModel> build_model(const Json& config, Generator& gen);
std::shared_ptr<const flow::ToyDistribution2D> build_toy_distribution(const Json& config);
std::shared_ptr<const flow::SourceDistribution> build_source(const Json& config);  // data.source
std::unique_ptr<flow::TrainingData> build_training_data(const Json& config);
std::string images_path(const Json& config);  // data.images resolved against data.dir
std::string labels_path(const Json& config);  // data.labels resolved against data.dir
// One training example's shape: {2} for 2-D points, the IDX header's {1, rows, cols} for images
// (read from data.images, never from a pairs file: a run trained on reflow pairs has the same shape).
Shape example_shape(const Json& config);
std::shared_ptr<const flow::TimeSampler> build_time_sampler(const Json& config);
std::unique_ptr<nn::Optimizer> build_optimizer(const Json& config, nn::Module& model);
nn::LRSchedule build_lr_schedule(const Json& config);
std::unique_ptr<flow::OdeSolver> build_solver(const Json& sample_section);

// The objects of a training run, declared in construction order: the trainer refers to the model,
// optimiser, EMA and data above it.
struct RunObjects {
  std::unique_ptr<nn::VelocityModel> model;
  std::unique_ptr<flow::TrainingData> data;
  std::shared_ptr<const flow::SourceDistribution> source;  // data.source
  std::unique_ptr<nn::Optimizer> optimizer;
  std::unique_ptr<nn::EMA> ema;  // null when train.ema_decay is 0
  std::unique_ptr<flow::FlowTrainer> trainer;
  std::unique_ptr<flow::OdeSolver> solver;
};
// Builds them from a resolved config, the model on `device`. Data files are read here, so a missing
// file (or a batch larger than the image set) fails before fmtrain creates the run directory.
// train.init_from's weights are loaded unless initialise_from_checkpoint is false (a resume, whose
// checkpoint replaces them anyway).
RunObjects build_run_objects(const Json& config, Device device, bool initialise_from_checkpoint = true);

struct SampleResult {
  Tensor samples;  // CPU float32 [n, ...]
  // Velocity evaluations per sample. A fixed-step solver spends the same on every chunk; dopri5
  // picks its steps per chunk, so this is the average over the samples, rounded to an integer.
  std::int64_t nfe = 0;
  double seconds = 0;
};
// The chunk loop under every sampler (generate_samples here, the guided ones of
// tools/conditional_sampling.h): n samples, at most `chunk` at a time; noise_for(start, count) gives a
// chunk's source draws (on the model's device), called chunk by chunk in order, and all are integrated
// through one `field`. before_chunk(first, count), when given, runs just before samples
// [first, first + count) are integrated: a guided sampler sets their labels there
// (flow::GuidanceLabels), so the field itself stays the same for every chunk. That is what lets a
// fixed-step solve on the GPU be recorded once and replayed per chunk (flow/captured_solve.h), with
// the eager solve's bits. Runs in eval mode without autograd (training mode again after, also after
// an exception); the NFE is averaged over the samples. Inside a ShardOverRanks scope under mpirun
// (tools/sharded_sampling.h) each rank integrates only its share, draws every chunk's noise all the
// same, and returns all n samples gathered from the ranks: bitwise what one process returns.
using ChunkNoise = std::function<Tensor(std::int64_t start, std::int64_t count)>;
using BeforeChunk = std::function<void(std::int64_t first, std::int64_t count)>;
SampleResult sample_in_chunks(nn::VelocityModel& model, const flow::OdeSolver& solver, const Shape& example_shape,
                              std::int64_t n, std::int64_t chunk, const ChunkNoise& noise_for,
                              const flow::VelocityField& field, const BeforeChunk& before_chunk = {});
// Integrates n source draws (from `gen`; source null: N(0, I)) from t = 0 to 1 through the model (in
// chunks of at most `chunk`, to bound memory), on the model's device.
SampleResult generate_samples(nn::VelocityModel& model, const flow::OdeSolver& solver,
                              const Shape& example_shape, std::int64_t n, Generator& gen, Device device,
                              std::int64_t chunk = 512, const flow::SourceDistribution* source = nullptr);
// The same with the EMA's weights swapped into the model for the call (`ema` null: the model's own
// weights), as fmtrain samples its pictures.
SampleResult generate_samples_with_ema(nn::VelocityModel& model, nn::EMA* ema, const flow::OdeSolver& solver,
                                       const Shape& example_shape, std::int64_t n, Generator& gen, Device device,
                                       const flow::SourceDistribution* source = nullptr);

// A checkpoint's metadata: the resolved config, and for 2-D data the normalisation between the
// data's coordinates and the model's ("data.normalization": {"scale": s, "center": [x, y]}).
std::map<std::string, std::string> checkpoint_metadata(const Json& config);
// Samples in the data's own coordinates: 2-D points through the normalisation (the checkpoint's
// "data.normalization" when `checkpoint_metadata` has one, else the data set's), images unchanged.
Tensor samples_in_data_coordinates(const Tensor& samples, const Json& config,
                                   const std::map<std::string, std::string>& checkpoint_metadata = {});
// The normalisation that samples_in_data_coordinates uses (identity for images and unnormalised data);
// FormatError when the checkpoint's stored one is malformed.
flow::ToyDistribution2D::Normalization data_normalization(
    const Json& config, const std::map<std::string, std::string>& checkpoint_metadata = {});

// The picture of a set of samples: 2-D points → a scatter over `reference` points (may be
// undefined); images → a grid.
void write_samples_png(const std::string& path, const Tensor& samples, const Tensor& reference,
                       const std::string& title);

}  // namespace fm::tools
