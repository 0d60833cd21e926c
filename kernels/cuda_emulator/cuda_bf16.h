// kernels/cuda_emulator/cuda_bf16.h — the bfloat16 type of <cuda_bf16.h> for the emulator build: the
// storage type and the two conversions our kernels use.
//
// bfloat16 is the top half of an FP32 number: sign, the same 8-bit exponent, 7 stored mantissa bits
// (8 significant bits with the implicit one). So a conversion to float is exact (the 16 low bits are
// zero), and a conversion from float rounds at bit 16: to nearest, ties to even, as the toolkit's
// __float2bfloat16 (cvt.rn.bf16.f32) does; NaN stays NaN (made quiet), infinities stay infinite, and
// a finite value past bfloat16's largest (about 3.39e38) rounds to infinity, as IEEE rounding says.
#pragma once
#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
  std::uint16_t __x;  // the bits; the toolkit's type keeps them in a member of this name too
};

inline __nv_bfloat16 __float2bfloat16(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{std::uint16_t((bits >> 16) | 0x0040u)};  // NaN
  // Round to nearest, ties to even: add 0x7fff plus the lowest kept bit, then drop 16 bits. A carry
  // out of the mantissa moves into the exponent, which is what rounding up to the next binade means.
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return __nv_bfloat16{std::uint16_t(bits >> 16)};
}
inline __nv_bfloat16 __float2bfloat16_rn(float value) { return __float2bfloat16(value); }

inline float __bfloat162float(__nv_bfloat16 value) {
  const std::uint32_t bits = std::uint32_t(value.__x) << 16;
  float result;
  std::memcpy(&result, &bits, 4);
  return result;
}
