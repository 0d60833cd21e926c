// tests/mpi_jobs.h — what the tests that run our binaries under mpirun share: finding mpirun, skipping
// visibly where it or MPI is missing, and the environment the ranks need in CI.
//
// The environment: root (CI runs as root, which Open MPI refuses unless told), containers (no
// cross-memory attach for Open MPI's shared-memory transport), one OpenMP thread per rank (the ranks
// share two cores in CI), and, in the sanitizer build (FM_SANITIZE), LeakSanitizer told to ignore
// what Open MPI's own libraries leave allocated (tests/lsan_openmpi.supp), never our code's leaks.
#pragma once
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "core/distributed.h"
#include "test_util.h"

namespace fm::test {

// The absolute path of `name` found on PATH, or "" when it is not there.
inline std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::filesystem::path candidate = std::filesystem::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0 && !std::filesystem::is_directory(candidate)) return candidate.string();
  }
  return "";
}

// Reports the running case as skipped and why; the caller returns. Run alone by CTest, the process
// exits with 77, so CTest shows "Skipped", not "Passed".
inline void skip_case(const std::string& why) {
  report_skipped(Catch::getResultCapture().getCurrentTestName().c_str(), why);
}

// True (after printing why, and ending the case as "Skipped" under CTest) when mpirun jobs cannot be
// tested here.
inline bool skip_without_mpirun() {
  std::string why;
  if (!fm::dist::built_with_mpi())
    why = "this build has no MPI (install libopenmpi-dev and reconfigure)";
  else if (find_on_path("mpirun").empty())
    why = "mpirun is not on PATH (install openmpi-bin)";
  if (why.empty()) return false;
  skip_case(why);
  return true;
}

// VAR=value words for /usr/bin/env: what every child (and mpirun) gets on top of ours.
inline std::vector<std::string> child_environment(bool under_mpirun) {
  std::vector<std::string> env = {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
                                  "OMPI_MCA_btl_vader_single_copy_mechanism=none", "OMP_NUM_THREADS=1"};
#if defined(__SANITIZE_ADDRESS__)
  // Open MPI keeps allocations until exit (ORTE's job state, the component registry, ...) that
  // LeakSanitizer reports in every rank. The suppressions name only Open MPI's libraries, so a leak
  // allocated by our code alone still fails the run. They can match only a complete allocation
  // stack: Open MPI is built without frame pointers and the fast unwinder's stacks stop at the first
  // frame inside it, so the ranks unwind malloc stacks with the slower DWARF unwinder (measured: a
  // 200-step moons rank takes 1.6x as long). Both add to whatever options CTest's environment gives.
  const auto with = [](const char* variable, const std::string& more) {
    const char* given = std::getenv(variable);
    return std::string(variable) + "=" + (given && *given ? std::string(given) + ":" : "") + more;
  };
  if (under_mpirun) {  // a process without a launcher never starts MPI
    env.push_back(with("ASAN_OPTIONS", "fast_unwind_on_malloc=0"));
    env.push_back(with("LSAN_OPTIONS", "suppressions=" + std::string(FM_SOURCE_DIR) + "/tests/lsan_openmpi.supp"));
  }
#else
  (void)under_mpirun;
#endif
  return env;
}

}  // namespace fm::test
