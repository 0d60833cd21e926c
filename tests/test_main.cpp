// tests/test_main.cpp — the Catch2 main shared by every test executable. After the run it says how
// many GPU cases were skipped, so a run by hand on a machine without a GPU cannot pass silently.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "test_util.h"

int main(int argc, char* argv[]) {
  int result = Catch::Session().run(argc, argv);
  if (int skipped = fm::test::skipped_gpu_cases())
    std::printf("SKIPPED: %d GPU test case(s) did not run (no CUDA device); they are not passes\n",
                skipped);
  return result;
}
