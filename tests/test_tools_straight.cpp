// tests/test_tools_straight.cpp — the straight-paths pipeline through fmtrain's and fmreflow's library
// halves on tiny moons runs: a student starts from its teacher (train.init_from) and trains on reflow
// pairs (data.pairs); OT-coupled, Sinkhorn-coupled, 2-D-source and pairs runs resume bitwise; the
// combinations that make no sense are refused before anything is written; fmeval straight's numbers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/autograd.h"
#include "core/io/gif.h"
#include "core/io/jsonl.h"
#include "core/io/npy.h"
#include "core/io/safetensors.h"
#include "flow/datasets2d.h"
#include "flow/model_fn.h"
#include "flow/straightness.h"
#include "flow/reflow_pairs.h"
#include "tools/checkpoint_model.h"
#include "tools/config.h"
#include "tools/reflow_run.h"
#include "tools/run_setup.h"
#include "tools/straight_eval.h"
#include "tools/train_run.h"

#include "child_process.h"
#include "classifier_fixtures.h"
#include "fashion_mnist_fixtures.h"
#include "fmtrain_runs.h"
#include "png_test_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using fm::tools::Json;
using fm::test::logged_losses;

namespace {

fs::path scratch_dir(const std::string& name) { return fm::test::scratch_path("fm_test_straight", name); }

Json tiny_moons(const Json& extra = Json::object()) {
  Json config = {{"device", "cpu"},
                 {"data", {{"name", "moons"}}},
                 {"model", {{"type", "mlp"}, {"hidden_width", 16}, {"hidden_layers", 2}}},
                 {"train", {{"steps", 30}, {"batch_size", 32}, {"lr", 3e-3}, {"seed", 3}, {"log_every", 1},
                            {"checkpoint_every", 15}, {"ema_decay", 0.9}}},
                 {"sample", {{"solver", "euler"}, {"steps", 4}, {"n", 64}}},
                 {"eval", {{"n", 64}, {"projections", 8}}}};
  config.merge_patch(extra);
  return config;
}

// A tiny U-Net on the first 48 Fashion-MNIST images, 4 training steps.
Json tiny_unet(int checkpoint_every) {
  return {{"device", "cpu"},
          {"data", {{"name", "fashion_mnist"}, {"limit", 48}}},
          {"model", {{"type", "unet"}, {"down_channels", {8, 8}}, {"mid_channels", {8, 8}},
                     {"down_sample", {true}}, {"attention", {false}}, {"groups", 4}, {"num_heads", 2},
                     {"time_emb_dim", 16}, {"final_channels", 8}}},
          {"train", {{"steps", 4}, {"batch_size", 16}, {"checkpoint_every", checkpoint_every}, {"log_every", 1}, {"seed", 5}}},
          {"sample", {{"steps", 2}, {"n", 4}}}};
}

fs::path write_config(const fs::path& dir, const Json& config) {
  fs::create_directories(dir);
  fs::path path = dir / "config.json";
  std::ofstream(path) << config.dump(2);
  return path;
}




// Whole and split (half the steps, then --resume to all) runs of a config log the same losses. The
// config's train.steps must be 2·half and its checkpoint_every half.
void require_bitwise_resume(const fs::path& dir, const Json& config, int half = 15) {
  const fs::path cfg = write_config(dir, config);
  REQUIRE(fm::test::train_run(cfg, dir / "whole") == 0);
  REQUIRE(fm::test::train_run(cfg, dir / "split", {"train.steps=" + std::to_string(half)}) == 0);
  REQUIRE(fm::test::resume_run(dir / "split", {"train.steps=" + std::to_string(2 * half)}) == 0);
  REQUIRE(logged_losses(dir / "whole").size() == std::size_t(2 * half));
  REQUIRE(logged_losses(dir / "whole") == logged_losses(dir / "split"));
}

}  // namespace

TEST_CASE("minibatch OT, Sinkhorn and a 2-D source train and resume bitwise", "[tools][straight]") {
  fs::path dir = scratch_dir("couplings");
  SECTION("minibatch_ot") { require_bitwise_resume(dir, tiny_moons({{"train", {{"coupling", "minibatch_ot"}}}})); }
  SECTION("sinkhorn") { require_bitwise_resume(dir, tiny_moons({{"train", {{"coupling", "sinkhorn"}}}})); }
  SECTION("8 gaussians to moons") { require_bitwise_resume(dir, tiny_moons({{"data", {{"source", "8gaussians"}}}})); }
  // The OT pairing changes what is learned: not the independent run's losses.
  fs::path plain = scratch_dir("couplings_plain"), ot = scratch_dir("couplings_ot");
  REQUIRE(fm::test::train_run(write_config(plain, tiny_moons()), plain / "run") == 0);
  REQUIRE(fm::test::train_run(write_config(ot, tiny_moons({{"train", {{"coupling", "minibatch_ot"}}}})), ot / "run") == 0);
  REQUIRE(logged_losses(plain / "run") != logged_losses(ot / "run"));
  // The OT run logs what the pairing cost per step; the independent run has nothing to log.
  bool logged = false;
  for (const auto& line : fm::io::read_jsonl((ot / "run" / "metrics.jsonl").string()).lines)
    if (line.record.contains("loss") && !line.record.contains("event")) {
      REQUIRE(line.record.at("coupling_ms_per_step").get<double>() >= 0);
      logged = true;
    }
  REQUIRE(logged);
  for (const auto& line : fm::io::read_jsonl((plain / "run" / "metrics.jsonl").string()).lines)
    REQUIRE_FALSE(line.record.contains("coupling_ms_per_step"));
}

TEST_CASE("a reflow student starts from its teacher, trains on the pairs and resumes bitwise", "[tools][straight]") {
  fs::path dir = scratch_dir("reflow");
  REQUIRE(fm::test::train_run(write_config(dir, tiny_moons()), dir / "teacher") == 0);
  fm::tools::ReflowPairsRequest request;
  request.teacher = (dir / "teacher" / "checkpoint.safetensors").string();
  request.out = (dir / "pairs.safetensors").string();
  request.count = 300;
  request.chunk = 128;
  request.steps = 4;
  fm::tools::make_reflow_pairs(request);
  fm::flow::ReflowPairs pairs = fm::flow::load_pairs(request.out);
  REQUIRE(pairs.x0.shape() == fm::Shape{300, 2});
  REQUIRE(pairs.metadata.at("source") == "gaussian");

  Json student = tiny_moons({{"data", {{"pairs", request.out}}},
                             {"train", {{"init_from", request.teacher}, {"time_sampler", "warp"}}}});
  require_bitwise_resume(dir / "student", student);

  // The student's run objects start with the teacher's EMA weights.
  fm::tools::RunObjects objects = fm::tools::build_run_objects(fm::tools::resolve_config(student), fm::Device::CPU);
  fm::tools::CheckpointModel teacher = fm::tools::load_checkpoint_model(request.teacher, fm::Device::CPU, "ema");
  REQUIRE(teacher.ema_weights);
  auto teacher_state = teacher.model->state_dict(), student_state = objects.model->state_dict();
  REQUIRE(student_state.size() == teacher_state.size());
  for (const auto& [name, tensor] : teacher_state) REQUIRE(student_state.at(name).to_vector() == tensor.to_vector());

  // Nonsense combinations fail before the run directory exists.
  auto refused = [&](const Json& config, const std::string& message) {
    fs::path where = dir / "bad";
    fs::remove_all(where);
    fs::create_directories(where);
    try {
      fm::test::train_run(write_config(where, config), where / "run");
    } catch (const fm::ConfigError& e) {
      REQUIRE_THAT(e.what(), Catch::Contains(message));
      REQUIRE_FALSE(fs::exists(where / "run"));
      return;
    }
    FAIL("no ConfigError for " << config.dump());
  };
  Json coupled = student;
  coupled["train"]["coupling"] = "minibatch_ot";
  refused(coupled, "reflow pairs (data.pairs) are already coupled");
  Json other_source = student;
  other_source["data"]["source"] = "moons";
  refused(other_source, "were drawn from \"gaussian\"");
  Json wider = student;
  wider["model"]["hidden_width"] = 24;
  refused(wider, "train.init_from: ");
  refused(tiny_moons({{"data", {{"name", "fashion_mnist"}, {"source", "moons"}}}}), "only \"gaussian\" works there");
  Json other_data = student;
  other_data["data"]["name"] = "spiral";
  refused(other_data, "was made by a teacher of data \"moons\"");
  Json big_batch = student;
  big_batch["train"]["batch_size"] = 301;
  refused(big_batch, "train.batch_size: 301 is larger than the 300 pairs");
}

TEST_CASE("fmeval straight: quality at each NFE and the straightness of a trained flow", "[tools][straight]") {
  fs::path dir = scratch_dir("eval");
  REQUIRE(fm::test::train_run(write_config(dir, tiny_moons()), dir / "run") == 0);
  fm::tools::CheckpointModel loaded =
      fm::tools::load_checkpoint_model((dir / "run" / "checkpoint.safetensors").string(), fm::Device::CPU, "ema");
  fm::tools::StraightEvalRequest request;
  request.n = 200;
  request.euler_steps = {1, 4};
  request.straightness_steps = 10;
  fm::tools::StraightEvalResult result = fm::tools::evaluate_straightness_2d(loaded, request, 5);
  REQUIRE(result.rows.size() == 3);  // euler 1, euler 4, dopri5
  REQUIRE(result.rows[0].nfe == 1);
  REQUIRE(result.rows[1].nfe == 4);
  REQUIRE(result.rows[2].solver == "dopri5");
  REQUIRE(result.metric == "sliced_w2");
  REQUIRE(result.repeats == 5);  // the 2-D default
  REQUIRE(result.floor > 0);
  for (const auto& row : result.rows) REQUIRE(row.distance > 0);
  REQUIRE(result.straightness >= 0);
  REQUIRE(result.trajectories.shape() == fm::Shape{11, 5, 2});
  // The kept paths as a picture and as an animation: one frame per state of the 10-step Euler grid.
  const fm::Tensor data_points = fm::Tensor::from_floats({0.f, 0.f, 1.f, 0.5f}, {2, 2});
  fm::tools::write_trajectory_png((dir / "paths.png").string(), result, data_points, "paths");
  fm::tools::write_trajectory_gif((dir / "paths.gif").string(), result, data_points, "paths");
  const fm::io::GifAnimation animation = fm::io::read_gif((dir / "paths.gif").string());
  REQUIRE(animation.frames.size() == 11);
  REQUIRE(animation.frames.front().rgb != animation.frames.back().rgb);
  const std::vector<std::string> files = fm::tools::write_straight_comparison(
      {{"a", result}, {"b", result}}, (dir / "q.csv").string(), (dir / "q.png").string());
  REQUIRE(files.size() == 2);
  std::ifstream csv(dir / "q.csv");
  std::string header;
  std::getline(csv, header);
  REQUIRE(header.rfind("label,solver,nfe,metric,distance", 0) == 0);
  std::string first_row;
  std::getline(csv, first_row);
  REQUIRE(first_row.rfind("a,euler,1,sliced_w2,", 0) == 0);
}

TEST_CASE("2-D samples are written in the data's own coordinates and the checkpoint keeps the normalisation",
          "[tools][straight]") {
  fs::path dir = scratch_dir("coordinates");
  REQUIRE(fm::test::train_run(write_config(dir, tiny_moons()), dir / "run") == 0);
  fm::io::SafetensorsFile ckpt = fm::io::read_safetensors((dir / "run" / "checkpoint.safetensors").string());
  REQUIRE(Json::parse(ckpt.metadata.at("data.normalization")) == Json::parse(R"({"scale": 2.0, "center": [0.5, 0.25]})"));
  // The model works on (data − (0.5, 0.25))·2, centred at 0; the .npy must be back around the raw
  // moons' centre (0.5, 0.25) (without the transform its mean would be about (0, 0)).
  fm::io::NpyArray samples = fm::io::read_npy((dir / "run" / "samples.npy").string());
  REQUIRE(samples.shape == std::vector<std::int64_t>{64, 2});
  std::vector<double> values(samples.float32_data(), samples.float32_data() + samples.element_count());
  double mean_x = 0, mean_y = 0;
  for (std::size_t i = 0; i < values.size(); i += 2) mean_x += values[i] / 64, mean_y += values[i + 1] / 64;
  REQUIRE(std::abs(mean_x - 0.5) < 0.25);
  REQUIRE(std::abs(mean_y - 0.25) < 0.2);
  fm::Tensor model_points = fm::Tensor::from_vector({0.0, 0.0, 2.0, -1.0}, {2, 2}, fm::DType::Float64);
  fm::flow::ToyDistribution2D::Normalization n{2.0, 0.5, 0.25};
  REQUIRE(fm::flow::to_data_coordinates(model_points, n).to_vector() == std::vector<double>{0.5, 0.25, 1.5, -0.25});
}

TEST_CASE("reflow on images: pairs from a tiny U-Net teacher train a student that resumes bitwise", "[tools][straight]") {
  if (fm::test::fashion_mnist_missing()) return;
  fs::path dir = scratch_dir("reflow_images");
  Json unet = tiny_unet(2);
  REQUIRE(fm::test::train_run(write_config(dir, unet), dir / "teacher") == 0);
  fm::tools::ReflowPairsRequest request;
  request.teacher = (dir / "teacher" / "checkpoint.safetensors").string();
  request.out = (dir / "pairs.safetensors").string();
  request.count = 40;  // 2 batches of 16 per epoch (the last 8 pairs are dropped each epoch)
  request.chunk = 16;
  request.steps = 2;
  request.solver = "euler";
  fm::tools::make_reflow_pairs(request);
  REQUIRE(fm::flow::load_pairs(request.out).x1.shape() == fm::Shape{40, 1, 28, 28});
  Json student = unet;
  student["data"]["pairs"] = request.out;
  student["train"]["init_from"] = request.teacher;
  student["train"]["steps"] = 6;  // pairs epochs of 2 batches: the split falls inside the second epoch
  student["train"]["checkpoint_every"] = 3;
  require_bitwise_resume(dir / "student", student, 3);
}

TEST_CASE("fmeval straight on images: FD at each NFE, S measured on the way, and the path picture",
          "[tools][straight][images]") {
  if (fm::test::fashion_mnist_missing()) return;
  fs::path dir = scratch_dir("eval_images");
  Json unet = tiny_unet(4);
  REQUIRE(fm::test::train_run(write_config(dir, unet), dir / "run") == 0);
  const std::string checkpoint = (dir / "run" / "checkpoint.safetensors").string();
  fm::test::write_quick_classifier((dir / "run" / "classifier.safetensors").string());  // found beside the checkpoint
  fm::tools::CheckpointModel loaded = fm::tools::load_checkpoint_model(checkpoint, fm::Device::CPU, "ema");

  fm::tools::StraightEvalRequest request;
  request.n = 40;
  request.chunk = 16;  // chunks of 16, 16 and 8: S must be the whole batch's mean all the same
  request.euler_steps = {1, 4};
  request.straightness_steps = 4;  // measured on the Euler-4 run
  request.dopri5_tolerance = 1e-2;
  request.checkpoint_path = checkpoint;
  fm::tools::StraightEvalResult result = fm::tools::evaluate_straightness(loaded, request, 3);
  REQUIRE(result.metric == "fd");
  REQUIRE(result.repeats == 1);  // the image default
  REQUIRE(result.rows.size() == 3);
  REQUIRE(result.rows[0].nfe == 1);
  REQUIRE(result.rows[1].nfe == 4);
  REQUIRE(result.rows[2].solver == "dopri5");
  REQUIRE(result.rows[2].nfe >= 6);  // at least one accepted step (FSAL: 6 evaluations plus the first)
  for (const auto& row : result.rows) REQUIRE((std::isfinite(row.distance) && row.distance > 0));
  REQUIRE(result.floor > 0);
  REQUIRE(result.floor_std > 0);  // five draws of real train images
  // An untrained-ish model is far from real clothes at one step.
  REQUIRE(result.rows[0].distance > result.floor);

  // S from the chunked Euler-4 run equals S measured on the whole batch at once, from the same x0.
  fm::Generator gen(request.seed);
  const fm::Tensor x0 = fm::tools::build_source(loaded.config)->sample({40, 1, 28, 28}, gen, fm::DType::Float32, fm::Device::CPU);
  fm::nn::VelocityModel& model = *loaded.model;
  fm::flow::Straightness whole = fm::flow::measure_straightness(
      fm::flow::velocity_field_from_model([&model](const fm::Tensor& x, const fm::Tensor& t) { return model.forward(x, t); }),
      x0, 4);
  REQUIRE(whole.straightness > 0);
  REQUIRE(result.straightness == Approx(whole.straightness).epsilon(1e-5));
  REQUIRE(result.relative_straightness == Approx(whole.relative_straightness).epsilon(1e-5));

  // The Euler-1 row is the distance of one Euler step from that x0, measured independently here.
  fm::tools::LoadedClassifier classifier =
      fm::tools::load_classifier((dir / "run" / "classifier.safetensors").string(), fm::Device::CPU);
  const fm::tools::LabelledImages test = fm::tools::load_fashion_mnist(fm::tools::kFashionMnistDir, "t10k");
  const fm::tools::LabelledImages train = fm::tools::load_fashion_mnist(fm::tools::kFashionMnistDir, "train");
  const fm::tools::FrechetReference reference = fm::tools::frechet_reference(*classifier.model, test, train, 40, 5);
  REQUIRE(result.floor == reference.floor_mean());
  fm::Tensor one_step;
  {
    fm::NoGradGuard no_grad;
    one_step = (x0 + model.forward(x0, fm::Tensor::zeros({40}))).contiguous();
  }
  REQUIRE(result.rows[0].distance ==
          Approx(fm::tools::frechet_distance_to_reference(*classifier.model, one_step, reference, "one step")).epsilon(1e-4));

  // Paths: [2, 21 frames, 3 samples, 1, 28, 28] at the Euler-4 steps nearest t = 0, 0.05, …, 1; they
  // start at x0; at t = 1 the predicted endpoint is the position itself.
  REQUIRE(result.trajectories.shape() == fm::Shape{2, 21, 3, 1, 28, 28});
  REQUIRE(result.trajectory_times.size() == 21);
  for (std::size_t j = 0; j < 21; ++j) REQUIRE(result.trajectory_times[j] == std::floor((double(j) * 4 + 10) / 20) / 4);
  REQUIRE(result.trajectories.narrow(0, 0, 1).narrow(1, 0, 1).contiguous().to_float_vector() ==
          x0.narrow(0, 0, 3).contiguous().to_float_vector());
  const std::vector<float> at_end = result.trajectories.narrow(0, 0, 1).narrow(1, 20, 1).contiguous().to_float_vector();
  const std::vector<float> predicted_at_end = result.trajectories.narrow(0, 1, 1).narrow(1, 20, 1).contiguous().to_float_vector();
  REQUIRE(at_end == predicted_at_end);
  // and at t = 0 the prediction is one Euler step of size 1 from x0, unlike x0 itself.
  REQUIRE(result.trajectories.narrow(0, 0, 1).narrow(1, 0, 1).contiguous().to_float_vector() !=
          result.trajectories.narrow(0, 1, 1).narrow(1, 0, 1).contiguous().to_float_vector());
  // The still picture has 11 columns (t = 0, 0.1, …, 1) of 3 x 2 rows of 2x-scaled tiles; the
  // animation one frame per kept state.
  fm::tools::write_image_paths_png((dir / "paths.png").string(), result);
  const fm::test::DecodedPng still = fm::test::decode_png((dir / "paths.png").string());
  REQUIRE(still.width == 2 + 11 * (28 * 2 + 2));
  REQUIRE(still.height == 2 + 6 * (28 * 2 + 2));
  for (int column = 0; column < 11; ++column) {  // column m shows frame 2m: sample 0's centre pixel
    const float v = result.trajectories.narrow(0, 0, 1).narrow(1, 2 * column, 1).narrow(2, 0, 1).contiguous()
                        .to_float_vector()[14 * 28 + 14];
    const auto grey = std::uint8_t(std::lround(std::clamp((v + 1.f) * 127.5f, 0.f, 255.f)));
    REQUIRE(still.at(2 + column * 58 + 28, 2 + 28) == std::array<std::uint8_t, 3>{grey, grey, grey});
  }
  fm::tools::write_image_paths_gif((dir / "paths.gif").string(), result, "tiny");
  REQUIRE(fm::io::read_gif((dir / "paths.gif").string()).frames.size() == 21);
  const std::vector<std::string> files = fm::tools::write_straight_comparison({{"tiny", result}}, (dir / "q.csv").string(), "");
  std::ifstream csv(dir / "q.csv");
  std::string header, row;
  std::getline(csv, header);
  std::getline(csv, row);
  REQUIRE(row.rfind("tiny,euler,1,fd,", 0) == 0);

  // A missing classifier is said (with the command that makes one) before any sampling.
  fs::remove(dir / "run" / "classifier.safetensors");
  REQUIRE_THROWS_WITH(fm::tools::evaluate_straightness_images(loaded, request), Catch::Contains("fmeval train-classifier"));
}

TEST_CASE("the straight-path configs resolve", "[tools][straight]") {
  for (const char* name : {"moons_ot", "moons_reflow", "moons_distill", "fashion_mnist_cpu_reflow",
                           "fashion_mnist_cpu_distill", "fashion_mnist_reflow", "fashion_mnist_distill"}) {
    INFO(name);
    const fs::path path = fs::path(FM_SOURCE_DIR) / "configs" / (std::string(name) + ".json");
    std::ifstream in(path);
    REQUIRE(in.good());
    const Json resolved = fm::tools::resolve_config(Json::parse(in));
    // A student on pairs starts from the teacher that made them; a config without pairs has no teacher.
    const bool on_pairs = !resolved["data"]["pairs"].get<std::string>().empty();
    REQUIRE(on_pairs == !resolved["train"]["init_from"].get<std::string>().empty());
  }
}

TEST_CASE("fmeval straight names its trajectory pictures by a file-safe label, the default one a path",
          "[tools][straight]") {
  const fs::path dir = scratch_dir("trajectory_names");
  const fs::path cfg = write_config(dir / "cfg", tiny_moons());
  REQUIRE(fm::test::train_run(cfg, dir / "run") == 0);
  const std::string checkpoint = fs::absolute(dir / "run" / "checkpoint.safetensors").string();
  fs::create_directories(dir / "pictures");
  fm::test::SpawnOptions options;
  options.stderr_path = (dir / "stderr").string();
  options.timeout_seconds = 120;
  const std::vector<std::string> common = {"straight", checkpoint, "--n", "20", "--nfe", "1", "--tolerance", "0",
                                           "--repeats", "1", "--trajectories", (dir / "pictures" / "paths").string()};
  // The default label is the checkpoint's path: its folders become '_', its leading '/' and its
  // .safetensors ending go (the pictures used to be asked for under a folder that does not exist).
  REQUIRE(fm::test::spawn(fm::test::tool_path("fmeval").string(), common, options).wait() == 0);
  std::string safe = checkpoint.substr(1, checkpoint.size() - 1 - std::string(".safetensors").size());
  for (char& c : safe)
    if (c == '/') c = '_';
  CHECK(fs::exists(dir / "pictures" / ("paths_" + safe + ".png")));
  CHECK(fs::exists(dir / "pictures" / ("paths_" + safe + ".gif")));
  // A label of the user's with a separator and a space: both become '_'.
  std::vector<std::string> labelled = common;
  labelled.insert(labelled.end(), {"--labels", "1-RF/teacher run"});
  REQUIRE(fm::test::spawn(fm::test::tool_path("fmeval").string(), labelled, options).wait() == 0);
  CHECK(fs::exists(dir / "pictures" / "paths_1-RF_teacher_run.png"));
  CHECK(fs::exists(dir / "pictures" / "paths_1-RF_teacher_run.gif"));
}
