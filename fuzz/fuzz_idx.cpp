// fuzz/fuzz_idx.cpp — libFuzzer target: any bytes through the IDX image and label readers
// (fm::io::decode_idx_images / decode_idx_labels, behind the Fashion-MNIST loaders), both plain and
// gzip-compressed: input that starts with the gzip magic is inflated by the reader itself.
//
// The readers document fm::FormatError; anything else escaping, or sizes that disagree with the
// bytes returned, is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "core/io/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // The magic decides which of the two succeeds; both run, so both parsers see every input.
  try {
    fm::io::IdxImages images = fm::io::decode_idx_images(bytes, "fuzz-images-idx3-ubyte");
    if (images.count <= 0 || images.rows <= 0 || images.cols <= 0 ||
        images.pixels.size() != std::uint64_t(images.count) * images.rows * images.cols)
      std::abort();
  } catch (const fm::Error&) {
  }
  try {
    fm::io::IdxLabels labels = fm::io::decode_idx_labels(bytes, "fuzz-labels-idx1-ubyte");
    if (labels.count <= 0 || labels.labels.size() != std::uint64_t(labels.count)) std::abort();
  } catch (const fm::Error&) {
  }
  return 0;
}
