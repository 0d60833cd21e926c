// fuzz/fuzz_cli_args.cpp — libFuzzer target: arbitrary command lines through the argument parsers of
// every tool: fmtrain (tools/fmtrain_args.h, then its --set overrides through tools/config.h) and
// fmsample / fmeval / fmeval train-classifier / fmeval sweep (tools/cli_args.h CliArgs with each one's
// flag set, then the typed getters and list parsers each tool calls).
//
// Input layout: the first byte picks the tool (modulo 5), the rest is split at NUL bytes into the
// arguments after the program name. The flag sets are the tools' own (tools/tool_flags.h). Every
// documented failure is an fm::Error (ConfigError); anything else escaping is a bug.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/kernel_choice.h"
#include "tools/cli_args.h"
#include "tools/config.h"
#include "tools/fmtrain_args.h"
#include "tools/tool_flags.h"

namespace {

// Runs one step of a tool's argument handling; a ConfigError ends only that step, so the fuzzer
// reaches every getter whatever the earlier flags held.
template <typename Step>
void attempt(Step step) {
  try {
    step();
  } catch (const fm::Error&) {
  }
}

void fmtrain(int argc, char** argv) {
  fm::tools::TrainRequest request = fm::tools::parse_train_args(argc, argv);
  fm::tools::Json user = fm::tools::Json::object();
  attempt([&] { fm::tools::apply_overrides(user, request.overrides); });
  attempt([&] { fm::tools::resolve_config(user); });
}

void fmsample(int argc, char** argv) {
  const fm::tools::ToolFlags& flags = fm::tools::fmsample_flags();
  fm::tools::CliArgs args(argc, argv, flags.value_flags, flags.switch_flags);
  attempt([&] { args.required("--checkpoint"); });
  attempt([&] { fm::parse_kernel_impl(args.required("--kernels")); });
  attempt([&] { args.integer("--steps", 1, 1000000); });
  attempt([&] { args.number("--rtol", 1e-12, 1.0); });
  attempt([&] { args.number("--atol", 1e-12, 1.0); });
  attempt([&] { args.integer("--n", 1, 10000000); });
  attempt([&] { args.integer("--seed", 0, 1LL << 53); });
  args.get("--out", "samples.png");
}

void fmeval_evaluate(int argc, char** argv) {
  const fm::tools::ToolFlags& flags = fm::tools::fmeval_evaluate_flags();
  fm::tools::CliArgs args(argc, argv, flags.value_flags, flags.switch_flags);
  attempt([&] { args.integer("--n", 2, 10000000); });
  attempt([&] { args.integer("--floor-draws", 1, 100); });
  attempt([&] { args.required("--solver"); });
  attempt([&] { args.integer("--steps", 1, 1000000); });
  attempt([&] { args.number("--rtol", 1e-12, 1.0); });
  attempt([&] { args.number("--atol", 1e-12, 1.0); });
  attempt([&] { args.integer("--seed", 0, 1LL << 53); });
  attempt([&] { fm::parse_kernel_impl(args.required("--kernels")); });
}

void fmeval_train_classifier(int argc, char** argv) {
  const fm::tools::ToolFlags& flags = fm::tools::fmeval_train_classifier_flags();
  fm::tools::CliArgs args(argc, argv, flags.value_flags, flags.switch_flags);
  attempt([&] { args.integer("--epochs", 1, 1000); });
  attempt([&] { args.integer("--seed", 0, 1LL << 53); });
  attempt([&] { args.integer("--batch-size", 1, 1 << 20); });
  attempt([&] { args.number("--lr", 1e-8, 1.0); });
}

void fmeval_sweep(int argc, char** argv) {
  const fm::tools::ToolFlags& flags = fm::tools::fmeval_sweep_flags();
  fm::tools::CliArgs args(argc, argv, flags.value_flags, flags.switch_flags);
  attempt([&] { args.integer("--n", 2, 10000000); });
  attempt([&] { args.required("--only"); });
  attempt([&] { fm::tools::parse_list<int>("--nfe", args.required("--nfe")); });
  attempt([&] { fm::tools::parse_list<std::string>("--solvers", args.required("--solvers")); });
  attempt([&] { fm::tools::parse_list<double>("--tolerances", args.required("--tolerances")); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const char* const kPrograms[] = {"fmtrain", "fmsample", "fmeval", "train-classifier", "sweep"};
  const int tool = data[0] % 5;
  std::vector<std::string> words{kPrograms[tool]};
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  while (!rest.empty()) {
    std::size_t nul = rest.find('\0');
    words.emplace_back(rest.substr(0, nul));
    rest = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
  }
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);  // a real argv ends with a null pointer
  const int argc = static_cast<int>(words.size());
  try {
    switch (tool) {
      case 0: fmtrain(argc, argv.data()); break;
      case 1: fmsample(argc, argv.data()); break;
      case 2: fmeval_evaluate(argc, argv.data()); break;
      case 3: fmeval_train_classifier(argc, argv.data()); break;
      case 4: fmeval_sweep(argc, argv.data()); break;
    }
  } catch (const fm::Error&) {
  }
  return 0;
}
