// kernels/bfloat16.h — the bfloat16 element type of bf16 tensors, the same on the host and in CUDA
// kernels, and the type each element type is computed in.
//
// bfloat16 is the top half of an FP32 number: sign, the same 8-bit exponent, 7 stored mantissa bits
// (8 significant bits with the implicit one). It has float's range (its largest value is about
// 3.39e38; float values from about 3.396e38 up round to infinity) with about 2.4 decimal digits, so
// activations stored in it take half the memory traffic of float32. Arithmetic is never done in bfloat16: a kernel loads an element, converts
// it to float (exact: the low 16 bits are zero), computes in float, and rounds once when it stores.
//
// Our own type rather than the toolkit's __nv_bfloat16 because the CPU kernels are templates over the
// element type and must compile without the CUDA toolkit; the layout is the same 16 bits, so a
// tensor-core kernel may reinterpret a bf16* as __nv_bfloat16*. The rounding below is the one the
// toolkit's __float2bfloat16 (cvt.rn.bf16.f32) does for every number, so CPU and GPU tensors round to
// the same bits; a NaN stays a NaN here with its sign and top payload bits, where the toolkit makes
// every NaN its canonical 0x7FFF.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define FM_BF16_HOST_DEVICE __host__ __device__ __forceinline__
#else
// Always inlined on the host, as kernels/elementwise_math.h's functions are: the elementwise loops
// are also compiled for AVX-512, and an out-of-line copy could be shared with the portable build.
#define FM_BF16_HOST_DEVICE __attribute__((always_inline)) inline
#endif

namespace fm {

struct bf16 {
  std::uint16_t bits;

  bf16() = default;
  // Rounds to nearest, ties to even; NaN stays NaN (made quiet, sign kept); infinities stay
  // infinite; a finite value past bfloat16's largest (about 3.39e38) rounds to infinity, as IEEE
  // rounding says.
  FM_BF16_HOST_DEVICE explicit bf16(float value) : bits(round_to_bf16_bits(value)) {}
  // A double is rounded once, to the nearest bfloat16 (ties to even), as if it went there directly:
  // see float_rounded_to_odd.
  FM_BF16_HOST_DEVICE explicit bf16(double value) : bits(round_to_bf16_bits(float_rounded_to_odd(value))) {}
  FM_BF16_HOST_DEVICE explicit bf16(int value) : bf16(float(value)) {}

  // Exact: bfloat16's values are a subset of float's.
  FM_BF16_HOST_DEVICE operator float() const { return float_from_bits(std::uint32_t(bits) << 16); }

  static FM_BF16_HOST_DEVICE bf16 from_bits(std::uint16_t b) {
    bf16 value;
    value.bits = b;
    return value;
  }

  // float(value) then bf16 would round twice, and a double just above a bfloat16 tie would be
  // rounded down to the tie by the first rounding and then to even by the second. Rounding to float
  // toward zero and setting the last bit when anything was cut off ("round to odd") keeps the
  // information that the value was not a tie: with float's 16 more bits than bfloat16 the second
  // rounding then gives the correctly rounded result.
  static FM_BF16_HOST_DEVICE float float_rounded_to_odd(double value) {
    float f = float(value);
    if (double(f) == value || value != value) return f;  // exact, or NaN
    const double f_size = f < 0 ? -double(f) : double(f), value_size = value < 0 ? -value : value;
    const bool rounded_away = f_size > value_size;  // f = ±inf included
    std::uint32_t u = bits_of(f);
    if (rounded_away) --u;  // the float next toward zero: its magnitude's bits are one less
    return float_from_bits(u | 1u);
  }

  static FM_BF16_HOST_DEVICE std::uint16_t round_to_bf16_bits(float value) {
    std::uint32_t u = bits_of(value);
    if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x0040u);  // NaN: quiet
    // Add half a unit of the last kept bit, less one unless that bit is odd (ties go to even),
    // then drop the 16 low bits. A carry out of the mantissa moves into the exponent, which is
    // what rounding up to the next binade (or to infinity) means.
    u += 0x7fffu + ((u >> 16) & 1u);
    return std::uint16_t(u >> 16);
  }

 private:
  static FM_BF16_HOST_DEVICE std::uint32_t bits_of(float value) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(value);
#else
    std::uint32_t u;
    std::memcpy(&u, &value, 4);
    return u;
#endif
  }
  static FM_BF16_HOST_DEVICE float float_from_bits(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float value;
    std::memcpy(&value, &u, 4);
    return value;
#endif
  }
};
static_assert(sizeof(bf16) == 2, "bf16 is 16 bits, as in a bfloat16 tensor's storage");

// The type a kernel computes an element type in: float for bfloat16 (loaded, computed, rounded once
// on store), the type itself otherwise.
template <typename T>
struct compute_type {
  using type = T;
};
template <>
struct compute_type<bf16> {
  using type = float;
};
template <typename T>
using compute_t = typename compute_type<T>::type;

}  // namespace fm
