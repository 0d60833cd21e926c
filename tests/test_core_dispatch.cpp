// tests/test_core_dispatch.cpp — core/dispatch.h: (device, dtype) → the typed kernel call, and the
// error an op gives for an element type its kernels do not take.
#include <catch2/catch.hpp>

#include <string>

#include "core/dispatch.h"

using namespace fm;

namespace {

// Which kernel ran, with which element type: "cpu float", "cuda float", ...
std::string run_dispatch(Device device, DType dtype) {
  std::string ran;
  dispatch_kernel(
      "demo_op", device, dtype,
      [&](auto type) {
        using T = element_type<decltype(type)>;
        ran = std::string("cpu ") + (sizeof(T) == 4 ? "float" : "double");
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        ran = std::string("cuda ") + (sizeof(T) == 4 ? "float" : "double");
      });
  return ran;
}

}  // namespace

TEST_CASE("dispatch_kernel runs the CPU kernel at the tensor's element type", "[dispatch]") {
  CHECK(run_dispatch(Device::CPU, DType::Float32) == "cpu float");
  CHECK(run_dispatch(Device::CPU, DType::Float64) == "cpu double");
}

TEST_CASE("dispatch_kernel names the op, the dtype and what its kernels take when a type is missing",
          "[dispatch]") {
  // An op whose CPU kernels are float32 only.
  auto float_only = [](DType dtype) {
    dispatch_kernel<TypeList<float>>("demo_op", Device::CPU, dtype, [](auto) {}, [](auto) {});
  };
  CHECK_NOTHROW(float_only(DType::Float32));
  CHECK_THROWS_AS(float_only(DType::Float64), DTypeError);
  CHECK_THROWS_WITH(float_only(DType::Float64),
                    "demo_op has no float64 kernel on cpu (its cpu kernels take float32)");
}

TEST_CASE("dispatch_kernel on CUDA: float32 kernels, float64 refused", "[dispatch]") {
#ifdef FM_WITH_CUDA
  // No device is touched: the lambdas only record which one ran.
  CHECK(run_dispatch(Device::CUDA, DType::Float32) == "cuda float");
  CHECK_THROWS_WITH(run_dispatch(Device::CUDA, DType::Float64),
                    "demo_op has no float64 kernel on cuda (its cuda kernels take float32)");
#else
  CHECK_THROWS_AS(run_dispatch(Device::CUDA, DType::Float32), DeviceError);
#endif
}
