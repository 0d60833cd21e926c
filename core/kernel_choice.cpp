// core/kernel_choice.cpp — the process-wide custom/library and precision switches (see kernel_choice.h).
#include "core/kernel_choice.h"

#include <cstdlib>
#include <optional>

#include "core/error.h"

namespace fm {
namespace {
std::optional<KernelImpl>& current() {
  static std::optional<KernelImpl> impl;
  return impl;
}
}  // namespace

KernelImpl parse_kernel_impl(const std::string& name) {
  if (name == "custom") return KernelImpl::Custom;
  if (name == "library") return KernelImpl::Library;
  throw ConfigError(cat("kernels: got \"", name, "\", expected \"custom\" or \"library\""));
}

KernelImpl kernel_impl() {
  if (!current()) {
    const char* env = std::getenv("FM_KERNELS");
    current() = env && *env ? parse_kernel_impl(env) : KernelImpl::Custom;
  }
  return *current();
}

void set_kernel_impl(KernelImpl impl) { current() = impl; }

const char* kernel_impl_name(KernelImpl impl) {
  return impl == KernelImpl::Custom ? "custom" : "library";
}

void require_project_kernels_for_bf16(const char* op, const char* library) {
  FM_CHECK(kernel_impl() != KernelImpl::Library, DTypeError, op, ": the library kernels (", library,
           ") take float32 tensors; bfloat16 activations run on the project's kernels (kernels = custom)");
}

namespace {
std::optional<Precision>& current_precision() {
  static std::optional<Precision> precision;
  return precision;
}
}  // namespace

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::FP32;
  if (name == "tf32") return Precision::TF32;
  if (name == "bf16") return Precision::BF16;
  throw ConfigError(cat("precision: got \"", name, "\", expected \"fp32\", \"tf32\" or \"bf16\""));
}

Precision precision() {
  if (!current_precision()) {
    const char* env = std::getenv("FM_PRECISION");
    current_precision() = env && *env ? parse_precision(env) : Precision::FP32;
  }
  return *current_precision();
}

void set_precision(Precision precision) { current_precision() = precision; }

kernels::GemmMath precision_gemm_math() {
  switch (precision()) {
    case Precision::TF32: return kernels::GemmMath::Tf32;
    case Precision::BF16: return kernels::GemmMath::Bf16;
    case Precision::FP32: break;
  }
  return kernels::GemmMath::Fp32;
}

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::FP32: return "fp32";
    case Precision::TF32: return "tf32";
    case Precision::BF16: return "bf16";
  }
  return "?";
}

}  // namespace fm
