// core/kernel_choice.cpp — the process-wide custom/library switch (see kernel_choice.h).
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

}  // namespace fm
