// kernels/cpu/mlp_inference_avx512.cpp — the fused MLP's dense layer compiled for AVX-512
// (-march=x86-64-v4 through CMakeLists.txt's kernels/cpu/*_avx512.cpp rule): the source of
// kernels/cpu/mlp_layer_kernel.h with 64-byte vectors. Blocks, transposes and threads stay in the
// portable kernels/cpu/mlp_inference.cpp.
#include "kernels/cpu/mlp_layer_kernel.h"

namespace fm::kernels {

void dense_layer_feature_major_avx512(const float* weight, const float* bias, int in_features, int out_features,
                                      const float* in, float* out, int columns) {
  dense_layer_feature_major<64, kMlpTileFeaturesAvx512, kMlpTileVectorsAvx512>(weight, bias, in_features,
                                                                              out_features, in, out, columns);
}

}  // namespace fm::kernels
