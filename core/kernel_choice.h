// core/kernel_choice.h — which CUDA implementation the image ops use: the project's own kernels
// ("custom", the default) or the vendor libraries ("library": cuDNN for convolutions, cuBLAS matmuls
// + a softmax kernel for attention). Set by the config key `kernels` (fmtrain), the flag --kernels
// (fmsample, fmeval) or the environment variable FM_KERNELS=custom|library, which wins over the
// config key in fmtrain and is the default everywhere else, so a user can train with either and
// compare. CPU runs ignore it.
#pragma once
#include <string>

namespace fm {

enum class KernelImpl { Custom, Library };

KernelImpl kernel_impl();  // first call reads FM_KERNELS (default custom)
void set_kernel_impl(KernelImpl impl);
KernelImpl parse_kernel_impl(const std::string& name);  // throws ConfigError on anything else
const char* kernel_impl_name(KernelImpl impl);

}  // namespace fm
