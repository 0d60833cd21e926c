// kernels/cuda/path_law.cu — an affine path's coefficients at each time, on the GPU (see
// kernels/path_law.h): one thread per time, the CPU loop's arithmetic, so the rows are equal bit for
// bit and a recorded training step takes them from its device times with no read back.
#include "kernels/cuda/common.cuh"
#include "kernels/path_law.h"
#include "kernels/runtime.h"

namespace fm::kernels {
namespace {

constexpr int kThreads = 256;

__global__ void path_coefficients_kernel(const float* t, float* out, std::int64_t n, PathLaw law) {
  const std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const PathCoefficients c = path_at(law, double(t[i]));
  out[i] = float(c.alpha), out[n + i] = float(c.sigma), out[2 * n + i] = float(c.d_alpha), out[3 * n + i] = float(c.d_sigma);
}

}  // namespace

void path_coefficients_cuda(const float* t, float* out, std::int64_t n, const PathLaw& law) {
  if (n == 0) return;
  const unsigned grid = unsigned(ceil_div(n, std::int64_t(kThreads)));
  path_coefficients_kernel<<<grid, kThreads, 0, cuda_stream()>>>(t, out, n, law);
  FM_CUDA_CHECK_LAUNCH();
}

}  // namespace fm::kernels
