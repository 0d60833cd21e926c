// core/dispatch.h — from a tensor's (device, dtype) to one typed kernel call, in one place.
//
// An op states its CPU kernel and its CUDA kernel once, as two generic lambdas that receive the
// element type as a tag, and the element types each device's kernels accept as two type lists:
//
//   dispatch_kernel("group_norm", x.device(), x.dtype(),
//       [&](auto type) {                       // the CPU kernel: a template over T
//         using T = element_type<decltype(type)>;
//         kernels::group_norm_forward_cpu<T>(x.data<T>(), ..., T(eps));
//       },
//       [&](auto type) {                       // the CUDA launcher
//         using T = element_type<decltype(type)>;
//         kernels::group_norm_forward_cuda(x.data<T>(), ..., T(eps));
//       });
//
// With the defaults the CPU lambda runs for float and double (gradchecks run in double) and the CUDA
// lambda for float. An op whose kernels take other types names them:
//   dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>(...)
// so adding a dtype is one line in the ops whose kernels support it, and every other op answers
// with a clear DTypeError: "group_norm has no bfloat16 kernel on cuda (its cuda kernels take float32)".
//
// Why generic lambdas: the body of a generic lambda is compiled only when it is called with a type,
// and in a build without CUDA the CUDA lambda is never called (the #ifdef below is the only one the
// ops need), so the CUDA launchers it names need not exist in that build. They must still be
// declared: kernels/*.h declare every launcher in every build.
#pragma once
#include <string>

#include "core/dtype.h"
#include "core/error.h"

namespace fm {

// The element type T carried as a value, so a generic lambda can receive it.
template <typename T>
struct TypeTag {
  using type = T;
};
// `using T = element_type<decltype(type)>;` inside a kernel lambda.
template <typename Tag>
using element_type = typename Tag::type;

template <typename... Ts>
struct TypeList {};
// What the kernels accept unless an op says otherwise.
using CpuTypes = TypeList<float, double>;  // CPU kernels are templates; double for the gradchecks
using CudaTypes = TypeList<float>;         // CUDA kernels are float32
// The ops whose kernels also take bfloat16 (computing in float, rounding once on store) name these.
using CpuTypesWithBf16 = TypeList<float, double, bf16>;
using CudaTypesWithBf16 = TypeList<float, bf16>;

namespace dispatch_detail {

// Calls kernel(TypeTag<T>{}) for the T of Ts... whose DType is `dtype`; false when none is.
template <typename Kernel, typename... Ts>
bool call_with_type([[maybe_unused]] DType dtype, TypeList<Ts...>, [[maybe_unused]] Kernel& kernel) {
  return ((dtype == dtype_of<Ts>::value ? (kernel(TypeTag<Ts>{}), true) : false) || ...);
}

template <typename... Ts>
std::string type_names(TypeList<Ts...>) {
  std::string names;
  ((names += (names.empty() ? "" : ", ") + std::string(dtype_name(dtype_of<Ts>::value))), ...);
  return names;
}

}  // namespace dispatch_detail

// Runs cpu_kernel or cuda_kernel, as `device` says, with `dtype`'s element type; throws DTypeError
// when that device's kernels of this op do not take that type.
template <typename OnCpu = CpuTypes, typename OnCuda = CudaTypes, typename CpuKernel, typename CudaKernel>
void dispatch_kernel(const char* op, Device device, DType dtype, CpuKernel&& cpu_kernel,
                     CudaKernel&& cuda_kernel) {
  if (device == Device::CPU) {
    if (dispatch_detail::call_with_type(dtype, OnCpu{}, cpu_kernel)) return;
    throw DTypeError(cat(op, " has no ", dtype_name(dtype), " kernel on cpu (its cpu kernels take ",
                         dispatch_detail::type_names(OnCpu{}), ")"));
  }
#ifdef FM_WITH_CUDA
  if (dispatch_detail::call_with_type(dtype, OnCuda{}, cuda_kernel)) return;
  throw DTypeError(cat(op, " has no ", dtype_name(dtype), " kernel on cuda (its cuda kernels take ",
                       dispatch_detail::type_names(OnCuda{}), ")"));
#else
  (void)cuda_kernel;
  throw DeviceError(cat(op, ": this build has no CUDA kernels (configure with the CUDA toolkit)"));
#endif
}

// For a path that exists only on CUDA: a dedicated kernel an op prefers there (the caller has
// checked that the tensor is on CUDA).
template <typename OnCuda = CudaTypes, typename CudaKernel>
void dispatch_cuda_kernel(const char* op, DType dtype, CudaKernel&& cuda_kernel) {
  dispatch_kernel<TypeList<>, OnCuda>(op, Device::CUDA, dtype, [](auto) {}, cuda_kernel);
}

}  // namespace fm
