// core/kernel_choice.h — which CUDA implementation the image ops use: the project's own kernels
// ("custom", the default) or the vendor libraries ("library": cuDNN for convolutions, cuBLAS matmuls
// + a softmax kernel for attention). Set by the config key `kernels` (fmtrain), the flag --kernels
// (fmsample, fmeval) or the environment variable FM_KERNELS=custom|library, which wins over the
// config key in fmtrain and is the default everywhere else, so a user can train with either and
// compare. CPU runs ignore it.
#pragma once
#include <string>

#include "kernels/gemm.h"

namespace fm {

enum class KernelImpl { Custom, Library };

KernelImpl kernel_impl();  // first call reads FM_KERNELS (default custom)
void set_kernel_impl(KernelImpl impl);
KernelImpl parse_kernel_impl(const std::string& name);  // throws ConfigError on anything else
const char* kernel_impl_name(KernelImpl impl);
// bfloat16 tensors run on the project's kernels only: the libraries' entry points here take float32.
// Throws a DTypeError naming `op` and the `library` (cuDNN, cuBLAS) when kernels = library.
void require_project_kernels_for_bf16(const char* op, const char* library);

// The arithmetic of matrix products on CUDA: strict FP32 (the default; the CPU reference's precision),
// TF32 tensor cores (inputs rounded to 10 mantissa bits, FP32 accumulation; about 2^-10 relative
// error per product) or bfloat16 tensor cores (inputs rounded to 7 mantissa bits, FP32 accumulation;
// about 2^-7). Tensors, weights and optimiser state stay FP32 in memory in every mode: the inputs of
// each product are rounded as the kernel stages them. With TF32 or bf16, the "custom" kernels are
// ours (kernels/cuda/gemm_tensor_cores.cu) and "library" is cuBLAS with that math. Set by
// FM_PRECISION=fp32|tf32|bf16 (read on first use) or set_precision. Matmul (Linear, the attention
// projections) and our convolutions (forward, input and weight gradients) honour all three; cuDNN
// convolutions run TF32 under both tf32 and bf16 (it has no bfloat16 arithmetic for FP32 tensors);
// attention's own products follow it in both: our fused kernels on the tensor cores
// (kernels/cuda/attention_flash_tensor_cores.cu; the softmax stays FP32), cuBLAS GEMMs in the unfused
// version of kernels = library. CPU runs ignore it.
enum class Precision { FP32, TF32, BF16 };

Precision precision();
void set_precision(Precision precision);
// The matrix products' arithmetic for the current precision, as the kernel interfaces take it
// (kernels::GemmMath: cuBLAS in matmul, both attention versions).
kernels::GemmMath precision_gemm_math();
Precision parse_precision(const std::string& name);  // "fp32" | "tf32" | "bf16"; ConfigError otherwise
const char* precision_name(Precision precision);

}  // namespace fm
