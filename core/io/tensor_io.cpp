// core/io/tensor_io.cpp — Tensor adapters over the raw safetensors and npy codecs.
#include "core/io/tensor_io.h"

#include <cstring>

#include "core/io/npy.h"
#include "core/io/safetensors.h"

namespace fm::io {
namespace {

std::string safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::BFloat16: return "BF16";  // the same 16 bits a bf16 tensor stores (little-endian)
  }
  return "?";
}

std::vector<SafetensorsTensorView> views_of(const NamedTensors& tensors, std::vector<Tensor>& keep_alive) {
  std::vector<SafetensorsTensorView> views;
  for (const auto& [name, t] : tensors) {
    FM_CHECK(t.defined(), Error, "save_safetensors: tensor \"", name, "\" is undefined");
    Tensor host = t.detach().to(Device::CPU).contiguous();
    keep_alive.push_back(host);
    views.push_back({name, safetensors_dtype(host.dtype()), host.shape(), host.raw_data(),
                     std::size_t(host.numel()) * dtype_size(host.dtype())});
  }
  return views;
}

Tensor tensor_from_entry(const std::string& source, const std::string& name, const SafetensorsTensor& e) {
  DType dtype;
  if (e.dtype == "F32")
    dtype = DType::Float32;
  else if (e.dtype == "F64")
    dtype = DType::Float64;
  else if (e.dtype == "BF16")
    dtype = DType::BFloat16;
  else
    throw FormatError(cat(source, ": tensor \"", name, "\" has dtype ", e.dtype, ", expected F32, F64 or BF16"));
  Tensor t = Tensor::empty(e.shape, dtype);
  if (!e.bytes.empty()) std::memcpy(t.raw_data(), e.bytes.data(), e.bytes.size());  // no buffer when empty
  return t;
}

}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  save_safetensors_with_words(path, tensors, {}, metadata);
}

void save_safetensors_with_words(const std::string& path, const NamedTensors& tensors,
                                 const std::map<std::string, std::vector<std::uint64_t>>& words,
                                 const std::map<std::string, std::string>& metadata) {
  std::vector<Tensor> keep_alive;
  std::vector<SafetensorsTensorView> views = views_of(tensors, keep_alive);
  for (const auto& [name, w] : words) {
    FM_CHECK(!tensors.count(name), Error, "save_safetensors: name \"", name, "\" used twice");
    views.push_back({name, "U64", {std::int64_t(w.size())}, w.data(), w.size() * sizeof(std::uint64_t)});
  }
  write_safetensors(path, views, metadata);
}

LoadedTensors load_safetensors(const std::string& path) {
  SafetensorsFile file = read_safetensors(path);
  LoadedTensors out;
  out.metadata = file.metadata;
  for (const auto& [name, entry] : file.tensors) out.tensors[name] = tensor_from_entry(file.source, name, entry);
  return out;
}

LoadedCheckpoint load_safetensors_with_words(const std::string& path) {
  SafetensorsFile file = read_safetensors(path);
  LoadedCheckpoint out;
  out.metadata = file.metadata;
  for (const auto& [name, entry] : file.tensors) {
    if (entry.dtype == "U64") {
      std::vector<std::uint64_t> w(std::size_t(entry.element_count()));
      if (!entry.bytes.empty()) std::memcpy(w.data(), entry.bytes.data(), entry.bytes.size());
      out.words[name] = std::move(w);
    } else {
      out.tensors[name] = tensor_from_entry(file.source, name, entry);
    }
  }
  return out;
}

void save_npy(const std::string& path, const Tensor& tensor) {
  Tensor host = tensor.detach().to(Device::CPU).contiguous();
  FM_CHECK(host.dtype() != DType::BFloat16, DTypeError, "save_npy: ", path, ": .npy has no bfloat16 type; ",
           "convert the tensor with to(DType::Float32) first");
  if (host.dtype() == DType::Float32)
    write_npy(path, host.data<float>(), host.shape());
  else
    write_npy(path, host.data<double>(), host.shape());
}

Tensor load_npy(const std::string& path) {
  NpyArray array = read_npy(path);
  DType dtype = array.dtype == NpyDType::Float32 ? DType::Float32 : DType::Float64;
  Tensor t = Tensor::empty(array.shape, dtype);
  // memcpy with a null pointer is undefined even for 0 bytes, and an empty array has no buffer.
  if (!array.bytes.empty()) std::memcpy(t.raw_data(), array.bytes.data(), array.bytes.size());
  return t;
}

}  // namespace fm::io
