// tests/test_sharded_sampling.cpp — sampling and evaluation split over the ranks of an mpirun job
// (tools/sharded_sampling.h): the shares, and the real binaries under `mpirun -np 2/3` against one
// process — fmsample's samples.npy bitwise, fmeval nll's and guidance's numbers and CSVs the same, and
// fmeval nll going on under 3 ranks from a one-process run's progress file.
// The mpirun cases skip themselves (exit 77 under CTest) when mpirun is not on PATH or the build has
// no MPI.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "child_process.h"
#include "core/distributed.h"
#include "fmtrain_runs.h"
#include "mpi_jobs.h"
#include "test_util.h"
#include "tools/checkpoint_model.h"
#include "tools/nll_eval.h"
#include "tools/nll_progress.h"
#include "tools/sharded_sampling.h"

namespace fs = std::filesystem;

namespace {

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

using fm::test::skip_without_mpirun;

struct Outcome {
  int code = 0;
  std::string out, err;
};

// `tool args...` on one process (ranks == 1, no launcher) or under `mpirun --oversubscribe -np ranks`.
Outcome run_tool(int ranks, const std::string& tool, const std::vector<std::string>& args, const fs::path& scratch) {
  fm::test::SpawnOptions options;
  options.stdout_path = (scratch / "stdout").string();
  options.stderr_path = (scratch / "stderr").string();
  options.timeout_seconds = 120;
  // Through /usr/bin/env with the ranks' environment (tests/mpi_jobs.h), mpirun first when ranks > 1.
  std::vector<std::string> launch = fm::test::child_environment(ranks > 1);
  if (ranks > 1)
    for (const std::string& word : {fm::test::find_on_path("mpirun"), std::string("--oversubscribe"),
                                    std::string("-np"), std::to_string(ranks)})
      launch.push_back(word);
  launch.push_back(fm::test::tool_path(tool).string());
  launch.insert(launch.end(), args.begin(), args.end());
  Outcome outcome;
  outcome.code = fm::test::spawn("/usr/bin/env", launch, options).wait();
  outcome.out = read_all(options.stdout_path);
  outcome.err = read_all(options.stderr_path);
  return outcome;
}

// A printed report without what may differ between runs: timings and the names of the files written.
std::string without_timings(const std::string& text, const std::string& file_stem) {
  std::string s = std::regex_replace(text, std::regex("\"(sampling_)?seconds\":[-0-9.e+]+"), "\"seconds\":_");
  s = std::regex_replace(s, std::regex("[0-9]+\\.[0-9]+ s\\b"), "_ s");
  return std::regex_replace(s, std::regex(file_stem + "[0-9]"), file_stem + "_");
}

// How many "nll: K/N examples" progress lines a run printed (one per round of batches).
int progress_lines(const std::string& err) {
  const std::regex line("nll: [0-9]+/[0-9]+ examples");
  return int(std::distance(std::sregex_iterator(err.begin(), err.end(), line), std::sregex_iterator()));
}

}  // namespace

TEST_CASE("rank shares cover the items once, in rank order, and whole chunks under dopri5", "[sharding]") {
  for (const std::int64_t n : {0, 1, 5, 512, 1000, 1100}) {
    for (const int ranks : {1, 2, 3, 7}) {
      for (const bool whole_chunks : {false, true}) {
        std::int64_t next = 0;
        for (int r = 0; r < ranks; ++r) {
          const fm::tools::ItemRange share = fm::tools::rank_share(n, 512, whole_chunks, r, ranks);
          REQUIRE(share.begin == next);
          REQUIRE(share.end >= share.begin);
          if (whole_chunks) REQUIRE((share.begin % 512 == 0 || share.begin == n));
          next = share.end;
        }
        REQUIRE(next == n);
      }
    }
  }
  // The brief's split: samples [n·r/N, n·(r+1)/N); dopri5's: chunks [C·r/N, C·(r+1)/N).
  CHECK(fm::tools::rank_share(1000, 512, false, 1, 2).begin == 500);
  CHECK(fm::tools::rank_share(1100, 512, true, 1, 3).begin == 512);   // 3 chunks: one each
  CHECK(fm::tools::rank_share(1100, 512, true, 2, 3).begin == 1024);
  CHECK(fm::tools::rank_share(1000, 512, true, 0, 3).end == 0);       // 2 chunks over 3 ranks: rank 0 idle
  REQUIRE_THROWS_AS(fm::tools::rank_share(10, 0, false, 0, 1), fm::ValueError);
  // Not inside a ShardOverRanks scope of a job: all of the work is this process's.
  CHECK(fm::tools::my_share(10, 4, false).begin == 0);
  CHECK(fm::tools::my_share(10, 4, false).end == 10);
}

TEST_CASE("fmsample under mpirun -np 2 and 3 writes one process's samples bitwise", "[sharding][mpirun]") {
  if (skip_without_mpirun()) return;
  const fm::test::TempDir scratch("fm_test_sharded_fmsample");
  const fs::path dir = scratch.path;
  const fs::path config = fm::test::write_small_run_config(dir / "cfg");
  REQUIRE(fm::test::train_run(config, dir / "run") == 0);
  const std::string checkpoint = (dir / "run" / "checkpoint.safetensors").string();
  // 1100 samples: three chunks of 512, so rank boundaries fall inside chunks (fixed-step solvers) or on
  // them (dopri5).
  for (const std::string& solver : {std::string("rk4"), std::string("dopri5")}) {
    const std::string one = (dir / (solver + "_1.png")).string();
    const Outcome single =
        run_tool(1, "fmsample", {"--checkpoint", checkpoint, "--n", "1100", "--solver", solver, "--out", one}, dir);
    REQUIRE(single.code == 0);
    const std::string expected = read_all(dir / (solver + "_1.npy"));
    REQUIRE(expected.size() > 1100 * 2 * 4);
    for (const int ranks : {2, 3}) {
      INFO(solver << " on " << ranks << " ranks");
      const std::string many = (dir / (solver + "_" + std::to_string(ranks) + ".png")).string();
      const Outcome sharded = run_tool(
          ranks, "fmsample", {"--checkpoint", checkpoint, "--n", "1100", "--solver", solver, "--out", many}, dir);
      INFO(sharded.err);
      REQUIRE(sharded.code == 0);
      CHECK(read_all(dir / (solver + "_" + std::to_string(ranks) + ".npy")) == expected);
      // Rank 0 alone prints: one report line, with one process's NFE.
      CHECK(without_timings(sharded.out, solver + "_") == without_timings(single.out, solver + "_"));
    }
  }
}

TEST_CASE("fmeval nll and guidance under mpirun print one process's numbers, and straight refuses", "[sharding][mpirun]") {
  if (skip_without_mpirun()) return;
  const fm::test::TempDir scratch("fm_test_sharded_fmeval");
  const fs::path dir = scratch.path;
  // A class-conditional moons model, for guidance (nll evaluates it with its null class).
  const fs::path config = fm::test::write_small_run_config(
      dir / "cfg", {{"model", {{"num_classes", 2}, {"class_embedding_dim", 4}}}, {"train", {{"label_dropout", 0.2}}}});
  REQUIRE(fm::test::train_run(config, dir / "run") == 0);
  const std::string checkpoint = (dir / "run" / "checkpoint.safetensors").string();

  // nll: 300 points in batches of 128, Hutchinson probes keyed by the example's index; and dopri5, whose
  // shares are whole batches.
  for (const std::vector<std::string>& flags : {std::vector<std::string>{"--divergence", "hutchinson", "--steps", "6"},
                                               std::vector<std::string>{"--solver", "dopri5"}}) {
    auto nll_args = [&](int ranks) {
      std::vector<std::string> args = {"nll", checkpoint, "--n", "300", "--batch", "128", "--csv",
                                       (dir / ("nll" + std::to_string(ranks) + ".csv")).string()};
      args.insert(args.end(), flags.begin(), flags.end());
      return args;
    };
    const Outcome single = run_tool(1, "fmeval", nll_args(1), dir);
    REQUIRE(single.code == 0);
    const Outcome sharded = run_tool(3, "fmeval", nll_args(3), dir);
    INFO(flags[1] << "\n" << sharded.err);
    REQUIRE(sharded.code == 0);
    // The work was split, not repeated: a progress line per round, and the ranks' pieces (3 batches over
    // 3 ranks) take fewer rounds than one process's three batches.
    CHECK(progress_lines(sharded.err) < progress_lines(single.err));
    CHECK(read_all(dir / "nll3.csv") == read_all(dir / "nll1.csv"));
    CHECK(without_timings(sharded.out, "nll") == without_timings(single.out, "nll"));

    // A one-process run stopped after its first batch (its progress file, tools/nll_progress.h), taken
    // up by 3 ranks: they evaluate the rest and write the uninterrupted run's CSV, then drop the file.
    std::vector<std::string> words = nll_args(2);
    std::vector<char*> argv;
    for (std::string& w : words) argv.push_back(w.data());
    fm::tools::NllEvalRequest request = fm::tools::parse_nll_args(int(argv.size()), argv.data());
    request.progress_file = fm::tools::nll_progress_path(request.csv);
    fm::tools::CheckpointModel loaded = fm::tools::load_checkpoint_model(checkpoint, request.device, "ema");
    fm::tools::evaluate_nll(loaded, request);
    fm::tools::Json file = fm::tools::Json::parse(std::ifstream(request.progress_file));
    file["index"] = std::vector<int>(file["index"].begin(), file["index"].begin() + 128);
    file["nll"] = std::vector<double>(file["nll"].begin(), file["nll"].begin() + 128);
    std::ofstream(request.progress_file) << file.dump();
    const Outcome resumed = run_tool(3, "fmeval", nll_args(2), dir);
    INFO(resumed.err);
    REQUIRE(resumed.code == 0);
    CHECK(resumed.err.find("128 of 300 examples finished earlier") != std::string::npos);
    CHECK(read_all(dir / "nll2.csv") == read_all(dir / "nll1.csv"));
    CHECK_FALSE(fs::exists(request.progress_file));
  }

  // guidance: two weights, 150 points per class from the same noise (300 a weight: split inside a chunk).
  auto guidance_args = [&](int ranks) {
    return std::vector<std::string>{"guidance", checkpoint, "--weights-list", "0,1", "--n", "150", "--csv",
                                    (dir / ("guidance" + std::to_string(ranks) + ".csv")).string()};
  };
  const Outcome single = run_tool(1, "fmeval", guidance_args(1), dir);
  REQUIRE(single.code == 0);
  const Outcome sharded = run_tool(2, "fmeval", guidance_args(2), dir);
  INFO(sharded.err);
  REQUIRE(sharded.code == 0);
  CHECK(read_all(dir / "guidance2.csv") == read_all(dir / "guidance1.csv"));
  CHECK(without_timings(sharded.out, "guidance") == without_timings(single.out, "guidance"));

  // A subcommand that does not split its work refuses in one line, naming itself.
  const Outcome straight = run_tool(2, "fmeval", {"straight", checkpoint, "--n", "50"}, dir);
  CHECK(straight.code != 0);
  CHECK(straight.err.find("straight: not sharded over ranks; run it with one process") != std::string::npos);
}
