// core/ops_elementwise.cpp — broadcasting arithmetic and the pointwise functions, with their
// derivatives beside them. Their kernels take float32, float64 (CPU) and bfloat16.
#include <cmath>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/tensor_internal.h"
#include "kernels/activation.h"
#include "kernels/elementwise.h"

namespace fm {
namespace {

using kernels::BinaryOp;
using kernels::UnaryOp;

// Runs a unary kernel over x into a fresh contiguous tensor (no autograd).
Tensor unary_forward(const char* op_name, UnaryOp op, const Tensor& x, double alpha = 0,
                     double beta = 0) {
  internal::check_defined(op_name, x, "input");
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  auto g = internal::make_geometry(x.shape(), y.strides(), x.strides());
  dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>(
      op_name, x.device(), x.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::unary_cpu(op, x.data<T>(), y.data<T>(), g, alpha, beta);
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::unary_cuda(op, x.data<T>(), y.data<T>(), g, alpha, beta);
      });
  return y;
}

// Runs a binary kernel with broadcasting into a fresh contiguous tensor (no autograd).
Tensor binary_forward(const char* op_name, BinaryOp op, const Tensor& a, const Tensor& b) {
  internal::check_same_dtype_device(op_name, {&a, &b});
  Shape out_shape = a.shape() == b.shape() ? a.shape() : internal::broadcast_shapes(op_name, a.shape(), b.shape());
  Tensor y = Tensor::empty(std::move(out_shape), a.dtype(), a.device());
  auto g = internal::broadcast_geometry(y, a, b);
  dispatch_kernel<CpuTypesWithBf16, CudaTypesWithBf16>(
      op_name, a.device(), a.dtype(),
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::binary_cpu(op, a.data<T>(), b.data<T>(), y.data<T>(), g);
      },
      [&](auto type) {
        using T = element_type<decltype(type)>;
        kernels::binary_cuda(op, a.data<T>(), b.data<T>(), y.data<T>(), g);
      });
  return y;
}

}  // namespace

// ---- arithmetic: d(a±b) = g, ±g; d(ab) = g·b, g·a; d(a/b) = g/b, −g·a/b² (reduced to each shape)
//
// A closure saves the inputs it needs as they are (the node holds them in its inputs anyway); only an
// op's own output is saved detached (exp, sqrt, tanh, sigmoid), or the node would own itself.
// Without broadcasting, add and sub save nothing: a closure with no captures needs no allocation.
Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward("add", BinaryOp::Add, a, b);
  if (!needs_grad(a, b)) return y;
  if (a.shape() == b.shape())
    return record_op(y, "add", {a, b}, [](const Tensor& g) { return std::vector<Tensor>{g, g}; });
  return record_op(y, "add", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{sum_to_shape(g, sa), sum_to_shape(g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward("sub", BinaryOp::Sub, a, b);
  if (!needs_grad(a, b)) return y;
  if (a.shape() == b.shape())
    return record_op(y, "sub", {a, b}, [](const Tensor& g) { return std::vector<Tensor>{g, neg(g)}; });
  return record_op(y, "sub", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{sum_to_shape(g, sa), sum_to_shape(neg(g), sb)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward("mul", BinaryOp::Mul, a, b);
  if (!needs_grad(a, b)) return y;
  Tensor a_saved = a, b_saved = b;
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record_op(y, "mul", {a, b}, [=](const Tensor& g) {
    return std::vector<Tensor>{need_a ? sum_to_shape(mul(g, b_saved), a_saved.shape()) : Tensor(),
                               need_b ? sum_to_shape(mul(g, a_saved), b_saved.shape()) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward("div", BinaryOp::Div, a, b);
  if (!needs_grad(a, b)) return y;
  Tensor a_saved = a, b_saved = b;
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record_op(y, "div", {a, b}, [=](const Tensor& g) {
    Tensor ga, gb;
    if (need_a) ga = sum_to_shape(div(g, b_saved), a_saved.shape());
    if (need_b) gb = sum_to_shape(neg(div(mul(g, a_saved), square(b_saved))), b_saved.shape());
    return std::vector<Tensor>{ga, gb};
  });
}

Tensor neg(const Tensor& x) {
  Tensor y = unary_forward("neg", UnaryOp::Neg, x);
  if (!needs_grad(x)) return y;
  return record_op(y, "neg", {x}, [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
}

Tensor affine(const Tensor& x, double scale, double shift) {
  Tensor y = unary_forward("affine", UnaryOp::Affine, x, scale, shift);
  if (!needs_grad(x)) return y;
  return record_op(y, "affine", {x}, [scale](const Tensor& g) {
    return std::vector<Tensor>{affine(g, scale, 0.0)};
  });
}

// d(x^p) = p·x^(p−1)
Tensor pow_scalar(const Tensor& x, double exponent) {
  Tensor y = unary_forward("pow", UnaryOp::Pow, x, exponent);
  if (!needs_grad(x)) return y;
  Tensor x_saved = x;
  return record_op(y, "pow", {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{mul(g, affine(pow_scalar(x_saved, exponent - 1), exponent, 0))};
  });
}

Tensor square(const Tensor& x) {
  Tensor y = unary_forward("square", UnaryOp::Square, x);
  if (!needs_grad(x)) return y;
  Tensor x_saved = x;
  return record_op(y, "square", {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{mul(g, affine(x_saved, 2.0, 0.0))};
  });
}

// d(eˣ) = eˣ: reuse the output (detached, so the node does not own itself).
Tensor exp(const Tensor& x) {
  Tensor y = unary_forward("exp", UnaryOp::Exp, x);
  if (!needs_grad(x)) return y;
  Tensor y_saved = y.detach();
  return record_op(y, "exp", {x}, [=](const Tensor& g) { return std::vector<Tensor>{mul(g, y_saved)}; });
}

Tensor log(const Tensor& x) {
  Tensor y = unary_forward("log", UnaryOp::Log, x);
  if (!needs_grad(x)) return y;
  Tensor x_saved = x;
  return record_op(y, "log", {x}, [=](const Tensor& g) { return std::vector<Tensor>{div(g, x_saved)}; });
}

// d√x = 1 / (2√x)
Tensor sqrt(const Tensor& x) {
  Tensor y = unary_forward("sqrt", UnaryOp::Sqrt, x);
  if (!needs_grad(x)) return y;
  Tensor y_saved = y.detach();
  return record_op(y, "sqrt", {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{div(g, affine(y_saved, 2.0, 0.0))};
  });
}

Tensor tanh(const Tensor& x) {
  Tensor y = unary_forward("tanh", UnaryOp::Tanh, x);
  if (!needs_grad(x)) return y;
  Tensor y_saved = y.detach();
  return record_op(y, "tanh", {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{binary_forward("tanh_backward", BinaryOp::TanhBackward, y_saved, g)};
  });
}

Tensor sin(const Tensor& x) {
  Tensor y = unary_forward("sin", UnaryOp::Sin, x);
  if (!needs_grad(x)) return y;
  Tensor x_saved = x;
  return record_op(y, "sin", {x}, [=](const Tensor& g) { return std::vector<Tensor>{mul(g, cos(x_saved))}; });
}

Tensor cos(const Tensor& x) {
  Tensor y = unary_forward("cos", UnaryOp::Cos, x);
  if (!needs_grad(x)) return y;
  Tensor x_saved = x;
  return record_op(y, "cos", {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{neg(mul(g, sin(x_saved)))};
  });
}

Tensor sigmoid(const Tensor& x) {
  Tensor y = unary_forward("sigmoid", UnaryOp::Sigmoid, x);
  if (!needs_grad(x)) return y;
  Tensor y_saved = y.detach();
  return record_op(y, "sigmoid", {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{binary_forward("sigmoid_backward", BinaryOp::SigmoidBackward, y_saved, g)};
  });
}

Tensor relu(const Tensor& x) {
  Tensor y = unary_forward("relu", UnaryOp::Relu, x);
  if (!needs_grad(x)) return y;
  Tensor x_saved = x;
  return record_op(y, "relu", {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{binary_forward("relu_backward", BinaryOp::ReluBackward, x_saved, g)};
  });
}

// SiLU on CUDA runs the dedicated vectorised kernels (kernels/cuda/activation.cu) when the input is
// contiguous float32; everything else (the CPU, strided views, bfloat16) goes through the generic
// elementwise maps.
Tensor silu(const Tensor& x) {
  const bool dedicated = x.defined() && x.is_cuda() && x.is_contiguous() && x.dtype() == DType::Float32;
  Tensor y;
  if (dedicated) {
    y = Tensor::empty(x.shape(), x.dtype(), x.device());
    dispatch_cuda_kernel("silu", x.dtype(), [&](auto type) {
      using T = element_type<decltype(type)>;
      kernels::silu_forward_cuda(x.data<T>(), y.data<T>(), x.numel());
    });
  } else {
    y = unary_forward("silu", UnaryOp::Silu, x);
  }
  if (!needs_grad(x)) return y;
  Tensor x_saved = x;
  return record_op(y, "silu", {x}, [=](const Tensor& g) {
    if (!dedicated)
      return std::vector<Tensor>{binary_forward("silu_backward", BinaryOp::SiluBackward, x_saved, g)};
    Tensor gc = g.contiguous();
    Tensor dx = Tensor::empty(gc.shape(), gc.dtype(), gc.device());
    dispatch_cuda_kernel("silu", gc.dtype(), [&](auto type) {
      using T = element_type<decltype(type)>;
      kernels::silu_backward_cuda(x_saved.data<T>(), gc.data<T>(), dx.data<T>(), gc.numel());
    });
    return std::vector<Tensor>{dx};
  });
}

Tensor gelu(const Tensor& x) {
  Tensor y = unary_forward("gelu", UnaryOp::Gelu, x);
  if (!needs_grad(x)) return y;
  Tensor x_saved = x;
  return record_op(y, "gelu", {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{binary_forward("gelu_backward", BinaryOp::GeluBackward, x_saved, g)};
  });
}

// ---- operators
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, double b) { return affine(a, 1.0, b); }
Tensor operator-(const Tensor& a, double b) { return affine(a, 1.0, -b); }
Tensor operator*(const Tensor& a, double b) { return affine(a, b, 0.0); }
Tensor operator/(const Tensor& a, double b) { return affine(a, 1.0 / b, 0.0); }
Tensor operator+(double a, const Tensor& b) { return affine(b, 1.0, a); }
Tensor operator-(double a, const Tensor& b) { return affine(b, -1.0, a); }
Tensor operator*(double a, const Tensor& b) { return affine(b, a, 0.0); }

}  // namespace fm
