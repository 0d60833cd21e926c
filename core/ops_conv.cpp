// core/ops_conv.cpp — conv2d and conv_transpose2d as differentiable ops.
//
// Dispatch: CPU → the im2col + GEMM kernels (float32 and float64); CUDA → the project's
// implicit-GEMM kernels or cuDNN, as kernel_impl() says. Backward: the input gradient comes from
// the "backward input" kernel (a transposed convolution of dy), the weight and bias gradients from
// the "backward weight" kernel (a correlation of x with dy, and Σ dy).
#include "core/autograd.h"
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
  internal::check_same_dtype_device(op, {&x, &weight});
  if (bias.defined()) {
    internal::check_same_dtype_device(op, {&x, &bias});
    FM_CHECK(bias.dim() == 1 && bias.size(0) == bias_size, ShapeError, op, ": bias has shape ",
             shape_str(bias.shape()), ", expected [", bias_size, "]");
  }
  FM_CHECK(x.size(1) == weight_in_dim, ShapeError, op, ": input has ", x.size(1),
           " channels but weight ", shape_str(weight.shape()), " expects ", weight_in_dim);
  FM_CHECK(stride >= 1, ValueError, op, ": stride ", stride, ", expected >= 1");
  FM_CHECK(padding >= 0, ValueError, op, ": padding ", padding, ", expected >= 0");
}

[[maybe_unused]] bool use_library() { return kernel_impl() == KernelImpl::Library; }

template <typename T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
template <typename T>
T* mut_ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// ---- conv2d kernels by device/dtype -----------------------------------------------------------
void conv2d_forward_dispatch(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                             const kernels::Conv2dParams& p) {
  if (x.is_cuda()) {
#ifdef FM_WITH_CUDA
    auto f = use_library() ? kernels::conv2d_forward_cudnn : kernels::conv2d_forward_cuda;
    f(x.data<float>(), w.data<float>(), ptr_or_null<float>(b), y.data<float>(), p);
#endif
  } else if (x.dtype() == DType::Float32) {
    kernels::conv2d_forward_im2col<float>(x.data<float>(), w.data<float>(), ptr_or_null<float>(b),
                                          y.data<float>(), p);
  } else {
    kernels::conv2d_forward_im2col<double>(x.data<double>(), w.data<double>(),
                                           ptr_or_null<double>(b), y.data<double>(), p);
  }
}

void conv2d_backward_input_dispatch(const Tensor& dy, const Tensor& w, Tensor& dx,
                                    const kernels::Conv2dParams& p) {
  if (dy.is_cuda()) {
#ifdef FM_WITH_CUDA
    auto f = use_library() ? kernels::conv2d_backward_input_cudnn : kernels::conv2d_backward_input_cuda;
    f(dy.data<float>(), w.data<float>(), dx.data<float>(), p);
#endif
  } else if (dy.dtype() == DType::Float32) {
    kernels::conv2d_backward_input_im2col<float>(dy.data<float>(), w.data<float>(), dx.data<float>(), p);
  } else {
    kernels::conv2d_backward_input_im2col<double>(dy.data<double>(), w.data<double>(), dx.data<double>(), p);
  }
}

void conv2d_backward_weight_dispatch(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db,
                                     const kernels::Conv2dParams& p) {
  if (x.is_cuda()) {
#ifdef FM_WITH_CUDA
    auto f = use_library() ? kernels::conv2d_backward_weight_cudnn : kernels::conv2d_backward_weight_cuda;
    f(x.data<float>(), dy.data<float>(), dw.data<float>(), mut_ptr_or_null<float>(db), p);
#endif
  } else if (x.dtype() == DType::Float32) {
    kernels::conv2d_backward_weight_im2col<float>(x.data<float>(), dy.data<float>(), dw.data<float>(),
                                                  mut_ptr_or_null<float>(db), p);
  } else {
    kernels::conv2d_backward_weight_im2col<double>(x.data<double>(), dy.data<double>(),
                                                   dw.data<double>(), mut_ptr_or_null<double>(db), p);
  }
}

// ---- conv_transpose2d kernels by device/dtype --------------------------------------------------
void conv_transpose2d_forward_dispatch(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                                       const kernels::ConvTranspose2dParams& p) {
  if (x.is_cuda()) {
#ifdef FM_WITH_CUDA
    auto f = use_library() ? kernels::conv_transpose2d_forward_cudnn : kernels::conv_transpose2d_forward_cuda;
    f(x.data<float>(), w.data<float>(), ptr_or_null<float>(b), y.data<float>(), p);
#endif
  } else if (x.dtype() == DType::Float32) {
    kernels::conv_transpose2d_forward_im2col<float>(x.data<float>(), w.data<float>(),
                                                    ptr_or_null<float>(b), y.data<float>(), p);
  } else {
    kernels::conv_transpose2d_forward_im2col<double>(x.data<double>(), w.data<double>(),
                                                     ptr_or_null<double>(b), y.data<double>(), p);
  }
}

void conv_transpose2d_backward_input_dispatch(const Tensor& dy, const Tensor& w, Tensor& dx,
                                              const kernels::ConvTranspose2dParams& p) {
  if (dy.is_cuda()) {
#ifdef FM_WITH_CUDA
    auto f = use_library() ? kernels::conv_transpose2d_backward_input_cudnn
                           : kernels::conv_transpose2d_backward_input_cuda;
    f(dy.data<float>(), w.data<float>(), dx.data<float>(), p);
#endif
  } else if (dy.dtype() == DType::Float32) {
    kernels::conv_transpose2d_backward_input_im2col<float>(dy.data<float>(), w.data<float>(),
                                                           dx.data<float>(), p);
  } else {
    kernels::conv_transpose2d_backward_input_im2col<double>(dy.data<double>(), w.data<double>(),
                                                            dx.data<double>(), p);
  }
}

void conv_transpose2d_backward_weight_dispatch(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db,
                                               const kernels::ConvTranspose2dParams& p) {
  if (x.is_cuda()) {
#ifdef FM_WITH_CUDA
    auto f = use_library() ? kernels::conv_transpose2d_backward_weight_cudnn
                           : kernels::conv_transpose2d_backward_weight_cuda;
    f(x.data<float>(), dy.data<float>(), dw.data<float>(), mut_ptr_or_null<float>(db), p);
#endif
  } else if (x.dtype() == DType::Float32) {
    kernels::conv_transpose2d_backward_weight_im2col<float>(x.data<float>(), dy.data<float>(),
                                                            dw.data<float>(), mut_ptr_or_null<float>(db), p);
  } else {
    kernels::conv_transpose2d_backward_weight_im2col<double>(x.data<double>(), dy.data<double>(),
                                                             dw.data<double>(),
                                                             mut_ptr_or_null<double>(db), p);
  }
}

}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, int stride, int padding) {
  check_conv_args("conv2d", x_in, weight_in, bias_in, stride, padding, weight_in.defined() ? weight_in.size(1) : 0,
                  weight_in.defined() ? weight_in.size(0) : 0);
  Tensor x = x_in.detach().contiguous(), w = weight_in.detach().contiguous();
  Tensor b = bias_in.defined() ? bias_in.detach().contiguous() : Tensor();
  kernels::Conv2dParams p;
  p.batch = int(x.size(0));
  p.in_channels = int(x.size(1));
  p.in_height = int(x.size(2));
  p.in_width = int(x.size(3));
  p.out_channels = int(w.size(0));
  p.kernel_h = int(w.size(2));
  p.kernel_w = int(w.size(3));
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = padding;
  FM_CHECK(p.in_height + 2 * padding >= p.kernel_h && p.in_width + 2 * padding >= p.kernel_w, ShapeError,
           "conv2d: kernel ", p.kernel_h, "x", p.kernel_w, " is larger than the padded input ",
           shape_str(x.shape()), " (padding ", padding, ")");
  Tensor y = Tensor::empty({p.batch, p.out_channels, p.out_height(), p.out_width()}, x.dtype(), x.device());
  conv2d_forward_dispatch(x, w, b, y, p);

  bool need_x = x_in.requires_grad(), need_w = weight_in.requires_grad();
  bool has_bias = bias_in.defined(), need_b = has_bias && bias_in.requires_grad();
  std::vector<Tensor> inputs = {x_in, weight_in};
  if (has_bias) inputs.push_back(bias_in);
  return record_op(y, "conv2d", inputs, [=](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor dx, dw, db;
    if (need_x) {
      dx = Tensor::empty(x.shape(), x.dtype(), x.device());
      conv2d_backward_input_dispatch(g, w, dx, p);
    }
    if (need_w || need_b) {
      dw = Tensor::empty(w.shape(), w.dtype(), w.device());
      if (has_bias) db = Tensor::empty({p.out_channels}, w.dtype(), w.device());
      conv2d_backward_weight_dispatch(x, g, dw, db, p);
    }
    std::vector<Tensor> grads = {dx, need_w ? dw : Tensor()};
    if (has_bias) grads.push_back(need_b ? db : Tensor());
    return grads;
  });
}

Tensor conv_transpose2d(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, int stride,
                        int padding) {
  check_conv_args("conv_transpose2d", x_in, weight_in, bias_in, stride, padding,
                  weight_in.defined() ? weight_in.size(0) : 0, weight_in.defined() ? weight_in.size(1) : 0);
  Tensor x = x_in.detach().contiguous(), w = weight_in.detach().contiguous();
  Tensor b = bias_in.defined() ? bias_in.detach().contiguous() : Tensor();
  kernels::ConvTranspose2dParams p;
  p.batch = int(x.size(0));
  p.in_channels = int(x.size(1));
  p.in_height = int(x.size(2));
  p.in_width = int(x.size(3));
  p.out_channels = int(w.size(1));
  p.kernel_h = int(w.size(2));
  p.kernel_w = int(w.size(3));
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = padding;
  FM_CHECK(p.out_height() >= 1 && p.out_width() >= 1, ShapeError, "conv_transpose2d: output would be ",
           p.out_height(), "x", p.out_width(), " for input ", shape_str(x.shape()), ", kernel ", p.kernel_h,
           "x", p.kernel_w, ", stride ", stride, ", padding ", padding);
  Tensor y = Tensor::empty({p.batch, p.out_channels, p.out_height(), p.out_width()}, x.dtype(), x.device());
  conv_transpose2d_forward_dispatch(x, w, b, y, p);

  bool need_x = x_in.requires_grad(), need_w = weight_in.requires_grad();
  bool has_bias = bias_in.defined(), need_b = has_bias && bias_in.requires_grad();
  std::vector<Tensor> inputs = {x_in, weight_in};
  if (has_bias) inputs.push_back(bias_in);
  return record_op(y, "conv_transpose2d", inputs, [=](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor dx, dw, db;
    if (need_x) {
      dx = Tensor::empty(x.shape(), x.dtype(), x.device());
      conv_transpose2d_backward_input_dispatch(g, w, dx, p);
    }
    if (need_w || need_b) {
      dw = Tensor::empty(w.shape(), w.dtype(), w.device());
      if (has_bias) db = Tensor::empty({p.out_channels}, w.dtype(), w.device());
      conv_transpose2d_backward_weight_dispatch(x, g, dw, db, p);
    }
    std::vector<Tensor> grads = {dx, need_w ? dw : Tensor()};
    if (has_bias) grads.push_back(need_b ? db : Tensor());
    return grads;
  });
}

}  // namespace fm
