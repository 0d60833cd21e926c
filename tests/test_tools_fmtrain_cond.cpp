// tests/test_tools_fmtrain_cond.cpp — class-conditional fmtrain runs end to end: bitwise resume
// (2-D points with a minibatch-OT coupling that moves the labels, and a tiny U-Net on labelled
// images), labels and label dropout reaching the loss, the config errors of model.num_classes and
// train.label_dropout, every config in configs/ resolving, and configs/8gaussians_cond.json
// training a model whose samples for class k land in mode k.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/autograd.h"
#include "core/ops.h"
#include "flow/datasets2d.h"
#include "tools/checkpoint_model.h"
#include "tools/conditional_sampling.h"
#include "tools/config.h"

#include "fashion_mnist_fixtures.h"
#include "fmtrain_runs.h"
#include "tensor_compare.h"
#include "test_util.h"

namespace fs = std::filesystem;
using fm::tools::Json;
using fm::test::logged_losses;

namespace {

// A small, fast class-conditional 8-gaussians run: the shared small run made conditional.
fs::path write_config(const fs::path& where, const Json& extra = Json::object()) {
  Json patch = {{"data", {{"name", "8gaussians"}}},
                {"model", {{"num_classes", 8}, {"class_embedding_dim", 4}}},
                {"train", {{"label_dropout", 0.2}}}};
  return fm::test::write_small_run_config(where, patch, extra);
}

}  // namespace

TEST_CASE("an interrupted and resumed conditional run with minibatch OT logs bitwise the same losses", "[fmtrain][resume][conditional]") {
  const fm::test::TempDir scratch("fm_test_fmtrain_cond_resume");
  const fs::path dir = scratch.path;
  fs::path config = write_config(dir / "cfg", {{"train", {{"coupling", "minibatch_ot"}}}});
  REQUIRE(fm::test::train_run(config, dir / "whole") == 0);
  REQUIRE(fm::test::train_run(config, dir / "split", {"train.steps=20"}) == 0);
  REQUIRE(fm::test::resume_run(dir / "split", {"train.steps=40"}) == 0);
  std::vector<double> whole = logged_losses(dir / "whole"), split = logged_losses(dir / "split");
  REQUIRE(whole.size() == 40);
  REQUIRE(whole == split);
}

TEST_CASE("an interrupted and resumed conditional U-Net run on labelled images logs bitwise the same losses", "[fmtrain][resume][conditional]") {
  if (fm::test::fashion_mnist_missing({"train"})) return;
  const fm::test::TempDir scratch("fm_test_fmtrain_cond_resume_unet");
  const fs::path dir = scratch.path;
  // 48 images in batches of 16: the split at step 4 falls inside the second epoch.
  Json extra = {{"data", {{"name", "fashion_mnist"}, {"limit", 48}}},
                {"model", {{"type", "unet"}, {"down_channels", {8, 8}}, {"mid_channels", {8, 8}},
                           {"down_sample", {true}}, {"attention", {true}}, {"groups", 4}, {"num_heads", 2},
                           {"time_emb_dim", 16}, {"final_channels", 8}, {"num_classes", 10},
                           {"hidden_width", nullptr}, {"hidden_layers", nullptr}, {"class_embedding_dim", nullptr}}},
                {"train", {{"steps", 8}, {"batch_size", 16}, {"checkpoint_every", 4}, {"log_every", 1}}},
                {"sample", {{"steps", 2}, {"n", 4}}}};
  fs::path config = write_config(dir / "cfg", extra);
  REQUIRE(fm::test::train_run(config, dir / "whole") == 0);
  REQUIRE(fm::test::train_run(config, dir / "split", {"train.steps=4"}) == 0);
  REQUIRE(fm::test::resume_run(dir / "split", {"train.steps=8"}) == 0);
  std::vector<double> whole = logged_losses(dir / "whole"), split = logged_losses(dir / "split");
  REQUIRE(whole.size() == 8);
  REQUIRE(whole == split);
  // The checkpoint rebuilds the conditional model.
  const auto loaded = fm::tools::load_checkpoint_model((dir / "whole" / "checkpoint.safetensors").string(), fm::Device::CPU);
  REQUIRE(loaded.model->num_classes() == 10);
}

TEST_CASE("labels and label dropout reach the loss", "[fmtrain][conditional]") {
  const fm::test::TempDir scratch("fm_test_fmtrain_cond_dropout");
  const fs::path dir = scratch.path;
  fs::path config = write_config(dir / "cfg");
  REQUIRE(fm::test::train_run(config, dir / "p02") == 0);
  REQUIRE(fm::test::train_run(config, dir / "p0", {"train.label_dropout=0"}) == 0);
  REQUIRE(fm::test::train_run(config, dir / "p05", {"train.label_dropout=0.5"}) == 0);
  const auto p02 = logged_losses(dir / "p02"), p0 = logged_losses(dir / "p0"), p05 = logged_losses(dir / "p05");
  // Step 1's loss is the initial model's on the step's batch: different dropped labels, different loss.
  REQUIRE(p02.size() == 40);
  REQUIRE(p02[0] != p0[0]);
  REQUIRE(p02[0] != p05[0]);
  REQUIRE(p0[0] != p05[0]);
}

TEST_CASE("bad conditional configs are refused before anything is written", "[fmtrain][errors][conditional]") {
  const fm::test::TempDir scratch("fm_test_fmtrain_cond_errors");
  const fs::path dir = scratch.path;
  struct Case { Json patch; std::vector<std::string> overrides; const char* message; };
  std::vector<Case> cases = {
      {{{"model", {{"num_classes", 5}}}}, {}, "model.num_classes: got 5, but data \"8gaussians\" has 8 classes"},
      {{{"data", {{"name", "moons"}}}}, {}, "model.num_classes: got 8, but data \"moons\" has 2 classes"},
      {{{"model", {{"num_classes", -1}}}}, {}, "model.num_classes"},
      {{{"data", {{"pairs", "/nonexistent/pairs.safetensors"}}}}, {}, "model.num_classes: 8, but reflow pairs (data.pairs) carry no labels"},
      {{{"train", {{"label_dropout", 1.0}}}}, {}, "train.label_dropout: got 1, expected a number in [0, 1)"},
      {{{"train", {{"label_dropout", -0.1}}}}, {}, "train.label_dropout: got -0.1"},
      {{{"model", {{"num_classes", 0}, {"class_embedding_dim", nullptr}}}}, {},
       "train.label_dropout: got 0.2, but the model is unconditional"},
      {{{"model", {{"class_embedding_dim", 0}}}}, {}, "model.class_embedding_dim"},
      {{{"model", {{"num_classes", 0}}}, {"train", {{"label_dropout", nullptr}}}}, {},
       "model.class_embedding_dim: got 4, but the model is unconditional (model.num_classes = 0)"},
  };
  int index = 0;
  for (const Case& c : cases) {
    fs::path config = write_config(dir / ("cfg" + std::to_string(index)), c.patch);
    fs::path out = dir / ("run" + std::to_string(index++));
    INFO("case expecting: " << c.message);
    REQUIRE_THROWS_WITH(fm::test::train_run(config, out, c.overrides), Catch::Contains(c.message));
    REQUIRE_FALSE(fs::exists(out));
  }
  // An unconditional run may state the default dropout (0.1): it means nothing there, but is no error.
  fs::path plain = write_config(dir / "plain", {{"model", {{"num_classes", 0}, {"class_embedding_dim", nullptr}}},
                                                {"train", {{"label_dropout", 0.1}, {"steps", 2}}}});
  REQUIRE(fm::test::train_run(plain, dir / "plain_run") == 0);
}

TEST_CASE("every config in configs/ resolves and the conditional ones ask for labels", "[fmtrain][config][conditional]") {
  int conditional = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(FM_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".json") continue;
    INFO(entry.path().string());
    const Json resolved = fm::tools::resolve_config(fm::tools::load_config_file(entry.path().string()));
    if (entry.path().stem().string().find("_cond") == std::string::npos) continue;
    ++conditional;
    const std::string data = resolved["data"]["name"];
    REQUIRE(resolved["model"]["num_classes"] == fm::tools::dataset_class_count(data));
    REQUIRE(resolved["train"]["label_dropout"] == 0.1);
  }
  REQUIRE(conditional >= 3);  // 8gaussians_cond, fashion_mnist_cond, fashion_mnist_cpu_cond
}

TEST_CASE("a conditional run samples its pictures with labels drawn from sample.seed at guidance 0", "[fmtrain][conditional]") {
  const fm::test::TempDir scratch("fm_test_fmtrain_cond_pictures");
  const fs::path dir = scratch.path;
  fs::path config = write_config(dir / "cfg");
  REQUIRE(fm::test::train_run(config, dir / "run", {"train.sample_every=20"}) == 0);
  REQUIRE(fs::exists(dir / "run" / "samples_step_0000020.png"));
  auto loaded = fm::tools::load_checkpoint_model((dir / "run" / "checkpoint.safetensors").string(), fm::Device::CPU);
  const auto solver = fm::tools::build_solver(loaded.config["sample"]);
  const std::uint64_t seed = loaded.config["sample"]["seed"].get<std::uint64_t>();
  const std::int64_t n = 300;
  const fm::tools::RunSamples run =
      fm::tools::generate_run_samples(*loaded.model, nullptr, *solver, {2}, n, seed, fm::Device::CPU);
  // The labels: uniform over the 8 classes from the seed's label generator (not the null class 8).
  REQUIRE(run.labels == fm::tools::labels_from_seed(n, 8, seed));
  REQUIRE(*std::max_element(run.labels.begin(), run.labels.end()) == 7);
  // The samples: the guided sampler's at w = 0 with those labels and the seed's noise, bitwise ...
  fm::Generator gen(seed);
  const auto guided = fm::tools::generate_guided_samples(*loaded.model, *solver, {2}, run.labels, 0.0, gen, fm::Device::CPU);
  REQUIRE(fm::test::max_abs_diff(run.result.samples, guided.samples) == 0.0);
  // ... and not the null-class (unconditional) samples from the same noise.
  fm::Generator plain_gen(seed);
  const auto plain = fm::tools::generate_samples(*loaded.model, *solver, {2}, n, plain_gen, fm::Device::CPU);
  REQUIRE(fm::test::max_abs_diff(run.result.samples, plain.samples) > 0.0);
}

TEST_CASE("configs/8gaussians_cond.json trains a model whose class-k samples land in mode k", "[fmtrain][conditional]") {
  const fm::test::TempDir scratch("fm_test_fmtrain_cond_g8");
  const fs::path dir = scratch.path;
  // The config as shipped (3000 steps of batch 512; about 3 s on one core of the dev VM).
  REQUIRE(fm::test::train_run(fs::path(FM_SOURCE_DIR) / "configs" / "8gaussians_cond.json", dir / "run") == 0);
  auto loaded = fm::tools::load_checkpoint_model((dir / "run" / "checkpoint.safetensors").string(), fm::Device::CPU);
  REQUIRE(loaded.model->num_classes() == 8);
  fm::flow::EightGaussiansDistribution modes;
  fm::Generator gen(17);
  fm::NoGradGuard no_grad;
  const int n = 250, steps = 100;
  for (int k = 0; k < 8; ++k) {
    // Euler from t = 0 (noise) to 1 with the label k for every sample.
    fm::Tensor x = fm::randn({n, 2}, gen);
    const std::vector<std::int32_t> labels(n, k);
    for (int s = 0; s < steps; ++s) {
      fm::Tensor t = fm::Tensor::full({n}, double(s) / steps);
      x = x + loaded.model->forward(x, t, labels) * (1.0 / steps);
    }
    const std::vector<std::int32_t> landed = modes.class_of(x);
    const double hit = double(std::count(landed.begin(), landed.end(), k)) / n;
    INFO("class " << k << ": " << hit << " of the samples in mode " << k);
    // Conditioning works when nearly all land in their own mode; an unconditional model would put
    // 1/8 there. 0.9 leaves room for the few that a 3000-step model still drops between modes.
    CHECK(hit > 0.9);
  }
}

TEST_CASE("a conditional run on CUDA tracks the CPU run and resumes bitwise", "[fmtrain][gpu][conditional]") {
  FM_REQUIRE_GPU();
  const fm::test::TempDir scratch("fm_test_fmtrain_cond_cuda");
  const fs::path dir = scratch.path;
  fs::path config = write_config(dir / "cfg", {{"train", {{"coupling", "minibatch_ot"}}}});
  // The minibatch-OT assignment is computed from device-made distances, so a near-tie could pair
  // differently on the two sides; these 64-point batches of continuous draws have none in 40 steps.
  fm::test::require_cuda_tracks_cpu_and_resumes(config, dir);
}
