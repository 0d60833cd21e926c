// tools/train_run.cpp — the fmtrain run (see train_run.h).
//
// Order of work, so that bad input never leaves a half-made run behind: parse and validate the
// config and every override, check the data files and the run directory, build the model; only then
// create the directory and write config.json. Checkpoints are atomic (temp file + rename); on resume
// metrics.jsonl is cut back to the checkpoint's step so no line is duplicated.
#include "tools/train_run.h"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/autograd.h"
#include "core/io/atomic_file.h"
#include "core/io/jsonl.h"
#include "core/io/png.h"
#include "core/io/tensor_io.h"
#include "core/kernel_choice.h"
#include "flow/metrics.h"
#include "flow/trainer.h"
#include "kernels/runtime.h"
#include "tools/config.h"
#include "tools/progress.h"
#include "tools/run_setup.h"

namespace fm::tools {
namespace {

namespace fs = std::filesystem;
volatile std::sig_atomic_t g_stop_requested = 0;

// Keys a resumed run may change: how long it runs and what it logs/samples, nothing that would
// alter the numbers of the steps already taken.
bool resumable_override(const std::string& key) {
  for (const char* prefix : {"train.steps=", "train.log_every=", "train.checkpoint_every=", "train.keep_checkpoints=",
                             "train.sample_every=", "train.detect_anomaly=",
                             "sample.", "eval.", "device=", "kernels="})
    if (key.rfind(prefix, 0) == 0) return true;
  return false;
}

struct RunPaths {
  fs::path dir;
  fs::path config() const { return dir / "config.json"; }
  fs::path metrics() const { return dir / "metrics.jsonl"; }
  fs::path checkpoint() const { return dir / "checkpoint.safetensors"; }
  fs::path loss_png() const { return dir / "loss.png"; }
  fs::path samples_npy() const { return dir / "samples.npy"; }
  fs::path samples_png() const { return dir / "samples.png"; }
  fs::path summary() const { return dir / "summary.json"; }
};

void log_line(bool quiet, const std::string& text) {
  if (!quiet) std::fprintf(stderr, "%s\n", text.c_str());
}

// Redraws loss.png from the whole metrics file (cheap: a few thousand points at most).
void draw_loss_curve(const RunPaths& paths, const std::string& title) {
  io::JsonlContents contents = io::read_jsonl(paths.metrics().string());
  io::LineSeries loss{{}, {}, "loss"};
  for (const auto& line : contents.lines) {
    const Json& r = line.record;
    if (r.contains("loss") && r.contains("step") && !r.contains("event")) {
      loss.x.push_back(r["step"].get<double>());
      loss.y.push_back(r["loss_avg"].get<double>());
    }
  }
  if (loss.x.size() < 2) return;
  io::LinePlotOptions options;
  options.title = title;
  options.log_y = true;
  options.moving_average_window = loss.x.size() > 50 ? 10 : 0;
  io::write_line_plot_png(paths.loss_png().string(), {loss}, options);
}

// Elapsed seconds recorded by the last metrics line (so a resumed run's clock continues).
double previous_elapsed(const RunPaths& paths) {
  if (!fs::exists(paths.metrics())) return 0;
  io::JsonlContents contents = io::read_jsonl(paths.metrics().string());
  for (auto it = contents.lines.rbegin(); it != contents.lines.rend(); ++it)
    if (it->record.contains("elapsed_s")) return it->record["elapsed_s"].get<double>();
  return 0;
}

}  // namespace

void request_stop() { g_stop_requested = 1; }

int run_training(const TrainRequest& request) {
  // ---- 1. the config (validated completely before anything is written) -------------------------
  RunPaths paths;
  Json config;
  bool resuming = !request.resume_dir.empty();
  if (resuming) {
    paths.dir = request.resume_dir;
    FM_CHECK(fs::exists(paths.config()), ConfigError, "--resume ", paths.dir.string(),
             ": no config.json there (is it a run directory?)");
    for (const auto& o : request.overrides)
      FM_CHECK(resumable_override(o), ConfigError, "--set ", o,
               ": a resumed run may only change train.steps, the logging/checkpoint/sample intervals, "
               "train.detect_anomaly, sample.*, eval.*, device and kernels");
    Json user = load_config_file(paths.config().string());
    apply_overrides(user, request.overrides);
    config = resolve_config(user);
  } else {
    Json user = load_config_file(request.config_path);
    apply_overrides(user, request.overrides);
    config = resolve_config(user);
    std::string dir = !request.out_dir.empty() ? request.out_dir : config["output"]["dir"].get<std::string>();
    if (dir.empty()) dir = (fs::path("runs") / fs::path(request.config_path).stem()).string();
    paths.dir = dir;
    config["output"]["dir"] = dir;
    FM_CHECK(!fs::exists(paths.config()) && !fs::exists(paths.checkpoint()), ConfigError, "output directory ",
             dir, " already holds a run; continue it with --resume ", dir, " or choose another with --out");
  }

  const Json& train = config["train"];
  const std::int64_t total_steps = train["steps"];
  const std::int64_t batch_size = train["batch_size"];
  Device device = pick_device(config["device"]);
  // The environment variable FM_KERNELS, when set, wins over the config key (handy for A/B runs
  // of the same config); the choice in effect is printed below and recorded in summary.json.
  const char* kernels_env = std::getenv("FM_KERNELS");
  set_kernel_impl(parse_kernel_impl(kernels_env && *kernels_env ? kernels_env : config["kernels"].get<std::string>()));

  // ---- 2. the objects of the run (data files are read here: a missing file fails now) ----------
  Generator init_gen(train["seed"].get<std::uint64_t>());
  std::unique_ptr<nn::VelocityModel> model = build_model(config, init_gen);
  model->to(device);
  std::unique_ptr<flow::TrainingData> data = build_training_data(config);
  // A batch larger than the image set would fail at the first step, after the run directory exists.
  if (const auto* images = dynamic_cast<const flow::ImageEpochs*>(data.get()))
    FM_CHECK(batch_size <= images->size(), ConfigError, "train.batch_size: ", batch_size, " is larger than the ",
             images->size(), " images in ", images_path(config), " (expected at most that many)");
  std::unique_ptr<nn::Optimizer> optimizer = build_optimizer(config, *model);
  std::unique_ptr<nn::EMA> ema;
  if (train["ema_decay"].get<double>() > 0) ema = std::make_unique<nn::EMA>(*model, train["ema_decay"].get<double>());
  flow::TrainerOptions options;
  options.batch_size = batch_size;
  options.grad_clip = train["grad_clip"];
  options.device = device;
  // The trainer's generator is seeded apart from the initialisation stream (seed + 1) so that the
  // noise/time/data stream does not depend on how many numbers the model's initialisation drew.
  flow::FlowTrainer trainer(*model, *optimizer, build_lr_schedule(config), ema.get(), *data,
                            flow::make_path(config["path"]["scheduler"]), build_time_sampler(config),
                            train["seed"].get<std::uint64_t>() + 1, options);
  std::unique_ptr<flow::OdeSolver> solver = build_solver(config["sample"]);

  // ---- 3. the run directory ---------------------------------------------------------------------
  if (resuming) {
    // A run killed before its first checkpoint has config.json but no checkpoint: it starts again
    // from step 0 (what the first checkpoint would have held is the same initial state).
    const bool has_checkpoint = fs::exists(paths.checkpoint());
    if (has_checkpoint) trainer.load_checkpoint(paths.checkpoint().string());
    // Before anything in the run directory changes (temp files, metrics lines) or is said.
    FM_CHECK(trainer.step() <= total_steps, ConfigError, "train.steps: ", total_steps, " is below the checkpoint's step ",
             trainer.step(), "; pass --set train.steps=N with N >= ", trainer.step());
    // Temp files of atomic writes that a killed process never renamed.
    std::int64_t stale = io::remove_stale_temp_files(paths.dir.string());
    // Event lines (the final evaluation) carry the step of the checkpoint they were written after,
    // so they go too: the resumed run writes them again.
    io::JsonlTruncation cut = io::truncate_jsonl_after_step(paths.metrics().string(), trainer.step(), "step", "event");
    log_line(request.quiet, cat("fmtrain: resuming ", paths.dir.string(), " at step ", trainer.step(),
                                has_checkpoint ? "" : " (no checkpoint was saved yet)",
                                cut.dropped ? cat(" (dropped ", cut.dropped, " metrics lines written after that checkpoint)") : "",
                                stale ? cat(" (removed ", stale, " unfinished temp files)") : ""));
  } else {
    // An existing folder holds no run (checked above), but may hold temp files of a first attempt
    // that was killed before it wrote config.json.
    if (fs::exists(paths.dir)) io::remove_stale_temp_files(paths.dir.string());
    fs::create_directories(paths.dir);
  }
  io::write_file_atomically(paths.config().string(), config.dump(2) + "\n");

  const std::string run_title = cat(config["data"]["name"].get<std::string>(), " · ", config["model"]["type"].get<std::string>(),
                                    " (", model->parameter_count(), " parameters)");
  log_line(request.quiet, cat("fmtrain: ", run_title, " on ", device_name(device),
                              device == Device::CUDA ? cat(" (", kernels::cuda_device_name(), ", ", kernel_impl_name(kernel_impl()), " kernels)") : "",
                              "; data ", data->describe(), "; run directory ", paths.dir.string()));

  // ---- 4. training --------------------------------------------------------------------------------
  io::JsonlWriter metrics(paths.metrics().string());
  const std::int64_t log_every = train["log_every"], checkpoint_every = train["checkpoint_every"],
                     sample_every = train["sample_every"];
  const double elapsed_before = previous_elapsed(paths);
  ProgressLine progress(total_steps, trainer.step(), "steps", request.quiet);
  auto begin = std::chrono::steady_clock::now();
  auto elapsed = [&] { return elapsed_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count(); };
  double loss_sum = 0;
  std::int64_t loss_count = 0, epoch = data->epoch();
  double epoch_loss_sum = 0;
  std::int64_t epoch_steps = 0;
  const std::int64_t start_step = trainer.step();
  auto sample_config = config["sample"];
  Generator picture_gen(sample_config["seed"].get<std::uint64_t>());

  const bool keep_checkpoints = train["keep_checkpoints"];
  auto save_checkpoint = [&] {
    // The metrics lines up to this step reach the disk before the checkpoint that claims them.
    metrics.sync();
    trainer.save_checkpoint(paths.checkpoint().string(), {{"config", config.dump()}});
    if (keep_checkpoints) {  // a second atomic write rather than a copy, so no half-copied file can exist
      char name[64];
      std::snprintf(name, sizeof name, "checkpoint_step_%07lld.safetensors", (long long)trainer.step());
      trainer.save_checkpoint((paths.dir / name).string(), {{"config", config.dump()}});
    }
    draw_loss_curve(paths, run_title);
  };
  auto sample_picture = [&](const std::string& file, std::int64_t count) {
    nn::EMA* use = sample_config["use_ema"].get<bool>() ? ema.get() : nullptr;
    if (use) use->swap();
    Generator gen(sample_config["seed"].get<std::uint64_t>());
    SampleResult s = generate_samples(*model, *solver, data->example_shape(), count, gen, device);
    if (use) use->swap();
    Tensor reference = data->example_shape().size() == 1 ? data->next_batch(count, picture_gen) : Tensor();
    write_samples_png((paths.dir / file).string(), s.samples, reference, cat(run_title, " · step ", trainer.step()));
  };

  const bool detect_anomaly = train["detect_anomaly"];
  // What a failed step leaves behind, for its error message.
  std::int64_t last_checkpoint_step = fs::exists(paths.checkpoint()) ? trainer.step() : -1;
  auto checkpoint_note = [&] {
    return last_checkpoint_step < 0 ? std::string("no checkpoint was saved yet")
                                    : cat("the last checkpoint (step ", last_checkpoint_step, ") is intact");
  };
  bool stopped = false;
  while (trainer.step() < total_steps) {
    if (g_stop_requested) {
      stopped = true;
      break;
    }
    flow::StepStats stats;
    try {
      AnomalyModeGuard anomaly_mode(detect_anomaly);
      stats = trainer.train_step();
    } catch (const NumericError& e) {
      throw NumericError(cat("step ", trainer.step() + 1, ": ", e.what(), "; ", checkpoint_note()));
    }
    FM_CHECK(std::isfinite(stats.loss), NumericError, "training diverged: loss is ", stats.loss, " at step ", stats.step,
             " (lower train.lr or set train.grad_clip; train.detect_anomaly=true names the first op with NaN/Inf); ",
             checkpoint_note());
    loss_sum += stats.loss;
    ++loss_count;
    const std::int64_t step = stats.step;
    // This step's batch came from data->epoch(). When that moved on, the previous epoch ended with
    // the step before (epoch −1 means "no batch drawn yet": nothing to summarise).
    if (data->epoch() != epoch) {
      if (epoch >= 0)
        log_line(request.quiet, cat("\nepoch ", epoch, " done at step ", step - 1, ": mean loss ",
                                    epoch_loss_sum / double(std::max<std::int64_t>(epoch_steps, 1)), ", ",
                                    progress.steps_per_second() * double(batch_size), " images/s"));
      epoch = data->epoch();
      epoch_loss_sum = 0;
      epoch_steps = 0;
    }
    epoch_loss_sum += stats.loss;
    ++epoch_steps;
    if (step % log_every == 0 || step == total_steps) {
      double seconds = elapsed();
      Json line = {{"step", step},
                   {"loss", stats.loss},
                   {"loss_avg", loss_sum / double(loss_count)},
                   {"loss_by_t", stats.loss_by_t_bin},
                   {"lr", stats.lr},
                   {"grad_norm", stats.grad_norm},
                   {"examples_per_s", progress.steps_per_second() * double(batch_size)},
                   {"elapsed_s", seconds},
                   {"epoch", data->epoch()}};
      if (device == Device::CUDA) line["gpu_peak_mb"] = double(kernels::cuda_peak_bytes()) / (1 << 20);
      metrics.append(line);
      loss_sum = 0;
      loss_count = 0;
    }
    progress.update(step, cat("loss ", stats.loss));
    if (step % checkpoint_every == 0 && step != total_steps) {
      save_checkpoint();
      last_checkpoint_step = step;
    }
    if (sample_every > 0 && step % sample_every == 0 && step != total_steps) {
      char name[64];
      std::snprintf(name, sizeof name, "samples_step_%07lld.png", (long long)step);
      sample_picture(name, data->example_shape().size() == 1 ? 1000 : 64);
    }
  }
  save_checkpoint();
  progress.finish("");
  if (stopped) {
    std::fprintf(stderr, "fmtrain: stopped at step %lld; checkpoint saved. Continue with: fmtrain --resume %s\n",
                 (long long)trainer.step(), paths.dir.string().c_str());
    return 130;
  }
  log_line(request.quiet, cat("fmtrain: trained ", trainer.step() - start_step, " steps in ",
                              format_duration(elapsed() - elapsed_before), " (", progress.steps_per_second(),
                              " steps/s)"));

  const double train_seconds = elapsed();

  // ---- 5. samples, quality, pictures ---------------------------------------------------------------
  nn::EMA* use = sample_config["use_ema"].get<bool>() ? ema.get() : nullptr;
  if (use) use->swap();
  Generator sample_gen(sample_config["seed"].get<std::uint64_t>());
  const std::int64_t n = sample_config["n"];
  SampleResult result = generate_samples(*model, *solver, data->example_shape(), n, sample_gen, device);
  if (use) use->swap();
  io::save_npy(paths.samples_npy().string(), result.samples);
  Json summary = {{"step", trainer.step()},
                  {"solver", sample_config["solver"]},
                  {"nfe", result.nfe},
                  {"samples", n},
                  {"sampling_seconds", result.seconds},
                  {"weights", use ? "ema" : "raw"},
                  {"train_seconds", train_seconds},
                  {"kernels", kernel_impl_name(kernel_impl())},
                  {"parameters", model->parameter_count()}};
  if (data->example_shape().size() == 1) {
    // Quality on 2-D data: sliced W2 to fresh data, next to the same distance between two
    // independent data samples of the same size (the floor a perfect model would sit at).
    auto toy = build_toy_distribution(config);
    Generator eval_gen(sample_config["seed"].get<std::uint64_t>() + 1000);
    const std::int64_t eval_n = config["eval"]["n"];
    flow::SlicedWassersteinOptions sw;
    sw.directions = config["eval"]["projections"];
    sw.seed = 7;
    Tensor fresh = toy->sample(eval_n, eval_gen);
    Tensor generated = result.samples.narrow(0, 0, std::min(eval_n, n));
    double distance = flow::sliced_wasserstein2(generated, fresh, sw);
    double floor = flow::sliced_wasserstein2(toy->sample(eval_n, eval_gen), toy->sample(eval_n, eval_gen), sw);
    summary["sliced_w2"] = distance;
    summary["sliced_w2_floor"] = floor;
    summary["ratio_to_floor"] = distance / floor;
    metrics.append({{"event", "eval"}, {"step", trainer.step()}, {"sliced_w2", distance}, {"sliced_w2_floor", floor},
                    {"nfe", result.nfe}, {"solver", sample_config["solver"]}});
    std::printf("quality: sliced W2 to fresh %s data = %.4f (floor between two data samples = %.4f, ratio %.2f) "
                "with %s, %lld NFE, %lld points\n",
                config["data"]["name"].get<std::string>().c_str(), distance, floor, distance / floor,
                sample_config["solver"].get<std::string>().c_str(), (long long)result.nfe, (long long)generated.size(0));
    write_samples_png(paths.samples_png().string(), result.samples, fresh,
                      cat(run_title, " · ", sample_config["solver"].get<std::string>(), " ", result.nfe, " NFE"));
  } else {
    std::int64_t shown = std::min<std::int64_t>(n, 64);
    write_samples_png(paths.samples_png().string(), result.samples.narrow(0, 0, shown), Tensor(),
                      cat(run_title, " · step ", trainer.step()));
    std::printf("samples: %lld images in %s (grid of %lld in %s); fmeval --checkpoint %s measures quality\n",
                (long long)n, paths.samples_npy().string().c_str(), (long long)shown, paths.samples_png().string().c_str(),
                paths.checkpoint().string().c_str());
  }
  metrics.sync();
  io::write_file_atomically(paths.summary().string(), summary.dump(2) + "\n");
  draw_loss_curve(paths, run_title);
  std::printf("run directory: %s\n", paths.dir.string().c_str());
  return 0;
}

}  // namespace fm::tools
