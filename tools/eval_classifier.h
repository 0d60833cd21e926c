// tools/eval_classifier.h — everything fmeval does, as library functions the CLI and the tests share:
// Fashion-MNIST loading with labels, training / saving / loading the feature classifier
// (nn/classifier.h), feature extraction, and the Fréchet evaluation of a flow-matching checkpoint
// against real test images with its train-vs-test floor (flow/frechet.h).
//
// Layer: tools/ (uses flow/, nn/, core/). Errors are fm::Error subclasses with one-line messages;
// fmeval_main.cpp prints them and exits with code 2.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "flow/frechet.h"
#include "nn/classifier.h"
#include "tools/config.h"
#include "tools/fashion_mnist_files.h"

namespace fm::tools {

inline constexpr const char* kClassifierFileName = "classifier.safetensors";

// ---- data ----

struct LabelledImages {
  Tensor images;                      // CPU float32 [N, 1, rows, cols], pixels scaled to [-1, 1]
  std::vector<std::int32_t> labels;   // N class indices
  std::int64_t count() const { return std::int64_t(labels.size()); }
};
// A split's images and labels (tools/fashion_mnist_files.h names the files). limit > 0 keeps only the
// first `limit` images.
LabelledImages load_fashion_mnist(const std::string& data_dir, const std::string& split, std::int64_t limit = 0);

// n distinct images [n, ...] chosen by a partial Fisher–Yates shuffle with `gen` (n <= count).
Tensor random_subset(const Tensor& images, std::int64_t n, Generator& gen);

// ---- the classifier: training, accuracy, files, features ----

struct ClassifierTrainingOptions {
  int epochs = 2;
  std::int64_t batch_size = 128;
  double lr = 2e-3;  // peak of a cosine schedule with a short warm-up
  std::uint64_t seed = 0;
  Device device = Device::CPU;
  bool quiet = false;  // no progress line
};

struct ClassifierTrainingReport {
  std::vector<double> losses;  // one per optimiser step
  std::int64_t steps = 0;
  double seconds = 0;
};

// Adam on mean cross-entropy over shuffled mini-batches (the last partial batch of an epoch is kept).
// The model is moved to options.device and left in eval mode.
ClassifierTrainingReport train_classifier(nn::ConvClassifier& model, const LabelledImages& train,
                                          const ClassifierTrainingOptions& options);

// Fraction of images whose arg-max logit is the label.
double classifier_accuracy(nn::ConvClassifier& model, const LabelledImages& data, std::int64_t batch_size = 500);

// Penultimate features of `images` [N, C, H, W] (any device), computed in batches without autograd on
// the model's device: CPU float32 [N, feature_dim].
Tensor classifier_features(nn::ConvClassifier& model, const Tensor& images, std::int64_t batch_size = 500);

// Safetensors with the state dict's names and metadata {"kind": "fmeval-classifier",
// "architecture": <ClassifierConfig JSON>, plus `metadata` (e.g. "test_accuracy")}.
void save_classifier(const std::string& path, nn::ConvClassifier& model,
                     const std::map<std::string, std::string>& metadata);

struct LoadedClassifier {
  std::unique_ptr<nn::ConvClassifier> model;  // on the requested device, eval mode
  std::map<std::string, std::string> metadata;
};
// Throws fm::IOError when the file cannot be read, fm::FormatError when it is no classifier file.
LoadedClassifier load_classifier(const std::string& path, Device device);

// ---- fmeval train-classifier ----

struct TrainClassifierRequest {
  std::string out_path = kClassifierFileName;
  std::string data_dir = kFashionMnistDir;
  nn::ClassifierConfig architecture;
  ClassifierTrainingOptions training;
  std::int64_t train_limit = 0;  // > 0: only the first N training images (tests)
  std::int64_t test_limit = 0;   // > 0: only the first N test images (tests)
};
struct TrainClassifierResult {
  ClassifierTrainingReport training;
  double test_accuracy = 0;
  std::int64_t parameter_count = 0;
};
// Trains, measures the t10k accuracy, saves. `log` receives human-readable lines (may be null).
TrainClassifierResult train_and_save_classifier(const TrainClassifierRequest& request,
                                                const std::function<void(const std::string&)>& log);

// ---- the two sides of a Fréchet distance ----

// The real side at n: the statistics of a fixed subset of n test images, and the floor: `floor_draws`
// independent draws of n train images, each one's distance to those test statistics. Every call with
// the same n and data compares against the very same real images.
struct FrechetReference {
  flow::GaussianStatistics test_statistics;
  std::vector<double> floor_draws;
  double floor_mean() const;
  double floor_std() const;  // sample standard deviation (N − 1); 0 for one draw
};
FrechetReference frechet_reference(nn::ConvClassifier& classifier, const LabelledImages& test,
                                   const LabelledImages& train, std::int64_t n, int floor_draws);

// A diverged sampler must not pass as a score: NaN or infinite values in `samples` (CPU float32) are a
// ValueError naming `where`; values just outside [-1, 1] are clamped in place, as a picture would clamp
// them (the classifier only ever saw pixels in [-1, 1]). Returns how many were clamped.
std::int64_t clamp_samples_or_refuse(Tensor& samples, const std::string& where);

// The distance of `samples` (CPU float32 [N, C, H, W]) to the reference's test images, after
// clamp_samples_or_refuse (the count added to `clamped` when given).
double frechet_distance_to_reference(nn::ConvClassifier& classifier, Tensor& samples, const FrechetReference& reference,
                                     const std::string& where, std::int64_t* clamped = nullptr);

// ---- fmeval --checkpoint ----

// The classifier file to use: `explicit_path` if given (it must exist), else ./classifier.safetensors,
// else classifier.safetensors in the folder of `neighbour` (the checkpoint or samples file). When none
// exists, throws fm::ConfigError naming where it looked and the command that creates the file.
std::string find_classifier(const std::string& explicit_path, const std::string& neighbour);

struct FrechetEvalRequest {
  std::string checkpoint;    // a flow-matching checkpoint written by fmtrain (needed unless samples_path)
  std::string samples_path;  // or: samples [N, 1, 28, 28] in a .npy file (then no generation)
  std::string classifier;    // empty: find_classifier
  std::string data_dir = kFashionMnistDir;
  std::int64_t n = 2000;     // samples, and real images on each side of the floor
  // Independent draws of n train images behind the floor. At n = 2000 the train-vs-test distance
  // itself varies by about ±25% from draw to draw (finite-sample noise of a 128×128 covariance), so
  // fmeval reports the mean and spread of several draws: a model's distance within that spread of
  // the floor is as good as real data at this n.
  int floor_draws = 5;
  Json sample_overrides = Json::object();  // merged into the checkpoint's "sample" section (solver, steps, ...)
  std::string weights = "auto";
  std::optional<std::uint64_t> seed;  // sampling noise; default the checkpoint's sample.seed
  Device device = Device::CPU;
};

struct FrechetEvalResult {
  double fd = 0;                       // generated (or given) samples vs n real test images
  double fd_floor_train_vs_test = 0;   // n real train images vs the same n real test images (mean over draws)
  double fd_floor_std = 0;             // standard deviation over the draws (0 for one draw)
  std::vector<double> fd_floor_draws;  // each draw's distance
  std::int64_t n = 0;
  std::int64_t nfe = -1;               // -1: unknown (samples read from a file)
  std::string solver;                  // "" when samples were read from a file
  std::string classifier_path;
  std::string source;                  // the checkpoint or the samples file
  std::int64_t checkpoint_step = -1;   // the checkpoint's training step (-1: samples from a file)
  std::string weights;                 // "ema" or "raw" as loaded ("" for samples from a file)
  double sampling_seconds = 0;
  std::int64_t clamped_values = 0;     // sample values outside [-1, 1], clamped before classifying
  Json to_json() const;                // the one-line record fmeval prints last
};

// Validates the request (files exist, n fits the data) before any expensive work, then samples (or
// reads), extracts features and computes both distances. `log` receives progress lines (may be null).
FrechetEvalResult run_frechet_evaluation(const FrechetEvalRequest& request,
                                         const std::function<void(const std::string&)>& log);

}  // namespace fm::tools
