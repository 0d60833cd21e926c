// kernels/cpu/mlp_inference.cpp — the fused MLP forward of kernels/mlp_inference.h.
//
//   for each block of kBlockRows rows (blocks shared out among the OpenMP threads):
//     transpose the block's input rows to feature-major ([in_features][kBlockRows], zero-padded)
//     for each layer:  out = bias + in · Wᵀ, feature-major (kernels/cpu/mlp_layer_kernel.h);
//                      out = act(out)
//     (out and in: two per-thread scratch buffers, swapped after every layer)
//     transpose the last layer's valid rows back into the output
//
// Each layer is computed as linear() computes it (the GEMM's sum order, kernels/cpu/mlp_layer_kernel.h)
// and the activation is the activation op's own loop (unary_cpu), so every value matches the
// op-by-op forward bitwise.
#include "kernels/mlp_inference.h"

#include <algorithm>

#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/mlp_layer_kernel.h"

namespace fm::kernels {
namespace {

// Rows per block: the vector lanes of the layer kernel's tiles (a multiple of both copies' tile
// widths, 16 and 64 floats). For the moons MLP a layer's input and output are 64 × 64 floats =
// 16 KiB each and its weight 16 KiB: together the whole L1d of the dev machine's Xeon (48 KiB), so
// the weight is partly read from L2. 2,000 points make 32 blocks to share among the threads.
// A call with fewer rows still computes a whole block (the padding rows are dropped).
constexpr int kBlockRows = 64;
static_assert(kBlockRows % (kMlpTileVectorsPortable * GemmVector<float, 32>::kLanes) == 0 &&
              kBlockRows % (kMlpTileVectorsAvx512 * GemmVector<float, 64>::kLanes) == 0);

// Below about this many multiply-adds per evaluation one thread does it all (waking a second one
// costs a few microseconds; see kParallelWork in kernels/cpu/elementwise_loops.h).
constexpr std::int64_t kParallelMacs = std::int64_t(1) << 18;

void dense_layer(const DenseLayerView& layer, const float* in, float* out) {
  if (use_avx512_kernels())
    dense_layer_feature_major_avx512(layer.weight, layer.bias, layer.in_features, layer.out_features, in, out,
                                     kBlockRows);
  else
    dense_layer_feature_major<32, kMlpTileFeaturesPortable, kMlpTileVectorsPortable>(
        layer.weight, layer.bias, layer.in_features, layer.out_features, in, out, kBlockRows);
}

// One block of `rows` ≤ kBlockRows rows through every layer. scratch_a and scratch_b hold
// kBlockRows × (the widest layer input or output) floats each.
void run_block(const std::vector<DenseLayerView>& layers, const float* input, std::int64_t rows, float* output,
               float* scratch_a, float* scratch_b) {
  const int in_features = layers.front().in_features;
  // The input, feature-major; the padding columns are zero (their results are computed and dropped).
  float* in = scratch_b;
  for (int k = 0; k < in_features; ++k) {
    float* column = in + std::size_t(k) * kBlockRows;
    for (std::int64_t r = 0; r < rows; ++r) column[r] = input[r * in_features + k];
    std::fill(column + rows, column + kBlockRows, 0.0f);
  }
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const DenseLayerView& layer = layers[l];
    float* out = (l % 2 == 0) ? scratch_a : scratch_b;
    dense_layer(layer, in, out);
    if (layer.activation != UnaryOp::Identity)
      unary_cpu<float>(layer.activation, out, out, dense_geometry(std::int64_t(layer.out_features) * kBlockRows),
                       0.0, 0.0);
    in = out;
  }
  const int out_features = layers.back().out_features;
  for (std::int64_t r = 0; r < rows; ++r)
    for (int o = 0; o < out_features; ++o) output[r * out_features + o] = in[std::size_t(o) * kBlockRows + r];
}

}  // namespace

void mlp_inference_cpu(const std::vector<DenseLayerView>& layers, const float* input, std::int64_t rows,
                       float* output) {
  if (layers.empty() || rows <= 0) return;
  int widest = layers.front().in_features;
  std::int64_t macs_per_row = 0;
  for (const DenseLayerView& layer : layers) {
    widest = std::max(widest, layer.out_features);
    macs_per_row += std::int64_t(layer.in_features) * layer.out_features;
  }
  const int in_features = layers.front().in_features, out_features = layers.back().out_features;
  const std::int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
  const bool parallel = blocks > 1 && rows * macs_per_row > kParallelMacs;

#pragma omp parallel if (parallel)
  {
    // Scratch for the layers' activations: per thread, reused across blocks and across calls.
    thread_local std::vector<float> scratch_a, scratch_b;
    const std::size_t scratch_size = std::size_t(kBlockRows) * widest;
    if (scratch_a.size() < scratch_size) scratch_a.resize(scratch_size);
    if (scratch_b.size() < scratch_size) scratch_b.resize(scratch_size);
    // Dynamic: the blocks are equal work, but the dev machine's two cores often run at different
    // speeds for a whole run (in profiles, one thread's GELU took up to 1.9x the time of the
    // other's on as many blocks); handed out one at a time, the faster core takes more. Which
    // thread computes a block does not change any bit. Measured (fmsample --n 2000 --steps 1000,
    // 16 alternating runs each, 2026-12-06): median 0.40 s against 0.475 s with a static split.
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t block = 0; block < blocks; ++block) {
      const std::int64_t r0 = block * kBlockRows, block_rows = std::min<std::int64_t>(kBlockRows, rows - r0);
      run_block(layers, input + r0 * in_features, block_rows, output + r0 * out_features, scratch_a.data(),
                scratch_b.data());
    }
  }
}

}  // namespace fm::kernels
