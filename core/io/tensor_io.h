// core/io/tensor_io.h — Tensors to and from the file formats: named tensors in safetensors (the
// checkpoint format) and single arrays in .npy. Device tensors are copied to the host first.
#pragma once
#include <map>
#include <string>

#include "core/tensor.h"

namespace fm::io {

using NamedTensors = std::map<std::string, Tensor>;

// Writes F32/F64 tensors (atomically) with the given metadata ("format":"pt" is always added).
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

struct LoadedTensors {
  NamedTensors tensors;
  std::map<std::string, std::string> metadata;
};
// Reads every entry as a CPU tensor; F32 and F64 entries only (others are a FormatError).
LoadedTensors load_safetensors(const std::string& path);

// Raw 64-bit words (e.g. a generator's state) stored as a U64 entry next to tensors.
void save_safetensors_with_words(const std::string& path, const NamedTensors& tensors,
                                 const std::map<std::string, std::vector<std::uint64_t>>& words,
                                 const std::map<std::string, std::string>& metadata = {});
struct LoadedCheckpoint {
  NamedTensors tensors;
  std::map<std::string, std::vector<std::uint64_t>> words;
  std::map<std::string, std::string> metadata;
};
LoadedCheckpoint load_safetensors_with_words(const std::string& path);

void save_npy(const std::string& path, const Tensor& tensor);
Tensor load_npy(const std::string& path);

}  // namespace fm::io
