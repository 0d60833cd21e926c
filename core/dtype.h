// core/dtype.h — element types and devices a Tensor can have.
//
// float32 everywhere; float64 on the CPU (gradchecks need it); bfloat16 (kernels/bfloat16.h) on both
// devices, for activations stored at half the bytes, in the ops whose kernels take it (an op that
// does not says so with a DTypeError naming the types it takes; core/dispatch.h). A new type is an
// enum value, its size and name here, and the kernels that accept it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/bfloat16.h"

namespace fm {

enum class DType : std::uint8_t { Float32, Float64, BFloat16 };
enum class Device : std::uint8_t { CPU, CUDA };

inline std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::BFloat16: return 2;
  }
  return 0;
}
inline const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::BFloat16: return "bfloat16";
  }
  return "?";
}
// The type an op computes in for `dtype` elements, and keeps beside them what must not be rounded to
// the activations' width (parameters, statistics, log-sum-exps): float32 for bfloat16, the type
// itself otherwise.
inline DType compute_dtype(DType dtype) { return dtype == DType::BFloat16 ? DType::Float32 : dtype; }
inline const char* device_name(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

// Maps a C++ element type to its DType (used by templated accessors).
template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::BFloat16; };

}  // namespace fm
