// core/io/safetensors.h — checkpoints in the safetensors format, which Python's `safetensors` and
// PyTorch open directly.
//
// Part of core/io/ (raw bytes only; Tensor adapters live above this). The layout
// (https://github.com/huggingface/safetensors):
//   [8 bytes]  N, the header length, unsigned little-endian
//   [N bytes]  JSON: {"__metadata__": {string: string}, "<name>": {"dtype": "F32", "shape": [2, 3],
//              "data_offsets": [begin, end]}, ...}, padded with spaces so N is a multiple of 8
//   [rest]     the tensors' bytes, packed, little-endian, C order; offsets count from the end of the header
// The reader trusts nothing in the file: every length, offset and product is checked for overflow and
// range, tensors must tile the data section exactly (no gap, no overlap, no trailing bytes), names must
// be unique, and every error names the file and the entry.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace fm::io {

// Bytes per element of a safetensors dtype name ("F32" -> 4, "BF16" -> 2, "BOOL" -> 1), or 0 when the
// name is not one this reader knows. Known: BOOL U8 I8 F8_E4M3 F8_E5M2 U16 I16 F16 BF16 U32 I32 F32
// U64 I64 F64.
std::size_t safetensors_dtype_size(std::string_view dtype);

// One tensor to write: a view of bytes the caller owns (nothing is copied before writing).
struct SafetensorsTensorView {
  std::string name;
  std::string dtype;                // "F32", "F64", "I64", "U8", ...
  std::vector<std::int64_t> shape;  // {} for a scalar
  const void* data = nullptr;
  std::size_t byte_size = 0;        // must equal product(shape) * dtype size
};

// Writes the tensors in the given order, packed, atomically. `metadata` is stored as __metadata__;
// "format": "pt" is always added (transformers and other PyTorch loaders look for it), and a caller's
// "format" other than "pt" is rejected. Throws fm::ValueError for a bad entry (empty or duplicate
// name, unknown dtype, negative dim, byte_size that does not match the shape) and fm::IOError when the
// file cannot be written.
void write_safetensors(const std::string& path, const std::vector<SafetensorsTensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The same bytes write_safetensors puts on disk, in memory (for tests and for hashing a checkpoint).
std::string encode_safetensors(const std::vector<SafetensorsTensorView>& tensors,
                               const std::map<std::string, std::string>& metadata = {});

// One tensor read back: owns its bytes.
struct SafetensorsTensor {
  std::string dtype;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> bytes;  // product(shape) * safetensors_dtype_size(dtype) bytes
  std::int64_t element_count() const;
};

struct SafetensorsFile {
  std::string source;                              // the file name, for error messages
  std::map<std::string, SafetensorsTensor> tensors;
  std::vector<std::string> names_in_file_order;    // by data offset, i.e. the order they were written
  std::map<std::string, std::string> metadata;     // __metadata__ (empty when the file has none)

  bool contains(const std::string& name) const { return tensors.count(name) != 0; }
  // The tensor called `name`; throws fm::FormatError "<source>: no tensor '<name>' (has N tensors)".
  const SafetensorsTensor& at(const std::string& name) const;
};

// Reads and validates a whole file. Throws fm::IOError when it cannot be read and fm::FormatError,
// naming the file and the entry, when it is not valid safetensors.
SafetensorsFile read_safetensors(const std::string& path);

// Validates and decodes a file already in memory; `source` names it in error messages.
SafetensorsFile decode_safetensors(std::string_view file_bytes, const std::string& source);

}  // namespace fm::io
