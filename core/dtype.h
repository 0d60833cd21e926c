// core/dtype.h — element types and devices a Tensor can have.
//
// float32 everywhere; float64 on the CPU (gradchecks need it). Room for bf16/f16 later: add an enum
// value, its size and name, and the kernels that accept it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace fm {

enum class DType : std::uint8_t { Float32, Float64 };
enum class Device : std::uint8_t { CPU, CUDA };

inline std::size_t dtype_size(DType dtype) { return dtype == DType::Float32 ? 4 : 8; }
inline const char* dtype_name(DType dtype) { return dtype == DType::Float32 ? "float32" : "float64"; }
inline const char* device_name(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

// Maps a C++ element type to its DType (used by templated accessors).
template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };

}  // namespace fm
