// tools/ranks.cpp — rank set-up and error handling of the tools (see ranks.h).
#include "tools/ranks.h"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>

#include "core/distributed.h"
#include "core/error.h"
#include "kernels/runtime.h"

namespace fm::tools {

void start_ranks(int* argc, char*** argv) {
  dist::init_from_environment(argc, argv);
  if (!dist::active()) return;
  kernels::cuda_use_device(dist::local_rank());
  // N ranks on one machine each running all its cores would fight over them; OpenMP's default is
  // the cores of this process's affinity mask, which mpirun narrows only when it binds.
  const char* threads = std::getenv("OMP_NUM_THREADS");
  if (!threads || !*threads) {
    const int cores = int(std::thread::hardware_concurrency());
    const int share = std::max(1, cores / std::max(1, dist::local_size()));
    if (omp_get_max_threads() > share) omp_set_num_threads(share);
  }
}

int run_ranked(const char* tool, int* argc, char*** argv, const std::function<int()>& body) {
  int code = 0;
  bool failed = false;
  std::string message;
  try {
    start_ranks(argc, argv);
    code = body();
  } catch (const Error& e) {
    failed = true;
    code = 2;
    message = e.what();
  } catch (const std::exception& e) {
    failed = true;
    code = 1;
    message = cat("unexpected error: ", e.what());
  }
  if (failed) {
    const std::string tag = dist::active() ? cat(" [", dist::rank_tag(), "]") : std::string();
    std::fprintf(stderr, "%s%s: %s\n", tool, tag.c_str(), message.c_str());
    if (dist::active()) dist::abort_job(code);  // ends every rank now: none waits for this one
  }
  dist::finalize();
  return code;
}

}  // namespace fm::tools
