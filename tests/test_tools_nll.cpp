// tests/test_tools_nll.cpp — `fmeval nll`'s library half (tools/nll_eval.h) on tiny trained 2-D
// checkpoints: finite numbers with a standard error, exact and Hutchinson divergences agreeing within
// the probes' standard error, the normalisation's Jacobian, the 8-gaussians entropy against its
// closed-form value, the CSV, dopri5, bits per dimension of a zero field against its closed form (the
// dequantisation and the D·log 128 constant), a conditional model's NLL given each point's mode against
// H(X | Y) and its null class's, the caller's model left as it was, a run going on from
// its progress file (tools/nll_progress.h) with the uninterrupted run's bits, and bad flags, checkpoints
// and progress files refused with one-line errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>
#include <sstream>
#include <string>

#include "core/autograd.h"
#include "core/io/idx.h"
#include "core/kernel_choice.h"
#include "core/random.h"
#include "kernels/runtime.h"
#include "flow/model_fn.h"
#include "tools/checkpoint_model.h"
#include "tools/config.h"
#include "tools/eval_classifier.h"
#include "tools/nll_eval.h"
#include "tools/nll_progress.h"

#include "fashion_mnist_fixtures.h"
#include "fmtrain_runs.h"
#include "test_util.h"

namespace fs = std::filesystem;
using fm::tools::Json;

namespace {

fs::path scratch_dir(const std::string& name) { return fm::test::scratch_path("fm_test_nll", name); }

// A tiny 2-D run (30 steps): far from converged, which is all these tests need.
fs::path tiny_checkpoint(const fs::path& dir, const std::string& data) {
  Json config = {{"device", "cpu"},
                 {"data", {{"name", data}}},
                 {"model", {{"type", "mlp"}, {"hidden_width", 16}, {"hidden_layers", 2}}},
                 {"train", {{"steps", 30}, {"batch_size", 32}, {"lr", 3e-3}, {"seed", 3}, {"log_every", 10},
                            {"checkpoint_every", 30}, {"ema_decay", 0.9}}},
                 {"sample", {{"solver", "euler"}, {"steps", 4}, {"n", 64}}},
                 {"eval", {{"n", 64}, {"projections", 8}}}};
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << config.dump(2);
  REQUIRE(fm::test::train_run(dir / "config.json", dir / "run") == 0);
  return dir / "run" / "checkpoint.safetensors";
}


// A tiny class-conditional U-Net trained on the CPU for 2 steps: its class embedding is far from zero,
// so the label changes the velocity, which is all the conditional cases need.
std::string tiny_conditional_unet_checkpoint(const fs::path& dir) {
  Json config = {{"device", "cpu"},
                 {"data", {{"name", "fashion_mnist"}, {"limit", 32}, {"labels", "train-labels-idx1-ubyte.gz"}}},
                 {"model", {{"type", "unet"}, {"down_channels", {4, 4}}, {"mid_channels", {4, 4}}, {"down_sample", {true}},
                            {"attention", {false}}, {"groups", 2}, {"num_heads", 1}, {"time_emb_dim", 8}, {"final_channels", 4},
                            {"num_classes", 10}}},
                 {"train", {{"steps", 2}, {"batch_size", 16}, {"checkpoint_every", 2}, {"log_every", 1}}},
                 {"sample", {{"steps", 2}, {"n", 4}}}};
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << config.dump(2);
  REQUIRE(fm::test::train_run(dir / "config.json", dir / "run") == 0);
  return (dir / "run" / "checkpoint.safetensors").string();
}

// `fmeval nll WORDS...` as its argv (pointing into `words`, which must outlive it).
std::vector<char*> nll_argv(std::vector<std::string>& words) {
  words.insert(words.begin(), "nll");
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  return argv;
}

fm::tools::NllEvalRequest parse(std::vector<std::string> words) {
  std::vector<char*> argv = nll_argv(words);
  return fm::tools::parse_nll_args(int(argv.size()), argv.data());
}

// An nll CSV written under --condition label: `header`, then one row per example of `result` with
// its index, its label and its value (nats), and nothing after.
void require_labelled_csv(const std::string& csv, const std::string& header, const fm::tools::NllEvalResult& result) {
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);
  REQUIRE(line == header);
  REQUIRE(result.labels.size() == result.per_example_nll.size());
  for (std::size_t i = 0; i < result.labels.size(); ++i) {
    REQUIRE(std::getline(in, line));
    std::istringstream row(line);
    std::string index, label, nats;
    std::getline(row, index, ',');
    std::getline(row, label, ',');
    std::getline(row, nats, ',');
    INFO("CSV row " << line);
    REQUIRE(std::stoul(index) == i);
    REQUIRE(std::stoi(label) == result.labels[i]);
    REQUIRE(std::stod(nats) == Approx(result.per_example_nll[i]).epsilon(1e-8));
  }
  REQUIRE_FALSE(std::getline(in, line));
}

// The whole command, as fmeval runs it: its exit status.
int run_nll(std::vector<std::string> words) {
  std::vector<char*> argv = nll_argv(words);
  return fm::tools::nll_command(int(argv.size()), argv.data());
}

}  // namespace

TEST_CASE("fmeval nll gives finite numbers and exact and Hutchinson agree within the probes' error", "[tools][nll]") {
  const fs::path checkpoint = tiny_checkpoint(scratch_dir("moons"), "moons");
  fm::tools::NllEvalRequest request = parse({checkpoint.string(), "--n", "300", "--steps", "8", "--device", "cpu"});
  fm::tools::CheckpointModel loaded = fm::tools::load_checkpoint_model(request.checkpoint, fm::Device::CPU, "ema");
  const fm::tools::NllEvalResult exact = fm::tools::evaluate_nll(loaded, request);
  REQUIRE(exact.divergence == "exact");  // the 2-D default
  REQUIRE(exact.n == 300);
  REQUIRE(exact.per_example_nll.size() == 300);
  REQUIRE(std::isfinite(exact.nll));
  REQUIRE(exact.nll_se > 0);
  REQUIRE(exact.nfe_per_example == 32);  // rk4: 4 per step
  // Moons are scaled by 2 for the model: log p_data = log p_model + 2·log 2.
  REQUIRE(exact.normalization_log_jacobian == Approx(2 * std::log(2.0)).epsilon(1e-12));
  REQUIRE_FALSE(exact.entropy_known);

  // The same points (same seed) with one Rademacher probe each: the per-point differences are the
  // probes' noise alone, with mean zero; their mean must lie within 4 of its standard errors.
  request.likelihood.divergence = fm::flow::DivergenceMethod::Hutchinson;
  request.divergence_given = true;
  const fm::tools::NllEvalResult hutchinson = fm::tools::evaluate_nll(loaded, request);
  double mean = 0, squares = 0;
  const double n = 300;
  for (std::size_t i = 0; i < 300; ++i) mean += (hutchinson.per_example_nll[i] - exact.per_example_nll[i]) / n;
  for (std::size_t i = 0; i < 300; ++i) {
    const double d = hutchinson.per_example_nll[i] - exact.per_example_nll[i] - mean;
    squares += d * d;
  }
  const double standard_error = std::sqrt(squares / (n - 1) / n);
  INFO("exact " << exact.nll << " +- " << exact.nll_se << ", hutchinson " << hutchinson.nll << " +- " << hutchinson.nll_se
                << ", paired difference " << mean << " +- " << standard_error);
  REQUIRE(standard_error > 0);  // the probes do add noise: otherwise this compares a thing with itself
  REQUIRE(std::abs(mean) <= 4 * standard_error);
  REQUIRE(std::abs(hutchinson.nll - exact.nll) <= 4 * std::hypot(exact.nll_se, hutchinson.nll_se));

  // dopri5 through the tool: its NFE (1 + 1 + 6 per attempted step, FSAL) is reported.
  fm::tools::NllEvalRequest adaptive =
      parse({checkpoint.string(), "--n", "300", "--solver", "dopri5", "--rtol", "1e-6", "--atol", "1e-6", "--device", "cpu"});
  const fm::tools::NllEvalResult dopri5 = fm::tools::evaluate_nll(loaded, adaptive);
  INFO("dopri5: NLL " << dopri5.nll << " +- " << dopri5.nll_se << ", " << dopri5.nfe_per_example << " NFE");
  REQUIRE(dopri5.solver == "dopri5");
  REQUIRE(std::isfinite(dopri5.nll));
  REQUIRE(dopri5.nfe_per_example > 2);
  REQUIRE((dopri5.nfe_per_example - 2) % 6 == 0);
  REQUIRE(dopri5.to_json()["nfe"].get<std::int64_t>() == dopri5.nfe_per_example);
}

TEST_CASE("fmeval nll on 8 gaussians reports the data entropy and it matches its closed form", "[tools][nll]") {
  const fs::path dir = scratch_dir("gaussians");
  const fs::path checkpoint = tiny_checkpoint(dir, "8gaussians");
  const std::string csv = (dir / "nll.csv").string();
  REQUIRE(run_nll({checkpoint.string(), "--n", "50", "--steps", "4", "--device", "cpu", "--csv", csv}) == 0);
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);
  REQUIRE(line == "index,nll_nats");
  int rows = 0;
  while (std::getline(in, line)) ++rows;
  REQUIRE(rows == 50);
  REQUIRE_FALSE(fs::exists(csv + ".partial.json"));  // the progress file goes once the CSV is written

  // Modes 15 σ apart barely overlap, so H ≈ log 8 + log(2πe·σ²) (σ = 0.1); the overlap changes it by
  // far less than the Monte-Carlo error.
  double entropy = 0, se = 0;
  std::string note;
  fm::tools::CheckpointModel loaded = fm::tools::load_checkpoint_model(checkpoint.string(), fm::Device::CPU, "ema");
  REQUIRE(fm::tools::toy_entropy(loaded.config, 100000, 5, entropy, se, note));
  const double closed_form = std::log(8.0) + std::log(2 * std::numbers::pi * std::exp(1.0) * 0.01);
  INFO("Monte-Carlo " << entropy << " +- " << se << ", closed form " << closed_form);
  REQUIRE(se > 0);
  REQUIRE(std::abs(entropy - closed_form) <= 4 * se);
}

TEST_CASE("as 8-gaussians training goes on the NLL falls toward the data entropy and stays above it", "[tools][nll]") {
  // The cross-entropy E_data[−log p_model] is at least the data's entropy H for any density p_model,
  // with equality only for p_model = p_data; a flow's density (solved to RK4's accuracy) is one.
  // Training (about 5 s on one core) for 3000 steps, keeping checkpoints along the way.
  const fs::path dir = scratch_dir("progress");
  Json config = {{"device", "cpu"},
                 {"data", {{"name", "8gaussians"}}},
                 {"model", {{"type", "mlp"}, {"hidden_width", 64}, {"hidden_layers", 3}, {"activation", "gelu"}}},
                 {"train", {{"steps", 3000}, {"batch_size", 512}, {"lr", 3e-3}, {"seed", 0}, {"lr_schedule", "cosine"},
                            {"warmup_steps", 100}, {"ema_decay", 0.99}, {"log_every", 500}, {"checkpoint_every", 250},
                            {"keep_checkpoints", true}}},
                 {"sample", {{"solver", "euler"}, {"steps", 10}, {"n", 64}}},
                 {"eval", {{"n", 64}, {"projections", 8}}}};
  std::ofstream(dir / "config.json") << config.dump(2);
  REQUIRE(fm::test::train_run(dir / "config.json", dir / "run") == 0);
  std::vector<double> nll, se;
  double entropy = 0, entropy_se = 0;
  for (const char* step : {"0000250", "0001000", "0003000"}) {
    const fs::path checkpoint = dir / "run" / (std::string("checkpoint_step_") + step + ".safetensors");
    fm::tools::NllEvalRequest request = parse({checkpoint.string(), "--n", "1000", "--steps", "20", "--device", "cpu"});
    fm::tools::CheckpointModel loaded = fm::tools::load_checkpoint_model(request.checkpoint, fm::Device::CPU, "ema");
    const fm::tools::NllEvalResult result = fm::tools::evaluate_nll(loaded, request);
    REQUIRE(result.entropy_known);
    nll.push_back(result.nll), se.push_back(result.nll_se);
    entropy = result.entropy, entropy_se = result.entropy_se;
    INFO("step " << step << ": NLL " << result.nll << " +- " << result.nll_se << ", entropy " << entropy << " +- " << entropy_se);
    CHECK(result.nll >= entropy - 4 * std::hypot(result.nll_se, entropy_se));
    // The same on the evaluated points themselves: KL(data ‖ model) = mean(NLL_i + log p_data(x_i)) ≥ 0.
    CHECK(result.kl >= -4 * result.kl_se);
  }
  INFO("NLL at steps 250, 1000, 3000: " << nll[0] << ", " << nll[1] << ", " << nll[2] << "; entropy " << entropy);
  // Falling by more than the noise (the same 1000 points at every checkpoint) ...
  REQUIRE(nll[0] - nll[1] > 2 * std::hypot(se[0], se[1]));
  REQUIRE(nll[1] - nll[2] > 0);
  // ... and most of the way to the floor: the gap to the entropy at least halves.
  REQUIRE(nll[2] - entropy < 0.5 * (nll[0] - entropy));
}

TEST_CASE("a class-conditional 8-gaussians model given each point's mode has an NLL near H(X | Y) and its null class at least log 8 above",
          "[tools][nll]") {
  // Given its mode y a point of 8 gaussians is one Gaussian, so H(X | Y) = log(2πe·σ²) in closed form,
  // log 8 below H(X) (the modes, 15 σ apart, barely overlap: log p(y | x) ≈ 0 on the data). A trained
  // conditional flow's NLL given the labels approaches H(X | Y) from above (KL(data ‖ model | y) ≥ 0).
  // On the same points, NLL(null) − NLL(given y) = KL(null) − KL(given y) + log 8 per point on average,
  // and KL(null) ≥ 0: with KL(given y) < 0.1, the gap is at least log 8 − 0.1. Wrong labels would make
  // KL(given y) large, and labels ignored would make the gap 0 (and KL(given y) = KL(null) + log 8). (The null class sees a tenth of the training,
  // train.label_dropout = 0.1, and is further from its floor: its KL is about 1.3 nats here.)
  // Training: configs/8gaussians_cond.json (3000 steps, a few seconds).
  const fs::path dir = scratch_dir("conditional");
  REQUIRE(fm::test::train_run(fs::path(FM_SOURCE_DIR) / "configs" / "8gaussians_cond.json", dir / "run") == 0);
  const std::string checkpoint = (dir / "run" / "checkpoint.safetensors").string();
  fm::tools::CheckpointModel loaded = fm::tools::load_checkpoint_model(checkpoint, fm::Device::CPU, "ema");
  const std::vector<std::string> flags{checkpoint, "--n", "1000", "--steps", "20", "--device", "cpu"};
  const fm::tools::NllEvalResult null_class = fm::tools::evaluate_nll(loaded, parse(flags));
  std::vector<std::string> label_flags = flags;
  label_flags.insert(label_flags.end(), {"--condition", "label"});
  const fm::tools::NllEvalResult given = fm::tools::evaluate_nll(loaded, parse(label_flags));
  REQUIRE(given.given_label);
  REQUIRE(given.to_json()["condition"] == "label");
  REQUIRE(null_class.to_json()["condition"] == "null");
  REQUIRE(given.labels.size() == 1000);
  REQUIRE(null_class.labels.empty());
  // The command's CSV: each point's mode beside its value, as the evaluation above has them.
  const std::string csv = (dir / "given.csv").string();
  std::vector<std::string> csv_flags = label_flags;
  csv_flags.insert(csv_flags.end(), {"--csv", csv});
  REQUIRE(run_nll(csv_flags) == 0);
  require_labelled_csv(csv, "index,label,nll_nats", given);

  const double sigma = 0.1, closed_form = std::log(2 * std::numbers::pi * std::exp(1.0) * sigma * sigma);
  INFO("given the mode: NLL " << given.nll << " +- " << given.nll_se << ", H(X | Y) " << given.entropy << " +- "
                              << given.entropy_se << " (closed form " << closed_form << "), KL " << given.kl << " +- "
                              << given.kl_se << "; null class: NLL " << null_class.nll << ", H(X) " << null_class.entropy);
  REQUIRE(given.entropy_known);
  CHECK(std::abs(given.entropy - closed_form) <= 4 * given.entropy_se);
  CHECK(std::abs(null_class.entropy - given.entropy - std::log(8.0)) <= 4 * std::hypot(null_class.entropy_se, given.entropy_se));
  CHECK(given.kl >= -4 * given.kl_se);
  // Close to the floor: within a tenth of a nat (the 3000-step model; the unconditional test's
  // model of the same size and length gets as close).
  CHECK(given.kl < 0.1);
  // The same points in both runs: the difference is paired, per point.
  std::vector<double> gap;
  for (std::size_t i = 0; i < given.per_example_nll.size(); ++i)
    gap.push_back(null_class.per_example_nll[i] - given.per_example_nll[i]);
  double mean = 0, squares = 0;
  for (double g : gap) mean += g / double(gap.size());
  for (double g : gap) squares += (g - mean) * (g - mean);
  const double gap_se = std::sqrt(squares / double(gap.size() - 1) / double(gap.size()));
  INFO("null-class NLL minus NLL given the mode, per point: mean " << mean << " +- " << gap_se << " (log 8 = "
                                                                  << std::log(8.0) << ")");
  CHECK(null_class.kl >= -4 * null_class.kl_se);
  CHECK(mean >= std::log(8.0) - 0.1 - 4 * gap_se);
}

TEST_CASE("fmeval nll on an image model gives bits per dimension with a standard error", "[tools][nll]") {
  if (fm::test::fashion_mnist_missing()) return;  // trains on train, evaluates t10k
  // A tiny U-Net trained for 2 steps on 32 images: the numbers are poor, the path is the point.
  const fs::path dir = scratch_dir("images");
  Json config = {{"device", "cpu"},
                 {"data", {{"name", "fashion_mnist"}, {"limit", 32}}},
                 {"model", {{"type", "unet"}, {"down_channels", {4, 4}}, {"mid_channels", {4, 4}}, {"down_sample", {true}},
                            {"attention", {false}}, {"groups", 2}, {"num_heads", 1}, {"time_emb_dim", 8}, {"final_channels", 4}}},
                 {"train", {{"steps", 2}, {"batch_size", 16}, {"checkpoint_every", 2}, {"log_every", 1}}},
                 {"sample", {{"steps", 2}, {"n", 4}}}};
  std::ofstream(dir / "config.json") << config.dump(2);
  REQUIRE(fm::test::train_run(dir / "config.json", dir / "run") == 0);
  const std::string checkpoint = (dir / "run" / "checkpoint.safetensors").string();
  fm::tools::NllEvalRequest request = parse({checkpoint, "--n", "6", "--batch", "4", "--steps", "2", "--device", "cpu"});
  fm::tools::CheckpointModel loaded = fm::tools::load_checkpoint_model(checkpoint, fm::Device::CPU, "ema");
  const fm::tools::NllEvalResult result = fm::tools::evaluate_nll(loaded, request);
  REQUIRE(result.images);
  REQUIRE(result.divergence == "hutchinson");  // the image default: 784 backward passes per stage would be slow
  REQUIRE(result.dims == 784);
  REQUIRE(result.per_example_nll.size() == 6);
  REQUIRE(std::isfinite(result.bpd));
  REQUIRE(result.bpd_se > 0);
  // bpd = NLL / (D ln 2), both for the mean and its standard error.
  REQUIRE(result.bpd == Approx(result.nll / (784 * std::log(2.0))).epsilon(1e-12));
  REQUIRE(result.bpd_se == Approx(result.nll_se / (784 * std::log(2.0))).epsilon(1e-12));
  // Batches of 4 and one batch of 6 see the same dequantisation noise and the same probes per image.
  request.batch = 6;
  const fm::tools::NllEvalResult whole = fm::tools::evaluate_nll(loaded, request);
  for (std::size_t i = 0; i < 6; ++i)
    REQUIRE(whole.per_example_nll[i] == Approx(result.per_example_nll[i]).epsilon(1e-5));
  request.data_dir = (dir / "nowhere").string();
  REQUIRE_THROWS_WITH(fm::tools::evaluate_nll(loaded, request), Catch::Contains("t10k-images-idx3-ubyte.gz"));
}

TEST_CASE("fmeval nll --condition label evaluates each image given its own t10k label", "[tools][nll][conditional]") {
  const fs::path data_dir = fm::tools::kFashionMnistDir;
  if (fm::test::fashion_mnist_missing()) return;  // trains on train, evaluates t10k
  const fs::path dir = scratch_dir("images_conditional");
  const std::string checkpoint = tiny_conditional_unet_checkpoint(dir);
  fm::tools::CheckpointModel loaded = fm::tools::load_checkpoint_model(checkpoint, fm::Device::CPU, "ema");
  // Batches of 4: the second batch starts at example 4, so its labels must be taken from there.
  const fm::tools::NllEvalRequest request =
      parse({checkpoint, "--n", "6", "--batch", "4", "--steps", "2", "--device", "cpu", "--condition", "label"});
  const fm::tools::NllEvalResult given = fm::tools::evaluate_nll(loaded, request);
  fm::tools::NllEvalRequest null_request = request;
  null_request.given_label = false;
  const fm::tools::NllEvalResult null_class = fm::tools::evaluate_nll(loaded, null_request);
  REQUIRE(given.per_example_nll.size() == 6);

  // Each image alone, with the same dequantisation noise and probes, through its own label.
  const std::vector<std::int32_t> labels = fm::tools::test_labels(data_dir.string(), 6);
  const fm::Tensor images = fm::tools::dequantised_test_images(data_dir.string(), 6, {1, 28, 28}, request.seed);
  fm::flow::LikelihoodOptions options = request.likelihood;
  options.divergence = fm::flow::DivergenceMethod::Hutchinson;
  options.seed = request.seed;
  bool label_matters = false;
  for (std::int64_t i = 0; i < 6; ++i) {
    options.first_sample = i;
    const std::vector<std::int32_t> own{labels[std::size_t(i)]};
    fm::nn::VelocityModel& model = *loaded.model;
    const fm::flow::VelocityField field = fm::flow::velocity_field_from_model(
        [&model, own](const fm::Tensor& x, const fm::Tensor& t) { return model.forward(x, t, own); });
    const double log_prob = fm::flow::log_likelihood(field, images.narrow(0, i, 1), options).log_prob.to_vector()[0];
    INFO("example " << i << ", label " << own[0]);
    REQUIRE(given.per_example_nll[std::size_t(i)] == Approx(-log_prob + 784 * std::log(128.0)).epsilon(1e-5));
    // Far above the comparison's tolerance (1e-5 of ~3,800 nats): another label would be seen.
    label_matters = label_matters || std::abs(given.per_example_nll[std::size_t(i)] -
                                              null_class.per_example_nll[std::size_t(i)]) > 1.0;
  }
  REQUIRE(label_matters);

  // The result and the CSV carry each example's label, so per-class numbers need no second file.
  REQUIRE(given.labels == labels);
  REQUIRE(null_class.labels.empty());
  const std::string csv = (dir / "given.csv").string();
  REQUIRE(run_nll({checkpoint, "--n", "6", "--batch", "4", "--steps", "2", "--device", "cpu", "--condition", "label",
                   "--csv", csv}) == 0);
  require_labelled_csv(csv, "index,label,nll_nats,bpd", given);
  // The idx corpus has 8 t10k images: asking for more labels than the file holds is refused.
  REQUIRE_THROWS_WITH(fm::tools::test_labels(FM_SOURCE_DIR "/tests/bad_inputs/idx/good", 9),
                      Catch::Contains("is more than the 8 labels in"));
}

TEST_CASE("cuda: fmeval nll --condition label on the device matches the CPU and neither condition copies labels per evaluation",
          "[tools][nll][conditional][gpu]") {
  FM_REQUIRE_GPU();
  if (fm::test::fashion_mnist_missing()) return;  // trains on train, evaluates t10k
  // The labels go to the device once per batch (a RowIndex) and the solver's evaluations read them
  // there. The per-image values are the CPU's to the float rounding of two kernel sets (the probes and
  // dequantisation noise are counter-based, the same numbers on both devices): within 1e-5 relative,
  // a few hundredths of a nat, far below the label's effect (more than a nat, the CPU case above).
  const std::string checkpoint = tiny_conditional_unet_checkpoint(scratch_dir("images_conditional_cuda"));
  const auto flags = [&](const char* device, const char* steps, const char* condition = "label") {
    return std::vector<std::string>{checkpoint, "--n",       "6",       "--batch",  "4",   "--steps",
                                    steps,      "--condition", condition, "--device", device};
  };
  fm::tools::CheckpointModel on_cpu = fm::tools::load_checkpoint_model(checkpoint, fm::Device::CPU, "ema");
  fm::tools::CheckpointModel on_cuda = fm::tools::load_checkpoint_model(checkpoint, fm::Device::CUDA, "ema");
  const fm::tools::NllEvalResult cpu = fm::tools::evaluate_nll(on_cpu, parse(flags("cpu", "2")));
  const fm::tools::NllEvalResult cuda = fm::tools::evaluate_nll(on_cuda, parse(flags("cuda", "2")));
  REQUIRE(cuda.labels == cpu.labels);
  REQUIRE(cuda.per_example_nll.size() == 6);
  for (std::size_t i = 0; i < 6; ++i) {
    INFO("example " << i << ", label " << cpu.labels[i] << ": CUDA " << cuda.per_example_nll[i] << ", CPU "
                    << cpu.per_example_nll[i]);
    CHECK(cuda.per_example_nll[i] == Approx(cpu.per_example_nll[i]).epsilon(1e-5));
  }
  // Twice the solver steps (16 more evaluations of the field) and not one more copy to the device:
  // the labels are not sent again per evaluation (a host label vector would be, each time), and the
  // null class needs none (nn/class_embedding.h). Counted after the run above, whose first use of the
  // device also makes one-time buffers (one more copy).
  const auto host_to_device_copies = [&](const char* steps, const char* condition) {
    const fm::kernels::RuntimeCounters before = fm::kernels::runtime_counters();
    fm::tools::evaluate_nll(on_cuda, parse(flags("cuda", steps, condition)));
    return (fm::kernels::runtime_counters() - before).host_to_device_copies;
  };
  for (const char* condition : {"label", "null"}) {
    const std::uint64_t two_steps = host_to_device_copies("2", condition),
                        four_steps = host_to_device_copies("4", condition);
    INFO("--condition " << condition << ", host-to-device copies: " << two_steps << " with 2 steps, " << four_steps
                        << " with 4");
    CHECK(two_steps > 0);
    CHECK(four_steps == two_steps);
  }
}

TEST_CASE("bits per dimension of a zero velocity field equal the Gaussian bound on the dequantised pixels",
          "[tools][nll]") {
  // v ≡ 0 (every parameter of a tiny U-Net set to zero: its last convolution then outputs exactly 0) gives
  // x0 = x1 and div v = 0, so NLL_i = ½|x_i|² + (D/2)·log 2π + D·log 128 on the dequantised image
  // x_i = 2·(p + u)/256 − 1. The x is rebuilt here from the pixels and the same seed, independently of the
  // tool: this checks the +D·log 128 constant and the dequantisation map together.
  const std::string idx_dir = std::string(FM_SOURCE_DIR) + "/tests/bad_inputs/idx/good";  // 8 t10k images
  const fs::path dir = scratch_dir("zero_field");
  Json config = {{"device", "cpu"},
                 {"data", {{"name", "fashion_mnist"}, {"dir", idx_dir}}},
                 {"model", {{"type", "unet"}, {"down_channels", {4, 4}}, {"mid_channels", {4, 4}}, {"down_sample", {true}},
                            {"attention", {false}}, {"groups", 2}, {"num_heads", 1}, {"time_emb_dim", 8}, {"final_channels", 4}}},
                 {"train", {{"steps", 1}, {"batch_size", 4}, {"checkpoint_every", 1}, {"log_every", 1}}},
                 {"sample", {{"steps", 2}, {"n", 4}}}};
  std::ofstream(dir / "config.json") << config.dump(2);
  REQUIRE(fm::test::train_run(dir / "config.json", dir / "run") == 0);
  const std::string checkpoint = (dir / "run" / "checkpoint.safetensors").string();
  fm::tools::CheckpointModel loaded = fm::tools::load_checkpoint_model(checkpoint, fm::Device::CPU, "ema");
  {
    fm::NoGradGuard no_grad;
    for (fm::Tensor& p : loaded.model->parameters()) p.zero_();
  }
  // evaluate_nll must hand the model back as it found it: training mode and requires_grad here.
  loaded.model->train(true);
  for (fm::Tensor& p : loaded.model->parameters()) p.set_requires_grad(true);
  auto model_untouched = [&] {
    bool all_require = true;
    for (const fm::Tensor& p : loaded.model->parameters()) all_require = all_require && p.requires_grad();
    return all_require && loaded.model->is_training();
  };

  const std::uint64_t seed = 77;
  fm::tools::NllEvalRequest request =
      parse({checkpoint, "--n", "8", "--batch", "3", "--steps", "3", "--seed", std::to_string(seed), "--data-dir", idx_dir,
             "--device", "cpu"});
  const fm::tools::NllEvalResult result = fm::tools::evaluate_nll(loaded, request);
  REQUIRE(model_untouched());
  REQUIRE(result.images);
  REQUIRE(result.per_example_nll.size() == 8);

  const fm::io::IdxImages images = fm::io::read_idx_images(idx_dir + "/t10k-images-idx3-ubyte.gz");
  const std::int64_t d = 784;
  fm::Generator gen(seed);  // the tool's dequantisation stream: one uniform per pixel, in file order
  std::vector<double> want_x;
  for (std::int64_t i = 0; i < 8; ++i) {
    double squared = 0;
    for (std::int64_t j = 0; j < d; ++j) {
      const double x = 2.0 * (double(images.pixels[std::size_t(i * d + j)]) + gen.uniform()) / 256.0 - 1.0;
      want_x.push_back(x);
      squared += x * x;
    }
    const double want = 0.5 * squared + 0.5 * double(d) * std::log(2 * std::numbers::pi) + double(d) * std::log(128.0);
    INFO("image " << i << ": tool " << result.per_example_nll[std::size_t(i)] << ", closed form " << want);
    // The tool works in float32 (x rounded to 2^-24 relative, sums of 784 terms): 1e-5 relative is far
    // above that, and far below what a wrong constant or map would change (p/127.5 − 1 instead of
    // 2(p + u)/256 − 1 moves ½|x|² by about 1 nat in ~4700, 2e-4).
    REQUIRE(result.per_example_nll[std::size_t(i)] == Approx(want).epsilon(1e-5));
  }
  // The exposed dequantisation is the same map.
  const std::vector<double> got_x = fm::tools::dequantised_test_images(idx_dir, 8, {1, 28, 28}, seed).to_vector();
  REQUIRE(got_x.size() == want_x.size());
  for (std::size_t k = 0; k < got_x.size(); ++k) REQUIRE(std::abs(got_x[k] - want_x[k]) < 1e-6);

  // Restored also when the evaluation throws.
  request.data_dir = (dir / "nowhere").string();
  REQUIRE_THROWS(fm::tools::evaluate_nll(loaded, request));
  REQUIRE(model_untouched());
}

TEST_CASE("fmeval nll refuses bad flags and a non-Gaussian source", "[tools][nll]") {
  using fm::ConfigError;
  REQUIRE_THROWS_WITH(parse({}), Catch::Contains("expected one checkpoint"));
  REQUIRE_THROWS_WITH(parse({"a", "b"}), Catch::Contains("expected one checkpoint"));
  REQUIRE_THROWS_WITH(parse({"c", "--divergence", "trace"}), "--divergence: got \"trace\", expected exact or hutchinson");
  REQUIRE_THROWS_WITH(parse({"c", "--probes", "0"}), Catch::StartsWith("--probes: got \"0\""));
  REQUIRE_THROWS_WITH(parse({"c", "--probe", "uniform"}), "--probe: got \"uniform\", expected rademacher or gaussian");
  REQUIRE_THROWS_WITH(parse({"c", "--divergence", "exact", "--probes", "4"}), Catch::Contains("only with --divergence hutchinson"));
  REQUIRE_THROWS_WITH(parse({"c", "--solver", "rk5"}), Catch::Contains("expected euler, midpoint, heun, rk4 or dopri5"));
  REQUIRE(parse({"c", "--solver", "dopri5", "--rtol", "1e-4"}).likelihood.rtol == 1e-4);
  REQUIRE_THROWS_WITH(parse({"c", "--solver", "rk4", "--atol", "1e-4"}), Catch::Contains("only with --solver dopri5"));
  REQUIRE_THROWS_AS(parse({"c", "--solver", "dopri5", "--rtol", "0"}), ConfigError);
  REQUIRE_THROWS_AS(parse({"c", "--steps", "0"}), ConfigError);
  REQUIRE_THROWS_AS(parse({"c", "--n", "1"}), ConfigError);
  REQUIRE_THROWS_AS(parse({"c", "--batch", "0"}), ConfigError);
  REQUIRE_THROWS_AS(parse({"c", "--weights", "best"}), ConfigError);
  REQUIRE_THROWS_AS(parse({"c", "--device", "tpu"}), ConfigError);
  REQUIRE_THROWS_AS(parse({"c", "--sigma", "1"}), ConfigError);
  // As `fmeval guidance` words it: IOError, "--csv: folder X does not exist".
  REQUIRE_THROWS_AS(parse({"c", "--csv", "/nonexistent_folder_fm/x.csv"}), fm::IOError);
  REQUIRE_THROWS_WITH(parse({"c", "--csv", "/nonexistent_folder_fm/x.csv"}), "--csv: folder /nonexistent_folder_fm does not exist");
  const fm::tools::NllEvalRequest ok = parse({"c", "--divergence", "hutchinson", "--probes", "3", "--probe", "gaussian"});
  REQUIRE(ok.likelihood.probes == 3);
  REQUIRE(ok.likelihood.probe == fm::flow::ProbeDistribution::Gaussian);
  REQUIRE_FALSE(ok.given_label);
  REQUIRE(parse({"c", "--condition", "label"}).given_label);
  REQUIRE_FALSE(parse({"c", "--condition", "null"}).given_label);
  REQUIRE_THROWS_WITH(parse({"c", "--condition", "class"}), Catch::StartsWith("--condition: got \"class\", expected null"));

  // A model whose source is a 2-D data set: its log-density is unknown, so the likelihood is refused.
  const fs::path checkpoint = tiny_checkpoint(scratch_dir("source"), "moons");
  fm::tools::CheckpointModel loaded = fm::tools::load_checkpoint_model(checkpoint.string(), fm::Device::CPU, "ema");
  loaded.config["data"]["source"] = "8gaussians";
  fm::tools::NllEvalRequest request = parse({checkpoint.string(), "--n", "10", "--device", "cpu"});
  REQUIRE_THROWS_WITH(fm::tools::evaluate_nll(loaded, request), Catch::Contains("known here only for \"gaussian\""));
  // A density given a label needs a class-conditional model.
  loaded.config["data"]["source"] = "gaussian";
  request.given_label = true;
  REQUIRE_THROWS_WITH(fm::tools::evaluate_nll(loaded, request), Catch::Contains("holds an unconditional model"));
}

TEST_CASE("fmeval nll goes on from its progress file with the numbers of an uninterrupted run", "[tools][nll][resume]") {
  const fs::path dir = scratch_dir("resume");
  const fs::path checkpoint = tiny_checkpoint(dir, "moons");
  const std::string progress_file = (dir / "nll.csv.partial.json").string();
  fm::tools::NllEvalRequest request =
      parse({checkpoint.string(), "--n", "300", "--batch", "100", "--steps", "4", "--device", "cpu"});
  fm::tools::CheckpointModel loaded = fm::tools::load_checkpoint_model(request.checkpoint, fm::Device::CPU, "ema");
  const fm::tools::NllEvalResult whole = fm::tools::evaluate_nll(loaded, request);

  // With a progress file: every batch is added to it as it finishes.
  request.progress_file = progress_file;
  const fm::tools::NllEvalResult saved = fm::tools::evaluate_nll(loaded, request);
  REQUIRE(saved.per_example_nll == whole.per_example_nll);
  REQUIRE(saved.resumed == 0);
  Json file = Json::parse(std::ifstream(progress_file));
  REQUIRE(file["index"].size() == 300);
  REQUIRE(file["nfe"] == 16);

  // A run stopped after its first batch, as the file would be then (examples 0 … 99).
  auto stopped_after_first_batch = [&](double shift) {
    Json stopped = file;
    stopped["index"] = Json::array();
    stopped["nll"] = Json::array();
    for (int i = 0; i < 100; ++i) {
      stopped["index"].push_back(i);
      stopped["nll"].push_back(whole.per_example_nll[std::size_t(i)] + shift);
    }
    std::ofstream(progress_file) << stopped.dump();
  };
  // Going on: the first batch comes from the file (shifted there, so it shows it was not recomputed),
  // the others are evaluated again, to the bit.
  stopped_after_first_batch(1.0);
  const fm::tools::NllEvalResult marked = fm::tools::evaluate_nll(loaded, request);
  REQUIRE(marked.resumed == 100);
  for (std::size_t i = 0; i < 300; ++i) {
    INFO("example " << i);
    REQUIRE(marked.per_example_nll[i] == whole.per_example_nll[i] + (i < 100 ? 1.0 : 0.0));
  }
  // Unshifted, the resumed run's numbers are the uninterrupted run's bits (JSON keeps a double exactly).
  stopped_after_first_batch(0.0);
  const fm::tools::NllEvalResult resumed = fm::tools::evaluate_nll(loaded, request);
  REQUIRE(resumed.resumed == 100);
  REQUIRE(resumed.per_example_nll == whole.per_example_nll);
  REQUIRE(resumed.nll == whole.nll);
  REQUIRE(resumed.nll_se == whole.nll_se);
  REQUIRE(resumed.nfe_per_example == whole.nfe_per_example);
  REQUIRE(resumed.to_json()["resumed"] == 100);

  // Other settings than the file's: refused, naming the setting and the file; the file is kept.
  stopped_after_first_batch(0.0);
  fm::tools::NllEvalRequest other = request;
  other.likelihood.steps = 8;
  REQUIRE_THROWS_AS(fm::tools::evaluate_nll(loaded, other), fm::ConfigError);
  REQUIRE_THROWS_WITH(fm::tools::evaluate_nll(loaded, other),
                      progress_file + " holds the progress of a run with steps = 4, not 8 as now: run with that "
                                      "setting to go on, or delete the file to start over");
  other = request;
  other.seed = 5;
  REQUIRE_THROWS_WITH(fm::tools::evaluate_nll(loaded, other), Catch::Contains("with seed = 987654321, not 5"));
  REQUIRE(fs::exists(progress_file));
  // A setting only the file has (--condition label is kept only when given): refused both ways.
  {
    fm::tools::NllProgress null_run;
    null_run.settings = {{"seed", 1}};
    null_run.values.assign(4, std::numeric_limits<double>::quiet_NaN());
    fm::tools::NllProgress label_run = null_run;
    label_run.settings["condition"] = "label";
    label_run.values[0] = 1.0;
    const std::string file = (dir / "condition.partial.json").string();
    fm::tools::save_nll_progress(file, label_run);
    REQUIRE_THROWS_WITH(fm::tools::load_nll_progress(file, null_run),
                        Catch::Contains("with condition = \"label\", which this run does not set"));
    null_run.values[0] = 1.0;
    fm::tools::save_nll_progress(file, null_run);
    REQUIRE_THROWS_WITH(fm::tools::load_nll_progress(file, label_run),
                        Catch::Contains("with condition = (none), not \"label\""));
  }

  // A damaged file: a FormatError naming it, one line.
  auto damaged = [&](const std::string& text) {
    std::ofstream(progress_file) << text;
    return [&]() { fm::tools::evaluate_nll(loaded, request); };
  };
  REQUIRE_THROWS_AS(damaged("{\"format\": \"fmeval-nll-progress\", \"vers")(), fm::FormatError);
  REQUIRE_THROWS_WITH(damaged("[1, 2]")(), progress_file + ": no \"format\"; expected the progress file "
                                                         "(fmeval-nll-progress) that fmeval nll --csv keeps beside its CSV");
  Json bad = file;
  bad["index"][7] = 300;
  REQUIRE_THROWS_WITH(damaged(bad.dump())(), progress_file + ": example index 300 is not one of 0 … 299");
  bad = file;
  bad["nll"][3] = nullptr;
  REQUIRE_THROWS_WITH(damaged(bad.dump())(), progress_file + ": the value of example 3 is null, expected a finite number");
  bad = file;
  bad["nll"].erase(0);
  REQUIRE_THROWS_WITH(damaged(bad.dump())(), Catch::Contains("must be arrays of the same length"));
  bad = file;
  bad["version"] = 2;
  REQUIRE_THROWS_WITH(damaged(bad.dump())(), Catch::Contains("expected \"fmeval-nll-progress\" version 1"));

  // The precision is a setting too (the products' rounding would differ).
  stopped_after_first_batch(0.0);
  fm::set_precision(fm::Precision::TF32);
  REQUIRE_THROWS_WITH(fm::tools::evaluate_nll(loaded, request), Catch::Contains("with precision = \"fp32\", not \"tf32\""));
  fm::set_precision(fm::Precision::FP32);

  // A run killed while it saved left the atomic write's temp file: going on removes it (and only it).
  const fs::path stale = dir / ".nll.csv.partial.json.tmp.4242.17.3.0";
  const fs::path unrelated = dir / ".other.csv.tmp.4242.17.3.0";
  std::ofstream(stale) << "{";
  std::ofstream(unrelated) << "{";
  const fm::tools::NllEvalResult after_kill = fm::tools::evaluate_nll(loaded, request);
  REQUIRE(after_kill.per_example_nll == whole.per_example_nll);
  REQUIRE_FALSE(fs::exists(stale));
  REQUIRE(fs::exists(unrelated));
}
