// tests/test_bad_inputs.cpp — the bad-input corpus: every row of tests/bad_inputs/cases.tsv runs one
// of the real tools (fmtrain, fmsample, fmeval) on one malformed input and checks that it is refused
// the way the CLI promises: exit code 2, exactly one line on stderr that starts with the tool's name
// and holds the row's expected text, nothing on stdout, and nothing written — the row's folder (the
// tool's working directory, where every output path of the table points) is byte for byte what it
// was before, and so is the corpus itself.
//
// Each row is its own Catch2 test case ("bad input: <name>"), so CTest lists and runs every row on
// its own; the cases are registered at start-up from the table. The binaries come from the build's
// bin/ folder, next to this test, and the corpus from the source tree (FM_BAD_INPUTS_DIR, set by
// tests/CMakeLists.txt). The inputs are checked-in files (see tests/bad_inputs/make_bad_inputs.py);
// only the tiny feature classifier fmeval needs is written here, through the project's own writer.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "nn/classifier.h"
#include "tools/eval_classifier.h"
#include "child_process.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;

const fs::path kCorpus = FM_BAD_INPUTS_DIR;
// A tool that runs longer than this is killed (SIGALRM) and the row fails: refusals are instant.
constexpr unsigned kTimeoutSeconds = 120;

struct Row {
  int line = 0;                   // in cases.tsv, for messages
  std::string name, tool, setup;  // setup: "-", or "run [FILE=SOURCE ...]"
  std::vector<std::string> args;  // with {placeholders}
  std::string expected;           // a substring of the one stderr line
};

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, separator)) parts.push_back(part);
  if (!text.empty() && text.back() == separator) parts.emplace_back();
  return parts;
}

// name TAB tool TAB setup TAB arguments (separated by spaces) TAB expected; '#' starts a comment line.
std::vector<Row> read_table(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(file.string() + ": cannot open the table");
  std::vector<Row> rows;
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    if (text.empty() || text[0] == '#') continue;
    std::vector<std::string> fields = split(text, '\t');
    if (fields.size() != 5)
      throw std::runtime_error(file.string() + ":" + std::to_string(line) + ": " + std::to_string(fields.size()) +
                               " tab-separated fields, expected 5 (name, tool, setup, arguments, expected)");
    Row row{line, fields[0], fields[1], fields[2], {}, fields[4]};
    for (const std::string& arg : split(fields[3], ' '))
      if (!arg.empty()) row.args.push_back(arg == "{empty}" ? "" : arg);
    if (row.expected.empty())
      throw std::runtime_error(file.string() + ":" + std::to_string(line) + ": no expected text");
    rows.push_back(row);
  }
  return rows;
}

std::vector<Row> g_rows;
std::string g_table_error;

// ---- running a tool ------------------------------------------------------------------------------

struct Outcome {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out, err;
};

std::string read_all(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs the built tool with `args` in `cwd`; stdout and stderr go to files in `capture` (outside cwd,
// so they do not count as written by the tool).
Outcome run_tool(const std::string& tool, const std::vector<std::string>& args, const fs::path& cwd,
                 const fs::path& capture) {
  fm::test::SpawnOptions options;
  options.cwd = cwd;
  options.stdout_path = (capture / "stdout").string();
  options.stderr_path = (capture / "stderr").string();
  options.timeout_seconds = kTimeoutSeconds;
  const int code = fm::test::spawn(fm::test::tool_path(tool).string(), args, options).wait();
  Outcome outcome;
  if (code >= 0) outcome.exit_code = code;
  else outcome.signal = -code;
  outcome.out = read_all(options.stdout_path);
  outcome.err = read_all(options.stderr_path);
  return outcome;
}

// ---- what a folder holds ---------------------------------------------------------------------------

// Every file and folder under `root`: relative path → contents ("<folder>" for folders).
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> entries;
  if (!fs::exists(root)) return entries;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    const std::string name = fs::relative(entry.path(), root).string();
    entries[name] = entry.is_directory() ? "<folder>" : read_all(entry.path());
  }
  return entries;
}

// "" when equal, else which paths appeared, disappeared or changed.
std::string compare_snapshots(const std::map<std::string, std::string>& before,
                              const std::map<std::string, std::string>& after) {
  std::string report;
  for (const auto& [name, contents] : after) {
    auto it = before.find(name);
    if (it == before.end()) report += " new: " + name + ";";
    else if (it->second != contents) report += " changed: " + name + ";";
  }
  for (const auto& [name, contents] : before)
    if (!after.count(name)) report += " removed: " + name + ";";
  return report;
}

// ---- the inputs a row refers to ----------------------------------------------------------------------

// A tiny feature classifier (fmeval needs one before it looks at its other inputs), written once per
// process with tools::save_classifier; its weights are random, which is all a refusal needs.
const std::string& tiny_classifier() {
  static fm::test::TempDir dir("fm_bad_inputs_classifier");
  static const std::string path = [] {
    fm::nn::ClassifierConfig config;
    config.stem_channels = 2;
    config.middle_channels = 2;
    config.last_channels = 2;
    config.groups = 1;
    config.feature_dim = 4;
    fm::Generator gen(0);
    fm::nn::ConvClassifier model(config, gen);
    std::string file = dir.file("classifier.safetensors");
    fm::tools::save_classifier(file, model, {});
    return file;
  }();
  return path;
}

std::string expand(std::string text, const std::map<std::string, std::string>& values) {
  for (std::size_t open = text.find('{'); open != std::string::npos; open = text.find('{', open)) {
    std::size_t close = text.find('}', open);
    REQUIRE(close != std::string::npos);
    const std::string key = text.substr(open + 1, close - open - 1);
    std::string value;
    if (key == "classifier") {
      value = tiny_classifier();
    } else {
      auto it = values.find(key);
      INFO("unknown placeholder {" << key << "} in \"" << text << "\"");
      REQUIRE(it != values.end());
      value = it->second;
    }
    text.replace(open, close - open + 1, value);
    open += value.size();
  }
  return text;
}

// setup "run [FILE=SOURCE ...]": {work}/run becomes a copy of the corpus's good_run/, then each FILE
// in it is replaced by the corpus file SOURCE (or removed when SOURCE is empty).
void prepare(const Row& row, const fs::path& work) {
  if (row.setup == "-") return;
  std::vector<std::string> words = split(row.setup, ' ');
  INFO("setup \"" << row.setup << "\": expected \"-\" or \"run [FILE=SOURCE ...]\"");
  REQUIRE(words.at(0) == "run");
  fs::copy(kCorpus / "good_run", work / "run", fs::copy_options::recursive);
  for (std::size_t i = 1; i < words.size(); ++i) {
    const std::size_t eq = words[i].find('=');
    REQUIRE(eq != std::string::npos);
    const fs::path target = work / "run" / words[i].substr(0, eq);
    const std::string source = words[i].substr(eq + 1);
    fs::remove(target);
    if (!source.empty()) fs::copy_file(kCorpus / source, target);
  }
}

std::string command_text(const std::string& tool, const std::vector<std::string>& args) {
  std::string text = tool;
  for (const std::string& a : args) text += " " + (a.empty() ? std::string("''") : a);
  return text;
}

void check_row(const Row& row) {
  fm::test::TempDir work_dir("fm_bad_input"), capture_dir("fm_bad_input_capture");
  const fs::path work = work_dir.path;
  prepare(row, work);
  const std::map<std::string, std::string> values = {
      {"in", kCorpus.string()},
      {"work", work.string()},
      {"out", (work / "out").string()},
      {"run", (work / "run").string()},
      {"data", (kCorpus / "idx" / "good").string()},
      {"good_checkpoint", (kCorpus / "good_run" / "checkpoint.safetensors").string()},
  };
  std::vector<std::string> args;
  for (const std::string& a : row.args) args.push_back(expand(a, values));
  const auto work_before = snapshot(work), corpus_before = snapshot(kCorpus);

  const Outcome outcome = run_tool(row.tool, args, work, capture_dir.path);

  INFO("case " << row.name << " (cases.tsv line " << row.line << ")");
  INFO("command: (cd " << work.string() << " && " << command_text(row.tool, args) << ")");
  INFO("exit code " << outcome.exit_code << (outcome.signal ? ", killed by signal " + std::to_string(outcome.signal) : ""));
  INFO("stderr: <<" << outcome.err << ">>");
  INFO("stdout: <<" << outcome.out << ">>");
  CHECK(outcome.exit_code == 2);
  // Exactly one line: one newline, at the end.
  CHECK(std::count(outcome.err.begin(), outcome.err.end(), '\n') == 1);
  CHECK((!outcome.err.empty() && outcome.err.back() == '\n'));
  CHECK(outcome.err.rfind(row.tool + ": ", 0) == 0);
  INFO("expected in stderr: " << row.expected);
  CHECK(outcome.err.find(row.expected) != std::string::npos);
  CHECK(outcome.out.empty());
  const std::string written = compare_snapshots(work_before, snapshot(work));
  INFO("written in the row's folder:" << written);
  CHECK(written.empty());
  const std::string corpus_changes = compare_snapshots(corpus_before, snapshot(kCorpus));
  INFO("written in the corpus:" << corpus_changes);
  CHECK(corpus_changes.empty());
}

// One Catch2 test case per row, registered before main runs (so --list-test-names-only, which
// catch_discover_tests uses, sees them all).
class RowInvoker : public Catch::ITestInvoker {
 public:
  explicit RowInvoker(std::size_t index) : index_(index) {}
  void invoke() const override { check_row(g_rows.at(index_)); }

 private:
  std::size_t index_;
};

struct RegisterRows {
  RegisterRows() {
    try {
      g_rows = read_table(kCorpus / "cases.tsv");
    } catch (const std::exception& e) {
      g_table_error = e.what();  // reported by the table's own test case below
      return;
    }
    for (std::size_t i = 0; i < g_rows.size(); ++i) {
      const std::string name = "bad input: " + g_rows[i].name;
      Catch::AutoReg(new RowInvoker(i), Catch::SourceLineInfo(__FILE__, static_cast<std::size_t>(__LINE__)),
                     Catch::StringRef(), Catch::NameAndTags(name, "[bad_inputs]"));
    }
  }
} g_register_rows;

}  // namespace

TEST_CASE("the bad-input table is well formed: at least 50 distinct rows", "[bad_inputs]") {
  INFO(g_table_error);
  REQUIRE(g_table_error.empty());
  std::set<std::string> names, inputs;
  const std::set<std::string> tools = {"fmtrain", "fmsample", "fmeval"};
  for (const Row& row : g_rows) {
    INFO("cases.tsv line " << row.line << ": " << row.name);
    CHECK(names.insert(row.name).second);  // unique names
    std::string input = row.tool + "|" + row.setup;
    for (const std::string& a : row.args) input += "|" + a;
    CHECK(inputs.insert(input).second);  // no two rows run the same command on the same files
    CHECK(tools.count(row.tool));
  }
  CHECK(inputs.size() >= 50);
}

// The corpus breaks good files; these runs show the good files themselves are accepted, so a row
// that is refused is refused for its own defect, not because the base file went stale (remake the
// corpus with make_bad_inputs.py --fmtrain when this fails).
TEST_CASE("the good inputs behind the corpus are accepted", "[bad_inputs]") {
  fm::test::TempDir work("fm_bad_input_good"), capture("fm_bad_input_good_capture");
  auto run_ok = [&](const std::string& tool, const std::vector<std::string>& args) {
    Outcome outcome = run_tool(tool, args, work.path, capture.path);
    INFO("command: " << command_text(tool, args) << "\nexit code " << outcome.exit_code << "\nstderr: "
                     << outcome.err);
    REQUIRE(outcome.exit_code == 0);
  };
  const std::string good_checkpoint = (kCorpus / "good_run" / "checkpoint.safetensors").string();
  const std::string data = (kCorpus / "idx" / "good").string();
  run_ok("fmsample", {"--checkpoint", good_checkpoint, "--n", "8", "--steps", "2", "--out", work.file("s.png")});
  REQUIRE(fs::exists(work.file("s.png")));
  run_ok("fmeval", {"--samples", (kCorpus / "npy" / "good_samples.npy").string(), "--classifier", tiny_classifier(),
                    "--data-dir", data, "--n", "4", "--floor-draws", "1"});
  fs::copy(kCorpus / "good_run", work.path / "run", fs::copy_options::recursive);
  run_ok("fmtrain", {"--resume", work.file("run"), "--set", "train.steps=6", "--quiet"});
  run_ok("fmtrain", {(kCorpus / "good" / "fashion_tiny.json").string(), "--set", "data.dir=" + data, "--out",
                     work.file("images"), "--quiet"});
}
