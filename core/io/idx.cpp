// core/io/idx.cpp — IDX reader; gzip files are inflated in memory with zlib (see idx.h).
#include "core/io/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/io/atomic_file.h"

namespace fm::io {
namespace {

constexpr std::uint32_t kImagesMagic = 0x00000803;  // unsigned bytes, 3 dims
constexpr std::uint32_t kLabelsMagic = 0x00000801;  // unsigned bytes, 1 dim

bool starts_with_gzip_magic(std::string_view bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
         static_cast<unsigned char>(bytes[1]) == 0x8b;
}

// Inflates a whole gzip file in memory. Deflate expands at most about 1032:1, so the output is bounded
// by the input's size; nothing is allocated from a size stored in the file.
std::string gunzip(std::string_view compressed, const std::string& source) {
  z_stream stream{};
  // 16 + MAX_WBITS: expect a gzip wrapper (header, and a trailer whose CRC and length zlib checks).
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK)
    throw FormatError(cat(source, ": cannot start zlib's inflater (out of memory)"));
  struct EndInflate {
    z_stream& stream;
    ~EndInflate() { inflateEnd(&stream); }
  } end_inflate{stream};  // on every way out, thrown errors included
  std::string contents;
  std::size_t fed = 0;  // bytes of `compressed` handed to zlib so far (avail_in is 32-bit: feed in pieces)
  char chunk[1 << 16];
  auto fail = [&](const std::string& reason) {
    throw FormatError(cat(source, ": cannot decompress after ", contents.size(), " bytes: ", reason,
                          " (truncated or corrupt .gz?)"));
  };
  while (true) {
    if (stream.avail_in == 0 && fed < compressed.size()) {
      std::size_t piece = std::min<std::size_t>(compressed.size() - fed, 1u << 30);
      stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data() + fed));
      stream.avail_in = static_cast<uInt>(piece);
      fed += piece;
    }
    stream.next_out = reinterpret_cast<Bytef*>(chunk);
    stream.avail_out = sizeof(chunk);
    int status = inflate(&stream, Z_NO_FLUSH);
    contents.append(chunk, sizeof(chunk) - stream.avail_out);
    if (status == Z_STREAM_END) {
      std::size_t rest = stream.avail_in + (compressed.size() - fed);
      if (rest == 0) break;
      // Another gzip member follows (what `cat a.gz b.gz` makes); gzip reads on into it.
      if (!starts_with_gzip_magic(compressed.substr(compressed.size() - rest)))
        throw FormatError(cat(source, ": ", rest, " trailing bytes after the gzip stream, expected none"));
      if (inflateReset(&stream) != Z_OK) fail("zlib could not restart for the next gzip member");
      continue;
    }
    // Out of input before the stream's end: zlib answers Z_BUF_ERROR (no progress possible).
    if (status == Z_BUF_ERROR && stream.avail_in == 0 && fed == compressed.size()) fail("unexpected end of file");
    if (status != Z_OK) fail(stream.msg ? stream.msg : zError(status));
  }
  return contents;
}

std::uint32_t big_endian_u32(std::string_view bytes, std::size_t at) {
  auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

std::string hex32(std::uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08x", value);
  return text;
}

// Reads the magic and dims of an IDX file of unsigned bytes with `expected_dims` dims; returns the dims.
std::vector<std::uint32_t> read_header(std::string_view bytes, const std::string& path, std::uint32_t expected_magic,
                                       const char* kind) {
  if (bytes.empty()) throw FormatError(cat(path, ": file is empty, expected an IDX ", kind, " file"));
  std::size_t dims = expected_magic & 0xff;
  std::size_t header_size = 4 + 4 * dims;
  if (bytes.size() < 4)
    throw FormatError(cat(path, ": ", bytes.size(), " bytes, too short for an IDX magic number"));
  std::uint32_t magic = big_endian_u32(bytes, 0);
  if (magic != expected_magic) {
    std::string hint = magic == kImagesMagic   ? " (an image file)"
                       : magic == kLabelsMagic ? " (a label file)"
                       : (magic >> 8) == 0x08  ? " (unsigned bytes, but another number of dims)"
                                               : "";
    throw FormatError(cat(path, ": wrong magic ", hex32(magic), hint, ", expected ", hex32(expected_magic), " (IDX ",
                          kind, ")"));
  }
  if (bytes.size() < header_size)
    throw FormatError(cat(path, ": header truncated: ", bytes.size(), " bytes, expected at least ", header_size));
  std::vector<std::uint32_t> sizes;
  for (std::size_t d = 0; d < dims; ++d) sizes.push_back(big_endian_u32(bytes, 4 + 4 * d));
  if (sizes[0] == 0) throw FormatError(cat(path, ": header says 0 ", kind, ", expected at least one"));
  return sizes;
}

void check_payload(std::string_view bytes, std::size_t header_size, std::uint64_t expected, const std::string& path,
                   const std::string& what) {
  std::uint64_t present = bytes.size() - header_size;
  if (present < expected)
    throw FormatError(cat(path, ": truncated: ", present, " bytes of ", what, ", expected ", expected));
  if (present > expected)
    throw FormatError(cat(path, ": ", present - expected, " trailing bytes after the ", expected, " bytes of ", what));
}

// The IDX bytes themselves: inflated when gzip, as they are otherwise (zlib's gzread did the same).
std::string_view plain_idx_bytes(std::string_view file_bytes, const std::string& source, std::string& inflated) {
  if (!starts_with_gzip_magic(file_bytes)) return file_bytes;
  inflated = gunzip(file_bytes, source);
  return inflated;
}

// The whole file, after the checks whose messages the path readers have always given.
std::string read_idx_file(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) throw IOError(cat(path, ": is a folder, expected an IDX file"));
  return read_file_bytes(path);
}

}  // namespace

IdxImages decode_idx_images(std::string_view file_bytes, const std::string& source) {
  std::string inflated;
  std::string_view bytes = plain_idx_bytes(file_bytes, source, inflated);
  auto sizes = read_header(bytes, source, kImagesMagic, "images");
  if (sizes[1] == 0 || sizes[2] == 0)
    throw FormatError(cat(source, ": images are ", sizes[1], "x", sizes[2], ", expected non-zero rows and cols"));
  // Capping each side at 2^16 keeps count * rows * cols below 2^64 (count is a uint32). Nothing is
  // allocated from these numbers: they are only compared with the bytes actually present.
  if (sizes[1] > 1u << 16 || sizes[2] > 1u << 16)
    throw FormatError(cat(source, ": images are ", sizes[1], "x", sizes[2], ", expected at most 65536 per side"));
  IdxImages images;
  images.count = sizes[0];
  images.rows = static_cast<int>(sizes[1]);
  images.cols = static_cast<int>(sizes[2]);
  std::uint64_t pixel_count = std::uint64_t(sizes[0]) * sizes[1] * sizes[2];
  check_payload(bytes, 16, pixel_count, source,
                cat("pixels (", images.count, " images of ", images.rows, "x", images.cols, ")"));
  images.pixels.assign(bytes.begin() + 16, bytes.end());
  return images;
}

IdxLabels decode_idx_labels(std::string_view file_bytes, const std::string& source) {
  std::string inflated;
  std::string_view bytes = plain_idx_bytes(file_bytes, source, inflated);
  auto sizes = read_header(bytes, source, kLabelsMagic, "labels");
  IdxLabels labels;
  labels.count = sizes[0];
  check_payload(bytes, 8, sizes[0], source, cat("labels (", labels.count, " promised)"));
  labels.labels.assign(bytes.begin() + 8, bytes.end());
  return labels;
}

IdxImages read_idx_images(const std::string& path) { return decode_idx_images(read_idx_file(path), path); }

IdxLabels read_idx_labels(const std::string& path) { return decode_idx_labels(read_idx_file(path), path); }

IdxLabelledImages read_idx_labelled_images(const std::string& images_path, const std::string& labels_path) {
  IdxLabelledImages data{read_idx_images(images_path), read_idx_labels(labels_path)};
  if (data.images.count != data.labels.count)
    throw FormatError(cat(labels_path, ": has ", data.labels.count, " labels, but ", images_path, " has ",
                          data.images.count, " images (expected the same count)"));
  return data;
}

}  // namespace fm::io
