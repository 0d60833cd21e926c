// core/ops_conv.cpp — conv2d and conv_transpose2d as differentiable ops.
//
// Dispatch (core/dispatch.h): CPU → the im2col + GEMM kernels (float32 and float64); CUDA → the
// project's implicit-GEMM kernels or cuDNN, as kernel_impl() says. Both ops share one Tensor-level
// implementation (convolution<Params>), which finds each op's kernels by overload. Backward: the input gradient comes from
// the "backward input" kernel (a transposed convolution of dy), the weight and bias gradients from
// the "backward weight" kernel (a correlation of x with dy, and Σ dy).
//
// Dtypes: x, weight and bias alike (float32, or float64 on the CPU), or bfloat16 activations with
// float32 weight and bias: then y and dx are bfloat16, dweight and dbias float32, and on CUDA the
// project's kernels multiply on the bfloat16 tensor cores whatever the precision setting.
#include <type_traits>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/kernel_choice.h"
#include "core/ops_nn.h"
#include "core/tensor_internal.h"
#include "kernels/conv2d.h"

namespace fm {
namespace {

void check_conv_args(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias,
                     int stride, int padding, std::int64_t weight_in_dim, std::int64_t bias_size) {
  internal::check_dim(op, x, 4, "input", "(batch, channels, height, width)");
  internal::check_dim(op, weight, 4, "weight",
                      std::string(op) == "conv2d" ? "(out, in, kh, kw)" : "(in, out, kh, kw)");
  FM_CHECK(x.device() == weight.device(), DeviceError, op, ": input on ", device_name(x.device()),
           ", weight on ", device_name(weight.device()));
  const DType parameter_dtype = compute_dtype(x.dtype());
  FM_CHECK(weight.dtype() == parameter_dtype, DTypeError, op, ": a ", dtype_name(x.dtype()), " input takes a ",
           dtype_name(parameter_dtype), " weight, got ", dtype_name(weight.dtype()));
  if (bias.defined()) {
    internal::check_same_dtype_device(op, {&weight, &bias});
    FM_CHECK(bias.dim() == 1 && bias.size(0) == bias_size, ShapeError, op, ": bias has shape ",
             shape_str(bias.shape()), ", expected [", bias_size, "]");
  }
  FM_CHECK(x.size(1) == weight_in_dim, ShapeError, op, ": input has ", x.size(1),
           " channels but weight ", shape_str(weight.shape()), " expects ", weight_in_dim);
  FM_CHECK(stride >= 1, ValueError, op, ": stride ", stride, ", expected >= 1");
  FM_CHECK(padding >= 0, ValueError, op, ": padding ", padding, ", expected >= 0");
}

bool use_library() { return kernel_impl() == KernelImpl::Library; }

template <typename T>
T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// ---- the kernels of each pass, as overloads on the op's Params ----------------------------------
// conv2d and conv_transpose2d have the same three passes with the same arguments, so the
// Tensor-level code below is written once and picks the op's kernels by overload. CPU: the im2col
// templates; CUDA: the implicit-GEMM kernels, or cuDNN when kernel_impl() says Library. The CUDA
// overloads are templates only so that a build without CUDA never instantiates them.
using kernels::Conv2dParams;
using kernels::ConvTranspose2dParams;

// T is the activations' element type, P the weights' (float for bfloat16 activations, else T); the
// kernels are found by overload (the bfloat16 ones are plain functions, the others templates).
template <typename T, typename P> void forward_cpu(const T* x, const P* w, const P* b, T* y, const Conv2dParams& p) {
  kernels::conv2d_forward_im2col(x, w, b, y, p);
}
template <typename T, typename P>
void forward_cpu(const T* x, const P* w, const P* b, T* y, const ConvTranspose2dParams& p) {
  kernels::conv_transpose2d_forward_im2col(x, w, b, y, p);
}
template <typename T, typename P> void backward_input_cpu(const T* dy, const P* w, T* dx, const Conv2dParams& p) {
  kernels::conv2d_backward_input_im2col(dy, w, dx, p);
}
template <typename T, typename P>
void backward_input_cpu(const T* dy, const P* w, T* dx, const ConvTranspose2dParams& p) {
  kernels::conv_transpose2d_backward_input_im2col(dy, w, dx, p);
}
template <typename T, typename P>
void backward_weight_cpu(const T* x, const T* dy, P* dw, P* db, const Conv2dParams& p) {
  kernels::conv2d_backward_weight_im2col(x, dy, dw, db, p);
}
template <typename T, typename P>
void backward_weight_cpu(const T* x, const T* dy, P* dw, P* db, const ConvTranspose2dParams& p) {
  kernels::conv_transpose2d_backward_weight_im2col(x, dy, dw, db, p);
}

// Ours in FP32 or on the TF32 or bfloat16 tensor cores (precision(), core/kernel_choice.h), or cuDNN:
// its spatial-domain algorithms in FP32, or with TF32 allowed under tf32 and bf16 (cuDNN has no
// bfloat16 arithmetic for FP32 tensors; kernels/conv2d.h CudnnAlgorithms).
kernels::CudnnAlgorithms cudnn_algorithms() {
  return precision() == Precision::FP32 ? kernels::CudnnAlgorithms::SpatialFp32 : kernels::CudnnAlgorithms::SpatialTf32;
}
template <typename Params> constexpr const char* conv_op_name() {
  return std::is_same_v<Params, Conv2dParams> ? "conv2d" : "conv_transpose2d";
}
template <typename Fn> Fn pick(Fn fp32, Fn tf32, Fn bf16_math) {
  switch (precision()) {
    case Precision::TF32: return tf32;
    case Precision::BF16: return bf16_math;
    case Precision::FP32: break;
  }
  return fp32;
}
template <typename T> void forward_cuda_float(const T* x, const T* w, const T* b, T* y, const Conv2dParams& p) {
  if (use_library()) return kernels::conv2d_forward_cudnn_with(cudnn_algorithms(), x, w, b, y, p);
  pick(kernels::conv2d_forward_cuda, kernels::conv2d_forward_cuda_tf32, kernels::conv2d_forward_cuda_bf16)(x, w, b, y, p);
}
template <typename T> void forward_cuda_float(const T* x, const T* w, const T* b, T* y, const ConvTranspose2dParams& p) {
  if (use_library()) return kernels::conv_transpose2d_forward_cudnn_with(cudnn_algorithms(), x, w, b, y, p);
  pick(kernels::conv_transpose2d_forward_cuda, kernels::conv_transpose2d_forward_cuda_tf32,
       kernels::conv_transpose2d_forward_cuda_bf16)(x, w, b, y, p);
}
template <typename T> void backward_input_cuda_float(const T* dy, const T* w, T* dx, const Conv2dParams& p) {
  if (use_library()) return kernels::conv2d_backward_input_cudnn_with(cudnn_algorithms(), dy, w, dx, p);
  pick(kernels::conv2d_backward_input_cuda, kernels::conv2d_backward_input_cuda_tf32,
       kernels::conv2d_backward_input_cuda_bf16)(dy, w, dx, p);
}
template <typename T> void backward_input_cuda_float(const T* dy, const T* w, T* dx, const ConvTranspose2dParams& p) {
  if (use_library()) return kernels::conv_transpose2d_backward_input_cudnn_with(cudnn_algorithms(), dy, w, dx, p);
  pick(kernels::conv_transpose2d_backward_input_cuda, kernels::conv_transpose2d_backward_input_cuda_tf32,
       kernels::conv_transpose2d_backward_input_cuda_bf16)(dy, w, dx, p);
}
template <typename T> void backward_weight_cuda_float(const T* x, const T* dy, T* dw, T* db, const Conv2dParams& p) {
  if (use_library()) return kernels::conv2d_backward_weight_cudnn_with(cudnn_algorithms(), x, dy, dw, db, p);
  pick(kernels::conv2d_backward_weight_cuda, kernels::conv2d_backward_weight_cuda_tf32,
       kernels::conv2d_backward_weight_cuda_bf16)(x, dy, dw, db, p);
}
template <typename T>
void backward_weight_cuda_float(const T* x, const T* dy, T* dw, T* db, const ConvTranspose2dParams& p) {
  if (use_library())
    return kernels::conv_transpose2d_backward_weight_cudnn_with(cudnn_algorithms(), x, dy, dw, db, p);
  pick(kernels::conv_transpose2d_backward_weight_cuda, kernels::conv_transpose2d_backward_weight_cuda_tf32,
       kernels::conv_transpose2d_backward_weight_cuda_bf16)(x, dy, dw, db, p);
}

// The CUDA kernels of a pass for activations T and weights P: bfloat16 activations take the project's
// bf16 overloads, the others the precision's kernels above. Templates, so that a build without CUDA
// never instantiates them.
template <typename T, typename P, typename Params>
void forward_cuda(const T* x, const P* w, const P* b, T* y, const Params& p) {
  if constexpr (std::is_same_v<T, bf16>) {
    require_project_kernels_for_bf16(conv_op_name<Params>(), "cuDNN");
    if constexpr (std::is_same_v<Params, Conv2dParams>)
      kernels::conv2d_forward_cuda(x, w, b, y, p);
    else
      kernels::conv_transpose2d_forward_cuda(x, w, b, y, p);
  } else {
    forward_cuda_float<T>(x, w, b, y, p);
  }
}
template <typename T, typename P, typename Params>
void backward_input_cuda(const T* dy, const P* w, T* dx, const Params& p) {
  if constexpr (std::is_same_v<T, bf16>) {
    require_project_kernels_for_bf16(conv_op_name<Params>(), "cuDNN");
    if constexpr (std::is_same_v<Params, Conv2dParams>)
      kernels::conv2d_backward_input_cuda(dy, w, dx, p);
    else
      kernels::conv_transpose2d_backward_input_cuda(dy, w, dx, p);
  } else {
    backward_input_cuda_float<T>(dy, w, dx, p);
  }
}
template <typename T, typename P, typename Params>
void backward_weight_cuda(const T* x, const T* dy, P* dw, P* db, const Params& p) {
  if constexpr (std::is_same_v<T, bf16>) {
    require_project_kernels_for_bf16(conv_op_name<Params>(), "cuDNN");
    if constexpr (std::is_same_v<Params, Conv2dParams>)
      kernels::conv2d_backward_weight_cuda(x, dy, dw, db, p);
    else
      kernels::conv_transpose2d_backward_weight_cuda(x, dy, dw, db, p);
  } else {
    backward_weight_cuda_float<T>(x, dy, dw, db, p);
  }
}

// ---- one convolution op on Tensors (either kind) ------------------------------------------------
// x, w, b are detached contiguous copies of the inputs; the result records the backward.
template <typename Params>
Tensor convolution(const char* op, const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in,
                   const Tensor& x, const Tensor& w, const Tensor& b, const Params& p) {
  Tensor y = Tensor::empty({p.batch, p.out_channels, p.out_height(), p.out_width()}, x.dtype(), x.device());
  // T: the activations' element type; P: the weights' (float for bfloat16 activations).
  dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>(
      op, x.device(), x.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        using P = compute_t<T>;
        forward_cpu(x.data<T>(), w.data<P>(), data_or_null<P>(b), y.data<T>(), p);
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        using P = compute_t<T>;
        forward_cuda(x.data<T>(), w.data<P>(), data_or_null<P>(b), y.data<T>(), p);
      });

  bool need_x = x_in.requires_grad(), need_w = weight_in.requires_grad();
  bool has_bias = bias_in.defined(), need_b = has_bias && bias_in.requires_grad();
  std::vector<Tensor> inputs = {x_in, weight_in};
  if (has_bias) inputs.push_back(bias_in);
  return record_op(y, op, inputs, [=](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    FM_CHECK(g.dtype() == x.dtype(), DTypeError, op, ": gradient ", g.describe(), " for a ", dtype_name(x.dtype()),
             " output");
    Tensor dx, dw, db;
    if (need_x) {
      dx = Tensor::empty(x.shape(), x.dtype(), x.device());
      dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>(
          op, x.device(), x.dtype(),
          [&](auto type) {
            using T = element_type<decltype(type)>;
            backward_input_cpu(g.data<T>(), w.data<compute_t<T>>(), dx.data<T>(), p);
          },
          [&](auto type) {
            using T = element_type<decltype(type)>;
            backward_input_cuda(g.data<T>(), w.data<compute_t<T>>(), dx.data<T>(), p);
          });
    }
    if (need_w || need_b) {
      dw = Tensor::empty(w.shape(), w.dtype(), w.device());
      if (has_bias) db = Tensor::empty({p.out_channels}, w.dtype(), w.device());
      dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>(
          op, x.device(), x.dtype(),
          [&](auto type) {
            using T = element_type<decltype(type)>;
            using P = compute_t<T>;
            backward_weight_cpu(x.data<T>(), g.data<T>(), dw.data<P>(), data_or_null<P>(db), p);
          },
          [&](auto type) {
            using T = element_type<decltype(type)>;
            using P = compute_t<T>;
            backward_weight_cuda(x.data<T>(), g.data<T>(), dw.data<P>(), data_or_null<P>(db), p);
          });
    }
    std::vector<Tensor> grads = {dx, need_w ? dw : Tensor()};
    if (has_bias) grads.push_back(need_b ? db : Tensor());
    return grads;
  });
}

// The sizes both ops read off their inputs; out_channels is the one place they differ.
template <typename Params>
Params convolution_params(const Tensor& x, std::int64_t out_channels, const Tensor& w, int stride, int padding) {
  Params p;
  p.batch = int(x.size(0));
  p.in_channels = int(x.size(1));
  p.in_height = int(x.size(2));
  p.in_width = int(x.size(3));
  p.out_channels = int(out_channels);
  p.kernel_h = int(w.size(2));
  p.kernel_w = int(w.size(3));
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = padding;
  return p;
}

}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, int stride, int padding) {
  check_conv_args("conv2d", x_in, weight_in, bias_in, stride, padding, weight_in.defined() ? weight_in.size(1) : 0,
                  weight_in.defined() ? weight_in.size(0) : 0);
  Tensor x = x_in.detach().contiguous(), w = weight_in.detach().contiguous();
  Tensor b = bias_in.defined() ? bias_in.detach().contiguous() : Tensor();
  const auto p = convolution_params<Conv2dParams>(x, w.size(0), w, stride, padding);
  FM_CHECK(p.in_height + 2 * padding >= p.kernel_h && p.in_width + 2 * padding >= p.kernel_w, ShapeError,
           "conv2d: kernel ", p.kernel_h, "x", p.kernel_w, " is larger than the padded input ",
           shape_str(x.shape()), " (padding ", padding, ")");
  return convolution("conv2d", x_in, weight_in, bias_in, x, w, b, p);
}

Tensor conv_transpose2d(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, int stride,
                        int padding) {
  check_conv_args("conv_transpose2d", x_in, weight_in, bias_in, stride, padding,
                  weight_in.defined() ? weight_in.size(0) : 0, weight_in.defined() ? weight_in.size(1) : 0);
  Tensor x = x_in.detach().contiguous(), w = weight_in.detach().contiguous();
  Tensor b = bias_in.defined() ? bias_in.detach().contiguous() : Tensor();
  const auto p = convolution_params<ConvTranspose2dParams>(x, w.size(1), w, stride, padding);
  FM_CHECK(p.out_height() >= 1 && p.out_width() >= 1, ShapeError, "conv_transpose2d: output would be ",
           p.out_height(), "x", p.out_width(), " for input ", shape_str(x.shape()), ", kernel ", p.kernel_h,
           "x", p.kernel_w, ", stride ", stride, ", padding ", padding);
  return convolution("conv_transpose2d", x_in, weight_in, bias_in, x, w, b, p);
}

}  // namespace fm
