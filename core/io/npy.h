// core/io/npy.h — numpy .npy arrays (float32 / float64, little-endian, C order).
//
// Part of core/io/ (raw buffers only; Tensor adapters live above this). Used for samples and metrics
// arrays that Python should open with a plain numpy.load. The format
// (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
//   "\x93NUMPY", major, minor, header length (2 bytes LE in v1.0, 4 bytes in v2.0), then a Python
//   dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces and a
//   final '\n' so the data starts at a multiple of 64 bytes, then the raw data.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fm::io {

enum class NpyDType { Float32, Float64 };

// "<f4" / "<f8"
const char* npy_descr(NpyDType dtype);

// Writes a version 1.0 file atomically. `shape` = {} writes a 0-d array (one element).
// Throws fm::ValueError for a negative dim or a null pointer with elements, fm::IOError on write failure.
void write_npy(const std::string& path, const float* data, const std::vector<std::int64_t>& shape);
void write_npy(const std::string& path, const double* data, const std::vector<std::int64_t>& shape);

// The same bytes as write_npy, in memory.
std::string encode_npy(NpyDType dtype, const void* data, const std::vector<std::int64_t>& shape);

struct NpyArray {
  NpyDType dtype = NpyDType::Float32;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> bytes;  // element_count() * 4 or 8 bytes, C order

  std::int64_t element_count() const;
  // Typed views of `bytes`; throw fm::DTypeError when the array holds the other dtype.
  const float* float32_data() const;
  const double* float64_data() const;
  // A copy converted to the requested precision, whatever the file held.
  std::vector<float> to_float32() const;
  std::vector<double> to_float64() const;
};

// Reads a v1.0 or v2.0 file holding '<f4' or '<f8' in C order. Throws fm::IOError when it cannot be
// read and fm::FormatError naming the file for a bad magic, version, header, dtype, Fortran order or a
// data size that does not match the shape.
NpyArray read_npy(const std::string& path);

// Decodes a file already in memory; `source` names it in error messages.
NpyArray decode_npy(std::string_view file_bytes, const std::string& source);

}  // namespace fm::io
