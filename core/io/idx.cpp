// core/io/idx.cpp — IDX reader over zlib's gz* interface (see idx.h).
#include "core/io/idx.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace fm::io {
namespace {

constexpr std::uint32_t kImagesMagic = 0x00000803;  // unsigned bytes, 3 dims
constexpr std::uint32_t kLabelsMagic = 0x00000801;  // unsigned bytes, 1 dim

// The whole decompressed stream. gzread passes a non-gzip file through unchanged, so one path serves
// both; a truncated .gz shows up as a gzread error ("unexpected end of file").
// gzerror's text may start with the file name itself; ours already does.
std::string zlib_reason(gzFile file, const std::string& path, int* code) {
  std::string reason = gzerror(file, code);
  if (reason.rfind(path + ": ", 0) == 0) reason = reason.substr(path.size() + 2);
  return reason;
}

std::string read_decompressed(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) throw IOError(cat(path, ": is a folder, expected an IDX file"));
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr)
    throw IOError(cat(path, ": cannot open for reading: ", errno ? std::strerror(errno) : "out of memory"));
  gzbuffer(file, 1 << 17);
  std::string contents;
  char chunk[1 << 16];
  while (true) {
    int got = gzread(file, chunk, sizeof(chunk));
    if (got < 0) {
      int code = 0;
      std::string reason = zlib_reason(file, path, &code);
      gzclose(file);
      throw FormatError(cat(path, ": cannot decompress after ", contents.size(), " bytes: ", reason,
                            " (truncated or corrupt .gz?)"));
    }
    if (got == 0) break;
    contents.append(chunk, static_cast<std::size_t>(got));
  }
  // gzread reports a truncated gzip stream at its end only through gzerror (Z_BUF_ERROR).
  int code = Z_OK;
  std::string reason = zlib_reason(file, path, &code);
  gzclose(file);
  if (code != Z_OK)
    throw FormatError(cat(path, ": cannot decompress after ", contents.size(), " bytes: ", reason,
                          " (truncated or corrupt .gz?)"));
  return contents;
}

std::uint32_t big_endian_u32(const std::string& bytes, std::size_t at) {
  auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

std::string hex32(std::uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08x", value);
  return text;
}

// Reads the magic and dims of an IDX file of unsigned bytes with `expected_dims` dims; returns the dims.
std::vector<std::uint32_t> read_header(const std::string& bytes, const std::string& path, std::uint32_t expected_magic,
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

void check_payload(const std::string& bytes, std::size_t header_size, std::uint64_t expected, const std::string& path,
                   const std::string& what) {
  std::uint64_t present = bytes.size() - header_size;
  if (present < expected)
    throw FormatError(cat(path, ": truncated: ", present, " bytes of ", what, ", expected ", expected));
  if (present > expected)
    throw FormatError(cat(path, ": ", present - expected, " trailing bytes after the ", expected, " bytes of ", what));
}

}  // namespace

IdxImages read_idx_images(const std::string& path) {
  std::string bytes = read_decompressed(path);
  auto sizes = read_header(bytes, path, kImagesMagic, "images");
  if (sizes[1] == 0 || sizes[2] == 0)
    throw FormatError(cat(path, ": images are ", sizes[1], "x", sizes[2], ", expected non-zero rows and cols"));
  IdxImages images;
  images.count = sizes[0];
  images.rows = static_cast<int>(sizes[1]);
  images.cols = static_cast<int>(sizes[2]);
  // Capping each side at 2^16 keeps count * rows * cols below 2^64 (count is a uint32). Nothing is
  // allocated from these numbers: they are only compared with the bytes actually present.
  if (sizes[1] > 1u << 16 || sizes[2] > 1u << 16)
    throw FormatError(cat(path, ": images are ", sizes[1], "x", sizes[2], ", expected at most 65536 per side"));
  std::uint64_t pixel_count = std::uint64_t(sizes[0]) * sizes[1] * sizes[2];
  check_payload(bytes, 16, pixel_count, path,
                cat("pixels (", images.count, " images of ", images.rows, "x", images.cols, ")"));
  images.pixels.assign(bytes.begin() + 16, bytes.end());
  return images;
}

IdxLabels read_idx_labels(const std::string& path) {
  std::string bytes = read_decompressed(path);
  auto sizes = read_header(bytes, path, kLabelsMagic, "labels");
  IdxLabels labels;
  labels.count = sizes[0];
  check_payload(bytes, 8, sizes[0], path, cat("labels (", labels.count, " promised)"));
  labels.labels.assign(bytes.begin() + 8, bytes.end());
  return labels;
}

IdxLabelledImages read_idx_labelled_images(const std::string& images_path, const std::string& labels_path) {
  IdxLabelledImages data{read_idx_images(images_path), read_idx_labels(labels_path)};
  if (data.images.count != data.labels.count)
    throw FormatError(cat(labels_path, ": has ", data.labels.count, " labels, but ", images_path, " has ",
                          data.images.count, " images (expected the same count)"));
  return data;
}

}  // namespace fm::io
