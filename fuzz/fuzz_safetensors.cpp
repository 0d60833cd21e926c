// fuzz/fuzz_safetensors.cpp — libFuzzer target: any bytes through the safetensors reader
// (fm::io::decode_safetensors, the parser behind read_safetensors and every checkpoint load).
//
// The reader documents fm::FormatError for a malformed file; anything else escaping, or a decoded
// file that breaks the header's promises, is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "core/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    fm::io::SafetensorsFile file =
        fm::io::decode_safetensors(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.safetensors");
    for (const std::string& name : file.names_in_file_order) {
      const fm::io::SafetensorsTensor& tensor = file.at(name);
      // What the loaders above rely on: the bytes hold exactly element_count() elements.
      std::uint64_t expected = std::uint64_t(tensor.element_count()) * fm::io::safetensors_dtype_size(tensor.dtype);
      if (tensor.element_count() < 0 || tensor.bytes.size() != expected) std::abort();
    }
  } catch (const fm::Error&) {
  }
  return 0;
}
