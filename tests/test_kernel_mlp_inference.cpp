// tests/test_kernel_mlp_inference.cpp — the fused MLP forward (kernels/mlp_inference.h) against the
// layer-by-layer kernels linear() and the activation ops call (C = bias rows, gemm_cpu adds the
// product, unary_cpu applies the activation): bitwise equal, and close to a float64 definition.
// The shapes take the layer kernel's every path (kernels/cpu/mlp_layer_kernel.h): full tiles and each
// size of leftover tile (out_features % 4 = 1, 2, 3), inputs deeper than one GEMM K slice (two
// slices, summed as the GEMM sums them), no inputs at all (K = 0: the output is the bias as it is,
// a −0 included), blocks with padding rows, one block and many (threaded when OpenMP has two
// threads or more, as under ctest on a multi-core machine).
// ctest runs this file a second time on the portable copy (tests/CMakeLists.txt).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/cpu/gemm_pack_b.h"
#include "kernels/gemm.h"
#include "kernels/mlp_inference.h"

namespace {
using fm::kernels::DenseLayerView;
using fm::kernels::UnaryOp;

struct LayerData {
  std::vector<float> weight, bias;
};

// What linear() and then the activation op compute, layer after layer (core/ops_matmul.cpp).
std::vector<float> layer_by_layer(const std::vector<DenseLayerView>& layers, const std::vector<float>& input,
                                  int rows) {
  std::vector<float> h = input;
  for (const DenseLayerView& layer : layers) {
    std::vector<float> out(std::size_t(rows) * layer.out_features);
    for (int r = 0; r < rows; ++r)
      std::memcpy(out.data() + std::size_t(r) * layer.out_features, layer.bias, sizeof(float) * layer.out_features);
    fm::kernels::gemm_cpu<float>(false, true, rows, layer.out_features, layer.in_features, 1.0f, h.data(),
                                 layer.in_features, layer.weight, layer.in_features, 1.0f, out.data(),
                                 layer.out_features);
    if (layer.activation != UnaryOp::Identity)
      fm::kernels::unary_cpu<float>(layer.activation, out.data(), out.data(),
                                    fm::kernels::dense_geometry(std::int64_t(out.size())), 0.0, 0.0);
    h = std::move(out);
  }
  return h;
}

// The definition in float64, exact GELU through std::erf.
std::vector<double> definition(const std::vector<DenseLayerView>& layers, const std::vector<float>& input, int rows) {
  std::vector<double> h(input.begin(), input.end());
  for (const DenseLayerView& layer : layers) {
    std::vector<double> out(std::size_t(rows) * layer.out_features);
    for (int r = 0; r < rows; ++r)
      for (int o = 0; o < layer.out_features; ++o) {
        double sum = layer.bias[o];
        for (int k = 0; k < layer.in_features; ++k)
          sum += double(layer.weight[std::size_t(o) * layer.in_features + k]) * h[std::size_t(r) * layer.in_features + k];
        if (layer.activation == UnaryOp::Gelu) sum = 0.5 * sum * (1.0 + std::erf(sum / std::sqrt(2.0)));
        out[std::size_t(r) * layer.out_features + o] = sum;
      }
    h = std::move(out);
  }
  return h;
}
}  // namespace

TEST_CASE("the fused MLP forward is bitwise the layer-by-layer GEMM and activation, on every tile path",
          "[mlp_inference]") {
  struct Shape {
    std::vector<int> widths;  // in_features, then each layer's out_features
    const char* what;
  };
  const std::vector<Shape> shapes = {
      {{3, 64, 64, 64, 2}, "the moons MLP (full tiles, a 2-feature leftover)"},
      {{5, 37, 43, 7}, "leftovers of 1, 3 and 3 features"},
      {{330, 400, 9}, "inputs of 330 and 400 features: two K slices each"},
      {{0, 5}, "no inputs (K = 0)"},
  };
  REQUIRE(fm::kernels::gemm_slice_count(330) == 2);
  REQUIRE(fm::kernels::gemm_slice_count(400) == 2);
  std::uint64_t seed = 1;
  for (const Shape& shape : shapes) {
    std::vector<LayerData> data;
    std::vector<DenseLayerView> layers;
    for (std::size_t l = 0; l + 1 < shape.widths.size(); ++l) {
      const int in = shape.widths[l], out = shape.widths[l + 1];
      const float scale = 1.5f / std::sqrt(float(std::max(in, 1)));
      data.push_back({fm::test::random_floats(std::size_t(in) * out, seed++, -scale, scale),
                      fm::test::random_floats(std::size_t(out), seed++, -0.5f, 0.5f)});
      data.back().bias[0] = -0.0f;  // kept as −0 only where nothing is added to it (K = 0)
    }
    for (std::size_t l = 0; l < data.size(); ++l) {
      const bool last = l + 1 == data.size();
      layers.push_back({data[l].weight.data(), data[l].bias.data(), shape.widths[l], shape.widths[l + 1],
                        last ? UnaryOp::Identity : UnaryOp::Gelu});
    }
    for (int rows : {1, 63, 64, 65, 300}) {
      INFO(shape.what << ", " << rows << " rows");
      const std::vector<float> input =
          fm::test::random_floats(std::size_t(rows) * shape.widths.front(), seed++, -2.0f, 2.0f);
      std::vector<float> fused(std::size_t(rows) * shape.widths.back(), -1.0f);
      fm::kernels::mlp_inference_cpu(layers, input.data(), rows, fused.data());
      const std::vector<float> expected = layer_by_layer(layers, input, rows);
      REQUIRE(std::memcmp(fused.data(), expected.data(), sizeof(float) * fused.size()) == 0);
      const std::vector<double> exact = definition(layers, input, rows);
      for (std::size_t i = 0; i < fused.size(); ++i) REQUIRE(std::fabs(fused[i] - exact[i]) <= 1e-4 * (1.0 + std::fabs(exact[i])));
    }
  }
}
