// fuzz/replay_main.cpp — replays saved fuzz inputs through one fuzz target without libFuzzer, so the
// normal (GCC) build and CTest check the corpus and every input that once crashed.
//
//   fuzz_replay_<target> DIR_OR_FILE...
//
// Linked with one fuzz/fuzz_<target>.cpp, whose LLVMFuzzerTestOneInput catches the errors its
// parser documents (fm::Error). An exception escaping it is reported with the input's name and makes
// the exit code 1; a crash (abort, segfault) ends the process and fails the test by itself. No input
// at all is an error too, so a wrong folder in the test definition cannot pass silently.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    fs::path root = argv[i];
    if (fs::is_regular_file(root)) {
      inputs.push_back(root);
    } else if (fs::is_directory(root)) {
      for (const auto& entry : fs::recursive_directory_iterator(root))
        if (entry.is_regular_file()) inputs.push_back(entry.path());
    } else {
      std::fprintf(stderr, "replay: %s: no such file or folder\n", root.c_str());
      return 2;
    }
  }
  std::sort(inputs.begin(), inputs.end());
  if (inputs.empty()) {
    std::fprintf(stderr, "replay: no inputs found under the given folders\n");
    return 2;
  }
  int failures = 0;
  for (const fs::path& path : inputs) {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::fprintf(stderr, "replay: %s: cannot read\n", path.c_str());
      return 2;
    }
    // Exercise the parser on a buffer of exactly the input's size, as libFuzzer does, so a read past
    // the end is not hidden by std::string's terminating NUL when run under a sanitizer.
    std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
    try {
      LLVMFuzzerTestOneInput(data.data(), data.size());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "FAIL %s: an exception other than fm::Error escaped: %s\n", path.c_str(), e.what());
      ++failures;
    } catch (...) {
      std::fprintf(stderr, "FAIL %s: a non-std exception escaped\n", path.c_str());
      ++failures;
    }
  }
  std::printf("replay: %zu inputs, %d failed\n", inputs.size(), failures);
  return failures == 0 ? 0 : 1;
}
