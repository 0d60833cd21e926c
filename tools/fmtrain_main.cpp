// tools/fmtrain_main.cpp — `fmtrain`: train a flow-matching model from a JSON config.
//
//   fmtrain CONFIG.json [--out DIR] [--set key.path=value ...]
//   fmtrain --resume RUN_DIR [--set train.steps=N ...]
//   mpirun -np N fmtrain CONFIG.json ...   (data parallel: N ranks share each batch; docs/11)
//
// The run directory gets config.json (resolved), metrics.jsonl, checkpoint.safetensors,
// samples.npy + samples.png, loss.png and summary.json. Bad input is one line on stderr and exit 2,
// before anything is written. Ctrl-C finishes the current step, saves a checkpoint and exits.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "core/distributed.h"
#include "core/error.h"
#include "tools/config.h"
#include "tools/fmtrain_args.h"
#include "tools/ranks.h"
#include "tools/train_run.h"

namespace {

const char* kUsage =
    "usage: fmtrain CONFIG.json [--out DIR] [--set key.path=value ...] [--quiet]\n"
    "       fmtrain --resume RUN_DIR [--set train.steps=N ...] [--quiet]\n"
    "       fmtrain --help      (lists every config key, its default and allowed values)\n";

void on_signal(int) { fm::tools::request_stop(); }

}  // namespace

int main(int argc, char** argv) {
  // Under mpirun: one rank of a data-parallel job (tools/ranks.h); otherwise a single process.
  return fm::tools::run_ranked("fmtrain", &argc, &argv, [&] {
    fm::tools::TrainRequest request = fm::tools::parse_train_args(argc, argv);
    if (request.help) {
      if (fm::dist::is_root())
        std::cout << kUsage << "\nconfig keys (dotted path = default — allowed; meaning):\n"
                  << fm::tools::describe_schema();
      return 0;
    }
    // mpirun passes SIGINT/SIGTERM on to every rank; the ranks agree to stop at the same step.
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    // Past a file-size limit (ulimit -f) a write then fails with EFBIG, which the atomic writer reports
    // as a one-line error naming the file, instead of the signal killing the run without a word.
    std::signal(SIGXFSZ, SIG_IGN);
    return fm::tools::run_training(request);
  });
}
