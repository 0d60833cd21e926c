// kernels/cpu/mlp_inference.cpp — the fused MLP forward of kernels/mlp_inference.h.
//
//   for each block of kRowBlock rows (blocks shared out among the OpenMP threads):
//     for each layer:  out = bias rows;  out += in · Wᵀ (gemm_cpu, beta = 1, Wᵀ stored and kept
//                      between calls while W is unchanged: transposed_weights);
//                      out = act(out)
//     (out and in: two per-thread scratch buffers, swapped after every layer; the last layer writes
//      straight into the output)
//
// Each step is the call linear() and the activation op make (core/ops_matmul.cpp: C starts as the
// bias rows and GEMM adds the product onto them), so every value matches the op-by-op forward
// bitwise. Inside the block loop the GEMMs are small (kRowBlock × width × width, under the GEMM's own
// threading threshold) and run on the calling thread.
#include "kernels/mlp_inference.h"

#include <algorithm>
#include <cstring>

#include "kernels/gemm.h"

namespace fm::kernels {
namespace {

// Rows per block: big enough that packing a layer's weights for the GEMM (once per block and layer)
// is small next to the block's multiply, small enough that the block's activations (128 × 64 floats
// = 32 KiB per buffer) stay in the core's L2 between layers and that 2,000 points make 16 blocks to
// share among the threads.
constexpr std::int64_t kRowBlock = 128;

// Below about this many multiply-adds per evaluation one thread does it all (waking a second one
// costs a few microseconds; see kParallelWork in kernels/cpu/elementwise_loops.h).
constexpr std::int64_t kParallelMacs = std::int64_t(1) << 18;

ElementwiseGeometry dense_geometry(std::int64_t numel) {
  ElementwiseGeometry g;
  g.ndim = 1;
  g.sizes[0] = numel;
  g.out_strides[0] = g.a_strides[0] = g.b_strides[0] = 1;
  return g;
}

// weights_t[l] = layer l's weight transposed, [in_features][out_features]: the GEMM's B operand as
// stored, so packing it per block is a plain copy (from W itself, op(B) = Wᵀ, it was an 8×8
// transpose per 64 values, for every block and layer). The products and their order are the same,
// so are the bits.
void run_block(const std::vector<DenseLayerView>& layers, const std::vector<const float*>& weights_t,
               const float* input, std::int64_t rows, float* output, std::vector<float>& scratch_a,
               std::vector<float>& scratch_b) {
  const float* in = input;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const DenseLayerView& layer = layers[l];
    const bool last = l + 1 == layers.size();
    std::vector<float>& scratch = (l % 2 == 0) ? scratch_a : scratch_b;
    float* out = last ? output : scratch.data();
    const int width = layer.out_features;
    for (std::int64_t r = 0; r < rows; ++r) std::memcpy(out + r * width, layer.bias, sizeof(float) * width);
    gemm_cpu<float>(false, false, int(rows), width, layer.in_features, 1.0f, in, layer.in_features,
                    weights_t[l], width, 1.0f, out, width);
    if (layer.activation != UnaryOp::Identity)
      unary_cpu<float>(layer.activation, out, out, dense_geometry(rows * width), 0.0, 0.0);
    in = out;
  }
}

// The layers' weights transposed (see run_block), kept between calls on this thread: a sampler
// evaluates the same weights a hundred times in a row, and transposing them every call (a strided
// scalar copy of the moons MLP's 8.5k weights: about 35 µs per call in a profile of moons sampling,
// 6 µs alone) kept the other threads waiting on every evaluation. The pointers stay valid until
// this thread's next call. A kept copy is used only if the layer's weights are still bitwise what they
// were when it was made (a memcmp of the weights against a saved copy: sequential reads, no strided
// writes), so weights updated in place between calls, by an
// optimiser step or an EMA swap, are transposed afresh.
std::vector<const float*> transposed_weights(const std::vector<DenseLayerView>& layers) {
  struct Kept {
    const float* source = nullptr;
    int in_features = 0, out_features = 0;
    std::vector<float> weight, transposed;
  };
  thread_local std::vector<Kept> kept;
  kept.resize(layers.size());
  std::vector<const float*> result(layers.size());
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const DenseLayerView& layer = layers[l];
    Kept& k = kept[l];
    const std::size_t count = std::size_t(layer.in_features) * layer.out_features;
    const bool same = k.source == layer.weight && k.in_features == layer.in_features &&
                      k.out_features == layer.out_features &&
                      std::memcmp(k.weight.data(), layer.weight, sizeof(float) * count) == 0;
    if (!same) {
      k.source = layer.weight;
      k.in_features = layer.in_features;
      k.out_features = layer.out_features;
      k.weight.assign(layer.weight, layer.weight + count);
      k.transposed.resize(count);
      for (int o = 0; o < layer.out_features; ++o)
        for (int i = 0; i < layer.in_features; ++i)
          k.transposed[std::size_t(i) * layer.out_features + o] = layer.weight[std::size_t(o) * layer.in_features + i];
    }
    result[l] = k.transposed.data();
  }
  return result;
}

}  // namespace

void mlp_inference_cpu(const std::vector<DenseLayerView>& layers, const float* input, std::int64_t rows,
                       float* output) {
  if (layers.empty() || rows <= 0) return;
  int widest = 0;
  std::int64_t macs_per_row = 0;
  for (const DenseLayerView& layer : layers) {
    widest = std::max(widest, layer.out_features);
    macs_per_row += std::int64_t(layer.in_features) * layer.out_features;
  }
  const int in_features = layers.front().in_features, out_features = layers.back().out_features;
  const std::vector<const float*> weights_t = transposed_weights(layers);
  const std::int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  const bool parallel = blocks > 1 && rows * macs_per_row > kParallelMacs;

#pragma omp parallel if (parallel)
  {
    // Scratch for the hidden layers: per thread, reused across blocks and across calls.
    thread_local std::vector<float> scratch_a, scratch_b;
    const std::size_t scratch_size = std::size_t(kRowBlock) * widest;
    if (scratch_a.size() < scratch_size) scratch_a.resize(scratch_size);
    if (scratch_b.size() < scratch_size) scratch_b.resize(scratch_size);
#pragma omp for schedule(static)
    for (std::int64_t block = 0; block < blocks; ++block) {
      const std::int64_t r0 = block * kRowBlock, block_rows = std::min(kRowBlock, rows - r0);
      run_block(layers, weights_t, input + r0 * in_features, block_rows, output + r0 * out_features, scratch_a,
                scratch_b);
    }
  }
}

}  // namespace fm::kernels
