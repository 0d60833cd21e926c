// bench/bench_silu.cu — SiLU, forward and backward: y = x·σ(x), dx = dy·σ(x)·(1 + x·(1 − σ(x))).
//
// Run:  fmbench silu [--shapes small] [--repeats N] [--csv FILE]
//
// Versions (kernels/activation.h, kernels/elementwise.h):
//   v1 naive:     one thread per element, the CPU loop's body per thread (silu_*_cuda_naive)
//   v2 float4:    16-byte loads/stores in a grid-stride loop sized to the device (silu_*_cuda)
//   elementwise:  the engine's generic map (unary_cuda Silu / binary_cuda SiluBackward): scalar
//                 accesses and a switch on the op per element — what SiLU costs without its own kernel
//   cudnn:        cudnnActivationForward/Backward with CUDNN_ACTIVATION_SWISH, β = 1 (the baseline;
//                 its backward also reads y, 16 bytes per element against our 12)
//
// Work and traffic, n elements (memory-bound: a dozen flops against 8 or 12 bytes per element):
//   forward:  FLOPs not counted;  fewest bytes = read x + write y          = 8·n
//   backward: FLOPs not counted;  fewest bytes = read x, dy + write dx     = 12·n
//   so "% peak" is achieved bandwidth over the measured device-to-device copy bandwidth.
//
// CPU reference: silu_forward_cpu<double> / silu_backward_cpu<double> (the tests' reference) on the
// same inputs converted to double; tolerance as in tests/test_kernel_norm_act_attn.cpp.
#include <cudnn.h>

#include <string>
#include <vector>

#include "bench/harness.h"
#include "kernels/activation.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/library_handles.h"
#include "kernels/elementwise.h"
#include "kernels/runtime.h"

// The legacy activation API is deprecated in cuDNN 9 but still shipped and still what a one-call
// SiLU baseline looks like; silence the deprecation notes for this file only.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#pragma nv_diag_suppress 1215
#pragma nv_diag_suppress 1444

namespace fm::bench {
namespace {

namespace fk = fm::kernels;

// expf is within 2 ulp and x·σ(x) adds a couple more: a few ulps of the output's scale (tests' rule).
constexpr double kElementwiseRel = 2e-6;

// ---- the shapes --------------------------------------------------------------------------------
// Activation tensors of the seed U-Net at batch 256 (the SiLU after each GroupNorm when the fused
// kernel is off), and one 256 Mi-element tensor (1 GiB) for bandwidth far beyond L2.
std::vector<std::vector<long long>> silu_shapes(const Options& options) {
  if (options.small_shapes) return {{8, 32, 28, 28}, {4, 64, 128, 128}};
  return {{256, 32, 28, 28}, {256, 64, 28, 28}, {256, 128, 14, 14}, {256, 64, 7, 7}, {256, 256, 64, 64}};
}

// ---- the cuDNN baseline ------------------------------------------------------------------------
struct CudnnSwish {
  cudnnTensorDescriptor_t tensor = nullptr;
  cudnnActivationDescriptor_t activation = nullptr;
  explicit CudnnSwish(const std::vector<long long>& dims) {
    FM_CUDNN_CHECK(cudnnCreateTensorDescriptor(&tensor));
    FM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(tensor, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(dims[0]), int(dims[1]),
                                              int(dims[2]), int(dims[3])));
    FM_CUDNN_CHECK(cudnnCreateActivationDescriptor(&activation));
    FM_CUDNN_CHECK(cudnnSetActivationDescriptor(activation, CUDNN_ACTIVATION_SWISH, CUDNN_NOT_PROPAGATE_NAN, 0.0));
    FM_CUDNN_CHECK(cudnnSetActivationDescriptorSwishBeta(activation, 1.0));  // swish(x) = x·σ(β·x)
  }
  ~CudnnSwish() {
    if (activation) cudnnDestroyActivationDescriptor(activation);
    if (tensor) cudnnDestroyTensorDescriptor(tensor);
  }
  CudnnSwish(const CudnnSwish&) = delete;
  CudnnSwish& operator=(const CudnnSwish&) = delete;

  void forward(const float* x, float* y) const {
    const float one = 1.f, zero = 0.f;
    FM_CUDNN_CHECK(cudnnActivationForward(fk::cudnn_handle(), activation, &one, tensor, x, &zero, tensor, y));
  }
  void backward(const float* x, const float* y, const float* dy, float* dx) const {
    const float one = 1.f, zero = 0.f;
    FM_CUDNN_CHECK(cudnnActivationBackward(fk::cudnn_handle(), activation, &one, tensor, y, tensor, dy, tensor, x,
                                           &zero, tensor, dx));
  }
};

// A dense 1-D geometry for the generic elementwise kernels.
fk::ElementwiseGeometry flat_geometry(std::int64_t n) {
  fk::ElementwiseGeometry g;
  g.ndim = 1;
  g.sizes[0] = n;
  g.out_strides[0] = g.a_strides[0] = g.b_strides[0] = 1;
  return g;
}

// ---- one shape: forward case, then backward case -------------------------------------------------
void bench_shape(const std::vector<long long>& dims, const Options& options) {
  std::int64_t n = 1;
  for (long long d : dims) n *= d;
  const std::string shape = dims_string(dims);
  if (!options.selects(shape)) return;
  // Inputs over [-6, 6] cover both tails of σ and its steep middle.
  DeviceArray x = random_array(std::size_t(n), options, -6.f, 6.f), dy = random_array(std::size_t(n), options);
  DeviceArray y(static_cast<std::size_t>(n)), dx(static_cast<std::size_t>(n)), y_for_cudnn(static_cast<std::size_t>(n));
  const fk::ElementwiseGeometry geometry = flat_geometry(n);
  const CudnnSwish cudnn(dims);

  std::vector<double> x_host = to_double(x.to_host());

  // Forward.
  {
    std::vector<double> y_ref(static_cast<std::size_t>(n));
    fk::silu_forward_cpu<double>(x_host.data(), y_ref.data(), n);
    const Tolerance tolerance = scaled_tolerance(y_ref, kElementwiseRel, kElementwiseRel);
    BenchCase c;
    c.op = "silu";
    c.shape = shape;
    c.pass = "fwd";
    c.bound = Bound::Memory;
    c.bytes = 8.0 * double(n);
    c.baseline = "cudnn";
    c.versions = {
        {"v1 naive", [&] { fk::silu_forward_cuda_naive(x.get(), y.get(), n); }},
        {"v2 float4", [&] { fk::silu_forward_cuda(x.get(), y.get(), n); }},
        {"elementwise", [&] { fk::unary_cuda(fk::UnaryOp::Silu, x.get(), y.get(), geometry, 0.0, 0.0); }},
        {"cudnn", [&] { cudnn.forward(x.get(), y.get()); }},
    };
    c.poison_outputs = [&] { y.poison(); };
    c.check_outputs = [&] {
      Check check;
      check.compare("y", y.to_host(), y_ref, tolerance);
      return check;
    };
    run_case(c, options);
  }

  // Backward (cuDNN's also needs the forward output y, computed once here and not timed).
  {
    fk::silu_forward_cuda(x.get(), y_for_cudnn.get(), n);
    std::vector<double> dx_ref(static_cast<std::size_t>(n));
    {
      const std::vector<double> dy_host = to_double(dy.to_host());
      fk::silu_backward_cpu<double>(x_host.data(), dy_host.data(), dx_ref.data(), n);
    }
    x_host = std::vector<double>();  // release host memory before the next shape
    const Tolerance tolerance = scaled_tolerance(dx_ref, kElementwiseRel, kElementwiseRel);
    BenchCase c;
    c.op = "silu";
    c.shape = shape;
    c.pass = "bwd";
    c.bound = Bound::Memory;
    c.bytes = 12.0 * double(n);
    c.baseline = "cudnn";
    c.versions = {
        {"v1 naive", [&] { fk::silu_backward_cuda_naive(x.get(), dy.get(), dx.get(), n); }},
        {"v2 float4", [&] { fk::silu_backward_cuda(x.get(), dy.get(), dx.get(), n); }},
        {"elementwise",
         [&] { fk::binary_cuda(fk::BinaryOp::SiluBackward, x.get(), dy.get(), dx.get(), geometry); }},
        {"cudnn", [&] { cudnn.backward(x.get(), y_for_cudnn.get(), dy.get(), dx.get()); }},
    };
    c.poison_outputs = [&] { dx.poison(); };
    c.check_outputs = [&] {
      Check check;
      check.compare("dx", dx.to_host(), dx_ref, tolerance);
      return check;
    };
    run_case(c, options);
  }
}

}  // namespace

void run_silu(const Options& options) {
  measured_peaks(options);
  print_table_header("silu: y = x*sigmoid(x) and its backward (memory-bound: % of copy bandwidth)",
                     "x base = cudnn (CUDNN_ACTIVATION_SWISH) median / version median; GB/s counts 8 B/elt fwd, "
                     "12 B/elt bwd for every version");
  for (const auto& dims : silu_shapes(options)) bench_shape(dims, options);
}

}  // namespace fm::bench
