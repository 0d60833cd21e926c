// core/ops_mlp.cpp — activate() and the inference-only MLP forward mlp_inference() (core/ops.h).
//
// mlp_inference() checks everything the layer-by-layer ops would check, then either hands the whole
// stack to the fused CPU kernel (kernels/mlp_inference.h: float, CPU, every layer with a bias) or
// runs linear() and activate() in a loop — the reference the fused kernel is tested against bitwise
// (tests/test_nn_mlp.cpp).
#include "core/autograd.h"
#include "core/ops.h"
#include "core/tensor_internal.h"
#include "kernels/mlp_inference.h"

namespace fm {
namespace {

kernels::UnaryOp unary_op_of(Activation activation) {
  switch (activation) {
    case Activation::Silu: return kernels::UnaryOp::Silu;
    case Activation::Gelu: return kernels::UnaryOp::Gelu;
    case Activation::Relu: return kernels::UnaryOp::Relu;
    case Activation::Tanh: return kernels::UnaryOp::Tanh;
  }
  return kernels::UnaryOp::Identity;
}

}  // namespace

Tensor activate(const Tensor& x, Activation activation) {
  switch (activation) {
    case Activation::Silu: return silu(x);
    case Activation::Gelu: return gelu(x);
    case Activation::Relu: return relu(x);
    case Activation::Tanh: return tanh(x);
  }
  throw ValueError("activate: unknown activation");
}

Tensor mlp_inference(const Tensor& x, const std::vector<DenseLayer>& layers, Activation activation) {
  FM_CHECK(!layers.empty(), ValueError, "mlp_inference: no layers");
  FM_CHECK(x.defined() && x.dim() == 2, ShapeError, "mlp_inference: input ",
           x.defined() ? shape_str(x.shape()) : "undefined", ", expected [N, features]");
  std::vector<Tensor> inputs{x};
  std::int64_t features = x.size(1);
  bool every_layer_has_bias = true;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const DenseLayer& layer = layers[l];
    FM_CHECK(layer.weight.defined() && layer.weight.dim() == 2 && layer.weight.size(1) == features, ShapeError,
             "mlp_inference: layer ", l, " weight ", layer.weight.defined() ? shape_str(layer.weight.shape()) : "undefined",
             ", expected [out, ", features, "]");
    FM_CHECK(!layer.bias.defined() || (layer.bias.dim() == 1 && layer.bias.size(0) == layer.weight.size(0)),
             ShapeError, "mlp_inference: layer ", l, " bias ", shape_str(layer.bias.shape()), ", expected [",
             layer.weight.size(0), "]");
    inputs.push_back(layer.weight);
    if (layer.bias.defined()) inputs.push_back(layer.bias);
    every_layer_has_bias = every_layer_has_bias && layer.bias.defined();
    features = layer.weight.size(0);
  }
  FM_CHECK(!any_requires_grad(inputs), ValueError,
           "mlp_inference: records no gradients, but an input requires grad; call it under NoGradGuard "
           "(or use linear() and activate(), which record)");
  for (const Tensor& t : inputs) internal::check_same_dtype_device("mlp_inference", {&x, &t});

  if (x.device() == Device::CPU && x.dtype() == DType::Float32 && every_layer_has_bias) {
    Tensor input = x.contiguous();
    std::vector<Tensor> keep_alive;  // contiguous copies of any strided weight
    std::vector<kernels::DenseLayerView> views;
    for (std::size_t l = 0; l < layers.size(); ++l) {
      Tensor weight = layers[l].weight.contiguous(), bias = layers[l].bias.contiguous();
      keep_alive.push_back(weight);
      keep_alive.push_back(bias);
      const bool last = l + 1 == layers.size();
      views.push_back({weight.data<float>(), bias.data<float>(), int(weight.size(1)), int(weight.size(0)),
                       last ? kernels::UnaryOp::Identity : unary_op_of(activation)});
    }
    Tensor y = Tensor::empty({x.size(0), features}, x.dtype(), x.device());
    kernels::mlp_inference_cpu(views, input.data<float>(), x.size(0), y.data<float>());
    return y;
  }
  Tensor h = x;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    h = linear(h, layers[l].weight, layers[l].bias);
    if (l + 1 < layers.size()) h = activate(h, activation);
  }
  return h;
}

}  // namespace fm
