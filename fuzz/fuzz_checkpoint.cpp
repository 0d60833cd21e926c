// fuzz/fuzz_checkpoint.cpp — libFuzzer target: any bytes as the checkpoint `fmtrain --resume` goes on
// from (FlowTrainer::load_checkpoint, flow/checkpoint_format.h: the model's and the EMA's weights, the
// optimiser's moments and step counts, the noise seed and step words), into a small moons run: the
// model, optimiser and EMA of tests/bad_inputs/good/moons_tiny.json (written out below, as the target
// cannot count on finding the source tree), whose checkpoint good_run/ is the corpus's seed.
//
// The loader documents fm::Error (FormatError for a damaged or foreign file, ShapeError/ValueError for
// tensors that do not fit the model); anything else escaping is a bug, and so is a crash in the
// training step that follows an accepted checkpoint (one step runs after each: whatever a file can
// put into the state, the step takes or refuses with an fm::Error).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "core/io/atomic_file.h"
#include "tools/config.h"
#include "tools/run_setup.h"

namespace {

// The run, built once: a tiny MLP on moons with Adam and an EMA, on the CPU.
fm::tools::RunObjects& run() {
  static fm::tools::RunObjects objects = [] {
    const fm::tools::Json config = fm::tools::resolve_config(fm::tools::parse_config_text(
        R"({"device": "cpu", "data": {"name": "moons"}, "model": {"type": "mlp", "hidden_width": 8, "hidden_layers": 1},
            "train": {"steps": 4, "batch_size": 16, "lr": 1e-3, "seed": 1, "log_every": 1, "checkpoint_every": 2,
                      "ema_decay": 0.9}})",
        "fuzz config"));
    return fm::tools::build_run_objects(config, fm::Device::CPU);
  }();
  return objects;
}

// The file the loader reads (it takes a path): one scratch file, rewritten for each input and
// removed when the process ends (by the static's destructor, after which nothing reads the path).
struct ScratchFile {
  std::string path;
  ScratchFile() {
    char name[] = "/tmp/fm_fuzz_checkpoint.XXXXXX";
    const int fd = ::mkstemp(name);
    if (fd < 0) std::abort();
    ::close(fd);
    path = name;
  }
  ~ScratchFile() { std::remove(path.c_str()); }
};
const std::string& scratch_path() {
  static const ScratchFile file;
  return file.path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fm::tools::RunObjects& objects = run();
  fm::io::write_file_atomically(scratch_path(), std::string(reinterpret_cast<const char*>(data), size));
  // FM_FUZZ_SAY=1: one line per input saying whether it loaded (to see what a corpus reaches).
  static const bool say = std::getenv("FM_FUZZ_SAY") != nullptr;
  try {
    objects.trainer->load_checkpoint(scratch_path());
  } catch (const fm::Error& e) {
    if (say) std::fprintf(stderr, "refused: %s\n", e.what());
    return 0;
  }
  if (say) std::fprintf(stderr, "loaded: step %lld\n", (long long)objects.trainer->step());
  try {
    objects.trainer->run_step();
    (void)objects.trainer->last_step_stats();
  } catch (const fm::Error&) {
  }
  return 0;
}
