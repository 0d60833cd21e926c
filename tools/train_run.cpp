// tools/train_run.cpp — the fmtrain run (see train_run.h): the config, the run directory, and the
// training loop with its metrics, checkpoints and progress. The objects of the run come from
// tools/run_setup.h (build_run_objects); what follows the last step (samples, quality, summary.json)
// is tools/final_samples.cpp.
//
// Order of work, so that bad input never leaves a half-made run behind: parse and validate the
// config and every override, check the data files and the run directory, build the model; only then
// create the directory and write config.json. Checkpoints are atomic (temp file + rename); on resume
// metrics.jsonl is cut back to the checkpoint's step so no line is duplicated.
#include "tools/train_run.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>

#include <omp.h>

#include "core/autograd.h"
#include "core/distributed.h"
#include "core/io/atomic_file.h"
#include "core/io/jsonl.h"
#include "core/io/png.h"
#include "core/kernel_choice.h"
#include "flow/trainer.h"
#include "kernels/runtime.h"
#include "tools/conditional_sampling.h"
#include "tools/config.h"
#include "tools/final_samples.h"
#include "tools/progress.h"
#include "tools/run_paths.h"
#include "tools/run_setup.h"
#include "tools/sharded_sampling.h"

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

// ---- 1. the config (validated completely before anything is written) ---------------------------

struct ResolvedRun {
  RunPaths paths;
  Json config;  // resolved: every key present
  bool resuming = false;
};

// A new run reads request.config_path and picks its directory (--out, else output.dir, else
// runs/<config name>), which must not hold a run yet; a resumed run reads the config.json of
// request.resume_dir and accepts only the overrides that leave the steps already taken unchanged.
ResolvedRun resolve_run(const TrainRequest& request) {
  ResolvedRun run;
  run.resuming = !request.resume_dir.empty();
  if (run.resuming) {
    run.paths.dir = request.resume_dir;
    FM_CHECK(fs::exists(run.paths.config()), ConfigError, "--resume ", run.paths.dir.string(),
             ": no config.json there (is it a run directory?)");
    for (const auto& o : request.overrides)
      FM_CHECK(resumable_override(o), ConfigError, "--set ", o,
               ": a resumed run may only change train.steps, the logging/checkpoint/sample intervals, "
               "train.detect_anomaly, sample.*, eval.*, device and kernels");
    Json user = load_config_file(run.paths.config().string());
    apply_overrides(user, request.overrides);
    run.config = resolve_config(user);
  } else {
    Json user = load_config_file(request.config_path);
    apply_overrides(user, request.overrides);
    run.config = resolve_config(user);
    std::string dir = !request.out_dir.empty() ? request.out_dir : run.config["output"]["dir"].get<std::string>();
    if (dir.empty()) dir = (fs::path("runs") / fs::path(request.config_path).stem()).string();
    run.paths.dir = dir;
    run.config["output"]["dir"] = dir;
    FM_CHECK(!fs::exists(run.paths.config()) && !fs::exists(run.paths.checkpoint()), ConfigError, "output directory ",
             dir, " already holds a run; continue it with --resume ", dir, " or choose another with --out");
    // A folder that is not a run may be used, but not over files of its own that the run would replace.
    for (const fs::path& file : {run.paths.metrics(), run.paths.loss_png(), run.paths.samples_npy(),
                                 run.paths.samples_png(), run.paths.summary()})
      FM_CHECK(!fs::exists(file), ConfigError, "output directory ", dir, " holds ", file.filename().string(),
               " but no run (no config.json); expected a new folder, or one without the files a run writes");
  }
  return run;
}

// The kernel implementation and the precision for this process. The environment variables
// FM_KERNELS and FM_PRECISION, when set, win over the config keys (handy for A/B runs of the same
// config); the choice in effect is printed when the run starts and recorded in summary.json.
void select_kernels(const Json& config) {
  const char* kernels_env = std::getenv("FM_KERNELS");
  set_kernel_impl(parse_kernel_impl(kernels_env && *kernels_env ? kernels_env : config["kernels"].get<std::string>()));
  const char* precision_env = std::getenv("FM_PRECISION");
  set_precision(parse_precision(precision_env && *precision_env ? precision_env : config["precision"].get<std::string>()));
  // The library kernels (cuDNN, cuBLAS) take float32 tensors only; say so before anything runs (on the
  // CPU the kernel choice has no effect, so the combination is refused everywhere alike).
  FM_CHECK(!(kernel_impl() == KernelImpl::Library && config["model"].value("activations", "float32") == "bfloat16"),
           ConfigError, "model.activations: \"bfloat16\" runs on the project's kernels; kernels = \"library\" ",
           "(cuDNN/cuBLAS) takes float32 tensors (set kernels to \"custom\", or the activations to \"float32\")");
}

// ---- 2. the run directory (once run_setup.h's build_run_objects has built the run) -------------

// A resumed run restores its checkpoint and clears away what the process it continues left
// unfinished; a new run creates its folder. Then config.json is written.
void open_run_directory(const ResolvedRun& run, flow::FlowTrainer& trainer, std::int64_t total_steps, bool quiet) {
  const RunPaths& paths = run.paths;
  if (run.resuming) {
    // A run killed before its first checkpoint has config.json but no checkpoint: it starts again
    // from step 0 (what the first checkpoint would have held is the same initial state).
    const bool has_checkpoint = fs::exists(paths.checkpoint());
    // Every rank of a data-parallel run reads the same checkpoint (nothing in it is per rank).
    if (has_checkpoint) trainer.load_checkpoint(paths.checkpoint().string());
    // Before anything in the run directory changes (temp files, metrics lines) or is said.
    FM_CHECK(trainer.step() <= total_steps, ConfigError, "train.steps: ", total_steps, " is below the checkpoint's step ",
             trainer.step(), "; pass --set train.steps=N with N >= ", trainer.step());
    // Every rank has checked the run before rank 0 changes anything in it; the others write nothing.
    dist::barrier();
    if (!dist::is_root()) return;
    // Temp files of atomic writes that a killed process never renamed.
    std::int64_t stale = io::remove_stale_temp_files(paths.dir.string());
    // Event lines (the final evaluation) carry the step of the checkpoint they were written after,
    // so they go too: the resumed run writes them again.
    io::JsonlTruncation cut = io::truncate_jsonl_after_step(paths.metrics().string(), trainer.step(), "step", "event");
    log_line(quiet, cat("fmtrain: resuming ", paths.dir.string(), " at step ", trainer.step(),
                        has_checkpoint ? "" : " (no checkpoint was saved yet)",
                        cut.dropped ? cat(" (dropped ", cut.dropped, " metrics lines written after that checkpoint)") : "",
                        stale ? cat(" (removed ", stale, " unfinished temp files)") : ""));
  } else {
    // Every rank has found the folder free of runs before rank 0 writes config.json into it.
    dist::barrier();
    if (!dist::is_root()) return;
    // An existing folder holds no run (checked above), but may hold temp files of a first attempt
    // that was killed before it wrote config.json.
    if (fs::exists(paths.dir)) io::remove_stale_temp_files(paths.dir.string());
    std::error_code error;
    fs::create_directories(paths.dir, error);
    FM_CHECK(!error, IOError, "run directory ", paths.dir.string(), ": cannot create it (", error.message(),
             "); expected a folder path whose parents are folders");
  }
  io::write_file_atomically(paths.config().string(), run.config.dump(2) + "\n");
}

// ---- 3. training -----------------------------------------------------------------------------------

// The loop from the trainer's step to train.steps, and what it does on the way: a metrics line every
// train.log_every steps, the progress line, an epoch summary, a checkpoint every
// train.checkpoint_every steps and a sample picture every train.sample_every steps.
//
// A step reads nothing back from the device (flow/trainer.h): the loss, its running sums, the
// per-t-bin losses and the gradient norm are read at log steps, at the end of an epoch and before a
// checkpoint. So divergence (a non-finite loss) is caught there, not at the step it happened: a log
// step checks its own loss and the sum of every loss since the previous log step (one non-finite loss
// makes the sum non-finite), and a checkpoint checks the sum before it writes, so no checkpoint ever
// holds a diverged model. The progress line shows the loss of the last log step.
class TrainingLoop {
 public:
  // metrics: null on the ranks other than 0 of a data-parallel run (only rank 0 writes files).
  TrainingLoop(const ResolvedRun& run, RunObjects& objects, Device device, const std::string& title,
               io::JsonlWriter* metrics, bool quiet)
      : paths_(run.paths), config_(run.config), train_(run.config["train"]), sample_config_(run.config["sample"]),
        objects_(objects), trainer_(*objects.trainer), device_(device), title_(title), metrics_(metrics),
        quiet_(quiet), total_steps_(train_["steps"]), batch_size_(train_["batch_size"]), log_every_(train_["log_every"]),
        elapsed_before_(previous_elapsed(paths_)), progress_(total_steps_, trainer_.step(), "steps", quiet),
        begin_(std::chrono::steady_clock::now()), epoch_(objects.data->epoch()), start_step_(trainer_.step()),
        picture_gen_(sample_config_["seed"].get<std::uint64_t>()),
        last_checkpoint_step_(fs::exists(paths_.checkpoint()) ? trainer_.step() : -1) {}

  // Trains until train.steps, or until request_stop() was called; true when it stopped early.
  bool run() {
    const std::int64_t checkpoint_every = train_["checkpoint_every"], sample_every = train_["sample_every"];
    const bool detect_anomaly = train_["detect_anomaly"];
    while (trainer_.step() < total_steps_) {
      if (stop_requested()) return true;
      try {
        AnomalyModeGuard anomaly_mode(detect_anomaly);
        trainer_.run_step();
        if (!recording_noted_ && !trainer_.recording_note().empty()) {
          log_line(quiet_ || !dist::is_root(), cat("fmtrain: note: ", trainer_.recording_note()));
          recording_noted_ = true;
        }
      } catch (const NumericError& e) {
        throw NumericError(cat("step ", trainer_.step() + 1, ": ", e.what(), "; ", checkpoint_note()));
      }
      const std::int64_t step = trainer_.step();
      record_step(step);
      if (step % checkpoint_every == 0 && step != total_steps_) {
        save_checkpoint();
        last_checkpoint_step_ = step;
      }
      if (sample_every > 0 && step % sample_every == 0 && step != total_steps_ && dist::is_root()) {
        char name[64];
        std::snprintf(name, sizeof name, "samples_step_%07lld.png", (long long)step);
        sample_picture(name, objects_.data->example_shape().size() == 1 ? 1000 : 64);
      }
    }
    if (stop_vote_.pending()) stop_vote_.wait();  // the last vote, at the same point on every rank
    return false;
  }

  // checkpoint.safetensors (and a kept copy under the step's name when train.keep_checkpoints), then
  // a fresh loss.png.
  void save_checkpoint() {
    // A diverged model is never saved: the losses since the last log step must all be finite.
    check_finite_losses(trainer_.loss_sum());  // every rank (it reads the ranks' losses together)
    if (!dist::is_root()) return;  // the ranks' states are equal: rank 0's checkpoint holds them all
    // The metrics lines up to this step reach the disk before the checkpoint that claims them.
    metrics_->sync();
    trainer_.save_checkpoint(paths_.checkpoint().string(), checkpoint_metadata(config_));
    // A kept copy is a second atomic write rather than a copy, so no half-copied file can exist.
    if (train_["keep_checkpoints"].get<bool>()) {
      char name[64];
      std::snprintf(name, sizeof name, "checkpoint_step_%07lld.safetensors", (long long)trainer_.step());
      trainer_.save_checkpoint((paths_.dir / name).string(), checkpoint_metadata(config_));
    }
    draw_loss_curve(paths_, title_);
  }

  // Seconds of training, including those of the runs this one continues.
  double elapsed() const {
    return elapsed_before_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - begin_).count();
  }
  double elapsed_before() const { return elapsed_before_; }
  std::int64_t start_step() const { return start_step_; }
  ProgressLine& progress() { return progress_; }

 private:
  // The bookkeeping of one finished step: the loss averages, the epoch summary, the metrics line and
  // the progress line.
  // The loss sums live on the device (flow/trainer.h); this reads them only at the end of an epoch
  // and at log steps.
  void record_step(std::int64_t step) {
    // This step's batch came from data->epoch(). When that moved on, the previous epoch ended with
    // the step before (epoch −1 means "no batch drawn yet": nothing to summarise). The trainer saw
    // the same change (it compares the epoch of each batch with the one before).
    flow::TrainingData& data = *objects_.data;
    if (data.epoch() != epoch_) {
      if (epoch_ >= 0) {
        // Read on every rank, quiet or not: data parallel, it sums the ranks' losses (a collective).
        const double epoch_loss = trainer_.finished_epoch_loss().mean();
        log_line(quiet_, cat("\nepoch ", epoch_, " done at step ", step - 1, ": mean loss ", epoch_loss, ", ",
                             progress_.steps_per_second() * double(batch_size_), " images/s"));
      }
      epoch_ = data.epoch();
    }
    if (step % log_every_ == 0 || step == total_steps_) {
      const flow::StepStats stats = trainer_.last_step_stats();
      FM_CHECK(std::isfinite(stats.loss), NumericError, "training diverged: loss is ", stats.loss, " at step ",
               stats.step, " (lower train.lr or set train.grad_clip; train.detect_anomaly=true names the first op "
               "with NaN/Inf); ", checkpoint_note());
      const flow::LossSum since_last_log = trainer_.take_loss_sum();
      check_finite_losses(since_last_log);
      // Data parallel: the ranks' weights must still be bitwise equal (a collective; no-op on one rank).
      trainer_.check_ranks_agree();
      Json line = {{"step", step},
                   {"loss", stats.loss},
                   {"loss_avg", since_last_log.mean()},
                   {"loss_by_t", stats.loss_by_t_bin},
                   {"lr", stats.lr},
                   {"grad_norm", stats.grad_norm},
                   {"examples_per_s", progress_.steps_per_second() * double(batch_size_)},
                   {"elapsed_s", elapsed()},
                   {"epoch", data.epoch()}};
      // The pairing's cost per step beside the step's own (train.coupling other than independent).
      const double coupling_seconds = trainer_.take_coupling_seconds();
      if (config_["train"]["coupling"] != "independent")
        line["coupling_ms_per_step"] = 1e3 * coupling_seconds / double(std::max<std::int64_t>(since_last_log.steps, 1));
      if (device_ == Device::CUDA) line["gpu_peak_mb"] = double(kernels::cuda_peak_bytes()) / (1 << 20);
      // Data parallel: the host's wait for gradient reductions per step (on rank 0), the part of the
      // communication the backward pass did not hide.
      if (dist::active()) {
        line["ranks"] = dist::world_size();
        line["allreduce_wait_ms_per_step"] =
            1e3 * trainer_.take_gradient_wait_seconds() / double(std::max<std::int64_t>(since_last_log.steps, 1));
      }
      if (metrics_) metrics_->append(line);
      progress_text_ = cat("loss ", stats.loss);
    }
    progress_.update(step, progress_text_);
  }

  // Divergence between log steps: some loss of the steps summed is NaN or ±∞ (the loss is read only
  // at log steps; see the class comment).
  void check_finite_losses(const flow::LossSum& sum) const {
    if (std::isfinite(sum.sum)) return;
    const std::int64_t last = trainer_.step(), first = last - sum.steps + 1;
    throw NumericError(cat("training diverged: loss is ",
                           first == last ? cat(sum.sum, " at step ", last)
                                         : cat("not finite at a step in steps ", first, "-", last, " (their sum is ",
                                               sum.sum, "; the loss is read at train.log_every steps)"),
                           " (lower train.lr or set train.grad_clip; train.detect_anomaly=true names the first op "
                           "with NaN/Inf); ", checkpoint_note()));
  }

  // samples_step_*.png: `count` samples with the sampling weights, over fresh data on 2-D data. A
  // class-conditional model samples as the final samples do (tools/final_samples.cpp): labels drawn
  // uniformly from sample.seed at guidance 0, its 2-D points coloured by label.
  void sample_picture(const std::string& file, std::int64_t count) {
    nn::EMA* use = sample_config_["use_ema"].get<bool>() ? objects_.ema.get() : nullptr;
    flow::TrainingData& data = *objects_.data;
    const RunSamples s = generate_run_samples(*objects_.model, use, *objects_.solver, data.example_shape(), count,
                                              sample_config_["seed"].get<std::uint64_t>(), device_,
                                              objects_.source.get());
    // Fresh reference points per picture, from the data set itself (not the training stream, which may
    // be reflow pairs with a position to keep): a new noise seed from the picture generator each time.
    Tensor reference = data.example_shape().size() == 1
                           ? build_toy_distribution(config_)->sample(count, flow::StepNoise{picture_gen_.next_u64(), 0, 0})
                           : Tensor();
    const std::string path = (paths_.dir / file).string(), title = cat(title_, " · step ", trainer_.step());
    if (!s.labels.empty() && reference.defined())
      write_class_scatter_png(path, s.result.samples, s.labels, objects_.model->num_classes(), reference, title);
    else
      write_samples_png(path, s.result.samples, reference, title);
  }

  // What a failed step leaves behind, for its error message.
  std::string checkpoint_note() const {
    return last_checkpoint_step_ < 0 ? std::string("no checkpoint was saved yet")
                                     : cat("the last checkpoint (step ", last_checkpoint_step_, ") is intact");
  }

  const RunPaths& paths_;
  const Json& config_;
  const Json& train_;
  const Json& sample_config_;
  RunObjects& objects_;
  flow::FlowTrainer& trainer_;
  const Device device_;
  const std::string title_;
  io::JsonlWriter* metrics_;
  const bool quiet_;
  bool recording_noted_ = false;  // the trainer's recording_note() was printed
  // A stop request (SIGINT, SIGTERM) may reach the ranks of a data-parallel run apart, yet they must
  // stop at the same step. They vote: before each step every rank starts an all-reduce of its flag
  // and reads the one it started before the previous step, which travelled while that step ran (its
  // gradient reductions drive MPI's progress). So no step waits on the others just to learn that
  // nobody asked to stop; a stop takes effect one step later than the request. One process: the flag.
  dist::PendingAllreduce stop_vote_;
  Tensor stop_flag_ = Tensor::zeros({1});  // this rank's vote, summed over the ranks in place
  bool stop_requested() {
    if (!dist::active()) return g_stop_requested != 0;
    bool stop = false;
    if (stop_vote_.pending()) {
      stop_vote_.wait();
      stop = stop_flag_.data<float>()[0] > 0;
    }
    if (stop) return true;  // every rank read the same sum: all stop here
    stop_flag_.data<float>()[0] = g_stop_requested != 0 ? 1.0f : 0.0f;
    stop_vote_ = dist::start_allreduce_sum(stop_flag_);
    return false;
  }
  const std::int64_t total_steps_, batch_size_, log_every_;
  const double elapsed_before_;
  ProgressLine progress_;
  const std::chrono::steady_clock::time_point begin_;
  std::int64_t epoch_;  // the data epoch of the last step's batch
  std::string progress_text_;  // "loss X" of the last log step
  const std::int64_t start_step_;
  Generator picture_gen_;  // the reference points of the sample pictures
  std::int64_t last_checkpoint_step_;  // -1: none saved yet
};

}  // namespace

void request_stop() { g_stop_requested = 1; }

// The stages in order: config, objects, run directory, the loop, the final checkpoint, then the last
// stage (tools/final_samples.h) unless a stop request ended the loop early.
int run_training(const TrainRequest& request) {
  const ResolvedRun run = resolve_run(request);
  const Json& config = run.config;
  const std::int64_t total_steps = config["train"]["steps"];
  const Device device = pick_device(config["device"]);
  select_kernels(config);
  // Data parallel: every rank must train the same config on the same kind of device with the same
  // kernels (a different file on one machine, a different --set, or a rank without a GPU would make
  // the ranks compute different things, or issue different collectives and wait for each other).
  if (dist::active()) {
    const std::string text = cat(config.dump(), "|", device_name(device), "|", kernel_impl_name(kernel_impl()), "|",
                                 precision_name(precision()));
    const std::uint64_t mine = std::hash<std::string>{}(text);
    FM_CHECK(dist::allreduce_min(mine) == dist::allreduce_max(mine), ConfigError,
             "the ranks resolved different configs (this rank's: ",
             run.resuming ? run.paths.config().string() : request.config_path, " with its --set overrides, on ",
             device_name(device), ", ", kernel_impl_name(kernel_impl()), " kernels, ", precision_name(precision()),
             "); expected the same config, overrides, run directory, device, FM_KERNELS and FM_PRECISION on every rank");
  }
  // Only rank 0 of a data-parallel run talks; the others report errors only (tools/ranks.h).
  const bool quiet = request.quiet || !dist::is_root();
  if (dist::active()) flow::rank_slice(config["train"]["batch_size"].get<std::int64_t>());  // refuses B < ranks now
  RunObjects objects = build_run_objects(config, device, /*initialise_from_checkpoint=*/ !run.resuming);
  open_run_directory(run, *objects.trainer, total_steps, quiet);

  const std::string title = cat(config["data"]["name"].get<std::string>(), " · ",
                                config["model"]["type"].get<std::string>(), " (",
                                objects.model->parameter_count(), " parameters)");
  const std::string gpu_note =
      device == Device::CUDA ? cat(" (", kernels::cuda_device_name(), ", ", kernel_impl_name(kernel_impl()), " kernels, ",
                                   precision_name(precision()), ")")
                             : "";
  log_line(quiet, cat("fmtrain: ", title, " on ", device_name(device), gpu_note, "; data ",
                      objects.data->describe(), "; run directory ", run.paths.dir.string()));
  if (dist::active()) {
    const std::int64_t batch = config["train"]["batch_size"];
    log_line(quiet, cat("fmtrain: data parallel over ", dist::world_size(), " ranks (", dist::local_size(),
                        " on this machine): global batch ", batch, ", ", flow::rank_slice(batch).count,
                        " samples on rank 0, ", omp_get_max_threads(), " CPU threads per rank",
                        device == Device::CUDA ? ", one GPU per rank (NCCL)" : ", gradients summed with MPI"));
  }
  // The ranks start equal (same seed, or the same checkpoint); check_ranks_agree() keeps them so.
  objects.trainer->check_ranks_agree();

  std::optional<io::JsonlWriter> metrics;
  if (dist::is_root()) metrics.emplace(run.paths.metrics().string());
  TrainingLoop loop(run, objects, device, title, metrics ? &*metrics : nullptr, quiet);
  const bool stopped = loop.run();
  loop.save_checkpoint();
  loop.progress().finish("");
  const flow::FlowTrainer& trainer = *objects.trainer;
  if (stopped) {  // the ranks agree on it (TrainingLoop::run)
    if (dist::is_root())
      std::fprintf(stderr, "fmtrain: stopped at step %lld; checkpoint saved. Continue with: fmtrain --resume %s\n",
                   (long long)trainer.step(), run.paths.dir.string().c_str());
    return 130;
  }
  if (dist::is_root())
    log_line(quiet, cat("fmtrain: trained ", trainer.step() - loop.start_step(), " steps in ",
                        format_duration(loop.elapsed() - loop.elapsed_before()), " (",
                        loop.progress().steps_per_second(), " steps/s)"));

  // Data parallel: the ranks share the final sampling, and rank 0 writes it (with the summary and
  // pictures). One process: the scope changes nothing.
  const FinishedRun finished{config, run.paths, objects, device, title, loop.elapsed()};
  FinalSamples sampled;
  {
    const ShardOverRanks shard_over_ranks;
    sampled = draw_final_samples(finished);
  }
  if (!dist::is_root()) return 0;
  write_final_samples(finished, sampled, *metrics);
  draw_loss_curve(run.paths, title);
  std::printf("run directory: %s\n", run.paths.dir.string().c_str());
  return 0;
}

}  // namespace fm::tools
