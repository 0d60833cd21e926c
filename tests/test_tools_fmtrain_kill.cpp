// tests/test_tools_fmtrain_kill.cpp — fmtrain survives being killed: the real binary, run as a child
// process, is killed with SIGKILL at random moments and while it writes a checkpoint, resumed with
// --resume each time, and must end with bitwise the metrics, weights and samples of a run that was
// never interrupted; a run directory left by a kill never holds a checkpoint that fails to load.
// A write that fails (a file-size limit, as a full disk would) is one line naming the file, exit 2,
// and leaves the previous checkpoint intact. A diverging run stops naming the step (and, with
// train.detect_anomaly, the op).
#include <catch2/catch.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "core/io/atomic_file.h"
#include "core/io/jsonl.h"
#include "core/io/safetensors.h"
#include "tools/config.h"
#include "child_process.h"
#include "test_util.h"

namespace fs = std::filesystem;
using fm::tools::Json;

namespace {

fs::path fmtrain_binary() { return fm::test::tool_path("fmtrain"); }

// A moons run of a few seconds whose checkpoints are large enough (≈3 MB: a 256-wide MLP with EMA
// and Adam state) that a kill sent when the temp file appears lands inside the write.
Json kill_test_config(std::int64_t steps) {
  return {{"data", {{"name", "moons"}}},
          {"model", {{"type", "mlp"}, {"hidden_width", 256}, {"hidden_layers", 3}}},
          {"train", {{"steps", steps}, {"batch_size", 64}, {"lr", 1e-3}, {"seed", 11}, {"log_every", 1},
                     {"checkpoint_every", 25}, {"ema_decay", 0.99}}},
          {"sample", {{"solver", "euler"}, {"steps", 4}, {"n", 256}}},
          {"eval", {{"n", 256}, {"projections", 8}}}};
}

// Starts fmtrain with `args` (one OpenMP thread), stdout to /dev/null and stderr to `stderr_file`;
// `file_size_limit` (bytes) is RLIMIT_FSIZE in the child, 0 for none.
fm::test::ChildProcess spawn_fmtrain(const std::vector<std::string>& args, const fs::path& stderr_file,
                                     std::uint64_t file_size_limit = 0) {
  fm::test::SpawnOptions options;
  options.stderr_path = stderr_file.string();
  options.file_size_limit = file_size_limit;
  options.one_omp_thread = true;
  return fm::test::spawn(fmtrain_binary().string(), args, options);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Metrics without the fields that measure wall-clock time (the only ones a kill may change).
std::vector<Json> deterministic_metrics(const fs::path& run) {
  std::vector<Json> out;
  for (const auto& line : fm::io::read_jsonl((run / "metrics.jsonl").string()).lines) {
    Json record = line.record;
    record.erase("elapsed_s");
    record.erase("examples_per_s");
    out.push_back(record);
  }
  return out;
}

// Every tensor of a checkpoint: name → (dtype, shape, bytes).
std::map<std::string, fm::io::SafetensorsTensor> checkpoint_tensors(const fs::path& file) {
  return fm::io::read_safetensors(file.string()).tensors;
}

// Every checkpoint file in `run` (the live one and any kept ones) must load and hold the same tensor
// names, dtypes and shapes as the reference checkpoint. Returns how many were checked.
int check_checkpoints_load(const fs::path& run, const std::map<std::string, fm::io::SafetensorsTensor>& reference) {
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(run)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("checkpoint", 0) != 0 || entry.path().extension() != ".safetensors") continue;
    INFO("checkpoint " << entry.path());
    std::map<std::string, fm::io::SafetensorsTensor> tensors;
    REQUIRE_NOTHROW(tensors = checkpoint_tensors(entry.path()));
    REQUIRE(tensors.size() == reference.size());
    for (const auto& [tensor_name, t] : reference) {
      REQUIRE(tensors.count(tensor_name));
      REQUIRE(tensors.at(tensor_name).dtype == t.dtype);
      REQUIRE(tensors.at(tensor_name).shape == t.shape);
    }
    ++checked;
  }
  return checked;
}

// True when `run` holds a temp file of an unfinished atomic write whose name starts with `prefix`.
bool holds_temp_file(const fs::path& run, const std::string& prefix = ".") {
  for (const auto& entry : fs::directory_iterator(run)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && fm::io::is_atomic_write_temp_name(name)) return true;
  }
  return false;
}

// Watches a folder for newly created checkpoint temp files (inotify), so a kill can be sent the
// moment a checkpoint write begins.
class CheckpointWriteWatch {
 public:
  explicit CheckpointWriteWatch(const fs::path& dir) {
    fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    REQUIRE(fd_ >= 0);
    REQUIRE(::inotify_add_watch(fd_, dir.c_str(), IN_CREATE) >= 0);
  }
  ~CheckpointWriteWatch() { ::close(fd_); }
  // Waits up to `timeout_ms`; true when a ".checkpoint*.tmp.*" file was created.
  bool wait_for_checkpoint_write(int timeout_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    alignas(inotify_event) char buffer[4096];
    ssize_t n = ::read(fd_, buffer, sizeof buffer);
    for (ssize_t at = 0; at < n;) {
      auto* event = reinterpret_cast<inotify_event*>(buffer + at);
      std::string name = event->len ? event->name : "";
      if (name.rfind(".checkpoint", 0) == 0 && fm::io::is_atomic_write_temp_name(name)) return true;
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
    return false;
  }

 private:
  int fd_ = -1;
};

}  // namespace

TEST_CASE("fmtrain killed at random moments and during checkpoint writes resumes to bitwise the same run",
          "[fmtrain][kill]") {
  REQUIRE(fs::exists(fmtrain_binary()));
  fm::test::TempDir temp("fm_test_kill");
  const std::int64_t steps = 600;
  fs::path config = temp.path / "config.json";
  std::ofstream(config) << kill_test_config(steps).dump(2);

  // The reference: one uninterrupted run, timed to spread the kills over a run's length.
  fs::path reference = temp.path / "reference";
  auto start = std::chrono::steady_clock::now();
  fm::test::ChildProcess whole =
      spawn_fmtrain({config.string(), "--out", reference.string(), "--quiet"}, temp.path / "reference.err");
  REQUIRE(whole.wait() == 0);
  const double run_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto reference_metrics = deterministic_metrics(reference);
  const auto reference_weights = checkpoint_tensors(reference / "checkpoint.safetensors");
  const std::string reference_samples = read_text(reference / "samples.npy");
  REQUIRE(reference_metrics.size() == std::size_t(steps) + 1);  // one line per step + the final evaluation

  std::mt19937_64 rng(20261201);
  std::uniform_real_distribution<double> moment(0.0, 1.1 * run_seconds);
  int kills = 0, kills_during_checkpoint_write = 0, checkpoints_checked = 0, campaigns = 0;
  // Campaigns of kills on fresh run directories until at least 20 kills have landed; each campaign
  // ends with its run completing and is compared with the reference.
  while (kills < 20) {
    REQUIRE(campaigns < 12);  // a run too fast to be killed 20 times in 12 tries would be a test bug
    fs::path run = temp.path / ("killed_" + std::to_string(campaigns++));
    fs::create_directories(run);  // fmtrain accepts an empty existing --out folder; the watch needs it now
    CheckpointWriteWatch watch(run);
    bool finished = false;
    for (int attempt = 0; !finished; ++attempt) {
      INFO("campaign " << campaigns << " attempt " << attempt << " after " << kills << " kills");
      REQUIRE(attempt < 60);
      // A kill before config.json exists leaves nothing to resume: the user starts the command again.
      const bool has_config = fs::exists(run / "config.json");
      const std::vector<std::string> args =
          has_config ? std::vector<std::string>{"--resume", run.string(), "--quiet"}
                     : std::vector<std::string>{config.string(), "--out", run.string(), "--quiet"};
      fm::test::ChildProcess child = spawn_fmtrain(args, run.parent_path() / "last.err");
      // Even kills at a random moment, odd kills the moment a checkpoint write begins (after 0-2
      // writes, so the run also makes progress between kills).
      const bool at_checkpoint_write = kills % 2 == 1;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(
                                                                    at_checkpoint_write ? 4 * run_seconds : moment(rng));
      int writes_to_skip = at_checkpoint_write ? int(rng() % 3) : 0;
      int exit_code = 0;
      bool ended = false;
      while (!ended && std::chrono::steady_clock::now() < deadline) {
        if (at_checkpoint_write) {
          if (watch.wait_for_checkpoint_write(5) && writes_to_skip-- == 0) break;
        } else {
          std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
        ended = child.poll_exit(&exit_code);
      }
      if (!ended) {
        child.send(SIGKILL);
        exit_code = child.wait();
      }
      if (exit_code == -SIGKILL) {
        ++kills;
        if (holds_temp_file(run, ".checkpoint")) ++kills_during_checkpoint_write;
        // Whatever the moment, every checkpoint on disk loads.
        checkpoints_checked += check_checkpoints_load(run, reference_weights);
        continue;
      }
      INFO("fmtrain stderr: " << read_text(run.parent_path() / "last.err"));
      REQUIRE(exit_code == 0);
      finished = true;
    }
    // The completed run is bitwise the uninterrupted one.
    REQUIRE(deterministic_metrics(run) == reference_metrics);
    auto weights = checkpoint_tensors(run / "checkpoint.safetensors");
    REQUIRE(weights.size() == reference_weights.size());
    for (const auto& [name, t] : reference_weights) {
      INFO("tensor " << name);
      REQUIRE(weights.at(name).bytes == t.bytes);
    }
    REQUIRE(read_text(run / "samples.npy") == reference_samples);
    REQUIRE_FALSE(holds_temp_file(run));  // the last resume removed what the kills left
  }
  WARN(kills << " kills in " << campaigns << " runs (" << kills_during_checkpoint_write
             << " while a checkpoint was being written), " << checkpoints_checked
             << " checkpoints loaded after kills; uninterrupted run " << run_seconds << " s");
  REQUIRE(kills >= 20);
  REQUIRE(kills_during_checkpoint_write >= 1);
}

TEST_CASE("a checkpoint write that fails (file-size limit) is one line naming the file and keeps the last checkpoint",
          "[fmtrain][kill]") {
  REQUIRE(fs::exists(fmtrain_binary()));
  fm::test::TempDir temp("fm_test_write_error");
  fs::path config = temp.path / "config.json";
  std::ofstream(config) << kill_test_config(50).dump(2);
  fs::path run = temp.path / "run";
  REQUIRE(spawn_fmtrain({config.string(), "--out", run.string(), "--quiet", "--set", "train.steps=25"},
                        temp.path / "first.err")
              .wait() == 0);
  const std::string checkpoint_before = read_text(run / "checkpoint.safetensors");
  REQUIRE(checkpoint_before.size() > 1'000'000);
  // Small files (config, metrics) still fit; the ≈3 MB checkpoint does not, as on a nearly full disk.
  fm::test::ChildProcess resumed = spawn_fmtrain({"--resume", run.string(), "--quiet", "--set", "train.steps=50"},
                                                 temp.path / "resume.err", /*file_size_limit=*/512 * 1024);
  REQUIRE(resumed.wait() == 2);
  std::string message = read_text(temp.path / "resume.err");
  INFO("stderr: " << message);
  REQUIRE(std::count(message.begin(), message.end(), '\n') == 1);
  REQUIRE_THAT(message, Catch::StartsWith("fmtrain: ") && Catch::Contains("checkpoint.safetensors") &&
                            Catch::Contains("File too large"));
  REQUIRE(read_text(run / "checkpoint.safetensors") == checkpoint_before);
  REQUIRE_FALSE(holds_temp_file(run));
  // And the run continues once there is room again.
  REQUIRE(spawn_fmtrain({"--resume", run.string(), "--quiet", "--set", "train.steps=50"}, temp.path / "again.err")
              .wait() == 0);
}

TEST_CASE("a diverging run stops at the step, and with detect_anomaly names the op", "[fmtrain][kill][anomaly]") {
  REQUIRE(fs::exists(fmtrain_binary()));
  fm::test::TempDir temp("fm_test_anomaly");
  fs::path config = temp.path / "config.json";
  Json c = kill_test_config(40);
  c["model"]["hidden_width"] = 16;
  c["train"]["steps"] = 200;
  c["train"]["checkpoint_every"] = 1;
  std::ofstream(config) << c.dump(2);
  // SGD with momentum at the largest learning rate the schema allows: the gradients grow
  // geometrically and overflow float32 within a few steps.
  const std::vector<std::string> diverge = {"--set", "train.optimizer=sgd", "--set", "train.lr=10", "--quiet"};

  fs::path plain = temp.path / "plain";
  std::vector<std::string> args = {config.string(), "--out", plain.string()};
  args.insert(args.end(), diverge.begin(), diverge.end());
  REQUIRE(spawn_fmtrain(args, temp.path / "plain.err").wait() == 2);
  std::string message = read_text(temp.path / "plain.err");
  INFO("stderr: " << message);
  REQUIRE(std::count(message.begin(), message.end(), '\n') == 1);
  REQUIRE_THAT(message, Catch::Contains("training diverged: loss is") && Catch::Contains("at step"));

  fs::path anomaly = temp.path / "anomaly";
  args = {config.string(), "--out", anomaly.string(), "--set", "train.detect_anomaly=true"};
  args.insert(args.end(), diverge.begin(), diverge.end());
  REQUIRE(spawn_fmtrain(args, temp.path / "anomaly.err").wait() == 2);
  message = read_text(temp.path / "anomaly.err");
  INFO("stderr: " << message);
  REQUIRE(std::count(message.begin(), message.end(), '\n') == 1);
  REQUIRE_THAT(message, Catch::StartsWith("fmtrain: step ") && Catch::Contains(": anomaly: ") &&
                            Catch::Contains("NaN/Inf") && Catch::Contains("is intact"));
  // The checkpoint named as intact loads.
  REQUIRE_NOTHROW(fm::io::read_safetensors((anomaly / "checkpoint.safetensors").string()));
}
