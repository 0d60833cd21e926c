// kernels/cuda/element_access.cuh — loads and stores of activations that are float32 or bfloat16,
// as float: one way to write a memory-bound kernel once for both element types.
//
// A kernel templated on the element type T computes in float (kernels/bfloat16.h) and touches
// memory only through these: load_at<kVectorized>(p, i) is element i as a float, or, vectorised,
// elements 4i … 4i + 3 as a float4 (one 16-byte load for float, one 8-byte load for bfloat16, which
// is where bfloat16 halves the traffic); store_at rounds back to T. A vectorised access needs the
// pointer aligned to four elements (is_vector_aligned), which the callers check once per launch.
#pragma once
#include <cstdint>

#include "kernels/bfloat16.h"
#include "kernels/cuda/common.cuh"

namespace fm::kernels {

// Four bfloat16s in one 8-byte access.
struct alignas(8) Bf16x4 {
  bf16 v[4];
};

template <typename T>
inline bool is_vector_aligned(const T* p) {
  return (reinterpret_cast<std::uintptr_t>(p) % (4 * sizeof(T))) == 0;
}

template <bool kVectorized, typename T>
__device__ __forceinline__ auto load_at(const T* __restrict__ p, std::int64_t i) {
  if constexpr (!kVectorized) {
    return float(p[i]);
  } else if constexpr (sizeof(T) == 4) {
    return reinterpret_cast<const float4*>(p)[i];
  } else {
    const Bf16x4 q = reinterpret_cast<const Bf16x4*>(p)[i];
    return make_float4(float(q.v[0]), float(q.v[1]), float(q.v[2]), float(q.v[3]));
  }
}

template <bool kVectorized, typename T, typename Value>
__device__ __forceinline__ void store_at(T* __restrict__ p, std::int64_t i, Value value) {
  if constexpr (!kVectorized) {
    p[i] = T(value);
  } else if constexpr (sizeof(T) == 4) {
    reinterpret_cast<float4*>(p)[i] = value;
  } else {
    reinterpret_cast<Bf16x4*>(p)[i] = Bf16x4{{T(value.x), T(value.y), T(value.z), T(value.w)}};
  }
}

}  // namespace fm::kernels
