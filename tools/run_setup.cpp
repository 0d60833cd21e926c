// tools/run_setup.cpp — config → run objects (see run_setup.h).
#include "tools/run_setup.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>

#include "core/autograd.h"
#include "core/io/png.h"
#include "flow/captured_solve.h"
#include "flow/model_fn.h"
#include "kernels/runtime.h"
#include "nn/mlp.h"
#include "nn/unet.h"
#include "core/distributed.h"
#include "tools/checkpoint_model.h"
#include "tools/sharded_sampling.h"

namespace fm::tools {

Device pick_device(const std::string& setting) {
  // The config schema checks its "device" key; a --device flag arrives here unchecked.
  FM_CHECK(setting == "auto" || setting == "cpu" || setting == "cuda", ConfigError, "device: got \"", setting,
           "\", expected auto, cpu or cuda");
  if (setting == "cpu") return Device::CPU;
  bool gpu = kernels::cuda_available();
  Device device = Device::CPU;
  if (setting == "cuda") {
    FM_CHECK(gpu, ConfigError, "device: \"cuda\" asked for, but no CUDA device is available",
             " (this build ", kernels::cuda_device_name(), "); use \"auto\" or \"cpu\"");
    device = Device::CUDA;
  } else {
    // "auto" never picks the CUDA emulator: it is there for the tests, and would train at a crawl.
    device = gpu && !kernels::cuda_emulated() ? Device::CUDA : Device::CPU;
  }
  // Data parallel (core/distributed.h): one GPU per rank; NCCL refuses two ranks on one GPU.
  FM_CHECK(device == Device::CPU || !dist::active() || kernels::cuda_emulated() ||
               dist::local_size() <= kernels::cuda_device_count(),
           ConfigError, "device: ", dist::local_size(), " ranks on this machine share ", kernels::cuda_device_count(),
           " GPU(s); expected at most one rank per GPU (fewer ranks per machine, or device \"cpu\")");
  return device;
}

std::unique_ptr<nn::VelocityModel> build_model(const Json& config, Generator& gen) {
  const Json& m = config.at("model");
  if (m.at("type") == "mlp") return std::make_unique<nn::VelocityMLP>(nn::MLPConfig::from_json(m, "model"), gen);
  return std::make_unique<nn::UNet>(nn::UNetConfig::from_json(m, "model"), gen);
}

std::shared_ptr<const flow::ToyDistribution2D> build_toy_distribution(const Json& config) {
  const Json& data = config.at("data");
  std::string name = data.at("name");
  const Json& noise = data.at("noise");
  if (!noise.is_null()) {
    FM_CHECK(name == "moons", ConfigError, "data.noise: only \"moons\" takes a noise level; got data.name \"",
             name, "\"");
    return std::make_shared<flow::MoonsDistribution>(noise.get<double>());
  }
  return flow::make_toy_distribution(name);
}

std::shared_ptr<const flow::SourceDistribution> build_source(const Json& config) {
  return flow::make_source(config.at("data").at("source"));  // resolve_config checked it fits the data
}

std::string images_path(const Json& config) {
  const Json& data = config.at("data");
  std::filesystem::path images = data.at("images").get<std::string>();
  if (images.is_absolute() || images.string().rfind("./", 0) == 0) return images.string();
  return (std::filesystem::path(data.at("dir").get<std::string>()) / images).string();
}

std::string labels_path(const Json& config) {
  const Json& data = config.at("data");
  std::filesystem::path labels = data.at("labels").get<std::string>();
  if (labels.is_absolute() || labels.string().rfind("./", 0) == 0) return labels.string();
  return (std::filesystem::path(data.at("dir").get<std::string>()) / labels).string();
}

std::unique_ptr<flow::TrainingData> build_training_data(const Json& config) {
  std::string name = config.at("data").at("name");
  const std::string pairs = config.at("data").at("pairs");
  if (!pairs.empty()) {
    auto data = std::make_unique<flow::PairEpochs>(pairs);
    // The pairs must live where the data does: 2-D points for a 2-D set, the images' shape otherwise.
    const Shape expected = example_shape(config);
    FM_CHECK(data->example_shape() == expected, ConfigError, "data.pairs: ", pairs, " holds pairs of ",
             shape_str(data->example_shape()), ", but data.name \"", name, "\" has examples of ", shape_str(expected));
    // ... and be made by a teacher of the same data: 2-D pairs are in its normalised coordinates.
    auto teacher = data->metadata().find("teacher.config");
    if (teacher != data->metadata().end()) {
      const Json teacher_data = parse_config_text(teacher->second, "the teacher config in data.pairs")["data"];
      FM_CHECK(teacher_data["name"] == config["data"]["name"] && teacher_data["noise"] == config["data"]["noise"],
               ConfigError, "data.pairs: ", pairs, " was made by a teacher of data ", teacher_data["name"].dump(),
               " (noise ", teacher_data["noise"].dump(), "), but this run's data is ", config["data"]["name"].dump(),
               " (noise ", config["data"]["noise"].dump(), ")");
    }
    return data;
  }
  if (is_2d_dataset(name)) {
    return std::make_unique<flow::PointStream>(build_toy_distribution(config));
  }
  // A class-conditional model trains on the images' labels; an unconditional one reads no label file.
  // The class count is the data set's (checked against model.num_classes with the config), not the
  // largest label of a file that may hold only some of the classes.
  const bool labelled = config.at("model").value("num_classes", 0) > 0;
  return std::make_unique<flow::ImageEpochs>(images_path(config), config.at("data").at("limit").get<std::int64_t>(),
                                             labelled ? labels_path(config) : std::string(),
                                             labelled ? dataset_class_count(name) : 0);
}

Shape example_shape(const Json& config) {
  if (is_2d_dataset(config.at("data").at("name"))) return {2};
  return flow::ImageEpochs(images_path(config), config.at("data").at("limit").get<std::int64_t>()).example_shape();
}

std::shared_ptr<const flow::TimeSampler> build_time_sampler(const Json& config) {
  const Json& train = config.at("train");
  flow::TimeSamplerOptions options;
  options.logit_normal_mean = train.at("logit_normal_mean");
  options.logit_normal_std = train.at("logit_normal_std");
  options.warp_slope = train.at("time_warp_s");
  options.grid_points = train.at("time_grid");
  return flow::make_time_sampler(train.at("time_sampler"), options);
}

std::unique_ptr<nn::Optimizer> build_optimizer(const Json& config, nn::Module& model) {
  const Json& train = config.at("train");
  std::string name = train.at("optimizer");
  if (name == "sgd") {
    nn::SGDOptions options;
    options.lr = train.at("lr");
    options.momentum = train.at("momentum");
    options.weight_decay = train.at("weight_decay");
    return std::make_unique<nn::SGD>(model, options);
  }
  nn::AdamOptions options;
  options.lr = train.at("lr");
  options.beta1 = train.at("beta1");
  options.beta2 = train.at("beta2");
  options.weight_decay = train.at("weight_decay");
  if (name == "adamw") return std::make_unique<nn::AdamW>(model, options);
  return std::make_unique<nn::Adam>(model, options);
}

nn::LRSchedule build_lr_schedule(const Json& config) {
  const Json& train = config.at("train");
  nn::LRSchedule schedule;
  schedule.kind = train.at("lr_schedule") == "cosine" ? nn::LRSchedule::Kind::Cosine : nn::LRSchedule::Kind::Constant;
  schedule.base_lr = train.at("lr");
  schedule.warmup_steps = train.at("warmup_steps");
  schedule.total_steps = train.at("steps");
  schedule.final_lr = 0.0;
  // Checked here with the config's own key names (LRSchedule::validate names its fields).
  FM_CHECK(schedule.base_lr > 0, ConfigError, "train.lr: got ", schedule.base_lr,
           ", expected a positive learning rate (at most 10)");
  FM_CHECK(schedule.kind != nn::LRSchedule::Kind::Cosine || schedule.warmup_steps < schedule.total_steps,
           ConfigError, "train.warmup_steps: got ", schedule.warmup_steps, ", expected fewer than train.steps (",
           schedule.total_steps, ") with train.lr_schedule \"cosine\"");
  schedule.validate("train");
  return schedule;
}

std::unique_ptr<flow::OdeSolver> build_solver(const Json& sample) {
  flow::SolverOptions options;
  options.steps = sample.at("steps");
  options.adaptive.rtol = sample.at("rtol");
  options.adaptive.atol = sample.at("atol");
  return flow::make_solver(sample.at("solver"), options);
}

namespace {

// The model against the data before anything is written: one forward pass, without gradients, on two
// zero examples of the data's shape. A model of another input size, channel count or resolution (or
// one whose output differs from its input) is refused here in one line that names the config's
// sections, not at the first training step, after the run directory exists.
void check_model_fits_data(nn::VelocityModel& model, const flow::TrainingData& data, const Json& config) {
  const Tensor any_parameter = model.parameters().front();  // a copy: parameters() returns a new vector
  Shape shape = data.example_shape();
  shape.insert(shape.begin(), 2);
  const Tensor x = Tensor::zeros(shape, any_parameter.dtype(), any_parameter.device());
  const Tensor t = Tensor::zeros({2}, any_parameter.dtype(), any_parameter.device());
  const std::string what = cat("the model (", config["model"].dump(), ") does not fit the data (", data.describe(),
                               ", examples of shape ", shape_str(data.example_shape()), ")");
  Tensor v;
  try {
    NoGradGuard no_grad;
    v = model.forward(x, t);
  } catch (const ShapeError& e) {
    throw ConfigError(cat(what, ": ", e.what(), "; expected model settings that match the data"));
  }
  FM_CHECK(v.shape() == x.shape(), ConfigError, what, ": its velocity for a batch ", shape_str(x.shape()), " is ",
           shape_str(v.shape()), ", expected the input's shape (model.out_channels must equal model.in_channels)");
}

}  // namespace

RunObjects build_run_objects(const Json& config, Device device, bool initialise_from_checkpoint) {
  const Json& train = config["train"];
  const std::int64_t batch_size = train["batch_size"];
  RunObjects objects;
  Generator init_gen(train["seed"].get<std::uint64_t>());
  objects.model = build_model(config, init_gen);
  objects.model->to(device);
  const std::string init_from = train["init_from"];
  if (!init_from.empty() && initialise_from_checkpoint) {
    CheckpointModel start = load_checkpoint_model(init_from, device, "auto");
    FM_CHECK(start.config["model"] == config["model"], ConfigError, "train.init_from: ", init_from,
             " holds the model ", start.config["model"].dump(), ", but this run's model section is ",
             config["model"].dump(), " (they must match)");
    objects.model->load_state_dict(start.model->state_dict());
  }
  objects.data = build_training_data(config);
  objects.source = build_source(config);
  // A batch larger than the image set would fail at the first step, after the run directory exists.
  if (const auto* images = dynamic_cast<const flow::ImageEpochs*>(objects.data.get()))
    FM_CHECK(batch_size <= images->size(), ConfigError, "train.batch_size: ", batch_size, " is larger than the ",
             images->size(), " images in ", images_path(config), " (expected at most that many)");
  if (const auto* pairs = dynamic_cast<const flow::PairEpochs*>(objects.data.get()))
    FM_CHECK(batch_size <= pairs->size(), ConfigError, "train.batch_size: ", batch_size, " is larger than the ",
             pairs->size(), " pairs in ", config["data"]["pairs"].get<std::string>(), " (expected at most that many)");
  check_model_fits_data(*objects.model, *objects.data, config);
  objects.optimizer = build_optimizer(config, *objects.model);
  if (train["ema_decay"].get<double>() > 0)
    objects.ema = std::make_unique<nn::EMA>(*objects.model, train["ema_decay"].get<double>());
  flow::TrainerOptions options;
  options.batch_size = batch_size;
  options.grad_clip = train["grad_clip"];
  options.device = device;
  options.source = objects.source;
  options.coupling.kind = flow::parse_coupling(train["coupling"]);
  options.coupling.sinkhorn_epsilon = train["sinkhorn_epsilon"];
  options.label_dropout = train["label_dropout"];
  if (const auto* pairs = dynamic_cast<const flow::PairEpochs*>(objects.data.get())) {
    // The pairs bring their x0, drawn from the teacher's source: the run samples from that source too.
    FM_CHECK(options.coupling.kind == flow::CouplingKind::Independent, ConfigError,
             "train.coupling: reflow pairs (data.pairs) are already coupled; expected \"independent\"");
    auto made_from = pairs->metadata().find("source");
    FM_CHECK(made_from == pairs->metadata().end() || made_from->second == config["data"]["source"].get<std::string>(), ConfigError,
             "data.source: \"", config["data"]["source"].get<std::string>(), "\", but the pairs in data.pairs were drawn from \"",
             made_from == pairs->metadata().end() ? std::string() : made_from->second, "\" (set data.source to match)");
  }
  // The trainer's Philox noise is keyed by seed + 1 (the initialisation Generator uses seed): the
  // offset dates from when both were generator streams and is kept so a seed means what it meant.
  objects.trainer = std::make_unique<flow::FlowTrainer>(
      *objects.model, *objects.optimizer, build_lr_schedule(config), objects.ema.get(), *objects.data,
      flow::make_path(config["path"]["scheduler"]), build_time_sampler(config),
      train["seed"].get<std::uint64_t>() + 1, options);
  objects.solver = build_solver(config["sample"]);
  return objects;
}

SampleResult sample_in_chunks(nn::VelocityModel& model, const flow::OdeSolver& solver, const Shape& example_shape,
                              std::int64_t n, std::int64_t chunk, const ChunkNoise& noise_for,
                              const flow::VelocityField& field, const BeforeChunk& before_chunk) {
  FM_CHECK(chunk >= 1, ValueError, "sampling: chunk ", chunk, ", expected at least 1");
  NoGradGuard no_grad;
  model.eval();
  auto begin = std::chrono::steady_clock::now();
  Shape full = example_shape;
  full.insert(full.begin(), n);
  Tensor out = Tensor::empty(full);
  SampleResult result;
  // Under mpirun (tools/sharded_sampling.h) this rank integrates only its share; dopri5 chooses its
  // steps from a whole chunk's error, so its shares are whole chunks. On one process: all of [0, n).
  const bool adaptive = dynamic_cast<const flow::FixedStepSolver*>(&solver) == nullptr;
  const ItemRange share = my_share(n, chunk, adaptive);
  // One field for all chunks: a fixed-step solve is recorded once and replayed (on the GPU).
  flow::CapturedSolve captured(solver, field);
  double evaluations = 0;  // Σ over chunks of (samples in the chunk × its NFE)
  try {
    for (std::int64_t start = 0; start < n; start += chunk) {
      std::int64_t count = std::min(chunk, n - start);
      // Every chunk's noise is drawn, also outside this rank's share: the stream then reaches each
      // sample where a single process reaches it, and ends where it would end.
      Tensor noise = noise_for(start, count);
      const std::int64_t first = std::max(start, share.begin), last = std::min(start + count, share.end);
      if (first >= last) continue;
      if (first != start || last != start + count) noise = noise.narrow(0, first - start, last - first);
      if (before_chunk) before_chunk(first, last - first);
      flow::SolveResult solved = captured.solve(noise);
      out.narrow(0, first, last - first).copy_(solved.x.to(Device::CPU));
      evaluations += double(last - first) * double(solved.nfe);
    }
  } catch (...) {
    model.train();
    throw;
  }
  if (sharding_over_ranks()) {
    // Every rank gets every sample, in order: the shares are contiguous and in rank order.
    const std::vector<float> all = gather_over_ranks(out.narrow(0, share.begin, share.count()).to_float_vector());
    FM_CHECK(std::int64_t(all.size()) == out.numel(), ShapeError, "sampling over ranks: gathered ", all.size(),
             " values, expected ", out.numel());
    std::copy(all.begin(), all.end(), out.data<float>());
    evaluations = sum_over_ranks(evaluations);
  }
  result.nfe = n > 0 ? std::llround(evaluations / double(n)) : 0;
  model.train();
  result.samples = out;
  result.seconds = max_over_ranks(std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count());
  return result;
}

SampleResult generate_samples(nn::VelocityModel& model, const flow::OdeSolver& solver, const Shape& example_shape,
                              std::int64_t n, Generator& gen, Device device, std::int64_t chunk,
                              const flow::SourceDistribution* source) {
  const flow::GaussianSource gaussian;
  if (source == nullptr) source = &gaussian;
  const flow::VelocityField field = flow::velocity_field_from_model(
      [&model](const Tensor& x, const Tensor& t) { return model.forward(x, t); });
  return sample_in_chunks(
      model, solver, example_shape, n, chunk,
      [&](std::int64_t, std::int64_t count) {
        Shape shape = example_shape;
        shape.insert(shape.begin(), count);
        return source->sample(shape, gen, DType::Float32, device);
      },
      field);
}

SampleResult generate_samples_with_ema(nn::VelocityModel& model, nn::EMA* ema, const flow::OdeSolver& solver,
                                       const Shape& example_shape, std::int64_t n, Generator& gen, Device device,
                                       const flow::SourceDistribution* source) {
  std::optional<nn::ScopedEMAWeights> ema_weights;
  if (ema) ema_weights.emplace(*ema);
  return generate_samples(model, solver, example_shape, n, gen, device, 512, source);
}

std::map<std::string, std::string> checkpoint_metadata(const Json& config) {
  std::map<std::string, std::string> metadata{{"config", config.dump()}};
  if (is_2d_dataset(config["data"]["name"]))
    metadata["data.normalization"] = build_toy_distribution(config)->normalization().to_json().dump();
  return metadata;
}

Tensor samples_in_data_coordinates(const Tensor& samples, const Json& config,
                                   const std::map<std::string, std::string>& checkpoint_metadata) {
  if (!is_2d_dataset(config["data"]["name"])) return samples;
  return flow::to_data_coordinates(samples, data_normalization(config, checkpoint_metadata));
}

flow::ToyDistribution2D::Normalization data_normalization(const Json& config,
                                                          const std::map<std::string, std::string>& checkpoint_metadata) {
  if (!is_2d_dataset(config["data"]["name"])) return {};
  flow::ToyDistribution2D::Normalization normalization = build_toy_distribution(config)->normalization();
  auto stored = checkpoint_metadata.find("data.normalization");
  if (stored != checkpoint_metadata.end()) {
    const Json json = parse_config_text(stored->second, "data.normalization in the checkpoint");
    FM_CHECK(json.is_object() && json.contains("scale") && json["scale"].is_number() && json.contains("center") &&
                 json["center"].is_array() && json["center"].size() == 2 && json["center"][0].is_number() &&
                 json["center"][1].is_number() && json["scale"].get<double>() > 0,
             FormatError, "checkpoint: data.normalization ", stored->second,
             " is not {\"scale\": positive number, \"center\": [x, y]}");
    normalization = {json["scale"].get<double>(), json["center"][0].get<double>(), json["center"][1].get<double>()};
  }
  return normalization;
}

void write_samples_png(const std::string& path, const Tensor& samples, const Tensor& reference,
                       const std::string& title) {
  std::vector<float> points = samples.to_float_vector();
  if (samples.dim() == 2) {
    std::vector<float> ref = reference.defined() ? reference.to_float_vector() : std::vector<float>{};
    io::ScatterOptions options;
    options.title = title;
    io::write_scatter_png(path, points.data(), int(samples.size(0)), ref.empty() ? nullptr : ref.data(),
                          int(ref.size() / 2), options);
    return;
  }
  int count = int(samples.size(0));
  int cols = int(std::ceil(std::sqrt(double(count))));
  io::write_image_grid_png(path, points.data(), count, int(samples.size(1)), int(samples.size(2)),
                           int(samples.size(3)), cols, -1.f, 1.f, 2);
}

}  // namespace fm::tools
