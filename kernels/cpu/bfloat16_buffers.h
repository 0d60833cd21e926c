// kernels/cpu/bfloat16_buffers.h — how the CPU's bfloat16 entry points are written: widen each
// bfloat16 input into a float buffer (exact), run the float kernel, round each output element once.
// The CPU has no bfloat16 arithmetic worth the name; these entry points are the reference the CUDA
// bfloat16 kernels (which load, compute in float and round on store) are held to.
#pragma once
#include <cstddef>
#include <vector>

#include "kernels/bfloat16.h"

namespace fm::kernels {

inline std::vector<float> widened(const bf16* values, std::size_t count) {
  std::vector<float> out(count);
  for (std::size_t i = 0; i < count; ++i) out[i] = float(values[i]);
  return out;
}

inline void round_into(const std::vector<float>& values, bf16* out) {
  for (std::size_t i = 0; i < values.size(); ++i) out[i] = bf16(values[i]);
}

}  // namespace fm::kernels
