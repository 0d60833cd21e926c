// tests/test_tools_output_files.cpp — tools/output_files.h: the files a command will write are checked
// before its work. What the command-line tools print for each refusal is in the bad-input corpus
// (tests/bad_inputs/cases.tsv, the out_* rows); here the cases a table of one-line commands cannot
// set up: the same file under another name (a link), a folder that takes no file (read-only), and
// the probe file leaving nothing behind.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "test_util.h"
#include "tools/output_files.h"

namespace fs = std::filesystem;
using fm::tools::check_output_files;

TEST_CASE("output files are checked before the work, and the check leaves nothing behind", "[tools][output_files]") {
  const fm::test::TempDir dir("fm_test_output_files");
  const std::string checkpoint = dir.write("run.safetensors", "weights");
  const std::string samples = dir.file("samples.png"), npy = dir.file("samples.npy");

  // Good outputs pass, and the folder holds what it held (the probe file is gone).
  check_output_files({{"--out", samples}, {"--npy", npy}}, {{"--checkpoint", checkpoint}, {"--classifier", ""}});
  REQUIRE(dir.entries() == std::vector<std::string>{"run.safetensors"});
  // An output that exists already (to be replaced) is fine too.
  dir.write("samples.png", "old");
  check_output_files({{"--out", samples}}, {{"--checkpoint", checkpoint}});

  // The checkpoint under another name: through "..", and through a symbolic link.
  const std::string roundabout = (dir.path / ".." / dir.path.filename() / "run.safetensors").string();
  REQUIRE_THROWS_WITH(check_output_files({{"--npy", roundabout}}, {{"--checkpoint", checkpoint}}),
                      "--npy: " + roundabout + " is also --checkpoint, which this command reads; choose another output file");
  fs::create_symlink(checkpoint, dir.file("link.safetensors"));
  REQUIRE_THROWS_AS(check_output_files({{"--out", dir.file("link.safetensors")}}, {{"--checkpoint", checkpoint}}),
                    fm::ConfigError);
  // Two outputs that are one file.
  REQUIRE_THROWS_WITH(check_output_files({{"--out", samples}, {"--npy", dir.file("./samples.png")}}),
                      "--out and --npy: both name " + dir.file("./samples.png") + "; give each its own file");

  // Names that are not files.
  REQUIRE_THROWS_WITH(check_output_files({{"--csv", ""}}), "--csv: an empty file name; expected a file path");
  REQUIRE_THROWS_AS(check_output_files({{"--csv", dir.path.string() + "/"}}), fm::ConfigError);
  REQUIRE_THROWS_WITH(check_output_files({{"--csv", dir.path.string()}}),
                      "--csv: " + dir.path.string() + " is a folder; expected a file path");
  REQUIRE_THROWS_WITH(check_output_files({{"--csv", dir.file("none/x.csv")}}),
                      "--csv: folder " + dir.file("none") + " does not exist");
  REQUIRE_THROWS_AS(check_output_files({{"--csv", dir.file("none/x.csv")}}), fm::IOError);

  // A folder that takes no new file. (Root ignores permission bits, so this part needs another user.)
  fs::create_directory(dir.file("locked"));
  fs::permissions(dir.file("locked"), fs::perms::owner_read | fs::perms::owner_exec);
  if (::geteuid() != 0) {
    REQUIRE_THROWS_WITH(check_output_files({{"--png", dir.file("locked/x.png")}}),
                        Catch::StartsWith("--png: cannot create a file in folder " + dir.file("locked") + " ("));
  } else {
    REQUIRE_THROWS_WITH(check_output_files({{"--png", "/proc/fm_x.png"}}),
                        Catch::StartsWith("--png: cannot create a file in folder /proc ("));
  }
  fs::permissions(dir.file("locked"), fs::perms::owner_all);
  REQUIRE(fs::is_empty(dir.file("locked")));
}
