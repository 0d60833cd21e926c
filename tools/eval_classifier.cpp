// tools/eval_classifier.cpp — the classifier's training, files and features, and the Fréchet
// evaluation of a checkpoint (see eval_classifier.h).
#include "tools/eval_classifier.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "core/autograd.h"
#include "core/io/idx.h"
#include "core/io/tensor_io.h"
#include "core/ops.h"
#include "core/ops_nn.h"
#include "flow/frechet.h"
#include "flow/training_data.h"
#include "nn/lr_schedule.h"
#include "nn/optim.h"
#include "tools/checkpoint_model.h"
#include "tools/conditional_sampling.h"
#include "tools/output_files.h"
#include "tools/progress.h"
#include "tools/run_setup.h"

namespace fm::tools {
namespace {

namespace fs = std::filesystem;

void say(const std::function<void(const std::string&)>& log, const std::string& line) {
  if (log) log(line);
}

// Rows `indices` of a CPU float32 tensor [N, ...] → a new contiguous tensor [indices.size(), ...].
Tensor gather_rows(const Tensor& source, const std::uint64_t* indices, std::int64_t count) {
  Tensor contiguous = source.contiguous();
  Shape shape = contiguous.shape();
  const std::int64_t row_size = contiguous.numel() / std::max<std::int64_t>(shape[0], 1);
  shape[0] = count;
  Tensor out = Tensor::empty(shape);
  const float* from = contiguous.data<float>();
  float* to = out.data<float>();
  for (std::int64_t i = 0; i < count; ++i)
    std::memcpy(to + i * row_size, from + std::int64_t(indices[i]) * row_size, sizeof(float) * std::size_t(row_size));
  return out;
}

// The seed behind the real-image subsets: fixed, so every fmeval run with the same n compares against
// the very same real images and scores stay comparable across checkpoints, solvers and seeds.
constexpr std::uint64_t kReferenceSubsetSeed = 0;

}  // namespace

// ---------------------------------------------------------------------------------------------- data

LabelledImages load_fashion_mnist(const std::string& data_dir, const std::string& split, std::int64_t limit) {
  FM_CHECK(split == "train" || split == "t10k", ValueError, "load_fashion_mnist: split \"", split,
           "\", expected \"train\" or \"t10k\"");
  io::IdxLabelledImages raw = io::read_idx_labelled_images(fashion_mnist_images_path(data_dir, split),
                                                           fashion_mnist_labels_path(data_dir, split));
  const std::int64_t count = limit > 0 ? std::min(limit, raw.images.count) : raw.images.count;
  const std::int64_t pixels_per_image = std::int64_t(raw.images.rows) * raw.images.cols;
  LabelledImages out;
  out.images = Tensor::empty({count, 1, raw.images.rows, raw.images.cols});
  float* pixels = out.images.data<float>();
  // The same scaling as the flow model's training data, so real and generated images match.
  for (std::int64_t i = 0; i < count * pixels_per_image; ++i) pixels[i] = flow::pixel_to_unit(raw.images.pixels[std::size_t(i)]);
  out.labels.resize(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) out.labels[std::size_t(i)] = std::int32_t(raw.labels.labels[std::size_t(i)]);
  return out;
}

Tensor random_subset(const Tensor& images, std::int64_t n, Generator& gen) {
  const std::int64_t count = images.size(0);
  FM_CHECK(n >= 0 && n <= count, ValueError, "random_subset: ", n, " of ", count, " images");
  std::vector<std::uint64_t> order(static_cast<std::size_t>(count));
  std::iota(order.begin(), order.end(), std::uint64_t(0));
  // Partial Fisher–Yates: the first n positions end up a uniform random n-subset in random order.
  for (std::int64_t i = 0; i < n; ++i)
    std::swap(order[std::size_t(i)], order[std::size_t(i) + std::size_t(gen.below(std::uint64_t(count - i)))]);
  return gather_rows(images, order.data(), n);
}

// ------------------------------------------------------------------------------------ classifier

ClassifierTrainingReport train_classifier(nn::ConvClassifier& model, const LabelledImages& train,
                                          const ClassifierTrainingOptions& options) {
  FM_CHECK(options.epochs >= 1, ConfigError, "--epochs: got ", options.epochs, ", expected at least 1");
  FM_CHECK(options.batch_size >= 1, ConfigError, "batch size: got ", options.batch_size, ", expected at least 1");
  FM_CHECK(train.count() >= 1, ValueError, "train_classifier: no training images");
  model.to(options.device);
  model.train();
  nn::AdamOptions adam;
  adam.lr = options.lr;
  nn::Adam optimizer(model, adam);

  const std::int64_t count = train.count();
  const std::int64_t batches_per_epoch = (count + options.batch_size - 1) / options.batch_size;
  const std::int64_t total_steps = batches_per_epoch * options.epochs;
  // A short warm-up, then cosine decay to 2% of the peak: with only a couple of epochs the decay is
  // what turns the last few hundred steps into accuracy instead of noise.
  nn::LRSchedule schedule;
  schedule.kind = nn::LRSchedule::Kind::Cosine;
  schedule.base_lr = options.lr;
  schedule.warmup_steps = std::min<std::int64_t>(100, std::max<std::int64_t>(total_steps / 10, 1));
  schedule.total_steps = std::max(total_steps, schedule.warmup_steps + 1);
  schedule.final_lr = 0.02 * options.lr;

  Generator gen(options.seed);
  std::vector<std::uint64_t> order(static_cast<std::size_t>(count));
  ClassifierTrainingReport report;
  ProgressLine progress(total_steps, 0, "steps", options.quiet);
  double running_loss = 0;
  for (int epoch = 0; epoch < options.epochs; ++epoch) {
    std::iota(order.begin(), order.end(), std::uint64_t(0));
    for (std::int64_t i = count - 1; i > 0; --i)
      std::swap(order[std::size_t(i)], order[std::size_t(gen.below(std::uint64_t(i + 1)))]);
    for (std::int64_t start = 0; start < count; start += options.batch_size) {
      const std::int64_t batch = std::min(options.batch_size, count - start);
      Tensor images = gather_rows(train.images, order.data() + start, batch).to(options.device);
      std::vector<std::int32_t> labels(static_cast<std::size_t>(batch));
      for (std::int64_t b = 0; b < batch; ++b) labels[std::size_t(b)] = train.labels[std::size_t(order[std::size_t(start + b)])];

      optimizer.set_lr(schedule.lr_at(report.steps));
      Tensor loss = cross_entropy(model.logits(images), labels);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();

      const double value = loss.item();
      report.losses.push_back(value);
      running_loss = report.steps == 0 ? value : 0.98 * running_loss + 0.02 * value;
      ++report.steps;
      char extra[64];
      std::snprintf(extra, sizeof extra, "epoch %d loss %.4f", epoch + 1, running_loss);
      progress.update(report.steps, extra);
    }
  }
  report.seconds = progress.elapsed_seconds();
  progress.finish("");
  model.eval();
  return report;
}

double classifier_accuracy(nn::ConvClassifier& model, const LabelledImages& data, std::int64_t batch_size) {
  FM_CHECK(data.count() >= 1, ValueError, "classifier_accuracy: no images");
  NoGradGuard no_grad;
  model.eval();
  const Device device = model.device();
  const int classes = model.config().classes;
  std::int64_t correct = 0;
  for (std::int64_t start = 0; start < data.count(); start += batch_size) {
    const std::int64_t batch = std::min(batch_size, data.count() - start);
    std::vector<float> logits = model.logits(data.images.narrow(0, start, batch).to(device)).to_float_vector();
    for (std::int64_t b = 0; b < batch; ++b) {
      const float* row = logits.data() + b * classes;
      const auto predicted = std::max_element(row, row + classes) - row;
      correct += predicted == data.labels[std::size_t(start + b)];
    }
  }
  return double(correct) / double(data.count());
}

Tensor classifier_features(nn::ConvClassifier& model, const Tensor& images, std::int64_t batch_size) {
  NoGradGuard no_grad;
  model.eval();
  const Device device = model.device();
  const std::int64_t count = images.size(0);
  Tensor out = Tensor::empty({count, model.config().feature_dim});
  for (std::int64_t start = 0; start < count; start += batch_size) {
    const std::int64_t batch = std::min(batch_size, count - start);
    Tensor x = images.narrow(0, start, batch).to(DType::Float32).to(device);
    out.narrow(0, start, batch).copy_(model.features(x).to(Device::CPU));
  }
  return out;
}

void save_classifier(const std::string& path, nn::ConvClassifier& model,
                     const std::map<std::string, std::string>& metadata) {
  std::map<std::string, std::string> all = metadata;
  all["kind"] = "fmeval-classifier";
  all["architecture"] = model.config().to_json().dump();
  io::save_safetensors(path, model.state_dict(), all);
}

LoadedClassifier load_classifier(const std::string& path, Device device) {
  // Read with the words reader so that a training checkpoint (which holds U64 entries) given by
  // mistake is reported below as "not a classifier file", not as a dtype error.
  io::LoadedCheckpoint file = io::load_safetensors_with_words(path);
  auto architecture = file.metadata.find("architecture");
  FM_CHECK(file.metadata.count("kind") && file.metadata.at("kind") == "fmeval-classifier" &&
               architecture != file.metadata.end(),
           FormatError, path,
           ": not a classifier file (no \"kind\": \"fmeval-classifier\" in the metadata); create one with: "
           "fmeval train-classifier --out ",
           path);
  LoadedClassifier out;
  try {
    nn::ClassifierConfig config = nn::ClassifierConfig::from_json(Json::parse(architecture->second), "architecture");
    Generator gen(0);  // initial values are replaced by the file's weights
    out.model = std::make_unique<nn::ConvClassifier>(config, gen);
    out.model->load_state_dict(file.tensors);
  } catch (const Json::parse_error& e) {
    throw FormatError(cat(path, ": the architecture in the metadata is not valid JSON (", e.what(), ")"));
  } catch (const ConfigError& e) {
    throw FormatError(cat(path, ": ", e.what()));
  } catch (const ValueError& e) {
    throw FormatError(cat(path, ": ", e.what()));
  }
  out.model->to(device);
  out.model->eval();
  out.metadata = std::move(file.metadata);
  return out;
}

TrainClassifierResult train_and_save_classifier(const TrainClassifierRequest& request,
                                                const std::function<void(const std::string&)>& log) {
  // Check the destination before minutes of training.
  check_output_files({{"--out", request.out_path}});
  LabelledImages train = load_fashion_mnist(request.data_dir, "train", request.train_limit);
  LabelledImages test = load_fashion_mnist(request.data_dir, "t10k", request.test_limit);
  const Shape example = {request.architecture.in_channels, request.architecture.image_size,
                         request.architecture.image_size};
  for (const LabelledImages* images : {&train, &test}) {
    const Shape found = {images->images.size(1), images->images.size(2), images->images.size(3)};
    FM_CHECK(found == example, ConfigError, request.data_dir, ": images ", shape_str(found),
             ", but the classifier takes ", shape_str(example));
  }
  Generator init_gen(request.training.seed);
  nn::ConvClassifier model(request.architecture, init_gen);
  TrainClassifierResult result;
  result.parameter_count = model.parameter_count();
  say(log, cat("classifier: ", model.parameter_count(), " parameters, ", request.architecture.to_json().dump()));
  say(log, cat("training on ", train.count(), " images for ", request.training.epochs, " epochs (batch ",
               request.training.batch_size, ", Adam lr ", request.training.lr, " cosine, seed ", request.training.seed,
               ")"));
  result.training = train_classifier(model, train, request.training);
  result.test_accuracy = classifier_accuracy(model, test);
  char accuracy[32];
  std::snprintf(accuracy, sizeof accuracy, "%.4f", result.test_accuracy);
  say(log, cat("trained in ", format_duration(result.training.seconds), " (", result.training.steps,
               " steps); test accuracy ", accuracy, " on ", test.count(), " t10k images"));
  save_classifier(request.out_path, model,
                  {{"test_accuracy", accuracy},
                   {"test_images", std::to_string(test.count())},
                   {"train_images", std::to_string(train.count())},
                   {"epochs", std::to_string(request.training.epochs)},
                   {"seed", std::to_string(request.training.seed)},
                   {"train_seconds", cat(result.training.seconds)}});
  say(log, cat("saved ", request.out_path));
  return result;
}

// ------------------------------------------------------------------------------------ evaluation

std::string find_classifier(const std::string& explicit_path, const std::string& neighbour) {
  if (!explicit_path.empty()) {
    FM_CHECK(fs::is_regular_file(explicit_path), ConfigError, "--classifier: ", explicit_path,
             " does not exist; create it with: fmeval train-classifier --out ", explicit_path);
    return explicit_path;
  }
  std::vector<std::string> candidates = {kClassifierFileName};
  if (!neighbour.empty()) {
    const fs::path beside = fs::path(neighbour).parent_path() / kClassifierFileName;
    if (beside.lexically_normal() != fs::path(kClassifierFileName)) candidates.push_back(beside.string());
  }
  std::string looked;
  for (const std::string& candidate : candidates) {
    if (fs::is_regular_file(candidate)) return candidate;
    looked += (looked.empty() ? "" : " and ") + candidate;
  }
  throw ConfigError(cat("no classifier found (looked for ", looked,
                        "); create one with: fmeval train-classifier --out classifier.safetensors"));
}

// ------------------------------------------------------------------------- the Fréchet distance's sides

double FrechetReference::floor_mean() const {
  double sum = 0;
  for (double d : floor_draws) sum += d;
  return floor_draws.empty() ? 0.0 : sum / double(floor_draws.size());
}

double FrechetReference::floor_std() const {
  // One pass over Σd and Σd², as fmeval has always computed it (the same bits in every report).
  const double draws = double(floor_draws.size());
  if (draws < 2) return 0.0;
  double sum = 0, sum_of_squares = 0;
  for (double d : floor_draws) {
    sum += d;
    sum_of_squares += d * d;
  }
  return std::sqrt(std::max(0.0, (sum_of_squares - sum * sum / draws) / (draws - 1.0)));
}

FrechetReference frechet_reference(nn::ConvClassifier& classifier, const LabelledImages& test,
                                   const LabelledImages& train, std::int64_t n, int floor_draws) {
  FM_CHECK(n >= 2 && n <= test.count(), ConfigError, "--n: got ", n, ", expected 2 to ", test.count(),
           " (the test set's size)");
  FM_CHECK(floor_draws >= 1, ConfigError, "--floor-draws: got ", floor_draws, ", expected at least 1");
  FrechetReference reference;
  Generator reference_gen(kReferenceSubsetSeed);
  reference.test_statistics = flow::gaussian_statistics(classifier_features(classifier, random_subset(test.images, n, reference_gen)));
  for (int draw = 0; draw < floor_draws; ++draw) {
    Tensor train_images = random_subset(train.images, std::min(n, train.count()), reference_gen);
    reference.floor_draws.push_back(flow::frechet_distance(
        flow::gaussian_statistics(classifier_features(classifier, train_images)), reference.test_statistics));
  }
  return reference;
}

std::int64_t clamp_samples_or_refuse(Tensor& samples, const std::string& where) {
  FM_CHECK(samples.device() == Device::CPU && samples.dtype() == DType::Float32 && samples.is_contiguous(), ValueError,
           "clamp_samples_or_refuse: expected contiguous CPU float32 samples");
  float* values = samples.data<float>();
  std::int64_t non_finite = 0, outside = 0;
  for (std::int64_t i = 0; i < samples.numel(); ++i) {
    if (!std::isfinite(values[i])) {
      ++non_finite;
    } else if (values[i] < -1.f || values[i] > 1.f) {
      values[i] = std::clamp(values[i], -1.f, 1.f);
      ++outside;
    }
  }
  FM_CHECK(non_finite == 0, ValueError, where, ": ", non_finite, " values are NaN or infinite");
  return outside;
}

double frechet_distance_to_reference(nn::ConvClassifier& classifier, Tensor& samples, const FrechetReference& reference,
                                     const std::string& where, std::int64_t* clamped) {
  const std::int64_t outside = clamp_samples_or_refuse(samples, where);
  if (clamped) *clamped += outside;
  return flow::frechet_distance(flow::gaussian_statistics(classifier_features(classifier, samples)),
                                reference.test_statistics);
}

Json FrechetEvalResult::to_json() const {
  Json record = {{"fd", fd},
                 {"fd_floor_train_vs_test", fd_floor_train_vs_test},
                 {"fd_floor_std", fd_floor_std},
                 {"floor_draws", fd_floor_draws.size()},
                 {"n", n}};
  record["nfe"] = nfe >= 0 ? Json(nfe) : Json(nullptr);
  record["solver"] = solver.empty() ? Json(nullptr) : Json(solver);
  record["classifier"] = classifier_path;
  record["source"] = source;
  record["checkpoint_step"] = checkpoint_step >= 0 ? Json(checkpoint_step) : Json(nullptr);
  record["weights"] = weights.empty() ? Json(nullptr) : Json(weights);
  record["sampling_seconds"] = sampling_seconds;
  record["clamped_values"] = clamped_values;
  return record;
}

FrechetEvalResult run_frechet_evaluation(const FrechetEvalRequest& request,
                                         const std::function<void(const std::string&)>& log) {
  // ---- cheap checks first: nothing expensive runs for a request that cannot finish ----
  const bool from_file = !request.samples_path.empty();
  FM_CHECK(from_file || !request.checkpoint.empty(), ConfigError,
           "give --checkpoint RUN/checkpoint.safetensors (to sample) or --samples FILE.npy");
  FM_CHECK(!(from_file && !request.checkpoint.empty()), ConfigError,
           "--checkpoint and --samples: give one of them (the samples would ignore the checkpoint)");
  const std::string& source = from_file ? request.samples_path : request.checkpoint;
  FM_CHECK(fs::is_regular_file(source), IOError, from_file ? "--samples: " : "--checkpoint: ", source,
           " does not exist", from_file ? "" : " (fmtrain writes RUN/checkpoint.safetensors)");
  FM_CHECK(request.n >= 2, ConfigError, "--n: got ", request.n, ", expected at least 2 (a covariance needs two points)");
  FM_CHECK(request.floor_draws >= 1, ConfigError, "--floor-draws: got ", request.floor_draws, ", expected at least 1");

  FrechetEvalResult result;
  result.n = request.n;
  result.source = source;
  result.classifier_path = find_classifier(request.classifier, source);
  LoadedClassifier classifier = load_classifier(result.classifier_path, request.device);
  const nn::ClassifierConfig& arch = classifier.model->config();
  auto accuracy = classifier.metadata.find("test_accuracy");
  // Said once the samples (or the checkpoint) passed their checks: a refused input gets one line.
  const std::string classifier_line =
      cat("classifier: ", result.classifier_path, " (", classifier.model->parameter_count(), " parameters, test accuracy ",
          accuracy == classifier.metadata.end() ? "unknown" : accuracy->second, ")");

  LabelledImages test = load_fashion_mnist(request.data_dir, "t10k");
  LabelledImages train = load_fashion_mnist(request.data_dir, "train");
  FM_CHECK(request.n <= test.count(), ConfigError, "--n: got ", request.n, ", but the test set has only ", test.count(),
           " images");
  const Shape example = {arch.in_channels, arch.image_size, arch.image_size};
  FM_CHECK(test.images.size(1) == example[0] && test.images.size(2) == example[1] && test.images.size(3) == example[2],
           ConfigError, result.classifier_path, ": the classifier takes images ", shape_str(example), " but ",
           request.data_dir, " holds ", shape_str({test.images.size(1), test.images.size(2), test.images.size(3)}));

  // ---- the samples ----
  Tensor samples;
  if (from_file) {
    samples = io::load_npy(request.samples_path);
    FM_CHECK(samples.dim() == 4 && samples.size(1) == example[0] && samples.size(2) == example[1] &&
                 samples.size(3) == example[2],
             ShapeError, request.samples_path, ": samples ", shape_str(samples.shape()), ", expected [N, ",
             example[0], ", ", example[1], ", ", example[2], "]");
    FM_CHECK(samples.size(0) >= request.n, ConfigError, request.samples_path, " holds ", samples.size(0),
             " samples, fewer than --n ", request.n,
             samples.size(0) >= 2 ? cat(" (pass --n ", samples.size(0), ")") : std::string(" (expected at least 2)"));
    samples = samples.narrow(0, 0, request.n).to(DType::Float32).contiguous();
  } else {
    CheckpointModel loaded = load_checkpoint_model(request.checkpoint, request.device, request.weights);
    const std::string data_name = loaded.config["data"]["name"].get<std::string>();
    FM_CHECK(!is_2d_dataset(data_name), ConfigError, request.checkpoint, ": a model of 2-D \"", data_name,
             "\" points; fmeval measures image models (fmtrain's summary.json has sliced_w2 for 2-D runs)");
    FM_CHECK(loaded.config["model"].value("in_channels", std::int64_t(1)) == example[0], ConfigError,
             request.checkpoint, ": the model makes ", loaded.config["model"].value("in_channels", 1),
             "-channel images, the classifier takes ", example[0]);
    Json sample = loaded.config["sample"];
    sample.merge_patch(request.sample_overrides);
    std::unique_ptr<flow::OdeSolver> solver = build_solver(sample);
    result.solver = sample["solver"].get<std::string>();
    result.checkpoint_step = loaded.step;
    result.weights = loaded.ema_weights ? "ema" : "raw";
    const std::uint64_t seed = request.seed ? *request.seed : sample["seed"].get<std::uint64_t>();
    say(log, classifier_line);
    // A class-conditional model samples as fmtrain's final samples: labels drawn uniformly from the seed,
    // guidance 0 (tools/conditional_sampling.h); `fmeval guidance` measures other weights.
    const int classes = loaded.model->num_classes();
    say(log, cat("sampling ", request.n, " images from ", request.checkpoint, " (step ", loaded.step, ", ",
                 loaded.ema_weights ? "EMA" : "raw", " weights) with ", result.solver,
                 classes > 0 ? cat(", class-conditional: ", classes, " classes drawn uniformly, guidance 0") : "",
                 "..."));
    SampleResult sampled =
        generate_run_samples(*loaded.model, nullptr, *solver, example, request.n, seed, request.device).result;
    samples = sampled.samples;
    result.nfe = sampled.nfe;
    result.sampling_seconds = sampled.seconds;
    say(log, cat("sampled in ", format_duration(sampled.seconds), " (", sampled.nfe, " NFE per sample)"));
  }

  // A file with NaN in it is refused in one line, before any feature is computed or anything said about it.
  result.clamped_values = clamp_samples_or_refuse(
      samples, from_file ? cat("samples in ", request.samples_path) : std::string("samples (the sampler diverged)"));

  // ---- features and distances ----
  auto begin = std::chrono::steady_clock::now();
  FrechetReference reference = frechet_reference(*classifier.model, test, train, request.n, request.floor_draws);
  result.fd = frechet_distance_to_reference(*classifier.model, samples, reference, "samples");
  if (from_file) {
    say(log, classifier_line);
    say(log, cat("samples: the first ", request.n, " of ", request.samples_path));
  }
  result.fd_floor_draws = reference.floor_draws;
  result.fd_floor_train_vs_test = reference.floor_mean();
  result.fd_floor_std = reference.floor_std();
  say(log, cat("features and distances in ",
               format_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count())));
  return result;
}

}  // namespace fm::tools
