// tests/test_eval_classifier.cpp — fmeval's classifier and evaluation pipeline (nn/classifier.h,
// tools/eval_classifier.h): forward shapes and config checks, a short training run whose loss drops,
// save → load, the Fréchet distance separating real from noise images, the whole evaluation from a
// .npy file and from a checkpoint, and one-line errors for a missing classifier or checkpoint.
//
// Tests on real data read /usr/share/datasets/fashion-mnist and are reported as skipped (exit 77
// under CTest) where it is not installed. Classifiers here are a narrow variant of the default
// trained for seconds: enough to give features with structure, fast on two shared CPU cores.
#include <catch2/catch.hpp>


#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/autograd.h"
#include "core/io/tensor_io.h"
#include "core/random.h"
#include "flow/frechet.h"
#include "tools/eval_classifier.h"
#include "tools/quality_sweep.h"
#include "tools/run_setup.h"

#include "classifier_fixtures.h"
#include "fashion_mnist_fixtures.h"
#include "test_util.h"

namespace fs = std::filesystem;
using fm::tools::Json;

namespace {

fs::path scratch_dir(const std::string& name) { return fm::test::scratch_path("fm_test_eval", name); }

// Runs the rest of the test in `dir` and returns to the previous folder afterwards (find_classifier
// looks in the current directory).
struct WorkingDirectory {
  fs::path previous = fs::current_path();
  explicit WorkingDirectory(const fs::path& dir) { fs::current_path(dir); }
  ~WorkingDirectory() { fs::current_path(previous); }
};

#define REQUIRE_FASHION_MNIST() \
  if (fm::test::fashion_mnist_missing()) return

using fm::test::write_quick_classifier;
fm::nn::ClassifierConfig narrow_config() { return fm::test::narrow_classifier_config(); }
fm::tools::ClassifierTrainingOptions quick_training(int epochs) { return fm::test::quick_classifier_training(epochs); }

// Noise "images" in [-1, 1], what an untrained sampler might produce.
fm::Tensor noise_images(std::int64_t n, std::uint64_t seed) {
  fm::Generator gen(seed);
  return fm::rand_uniform({n, 1, 28, 28}, gen, -1.0, 1.0);
}

double mean_of(const std::vector<double>& v, std::size_t begin, std::size_t end) {
  double sum = 0;
  for (std::size_t i = begin; i < end; ++i) sum += v[i];
  return sum / double(end - begin);
}

// A tiny untrained U-Net saved the way fmtrain saves one ("model." tensors, the step as a word, the
// config in metadata), sampled with Euler × sample_steps.
struct TinyUNetCheckpoint {
  Json config;
  fm::io::NamedTensors tensors;
  explicit TinyUNetCheckpoint(int sample_steps) {
    config = fm::tools::resolve_config(
        {{"data", {{"name", "fashion_mnist"}}},
         {"model", {{"type", "unet"}, {"down_channels", {8, 8}}, {"mid_channels", {8, 8}}, {"down_sample", {true}},
                    {"attention", {false}}, {"groups", 4}, {"num_heads", 1}, {"time_emb_dim", 16},
                    {"final_channels", 8}}},
         {"sample", {{"solver", "euler"}, {"steps", sample_steps}}}});
    fm::Generator gen(9);
    auto model = fm::tools::build_model(config, gen);
    for (const auto& [name, tensor] : model->state_dict()) tensors["model." + name] = tensor;
  }
  void save(const fs::path& path, std::uint64_t step) const {
    fm::io::save_safetensors_with_words(path.string(), tensors, {{"trainer.step", {step}}},
                                        {{"config", config.dump()}});
  }
};

}  // namespace

TEST_CASE("classifier forward gives features and logits of the configured sizes", "[eval][classifier]") {
  fm::Generator gen(1);
  fm::nn::ClassifierConfig config;  // the default fmeval architecture
  fm::nn::ConvClassifier model(config, gen);
  fm::Tensor x = fm::randn({3, 1, 28, 28}, gen);
  fm::nn::ConvClassifier::Output out = model.forward(x);
  REQUIRE(out.features.shape() == fm::Shape{3, 128});
  REQUIRE(out.logits.shape() == fm::Shape{3, 10});
  // features() is the same computation without the head.
  REQUIRE(model.features(x).to_float_vector() == out.features.to_float_vector());
  // conv 1→16 3×3, conv 16→32 4×4, conv 32→64 4×4 (+ biases), three GroupNorms (weight + bias),
  // Linear 64·7·7 → 128, Linear 128 → 10.
  const std::int64_t expected = (16 * 9 + 16) + (32 * 16 * 16 + 32) + (64 * 32 * 16 + 64) + 2 * (16 + 32 + 64) +
                                (64 * 49 * 128 + 128) + (128 * 10 + 10);
  REQUIRE(model.parameter_count() == expected);
  auto state = model.state_dict();
  for (const char* name : {"body.0.weight", "body.1.weight", "body.3.weight", "body.6.bias", "body.7.bias",
                           "features.weight", "head.weight", "head.bias"})
    REQUIRE(state.count(name) == 1);
  REQUIRE_THROWS_MATCHES(model.forward(fm::randn({2, 3, 28, 28}, gen)), fm::ShapeError,
                         Catch::Message("ConvClassifier: input [2, 3, 28, 28], expected [N, 1, 28, 28]"));
}

TEST_CASE("classifier configs are validated and round-trip through JSON", "[eval][classifier][errors]") {
  fm::nn::ClassifierConfig config = narrow_config();
  fm::nn::ClassifierConfig back = fm::nn::ClassifierConfig::from_json(config.to_json());
  REQUIRE(back.to_json() == config.to_json());
  REQUIRE_THROWS_WITH(fm::nn::ClassifierConfig::from_json(Json{{"groups", 5}}),
                      Catch::Contains("classifier.groups: 5 groups do not divide 16 channels"));
  REQUIRE_THROWS_WITH(fm::nn::ClassifierConfig::from_json(Json{{"image_size", 30}}),
                      Catch::Contains("classifier.image_size: got 30, expected a multiple of 4"));
  REQUIRE_THROWS_WITH(fm::nn::ClassifierConfig::from_json(Json{{"feature_dims", 64}}), Catch::Contains("feature_dims"));
  REQUIRE_THROWS_WITH(fm::nn::ClassifierConfig::from_json(Json{{"type", "unet"}}),
                      Catch::Contains("expected \"conv_classifier\""));
}

TEST_CASE("a short classifier training run on a few hundred images lowers the loss", "[eval][classifier][train]") {
  REQUIRE_FASHION_MNIST();
  fm::tools::LabelledImages train = fm::tools::load_fashion_mnist(fm::tools::kFashionMnistDir, "train", 512);
  REQUIRE(train.images.shape() == fm::Shape{512, 1, 28, 28});
  // Pixels are scaled exactly as the flow model's training data: 0 → −1, 255 → +1.
  std::vector<float> pixels = train.images.to_float_vector();
  REQUIRE(*std::min_element(pixels.begin(), pixels.end()) == -1.f);
  REQUIRE(*std::max_element(pixels.begin(), pixels.end()) == 1.f);

  fm::Generator gen(3);
  fm::nn::ConvClassifier model(narrow_config(), gen);
  fm::tools::ClassifierTrainingReport report = fm::tools::train_classifier(model, train, quick_training(3));
  REQUIRE(report.steps == 3 * 16);
  REQUIRE(report.losses.size() == 48);
  const double first = mean_of(report.losses, 0, 5), last = mean_of(report.losses, 43, 48);
  INFO("mean loss of the first 5 steps " << first << ", of the last 5 " << last);
  REQUIRE(first > 1.8);          // about ln 10 = 2.3 at the start: ten classes, no knowledge
  REQUIRE(last < 0.75 * first);  // and clearly lower after 48 steps
  // It learned something that carries over to held-out images (chance is 0.1).
  fm::tools::LabelledImages test = fm::tools::load_fashion_mnist(fm::tools::kFashionMnistDir, "t10k", 500);
  REQUIRE(fm::tools::classifier_accuracy(model, test) > 0.4);

  // Same seed, same data → bitwise the same losses; another seed (initialisation and order) differs.
  fm::tools::LabelledImages few{train.images.narrow(0, 0, 128).contiguous(),
                                std::vector<std::int32_t>(train.labels.begin(), train.labels.begin() + 128)};
  auto losses_for_seed = [&](std::uint64_t seed) {
    fm::Generator init(seed);
    fm::nn::ConvClassifier fresh(narrow_config(), init);
    fm::tools::ClassifierTrainingOptions options = quick_training(1);
    options.seed = seed;
    return fm::tools::train_classifier(fresh, few, options).losses;
  };
  std::vector<double> a = losses_for_seed(1), b = losses_for_seed(1), c = losses_for_seed(2);
  REQUIRE(a.size() == 4);
  REQUIRE(a == b);
  REQUIRE(a != c);
}

TEST_CASE("classifier training and features on CUDA track the CPU", "[eval][classifier][gpu]") {
  FM_REQUIRE_GPU();
  REQUIRE_FASHION_MNIST();
  // Strided convolutions, GroupNorm, linear layers, cross-entropy and Adam, all on the device.
  fm::tools::LabelledImages train = fm::tools::load_fashion_mnist(fm::tools::kFashionMnistDir, "train", 128);
  auto train_on = [&](fm::Device device, fm::nn::ConvClassifier& model) {
    fm::tools::ClassifierTrainingOptions options = quick_training(1);
    options.device = device;
    return fm::tools::train_classifier(model, train, options).losses;
  };
  fm::Generator init_cpu(4), init_gpu(4);
  fm::nn::ConvClassifier cpu_model(narrow_config(), init_cpu), gpu_model(narrow_config(), init_gpu);
  std::vector<double> cpu = train_on(fm::Device::CPU, cpu_model), gpu = train_on(fm::Device::CUDA, gpu_model);
  REQUIRE(gpu.size() == 4);
  REQUIRE(gpu.size() == cpu.size());
  // float32 sums in a different order on each side, carried forward by Adam for 4 steps. On the CUDA
  // emulator (2026-11-22) the losses agree to 1.1e-7 relative and the features to 8e-6 absolute
  // (largest feature 2.0); the bounds leave room for the GPU's fused multiply-adds and expf.
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    INFO("step " << i + 1);
    REQUIRE(gpu[i] == Approx(cpu[i]).epsilon(1e-5));
  }
  fm::Tensor images = train.images.narrow(0, 0, 16);
  std::vector<float> f_gpu = fm::tools::classifier_features(gpu_model, images).to_float_vector();
  std::vector<float> f_cpu = fm::tools::classifier_features(cpu_model, images).to_float_vector();
  REQUIRE(f_gpu.size() == f_cpu.size());
  for (std::size_t i = 0; i < f_cpu.size(); ++i) REQUIRE(f_gpu[i] == Approx(f_cpu[i]).margin(1e-4).epsilon(1e-3));
}

TEST_CASE("a saved classifier loads back with bitwise the same features", "[eval][classifier][io]") {
  fs::path dir = scratch_dir("save_load");
  fm::Generator gen(4);
  fm::nn::ConvClassifier model(narrow_config(), gen);
  const std::string path = (dir / "classifier.safetensors").string();
  fm::tools::save_classifier(path, model, {{"test_accuracy", "0.1234"}});
  fm::tools::LoadedClassifier loaded = fm::tools::load_classifier(path, fm::Device::CPU);
  REQUIRE(loaded.metadata.at("test_accuracy") == "0.1234");
  REQUIRE(loaded.metadata.at("kind") == "fmeval-classifier");
  REQUIRE(Json::parse(loaded.metadata.at("architecture")) == narrow_config().to_json());
  fm::Tensor x = fm::randn({5, 1, 28, 28}, gen);
  REQUIRE(fm::tools::classifier_features(*loaded.model, x).to_float_vector() ==
          fm::tools::classifier_features(model, x).to_float_vector());

  // A file that is not a classifier (here: tensors without the metadata) is refused in one line.
  const std::string other = (dir / "other.safetensors").string();
  fm::io::save_safetensors(other, {{"w", fm::Tensor::zeros({2})}});
  REQUIRE_THROWS_MATCHES(fm::tools::load_classifier(other, fm::Device::CPU), fm::FormatError,
                         Catch::Message(other + ": not a classifier file (no \"kind\": \"fmeval-classifier\" in the "
                                                "metadata); create one with: fmeval train-classifier --out " + other));
}

TEST_CASE("real train and test features are far closer than real and noise features", "[eval][classifier][frechet]") {
  REQUIRE_FASHION_MNIST();
  fm::tools::LabelledImages train = fm::tools::load_fashion_mnist(fm::tools::kFashionMnistDir, "train", 1500);
  fm::tools::LabelledImages test = fm::tools::load_fashion_mnist(fm::tools::kFashionMnistDir, "t10k", 500);
  fm::Generator gen(5);
  fm::nn::ConvClassifier model(narrow_config(), gen);
  fm::tools::LabelledImages first_thousand{train.images.narrow(0, 0, 1000).contiguous(),
                                           std::vector<std::int32_t>(train.labels.begin(), train.labels.begin() + 1000)};
  fm::tools::train_classifier(model, first_thousand, quick_training(2));
  // Real images the classifier never trained on, on both sides.
  fm::Tensor real_train = fm::tools::classifier_features(model, train.images.narrow(0, 1000, 500));
  fm::Tensor real_test = fm::tools::classifier_features(model, test.images);
  fm::Tensor noise = fm::tools::classifier_features(model, noise_images(500, 6));
  REQUIRE(real_train.shape() == fm::Shape{500, 32});
  const double floor = fm::flow::frechet_distance(real_train, real_test);
  const double to_noise = fm::flow::frechet_distance(noise, real_test);
  INFO("train vs test " << floor << ", noise vs test " << to_noise);
  REQUIRE(floor > 0);
  REQUIRE(to_noise > 20 * floor);
}

TEST_CASE("fmeval finds the classifier or says which command creates it", "[eval][errors]") {
  fs::path dir = scratch_dir("find");
  fs::create_directories(dir / "run");
  WorkingDirectory here(dir);
  const std::string checkpoint = (dir / "run" / "checkpoint.safetensors").string();
  // None anywhere: one line naming where it looked and the command to run.
  REQUIRE_THROWS_MATCHES(fm::tools::find_classifier("", checkpoint), fm::ConfigError,
                         Catch::Message("no classifier found (looked for classifier.safetensors and " +
                                        (dir / "run" / "classifier.safetensors").string() +
                                        "); create one with: fmeval train-classifier --out classifier.safetensors"));
  REQUIRE_THROWS_MATCHES(fm::tools::find_classifier("mine.safetensors", checkpoint), fm::ConfigError,
                         Catch::Message("--classifier: mine.safetensors does not exist; create it with: fmeval "
                                        "train-classifier --out mine.safetensors"));
  // Next to the checkpoint, then the current directory first.
  fm::Generator gen(0);
  fm::nn::ConvClassifier model(narrow_config(), gen);
  fm::tools::save_classifier((dir / "run" / "classifier.safetensors").string(), model, {});
  REQUIRE(fm::tools::find_classifier("", checkpoint) == (dir / "run" / "classifier.safetensors").string());
  fm::tools::save_classifier((dir / "classifier.safetensors").string(), model, {});
  REQUIRE(fm::tools::find_classifier("", checkpoint) == "classifier.safetensors");
}

TEST_CASE("fmeval reports a missing checkpoint or classifier in one line before any work", "[eval][errors]") {
  fs::path dir = scratch_dir("missing");
  WorkingDirectory here(dir);
  fm::tools::FrechetEvalRequest request;
  request.checkpoint = (dir / "nothing" / "checkpoint.safetensors").string();
  REQUIRE_THROWS_MATCHES(fm::tools::run_frechet_evaluation(request, nullptr), fm::IOError,
                         Catch::Message("--checkpoint: " + request.checkpoint +
                                        " does not exist (fmtrain writes RUN/checkpoint.safetensors)"));
  // An existing checkpoint file but no classifier: the classifier error comes first, before sampling.
  fs::create_directories(dir / "run");
  request.checkpoint = (dir / "run" / "checkpoint.safetensors").string();
  fm::io::save_safetensors(request.checkpoint, {{"model.w", fm::Tensor::zeros({1})}});
  REQUIRE_THROWS_WITH(fm::tools::run_frechet_evaluation(request, nullptr),
                      Catch::StartsWith("no classifier found") &&
                          Catch::EndsWith("create one with: fmeval train-classifier --out classifier.safetensors"));
  fm::tools::FrechetEvalRequest neither;
  REQUIRE_THROWS_WITH(fm::tools::run_frechet_evaluation(neither, nullptr),
                      "give --checkpoint RUN/checkpoint.safetensors (to sample) or --samples FILE.npy");
  fm::tools::FrechetEvalRequest both = request;
  both.samples_path = "samples.npy";
  REQUIRE_THROWS_WITH(fm::tools::run_frechet_evaluation(both, nullptr), Catch::Contains("give one of them"));
}

TEST_CASE("fmeval scores real images near the floor and noise far above it", "[eval][pipeline]") {
  REQUIRE_FASHION_MNIST();
  fs::path dir = scratch_dir("samples");
  write_quick_classifier((dir / "classifier.safetensors").string());
  // "Samples" that are real images: train images the classifier never saw (it trained on the first 1000).
  fm::tools::LabelledImages train = fm::tools::load_fashion_mnist(fm::tools::kFashionMnistDir, "train", 50300);
  fm::io::save_npy((dir / "real.npy").string(), train.images.narrow(0, 50000, 300).contiguous());
  fm::io::save_npy((dir / "noise.npy").string(), noise_images(300, 8));

  fm::tools::FrechetEvalRequest request;
  request.samples_path = (dir / "real.npy").string();
  request.classifier = (dir / "classifier.safetensors").string();
  request.n = 300;
  fm::tools::FrechetEvalResult real = fm::tools::run_frechet_evaluation(request, nullptr);
  request.samples_path = (dir / "noise.npy").string();
  fm::tools::FrechetEvalResult noise = fm::tools::run_frechet_evaluation(request, nullptr);
  INFO("real: fd " << real.fd << " floor " << real.fd_floor_train_vs_test << "; noise: fd " << noise.fd);
  // The floor is the same number both times (fixed reference subsets), and real images score near it.
  REQUIRE(noise.fd_floor_train_vs_test == real.fd_floor_train_vs_test);
  // The floor is the mean of five independent draws of train images, with their spread.
  REQUIRE(real.fd_floor_draws.size() == 5);
  double mean = 0;
  for (double d : real.fd_floor_draws) mean += d / 5;
  REQUIRE(real.fd_floor_train_vs_test == Approx(mean).epsilon(1e-12));
  REQUIRE(real.fd_floor_std > 0);
  REQUIRE(real.fd < 3 * real.fd_floor_train_vs_test);
  REQUIRE(noise.fd > 20 * real.fd_floor_train_vs_test);
  REQUIRE(real.nfe == -1);
  Json record = real.to_json();
  REQUIRE(record["nfe"].is_null());
  REQUIRE(record["n"] == 300);
  REQUIRE(record["floor_draws"] == 5);
  REQUIRE(record["fd_floor_std"].get<double>() == real.fd_floor_std);
  REQUIRE(record["fd"].get<double>() == real.fd);

  // Asking for more samples than the file holds is a one-line error naming the fix.
  request.n = 400;
  REQUIRE_THROWS_WITH(fm::tools::run_frechet_evaluation(request, nullptr),
                      Catch::Contains("holds 300 samples, fewer than --n 400 (pass --n 300)"));
}

TEST_CASE("fmeval samples a checkpoint with the chosen solver and reports its NFE", "[eval][pipeline]") {
  REQUIRE_FASHION_MNIST();
  fs::path dir = scratch_dir("checkpoint");
  fs::create_directories(dir / "run");
  TinyUNetCheckpoint tiny(2);
  tiny.save(dir / "run" / "checkpoint.safetensors", 5);
  write_quick_classifier((dir / "run" / "classifier.safetensors").string());  // found beside the checkpoint

  WorkingDirectory here(dir);
  fm::tools::FrechetEvalRequest request;
  request.checkpoint = (dir / "run" / "checkpoint.safetensors").string();
  request.n = 40;
  fm::tools::FrechetEvalResult euler = fm::tools::run_frechet_evaluation(request, nullptr);
  REQUIRE(euler.solver == "euler");
  REQUIRE(euler.nfe == 2);
  REQUIRE(euler.classifier_path == (dir / "run" / "classifier.safetensors").string());
  REQUIRE(std::isfinite(euler.fd));
  REQUIRE(euler.fd > euler.fd_floor_train_vs_test);  // an untrained model makes no clothes
  request.sample_overrides = {{"solver", "rk4"}, {"steps", 3}};
  fm::tools::FrechetEvalResult rk4 = fm::tools::run_frechet_evaluation(request, nullptr);
  REQUIRE(rk4.nfe == 12);
  REQUIRE(rk4.to_json()["solver"] == "rk4");
  REQUIRE(rk4.to_json()["checkpoint_step"] == 5);
  REQUIRE(rk4.to_json()["weights"] == "raw");  // the checkpoint has no EMA weights
  // Image models only.
  Json moons = fm::tools::resolve_config({{"data", {{"name", "moons"}}}});
  fm::Generator gen(9);
  auto mlp = fm::tools::build_model(moons, gen);
  fm::io::NamedTensors tensors;
  for (const auto& [name, tensor] : mlp->state_dict()) tensors["model." + name] = tensor;
  fm::io::save_safetensors((dir / "run" / "checkpoint.safetensors").string(), tensors, {{"config", moons.dump()}});
  REQUIRE_THROWS_WITH(fm::tools::run_frechet_evaluation(request, nullptr), Catch::Contains("fmeval measures image models"));
}

TEST_CASE("fmeval sweep scores kept checkpoints and every solver at each NFE budget", "[eval][pipeline][sweep]") {
  REQUIRE_FASHION_MNIST();
  fs::path dir = scratch_dir("sweep");
  fs::create_directories(dir / "run");
  // Two kept checkpoints (written out of order on purpose) and the final one, all the same weights.
  TinyUNetCheckpoint tiny(3);
  tiny.save(dir / "run" / "checkpoint_step_0000010.safetensors", 10);
  tiny.save(dir / "run" / "checkpoint_step_0000005.safetensors", 5);
  tiny.save(dir / "run" / "checkpoint.safetensors", 10);
  write_quick_classifier((dir / "run" / "classifier.safetensors").string());

  fm::tools::QualitySweepRequest request;
  request.run_dir = (dir / "run").string();
  request.n = 30;
  request.nfe_budgets = {2, 4};
  request.solvers = {"euler", "rk4", "dopri5"};
  request.dopri5_tolerances = {1e-1};
  fm::tools::QualitySweepResult result = fm::tools::run_quality_sweep(request, nullptr);
  // steps: 5 then 10 with the run's euler × 3; nfe: euler 2 and 4, rk4 4 (2 is less than one step), dopri5 once.
  REQUIRE(result.points.size() == 2 + 2 + 1 + 1);
  REQUIRE(result.points[0].sweep == "steps");
  REQUIRE(result.points[0].checkpoint_step == 5);
  REQUIRE(result.points[1].checkpoint_step == 10);
  REQUIRE(result.points[0].nfe == 3);
  REQUIRE(result.points[0].solver_steps == 3);
  REQUIRE(result.points[2].solver == "euler");
  REQUIRE(result.points[2].nfe == 2);
  REQUIRE(result.points[3].nfe == 4);
  REQUIRE(result.points[4].solver == "rk4");
  REQUIRE(result.points[4].nfe == 4);
  REQUIRE(result.points[4].solver_steps == 1);
  REQUIRE(result.points[5].solver == "dopri5");
  REQUIRE(result.points[5].nfe > 0);
  REQUIRE(result.points[5].tolerance == 1e-1);
  // Same weights at steps 5 and 10, same seed and sampler: the same distance.
  REQUIRE(result.points[0].fd == result.points[1].fd);
  REQUIRE(result.floor > 0);
  for (const char* file : {"quality_vs_steps.csv", "quality_vs_steps.png", "quality_vs_nfe.csv", "quality_vs_nfe.png"})
    REQUIRE(fs::exists(dir / "run" / file));
  std::ifstream csv(dir / "run" / "quality_vs_nfe.csv");
  std::string header, line;
  std::getline(csv, header);
  REQUIRE(header.rfind("checkpoint_step,solver,solver_steps,tolerance,nfe,fd", 0) == 0);
  int rows = 0;
  while (std::getline(csv, line)) ++rows;
  REQUIRE(rows == 4);

  // Bad requests fail in one line before sampling.
  request.run_dir = (dir / "missing").string();
  REQUIRE_THROWS_WITH(fm::tools::run_quality_sweep(request, nullptr), Catch::Contains("does not exist"));
  request.run_dir = (dir / "run").string();
  request.solvers = {"euler", "leapfrog"};
  REQUIRE_THROWS_WITH(fm::tools::run_quality_sweep(request, nullptr), Catch::Contains("leapfrog"));
}
