// cases/silu.cpp — the SiLU case table (cases/silu.h): the shapes, the tolerance, the bytes, and the
// implementations as kernels/ entry points (plus the cuDNN baseline, which kernels/ does not wrap).
#include "cases/silu.h"

#include "kernels/activation.h"
#include "kernels/elementwise.h"
#include "kernels/runtime.h"

#if defined(FM_WITH_CUDA) && !defined(FM_CUDA_EMULATOR)
#include <cudnn.h>

#include <array>
#include <memory>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/library_handles.h"
// The legacy activation API is deprecated in cuDNN 9 but still shipped and still what a one-call
// SiLU baseline looks like; silence the deprecation notes for this file only.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

namespace fm::cases {

namespace fk = fm::kernels;

namespace {
// The element count of a tensor of these sizes.
std::int64_t count(const std::vector<long long>& dims) {
  std::int64_t n = 1;
  for (long long d : dims) n *= d;
  return n;
}
}  // namespace

std::int64_t SiluCase::elements() const { return count(dims); }

const std::vector<SiluCase>& silu_cases() {
  static const std::vector<SiluCase> cases = {
      // ---- the lab's default run: activation tensors of the seed U-Net at batch 256 (the SiLU after
      // each GroupNorm when the fused kernel is off), and one 256 Mi-element tensor for bandwidth.
      {{256, 32, 28, 28}, kBench, "U-Net activation: 32 channels at 28x28"},
      {{256, 64, 28, 28}, kBench, "U-Net activation: 64 channels at 28x28"},
      {{256, 128, 14, 14}, kBench, "U-Net activation: 128 channels at 14x14"},
      {{256, 64, 7, 7}, kBench, "U-Net activation: 64 channels at 7x7"},
      {{256, 256, 64, 64}, kBench, "large: 1 GiB per tensor, bandwidth far beyond L2"},
      // ---- the lab's --shapes small
      {{8, 32, 28, 28}, kBenchSmall, "small"},
      {{4, 64, 128, 128}, kBenchSmall, "small"},
      // ---- the tests: sizes around v2's float4 loads (a tail, one vector, none), aligned and shifted
      // one float off 16-byte alignment (v2's scalar path)
      {{1}, kTest, "one element"},
      {{1}, kTest, "one element, misaligned", 1},
      {{3}, kTest, "less than one float4"},
      {{3}, kTest, "less than one float4, misaligned", 1},
      {{4}, kTest, "exactly one float4"},
      {{4}, kTest, "exactly one float4, misaligned", 1},
      {{1000}, kTest, "under one block"},
      {{1000}, kTest, "under one block, misaligned", 1},
      {{1000003}, kTest, "odd size over many blocks: a scalar tail"},
      {{1000003}, kTest, "odd size over many blocks, misaligned", 1},
      {{1 << 20}, kTest, "2^20: float4 only, no tail"},
      {{1 << 20}, kTest, "2^20, misaligned", 1},
      // ---- the float64 gradcheck of the CPU reference (tiny: two forwards per input element)
      {{11}, kTest | kGradcheck, "gradcheck"},
  };
  return cases;
}

std::string shape_name(const SiluCase& c) {
  std::string s;
  for (std::size_t i = 0; i < c.dims.size(); ++i) {
    if (i) s += 'x';
    s += std::to_string(c.dims[i]);
  }
  return s;
}

double silu_forward_bytes(const SiluCase& c) { return 8.0 * double(c.elements()); }
double silu_backward_bytes(const SiluCase& c) { return 12.0 * double(c.elements()); }

Tolerance silu_tolerance(const std::vector<double>& reference) {
  return scaled_tolerance(reference, kSiluRel, kSiluRel);
}

// ---- the entries: kernels/ functions behind the common signatures ------------------------------------
namespace {

// A dense 1-D geometry for the generic elementwise maps.
fk::ElementwiseGeometry flat_geometry(std::int64_t n) {
  fk::ElementwiseGeometry g;
  g.ndim = 1;
  g.sizes[0] = n;
  g.out_strides[0] = g.a_strides[0] = g.b_strides[0] = 1;
  return g;
}

// CPU: the reference loops at float, and the generic elementwise maps (what the engine runs for SiLU
// on the CPU, and on the GPU for strided views).
void cpu_forward(const float* x, float* y, const std::vector<long long>& dims) {
  fk::silu_forward_cpu<float>(x, y, count(dims));
}
void cpu_backward(const float* x, const float*, const float* dy, float* dx, const std::vector<long long>& dims) {
  fk::silu_backward_cpu<float>(x, dy, dx, count(dims));
}
void cpu_elementwise_forward(const float* x, float* y, const std::vector<long long>& dims) {
  fk::unary_cpu<float>(fk::UnaryOp::Silu, x, y, flat_geometry(count(dims)), 0.0, 0.0);
}
void cpu_elementwise_backward(const float* x, const float*, const float* dy, float* dx,
                              const std::vector<long long>& dims) {
  fk::binary_cpu<float>(fk::BinaryOp::SiluBackward, x, dy, dx, flat_geometry(count(dims)));
}

#ifdef FM_WITH_CUDA
// v1 naive: one thread per element, the CPU loop's body per thread.
void naive_forward(const float* x, float* y, const std::vector<long long>& dims) {
  fk::silu_forward_cuda_naive(x, y, count(dims));
}
void naive_backward(const float* x, const float*, const float* dy, float* dx, const std::vector<long long>& dims) {
  fk::silu_backward_cuda_naive(x, dy, dx, count(dims));
}
// v2 float4: 16-byte loads/stores in a grid-stride loop sized to the device (what the engine runs).
void float4_forward(const float* x, float* y, const std::vector<long long>& dims) {
  fk::silu_forward_cuda(x, y, count(dims));
}
void float4_backward(const float* x, const float*, const float* dy, float* dx, const std::vector<long long>& dims) {
  fk::silu_backward_cuda(x, dy, dx, count(dims));
}
// elementwise: the engine's generic map (unary_cuda Silu / binary_cuda SiluBackward): scalar accesses
// and a switch on the op per element — what SiLU costs without its own kernel.
void elementwise_forward(const float* x, float* y, const std::vector<long long>& dims) {
  fk::unary_cuda(fk::UnaryOp::Silu, x, y, flat_geometry(count(dims)), 0.0, 0.0);
}
void elementwise_backward(const float* x, const float*, const float* dy, float* dx,
                          const std::vector<long long>& dims) {
  fk::binary_cuda(fk::BinaryOp::SiluBackward, x, dy, dx, flat_geometry(count(dims)));
}
#endif  // FM_WITH_CUDA

#if defined(FM_WITH_CUDA) && !defined(FM_CUDA_EMULATOR)
// cudnn: cudnnActivationForward/Backward with CUDNN_ACTIVATION_SWISH, β = 1 (swish(x) = x·σ(β·x)).
// The tensor is described as 4-D NCHW: fewer dims are padded with leading 1s, more are folded into N.
class CudnnSwish {
 public:
  explicit CudnnSwish(const std::vector<long long>& dims) {
    std::array<int, 4> nchw = {1, 1, 1, 1};
    const std::size_t rank = dims.size();
    for (std::size_t i = 0; i < rank; ++i) nchw[i + 4 >= rank ? i + 4 - rank : 0] *= int(dims[i]);
    FM_CUDNN_CHECK(cudnnCreateTensorDescriptor(&tensor_));
    FM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(tensor_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, nchw[0], nchw[1],
                                              nchw[2], nchw[3]));
    FM_CUDNN_CHECK(cudnnCreateActivationDescriptor(&activation_));
    FM_CUDNN_CHECK(cudnnSetActivationDescriptor(activation_, CUDNN_ACTIVATION_SWISH, CUDNN_NOT_PROPAGATE_NAN, 0.0));
    FM_CUDNN_CHECK(cudnnSetActivationDescriptorSwishBeta(activation_, 1.0));
  }
  ~CudnnSwish() {
    if (activation_) cudnnDestroyActivationDescriptor(activation_);
    if (tensor_) cudnnDestroyTensorDescriptor(tensor_);
  }
  CudnnSwish(const CudnnSwish&) = delete;
  CudnnSwish& operator=(const CudnnSwish&) = delete;

  void forward(const float* x, float* y) const {
    const float one = 1.f, zero = 0.f;
    FM_CUDNN_CHECK(cudnnActivationForward(fk::cudnn_handle(), activation_, &one, tensor_, x, &zero, tensor_, y));
  }
  void backward(const float* x, const float* y, const float* dy, float* dx) const {
    const float one = 1.f, zero = 0.f;
    FM_CUDNN_CHECK(cudnnActivationBackward(fk::cudnn_handle(), activation_, &one, tensor_, y, tensor_, dy, tensor_,
                                           x, &zero, tensor_, dx));
  }

 private:
  cudnnTensorDescriptor_t tensor_ = nullptr;
  cudnnActivationDescriptor_t activation_ = nullptr;
};

// The descriptors of the last shape used, kept: the lab times one shape many times in a row, and
// must time the cuDNN call, not the descriptors' setup. (Tests and lab call it from one thread.)
const CudnnSwish& cudnn_swish(const std::vector<long long>& dims) {
  static std::vector<long long> cached_dims;
  static std::unique_ptr<CudnnSwish> cached;
  if (!cached || cached_dims != dims) {
    cached.reset();
    cached = std::make_unique<CudnnSwish>(dims);
    cached_dims = dims;
  }
  return *cached;
}
void cudnn_forward(const float* x, float* y, const std::vector<long long>& dims) { cudnn_swish(dims).forward(x, y); }
void cudnn_backward(const float* x, const float* y, const float* dy, float* dx, const std::vector<long long>& dims) {
  cudnn_swish(dims).backward(x, y, dy, dx);
}
#endif  // FM_WITH_CUDA && !FM_CUDA_EMULATOR

}  // namespace

const std::vector<SiluImpl>& silu_implementations() {
  static const std::vector<SiluImpl> list = [] {
    std::vector<SiluImpl> impls = {
        {"cpu float", ImplKind::CpuReference, cpu_forward, cpu_backward},
        {"cpu elementwise", ImplKind::CpuFast, cpu_elementwise_forward, cpu_elementwise_backward},
    };
#ifdef FM_WITH_CUDA
    impls.push_back({"v1 naive", ImplKind::CudaNaive, naive_forward, naive_backward});
    impls.push_back({"v2 float4", ImplKind::CudaCustom, float4_forward, float4_backward});
    impls.push_back({"elementwise", ImplKind::CudaCustom, elementwise_forward, elementwise_backward});
#endif
#if defined(FM_WITH_CUDA) && !defined(FM_CUDA_EMULATOR)
    impls.push_back({"cudnn", ImplKind::Library, cudnn_forward, cudnn_backward, true});
#endif
    return impls;
  }();
  return list;
}

bool silu_impl_available(const SiluImpl& impl) {
  return impl.kind != ImplKind::Library || fk::cudnn_available();
}

OpListing silu_listing() {
  OpListing listing;
  listing.op = "silu";
  for (const SiluCase& c : silu_cases()) {
    std::string shape = shape_name(c);
    if (c.misalign) shape += " misaligned";
    listing.cases.push_back({shape, c.where, c.uses, 0.0, silu_forward_bytes(c)});
  }
  for (const SiluImpl& impl : silu_implementations())
    listing.implementations.push_back({std::string(impl.name) + (impl.lab_baseline ? " (x base)" : ""), impl.kind,
                                       "fwd, bwd"});
  listing.tolerances = {
      "reference: silu_{forward,backward}_cpu<double> on the same float inputs",
      "y, dx: scaled_tolerance(ref, 2e-6, 2e-6) (kSiluRel: expf within 2 ulp plus a couple for x*sigmoid(x); "
      "2e-6 is ~16 ulp)",
      "bytes: fwd 8 B/elt (read x, write y), bwd 12 B/elt (read x, dy, write dx); FLOPs not counted",
  };
  return listing;
}

}  // namespace fm::cases
