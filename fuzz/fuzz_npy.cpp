// fuzz/fuzz_npy.cpp — libFuzzer target: any bytes through the .npy reader (fm::io::decode_npy, the
// parser behind read_npy and fmeval --samples).
//
// The reader documents fm::FormatError for a malformed file; anything else escaping, or an array whose
// bytes do not match its shape, is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "core/io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    fm::io::NpyArray array = fm::io::decode_npy(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.npy");
    std::int64_t count = array.element_count();
    std::size_t element_size = array.dtype == fm::io::NpyDType::Float32 ? 4 : 8;
    if (count < 0 || array.bytes.size() != std::uint64_t(count) * element_size) std::abort();
    // The conversions the callers use walk element_count() elements of `bytes`.
    if (array.to_float64().size() != std::size_t(count)) std::abort();
  } catch (const fm::Error&) {
  }
  return 0;
}
