// tests/test_tools_fmtrain.cpp — fmtrain end to end on small 2-D runs: the run directory's files,
// determinism (same config and seed → bitwise the same losses), resume (interrupted + resumed run →
// bitwise the same losses as an uninterrupted one), and config errors that write nothing; on a GPU
// (or the CUDA emulator), the same run on the device against the CPU.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/io/jsonl.h"
#include "core/io/npy.h"
#include "core/io/safetensors.h"
#include "tools/config.h"
#include "tools/run_setup.h"
#include "tools/train_run.h"

#include "fashion_mnist_fixtures.h"
#include "fmtrain_runs.h"
#include "test_util.h"

namespace fs = std::filesystem;
using fm::tools::Json;
using fm::test::logged_losses;

namespace {

fs::path scratch_dir(const std::string& name) { return fm::test::scratch_path("fm_test_fmtrain", name, /*create=*/false); }

// A small, fast moons run (a few hundred milliseconds).
fs::path write_config(const fs::path& where, const Json& extra = Json::object()) {
  return fm::test::write_small_run_config(where, extra);
}

}  // namespace

TEST_CASE("fmtrain writes the whole run directory", "[fmtrain]") {
  fs::path dir = scratch_dir("files");
  fs::path config = write_config(dir / "cfg");
  REQUIRE(fm::test::train_run(config, dir / "run") == 0);
  for (const char* file : {"config.json", "metrics.jsonl", "checkpoint.safetensors", "samples.npy", "samples.png",
                           "loss.png", "summary.json"})
    REQUIRE(fs::exists(dir / "run" / file));
  fm::io::NpyArray samples = fm::io::read_npy((dir / "run" / "samples.npy").string());
  REQUIRE(samples.shape == std::vector<std::int64_t>{200, 2});
  fm::io::SafetensorsFile ckpt = fm::io::read_safetensors((dir / "run" / "checkpoint.safetensors").string());
  REQUIRE(ckpt.metadata.at("format") == "pt");
  REQUIRE(Json::parse(ckpt.metadata.at("config"))["train"]["steps"] == 40);
  REQUIRE(ckpt.contains("trainer.seed"));  // the noise is Philox by (seed, step): no generator state
  Json summary = Json::parse(std::ifstream(dir / "run" / "summary.json"));
  REQUIRE(summary["sliced_w2"].get<double>() > 0);
  REQUIRE(summary["sliced_w2_floor"].get<double>() > 0);
  REQUIRE(logged_losses(dir / "run").size() == 40);
  // The resolved config records every default.
  Json resolved = Json::parse(std::ifstream(dir / "run" / "config.json"));
  REQUIRE(resolved["path"]["scheduler"] == "condot");
  REQUIRE(resolved["model"]["activation"] == "gelu");
}

TEST_CASE("train.keep_checkpoints keeps a loadable checkpoint per save", "[fmtrain]") {
  fs::path dir = scratch_dir("keep");
  fs::path config = write_config(dir / "cfg", {{"train", {{"keep_checkpoints", true}}}});
  REQUIRE(fm::test::train_run(config, dir / "run") == 0);
  // checkpoint_every = 20 of 40 steps: saves at step 20 and at the end.
  for (int step : {20, 40}) {
    char name[64];
    std::snprintf(name, sizeof name, "checkpoint_step_%07d.safetensors", step);
    INFO(name);
    REQUIRE(fs::exists(dir / "run" / name));
    fm::io::SafetensorsFile ckpt = fm::io::read_safetensors((dir / "run" / name).string());
    REQUIRE(ckpt.contains("trainer.step"));
  }
  REQUIRE_FALSE(fs::exists(dir / "run" / "checkpoint_step_0000010.safetensors"));
  // The last kept checkpoint is the final one, byte for byte.
  auto bytes = [](const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  REQUIRE(bytes(dir / "run" / "checkpoint_step_0000040.safetensors") == bytes(dir / "run" / "checkpoint.safetensors"));
}

TEST_CASE("same config and seed give bitwise the same losses", "[fmtrain][determinism]") {
  fs::path dir = scratch_dir("determinism");
  fs::path config = write_config(dir / "cfg");
  REQUIRE(fm::test::train_run(config, dir / "a") == 0);
  REQUIRE(fm::test::train_run(config, dir / "b") == 0);
  REQUIRE(fm::test::train_run(config, dir / "c", {"train.seed=4"}) == 0);
  std::vector<double> a = logged_losses(dir / "a"), b = logged_losses(dir / "b"), c = logged_losses(dir / "c");
  REQUIRE(a.size() == 40);
  REQUIRE(a == b);
  REQUIRE(a != c);
}

TEST_CASE("an interrupted and resumed run logs bitwise the same losses", "[fmtrain][resume]") {
  fs::path dir = scratch_dir("resume");
  fs::path config = write_config(dir / "cfg");
  REQUIRE(fm::test::train_run(config, dir / "whole") == 0);
  // Stop after 20 steps (a checkpoint), then extend to 40 with --resume.
  REQUIRE(fm::test::train_run(config, dir / "split", {"train.steps=20"}) == 0);
  REQUIRE(fm::test::resume_run(dir / "split", {"train.steps=40"}) == 0);
  std::vector<double> whole = logged_losses(dir / "whole"), split = logged_losses(dir / "split");
  REQUIRE(split.size() == 40);
  REQUIRE(whole == split);
}

TEST_CASE("an interrupted and resumed U-Net run on images logs bitwise the same losses", "[fmtrain][resume]") {
  if (fm::test::fashion_mnist_missing({"train"}, fm::test::FashionMnistFiles::ImagesOnly)) return;
  fs::path dir = scratch_dir("resume_unet");
  // A tiny U-Net with attention on 48 images in batches of 16: 3 steps per epoch, so the split at
  // step 4 falls inside the second epoch and the resumed run must restore the data order too.
  Json extra = {{"data", {{"name", "fashion_mnist"}, {"limit", 48}}},
                {"model", {{"type", "unet"}, {"down_channels", {8, 8}}, {"mid_channels", {8, 8}},
                           {"down_sample", {true}}, {"attention", {true}}, {"groups", 4}, {"num_heads", 2},
                           {"time_emb_dim", 16}, {"final_channels", 8}, {"hidden_width", nullptr},
                           {"hidden_layers", nullptr}}},
                {"train", {{"steps", 8}, {"batch_size", 16}, {"checkpoint_every", 4}, {"log_every", 1}}},
                {"sample", {{"steps", 2}, {"n", 4}}}};
  fs::path config = write_config(dir / "cfg", extra);
  REQUIRE(fm::test::train_run(config, dir / "whole") == 0);
  REQUIRE(fm::test::train_run(config, dir / "split", {"train.steps=4"}) == 0);
  REQUIRE(fm::test::resume_run(dir / "split", {"train.steps=8"}) == 0);
  std::vector<double> whole = logged_losses(dir / "whole"), split = logged_losses(dir / "split");
  REQUIRE(whole.size() == 8);
  REQUIRE(whole == split);
}

TEST_CASE("a moons run on CUDA tracks the CPU run and resumes bitwise", "[fmtrain][gpu]") {
  FM_REQUIRE_GPU();
  fs::path dir = scratch_dir("cuda");
  fs::path config = write_config(dir / "cfg");
  fm::test::require_cuda_tracks_cpu_and_resumes(config, dir);
  for (const char* file : {"checkpoint.safetensors", "samples.npy", "samples.png", "summary.json"})
    REQUIRE(fs::exists(dir / "cuda" / file));
}

TEST_CASE("resuming drops metrics logged after the last checkpoint", "[fmtrain][resume]") {
  fs::path dir = scratch_dir("crash");
  fs::path config = write_config(dir / "cfg");
  REQUIRE(fm::test::train_run(config, dir / "whole") == 0);
  REQUIRE(fm::test::train_run(config, dir / "crash", {"train.steps=20"}) == 0);
  // Simulate a crash after step 20: lines for steps 21..25 were logged but no checkpoint was made.
  {
    std::ofstream metrics(dir / "crash" / "metrics.jsonl", std::ios::app);
    for (int step = 21; step <= 25; ++step) metrics << Json{{"step", step}, {"loss", 123.0}, {"loss_avg", 123.0}}.dump() << "\n";
    metrics << "{\"step\": 26, \"loss\"";  // a torn last line
  }
  REQUIRE(fm::test::resume_run(dir / "crash", {"train.steps=40"}) == 0);
  REQUIRE(logged_losses(dir / "crash") == logged_losses(dir / "whole"));
}

TEST_CASE("bad configs are refused before anything is written", "[fmtrain][errors]") {
  fs::path dir = scratch_dir("errors");
  struct Case { Json patch; std::vector<std::string> overrides; const char* message; };
  std::vector<Case> cases = {
      {{{"train", {{"lr", "fast"}}}}, {}, "train.lr: got \"fast\", expected a number"},
      {{{"train", {{"steps", 0}}}}, {}, "train.steps: got 0, expected an integer in [1"},
      {{{"trian", {{"steps", 10}}}}, {}, "trian: unknown key"},
      {{{"model", {{"hidden_widht", 10}}}}, {}, "hidden_widht"},
      {{{"model", {{"type", "unet"}}}}, {}, "does not fit 2-D data"},
      {{{"sample", {{"solver", "rk5"}}}}, {}, "sample.solver: got \"rk5\", expected one of"},
      {{{"data", {{"name", "spiral"}, {"noise", 0.1}}}}, {}, "data.noise: only \"moons\""},
      {Json::object(), {"train.steps"}, "expected key.path=value"},
      {Json::object(), {"train.batch_size=-5"}, "train.batch_size: got -5"},
      {{{"device", "tpu"}}, {}, "device: got \"tpu\""},
  };
  int index = 0;
  for (const Case& c : cases) {
    fs::path config = write_config(dir / ("cfg" + std::to_string(index)), c.patch);
    fs::path out = dir / ("run" + std::to_string(index++));
    INFO("case expecting: " << c.message);
    REQUIRE_THROWS_WITH(fm::test::train_run(config, out, c.overrides), Catch::Contains(c.message));
    REQUIRE_FALSE(fs::exists(out));
  }
  // A config that is not JSON at all.
  fs::path broken = dir / "broken.json";
  std::ofstream(broken) << "{ \"train\": ";
  REQUIRE_THROWS_WITH(fm::test::train_run(broken, dir / "broken_run"), Catch::Contains("not valid JSON"));
  REQUIRE_THROWS_WITH(fm::test::train_run(dir / "missing.json", dir / "missing_run"), Catch::Contains("cannot open"));
}

TEST_CASE("an existing run is never overwritten", "[fmtrain][errors]") {
  fs::path dir = scratch_dir("existing");
  fs::path config = write_config(dir / "cfg");
  REQUIRE(fm::test::train_run(config, dir / "run", {"train.steps=5"}) == 0);
  REQUIRE_THROWS_WITH(fm::test::train_run(config, dir / "run"), Catch::Contains("already holds a run"));
  REQUIRE_THROWS_WITH(fm::test::resume_run(dir / "run", {"train.lr=0.5"}), Catch::Contains("a resumed run may only change"));
}

TEST_CASE("generate_samples reports dopri5's NFE averaged over its chunks", "[fmtrain][sampling]") {
  Json config = fm::tools::resolve_config({{"data", {{"name", "moons"}}},
                                           {"sample", {{"solver", "dopri5"}, {"rtol", 1e-3}, {"atol", 1e-3}}}});
  fm::Generator init(5);
  auto model = fm::tools::build_model(config, init);
  auto solver = fm::tools::build_solver(config["sample"]);
  // One point at a time with one generator, then both points in one call with chunks of one point
  // and a second generator in the same state: the same noise per chunk, so the same steps per chunk.
  fm::Generator separate(11), together(11);
  const fm::tools::SampleResult first = fm::tools::generate_samples(*model, *solver, {2}, 1, separate, fm::Device::CPU, 1);
  const fm::tools::SampleResult second = fm::tools::generate_samples(*model, *solver, {2}, 1, separate, fm::Device::CPU, 1);
  const fm::tools::SampleResult both = fm::tools::generate_samples(*model, *solver, {2}, 2, together, fm::Device::CPU, 1);
  INFO("first chunk " << first.nfe << " NFE, second " << second.nfe);
  REQUIRE(first.nfe > 0);
  REQUIRE(both.nfe == std::llround((first.nfe + second.nfe) / 2.0));
  REQUIRE(both.samples.numel() == 4);
}
