// nn/init.h — PyTorch's default parameter initialisation, drawn from an fm::Generator so the same
// seed builds bitwise the same model on every run and device.
//
// Layer: nn/ (uses core/ only). Why these bounds: torch.nn.Linear / Conv*d reset_parameters() call
// kaiming_uniform_(weight, a=√5). Kaiming's bound is gain·√(3/fan_in) with gain = √(2/(1+a²)) = √(1/3),
// so the bound collapses to 1/√fan_in; biases use U(−1/√fan_in, 1/√fan_in) with the same fan_in.
// fan_in is weight.size(1) × (kernel elements), which for ConvTranspose2d's [in, out, kh, kw] weight
// is out·kh·kw (PyTorch computes it from the tensor shape without knowing the layer is transposed).
// nn.MultiheadAttention uses Xavier-uniform for its packed in-projection and zeros for its biases.
#pragma once
#include <cstdint>

#include "core/random.h"
#include "core/tensor.h"

namespace fm::nn::init {

// PyTorch's _calculate_fan_in_and_fan_out: fan_in = size(1)·receptive field, fan_out = size(0)·receptive
// field, where receptive field = product of dims 2.. (1 for a matrix). Needs at least 2 dims.
std::int64_t fan_in(const Shape& weight_shape);
std::int64_t fan_out(const Shape& weight_shape);

// U(low, high) of the given shape (float32 on the CPU unless told otherwise).
Tensor uniform(const Shape& shape, Generator& gen, double low, double high,
               DType dtype = DType::Float32);
// kaiming_uniform_(a=√5): U(−1/√fan_in, 1/√fan_in) with fan_in from the weight's own shape.
Tensor default_weight(const Shape& weight_shape, Generator& gen, DType dtype = DType::Float32);
// The matching bias: U(−1/√fan_in, 1/√fan_in), fan_in taken from the layer's weight shape.
Tensor default_bias(std::int64_t size, std::int64_t weight_fan_in, Generator& gen,
                    DType dtype = DType::Float32);
// xavier_uniform_: U(−√(6/(fan_in+fan_out)), +√(6/(fan_in+fan_out))).
Tensor xavier_uniform(const Shape& weight_shape, Generator& gen, DType dtype = DType::Float32);

}  // namespace fm::nn::init
