// kernels/cuda_emulator/mma.h — the warp matrix (WMMA) API of <mma.h> for the emulator build: the
// part our tensor-core kernels use, FP32 accumulators with TF32 inputs in 16×16×8 tiles or bfloat16
// inputs in 16×16×16 tiles.
//
// On a GPU a fragment's elements are spread over the 32 lanes of a warp in an unspecified layout, and
// load/store/mma are warp-collective: every lane must call them together, with the same pointer and
// leading dimension. A program may rely only on what the API promises: whole-fragment loads, stores
// and products, and element-wise updates of x[0..num_elements) that are the same for every element.
// The emulator keeps that contract with the simplest layout there is: every lane holds the whole
// tile (num_elements = all of it); lane 0 computes each product and the others copy it. Results are
// therefore what the tile maths says, whatever layout the real hardware uses.
//
// What it checks, as a GPU would punish it (fault naming the thread, the launch fails):
//   * all 32 lanes of the warp take part in each call (a warp-wide barrier, like a full-mask shuffle),
//   * every lane passes the same pointer and ldm to a load or store,
//   * the pointer is 256-bit (32-byte) aligned and ldm is a multiple of 16 bytes: 4 elements of a
//     32-bit type, 8 of bfloat16 (the documented requirements; misuse gives wrong results on
//     hardware, not an error).
// Arithmetic: for TF32, mma_sync reads only the TF32 part of each input (sign, exponent, 10 mantissa
// bits; the low 13 bits are ignored, as the tensor cores ignore them), multiplies exactly (an 11-bit
// by 11-bit product fits in FP32) and accumulates in FP32 in k order. For bfloat16 the inputs are
// bfloat16 already and their products (8 by 8 bits) are exact in FP32 too. __float_to_tf32 rounds to
// nearest, ties away from zero (PTX cvt.rna.tf32.f32). The hardware's summation order inside a tile
// is unspecified, so tests bound the error instead of comparing bits (tests/test_kernel_gemm.cpp).
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cuda_bf16.h"
#include "cuda_runtime.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision

namespace detail {
template <class Use, int M, int N, int K>
struct TileShape;
template <int M, int N, int K>
struct TileShape<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct TileShape<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct TileShape<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

// Every lane must arrive: a warp-wide exchange with the full mask faults on a lane that is missing.
inline void warp_collective() { fm_emu::warp_exchange(0xffffffffu, 0, 0); }

// The start of every load and store: one warp-wide exchange (so every lane must arrive) that also
// compares this lane's pointer and ldm with lane 0's (they must be the same in every lane: the API's
// rule; the hardware would mix tiles). One exchange, not three: each is 64 fiber switches.
// element_bytes: 4 (float) or 2 (bfloat16); ldm must span a multiple of 16 bytes.
inline void check_pointer_and_ldm(const void* pointer, unsigned ldm, const char* who, unsigned element_bytes = 4) {
  if (reinterpret_cast<std::uintptr_t>(pointer) % 32 != 0) fm_emu::device_fault(who);
  if (ldm * element_bytes % 16 != 0) fm_emu::device_fault(who);
  // User-space x86-64 pointers fit in 47 bits: ldm goes above them, so equal keys mean equal pairs.
  const std::uint64_t key = std::uint64_t(reinterpret_cast<std::uintptr_t>(pointer)) ^ (std::uint64_t(ldm & 0xffffu) << 48);
  if (fm_emu::shuffle_from(0xffffffffu, key, 0) != key)
    fm_emu::device_fault("a WMMA load/store with a different pointer or ldm than lane 0's");
}

// Lane 0's product of each mma_sync, per warp of the running block, double-buffered: lane 0 can be
// at most one mma_sync ahead of the slowest lane (each exchange waits for all), so the buffer it
// writes next is never one a lane still copies from. Blocks run one at a time, so per-block-warp
// storage is enough.
inline float* mma_result_buffer(int warp, unsigned parity) {
  static float buffers[32][2][16 * 16];
  return buffers[warp % 32][parity & 1u];
}
inline unsigned& mma_call_count(int warp) {
  static unsigned counts[32];
  return counts[warp % 32];
}

inline float tf32_bits_only(float value) {  // what the tensor cores read of an FP32 register
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  bits &= 0xffffe000u;
  std::memcpy(&value, &bits, 4);
  return value;
}

// What a fragment's elements are: floats for TF32 operands and accumulators, bfloat16 for bfloat16
// operands. The two shapes the hardware offers for them: m16n16k8 (TF32) and m16n16k16 (bfloat16).
template <class T>
struct Storage {
  using type = float;
};
template <>
struct Storage<__nv_bfloat16> {
  using type = __nv_bfloat16;
};
template <class T>
constexpr bool kKnownInput = std::is_same_v<T, precision::tf32> || std::is_same_v<T, __nv_bfloat16>;
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && (K == 8 || K == 16), "the emulator has the m16n16k8 and m16n16k16 shapes");
  static_assert(std::is_same_v<Use, accumulator> ? std::is_same_v<T, float> : detail::kKnownInput<T>,
                "operands are precision::tf32 or __nv_bfloat16, accumulators float");
  static_assert(std::is_same_v<Use, accumulator> || (std::is_same_v<T, precision::tf32> ? K == 8 : K == 16),
                "TF32 tiles are 16×16×8, bfloat16 tiles 16×16×16");
  using element_type = typename detail::Storage<T>::type;
  static constexpr int rows = detail::TileShape<Use, M, N, K>::rows;
  static constexpr int cols = detail::TileShape<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols;
  element_type x[num_elements];  // row-major rows × cols, the whole tile in every lane (see the header)
};

template <class Use, int M, int N, int K, class T, class Layout>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f,
                          const typename fragment<Use, M, N, K, T, Layout>::element_type& value) {
  detail::warp_collective();
  for (auto& e : f.x) e = value;
}

// matrix_a / matrix_b: the layout is part of the fragment's type.
// The pointer's type is the fragment's element type: float for TF32, __nv_bfloat16 for bfloat16.
template <class Use, int M, int N, int K, class T, class Layout>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f,
                             const typename fragment<Use, M, N, K, T, Layout>::element_type* pointer, unsigned ldm) {
  static_assert(std::is_same_v<Layout, row_major> || std::is_same_v<Layout, col_major>,
                "operand fragments need a row_major or col_major layout");
  detail::check_pointer_and_ldm(pointer, ldm,
                                "load_matrix_sync: pointer not 32-byte aligned or ldm not a multiple of 16 bytes",
                                unsigned(sizeof(*pointer)));
  using F = fragment<Use, M, N, K, T, Layout>;
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c)
      f.x[r * F::cols + c] = std::is_same_v<Layout, row_major> ? pointer[r * ldm + c] : pointer[c * ldm + r];
}

// accumulator: the memory layout is an argument.
template <int M, int N, int K>
inline void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* pointer, unsigned ldm,
                             layout_t layout) {
  detail::check_pointer_and_ldm(pointer, ldm, "load_matrix_sync: pointer not 32-byte aligned or ldm not a multiple of 4");
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c)
      f.x[r * N + c] = layout == mem_row_major ? pointer[r * ldm + c] : pointer[c * ldm + r];
}

template <int M, int N, int K>
inline void store_matrix_sync(float* pointer, const fragment<accumulator, M, N, K, float>& f, unsigned ldm,
                              layout_t layout) {
  detail::check_pointer_and_ldm(pointer, ldm, "store_matrix_sync: pointer not 32-byte aligned or ldm not a multiple of 4");
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c) (layout == mem_row_major ? pointer[r * ldm + c] : pointer[c * ldm + r]) = f.x[r * N + c];
  detail::warp_collective();  // no lane reads the stored tile before every lane has written it
}

namespace detail {
// What the tensor cores read of an operand element, as a float.
inline float operand_value(float tf32_register) { return tf32_bits_only(tf32_register); }
inline float operand_value(__nv_bfloat16 value) { return __bfloat162float(value); }

// d = a·b + c for either input type (see mma_sync).
template <int M, int N, int K, class AFragment, class BFragment>
inline void multiply_accumulate(fragment<accumulator, M, N, K, float>& d, const AFragment& a, const BFragment& b,
                                const fragment<accumulator, M, N, K, float>& c) {
  // Every lane holds the same tiles (they were loaded from the same pointers), so lane 0 computes
  // the product once and the others copy it: the emulator then does a warp's work, not 32 times it.
  float* result = nullptr;
  if (fm_emu::lane_id() == 0) {
    const int warp = int(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) / 32;
    result = mma_result_buffer(warp, ++mma_call_count(warp));
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) {
        float sum = c.x[i * N + j];
        for (int k = 0; k < K; ++k) sum += operand_value(a.x[i * K + k]) * operand_value(b.x[k * N + j]);
        result[i * N + j] = sum;
      }
  }
  // The exchange is the warp-wide meeting point: it returns once lane 0 has computed.
  const float* product = fm_emu::shuffle_from(0xffffffffu, static_cast<const float*>(result), 0);
  std::memcpy(d.x, product, sizeof(float) * M * N);
}
}  // namespace detail

// d = a·b + c (d may be c), TF32 inputs.
template <int M, int N, int K, class LayoutA, class LayoutB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d,
                     const fragment<matrix_a, M, N, K, precision::tf32, LayoutA>& a,
                     const fragment<matrix_b, M, N, K, precision::tf32, LayoutB>& b,
                     const fragment<accumulator, M, N, K, float>& c) {
  detail::multiply_accumulate(d, a, b, c);
}
// The same with bfloat16 inputs.
template <int M, int N, int K, class LayoutA, class LayoutB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d,
                     const fragment<matrix_a, M, N, K, __nv_bfloat16, LayoutA>& a,
                     const fragment<matrix_b, M, N, K, __nv_bfloat16, LayoutB>& b,
                     const fragment<accumulator, M, N, K, float>& c) {
  detail::multiply_accumulate(d, a, b, c);
}

// FP32 → TF32 (kept in a float): round to nearest, ties away from zero, at mantissa bit 13.
inline float __float_to_tf32(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7f800000u) != 0x7f800000u) {  // finite: round; inf and NaN pass through
    bits += 0x1000u;
    bits &= 0xffffe000u;
  }
  std::memcpy(&value, &bits, 4);
  return value;
}

}  // namespace wmma
}  // namespace nvcuda
