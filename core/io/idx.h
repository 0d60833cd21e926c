// core/io/idx.h — MNIST-style IDX files (Fashion-MNIST images and labels), gzip-compressed or plain.
//
// Part of core/io/ (raw bytes only); flow/'s dataset code turns these into tensors. The format
// (http://yann.lecun.com/exdb/mnist/): a big-endian magic 0x000008NN (0x08 = unsigned bytes, NN = number
// of dims), then NN big-endian uint32 sizes, then the bytes in C order.
//   images: 0x00000803, count, rows, cols, count*rows*cols pixels (0 = background, 255 = ink)
//   labels: 0x00000801, count, count labels
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fm::io {

struct IdxImages {
  std::int64_t count = 0;
  int rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // count * rows * cols, image after image, row-major
};

struct IdxLabels {
  std::int64_t count = 0;
  std::vector<std::uint8_t> labels;
};

// Reads an image file. Both ".gz" and uncompressed files work (see decode_idx_images). Throws
// fm::IOError when the file cannot be opened or read, and fm::FormatError naming the file when it
// cannot be decompressed, is empty, has the wrong magic, zero images or sizes, or holds fewer or more
// pixel bytes than the header promises.
IdxImages read_idx_images(const std::string& path);

// Reads a label file; the same errors as read_idx_images.
IdxLabels read_idx_labels(const std::string& path);

// The same for a file already in memory (the path readers call these, so there is one parser).
// Bytes that start with the gzip magic 1f 8b are inflated first (several gzip members one after
// another are read as one stream, as gzip itself does); anything else is taken as plain IDX.
// `source` names the file in error messages. Throws fm::FormatError only.
IdxImages decode_idx_images(std::string_view file_bytes, const std::string& source);
IdxLabels decode_idx_labels(std::string_view file_bytes, const std::string& source);

// Images and their labels, checked to have the same count.
struct IdxLabelledImages {
  IdxImages images;
  IdxLabels labels;
};
IdxLabelledImages read_idx_labelled_images(const std::string& images_path, const std::string& labels_path);

}  // namespace fm::io
