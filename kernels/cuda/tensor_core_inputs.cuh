// kernels/cuda/tensor_core_inputs.cuh — the two input formats of the project's WMMA kernels (our GEMM in
// gemm_tensor_cores.cu, the fused attention in attention_flash_tensor_cores.cu): what their shared
// tiles hold, how an FP32 value becomes one, the WMMA shape and the row padding.
//
// TF32 keeps FP32's 8-bit exponent and 10 of its 23 mantissa bits, bfloat16 the exponent and 7. The
// tensor cores multiply such inputs exactly and accumulate in FP32, so the only new error is the
// rounding of the inputs: 2^-11 (TF32) or 2^-8 (bfloat16) relative each (docs/ops/tensor_cores.md).
//
// Padding: 16 bytes per row (4 floats, 8 bfloat16) shifts consecutive rows across banks while keeping
// every leading dimension a multiple of 16 bytes and, for rows that start a 16-row fragment, every
// fragment pointer 32-byte aligned, as the WMMA API requires.
#pragma once
#include <cuda_bf16.h>
#include <mma.h>

namespace fm::kernels {

struct Tf32Inputs {
  using Element = float;  // TF32 values live in float registers and float tiles
  using Fragment = nvcuda::wmma::precision::tf32;
  static constexpr int kStepK = 8;  // m16n16k8
  static constexpr int kPad = 4;    // 16 bytes
  __device__ static float convert(float value) { return nvcuda::wmma::__float_to_tf32(value); }
};

struct Bf16Inputs {
  using Element = __nv_bfloat16;
  using Fragment = __nv_bfloat16;
  static constexpr int kStepK = 16;  // m16n16k16
  static constexpr int kPad = 8;     // 16 bytes
  __device__ static __nv_bfloat16 convert(float value) { return __float2bfloat16(value); }
};

}  // namespace fm::kernels
