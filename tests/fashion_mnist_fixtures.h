// tests/fashion_mnist_fixtures.h — the one check a test makes before it reads the real Fashion-MNIST
// files (Debian's dataset-fashion-mnist, where tools/fashion_mnist_files.h says): installed, or the
// case reports itself as skipped rather than passing without having run.
#pragma once
#include <catch2/catch.hpp>

#include <filesystem>
#include <initializer_list>
#include <string>

#include "test_util.h"
#include "tools/fashion_mnist_files.h"

namespace fm::test {

enum class FashionMnistFiles { ImagesOnly, ImagesAndLabels };

// True when a file of `splits` ("train", "t10k") is missing: the case is then reported as skipped
// (printed, and exit code 77 when CTest runs the case alone, which CTest shows as "Skipped"); the
// caller returns.
inline bool fashion_mnist_missing(std::initializer_list<const char*> splits = {"train", "t10k"},
                                  FashionMnistFiles files = FashionMnistFiles::ImagesAndLabels) {
  for (const char* split : splits) {
    std::string paths[2] = {tools::fashion_mnist_images_path(tools::kFashionMnistDir, split),
                            tools::fashion_mnist_labels_path(tools::kFashionMnistDir, split)};
    for (int i = 0; i < (files == FashionMnistFiles::ImagesAndLabels ? 2 : 1); ++i) {
      if (std::filesystem::exists(paths[i])) continue;
      report_skipped(Catch::getResultCapture().getCurrentTestName().c_str(),
                     paths[i] + " not found (install dataset-fashion-mnist)");
      return true;
    }
  }
  return false;
}

}  // namespace fm::test
