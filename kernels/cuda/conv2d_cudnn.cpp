// kernels/cuda/conv2d_cudnn.cpp — the library baseline for the convolution kernels: cuDNN's legacy
// (v7-style) convolution API, which cuDNN 9 still ships.
//
// Four ways to choose an algorithm (CudnnAlgorithms, kernels/conv2d.h); per shape and way we build
// the descriptors once. The default, SpatialFp32, asks cuDNN's heuristics (cudnnGet*Algorithm_v7)
// for its ranked algorithms and uses the best one that
//   * runs in plain FP32: math type CUDNN_FMA_MATH, i.e. no TF32 tensor cores — TF32 rounds the
//     inputs to 10 mantissa bits, which would neither match the CPU reference to float tolerance
//     nor be a fair baseline for our FP32 kernels (PyTorch does the same when allow_tf32 is off);
//   * sums in the spatial domain (GEMM-based or direct): FFT and Winograd algorithms transform the
//     data first and lose about three decimal digits in FP32 (measured on an H100, 2026-11-22: weight
//     gradients 1e-3 relative off the reference), so they are neither a like-for-like baseline for
//     our kernels nor within the tests' float tolerance;
//   * is deterministic, if any candidate is (backward data/filter have atomics-based variants), so
//     that training runs reproduce;
//   * needs at most kMaxWorkspaceBytes of scratch, which comes from fm::kernels::cuda_malloc.
// SpatialTf32 is the same with TF32 tensor-core math allowed (CUDNN_DEFAULT_MATH, which lets FP32
// data run on TF32 tensor cores from Ampere on; the inputs are rounded to TF32, the sums stay FP32, so
// the TF32 error bound of docs/ops/tensor_cores.md holds). FastestFp32 and FastestTf32 are what a
// PyTorch user gets with torch.backends.cudnn.benchmark = True (allow_tf32 off, and PyTorch's default
// on): every algorithm, FFT and Winograd too, timed once per shape by cudnnFind*Algorithm, fastest
// first, determinism not asked for. Transform algorithms have no error bound, so those two are the
// kernel lab's speed baselines only; the lab says where they miss the FP32 (or TF32) tolerance.
// (cudnnFind runs the candidates and synchronises: it happens at a shape's first call, which is never
// inside a CUDA graph capture, as every recorded shape ran eagerly first.)
// The plans are cached for the life of the process (a handful of shapes per model).
//
// conv_transpose2d maps onto the same calls with roles swapped, as everywhere else: its forward is
// cudnnConvolutionBackwardData of the equivalent conv2d, its input gradient is
// cudnnConvolutionForward, its weight gradient is cudnnConvolutionBackwardFilter with x and dy
// exchanged (see ConvTranspose2dParams::as_conv2d in kernels/conv2d.h).
#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/library_handles.h"
#include "kernels/runtime.h"

namespace fm::kernels {

bool cudnn_available() { return cuda_available(); }
namespace {

constexpr std::size_t kMaxWorkspaceBytes = std::size_t(1) << 30;  // 1 GiB

// cuDNN's usable algorithms for one pass, best first, and the one in use. The heuristics cannot
// promise that an algorithm accepts FMA math (no TF32), so the first call walks down the list past
// any that answer CUDNN_STATUS_NOT_SUPPORTED; once one has run, it is kept.
template <typename Algo>
struct AlgorithmChoice {
  bool ranked = false;     // candidates filled in
  bool confirmed = false;  // candidates[current] has run successfully
  std::size_t current = 0;
  std::vector<Algo> candidates;
  std::vector<std::size_t> workspace_bytes;
  std::vector<cudnnMathType_t> math_types;  // what the convolution descriptor is set to for each
};

bool allows_tf32(CudnnAlgorithms algorithms) {
  return algorithms == CudnnAlgorithms::SpatialTf32 || algorithms == CudnnAlgorithms::FastestTf32;
}
bool timed_by_find(CudnnAlgorithms algorithms) {
  return algorithms == CudnnAlgorithms::FastestFp32 || algorithms == CudnnAlgorithms::FastestTf32;
}
// The math type a plan's descriptor has whenever cuDNN ranks algorithms for it: the default math type
// lets FP32 data use TF32 tensor cores, FMA math forbids them (PyTorch sets the same two).
cudnnMathType_t way_math_type(CudnnAlgorithms algorithms) {
  return allows_tf32(algorithms) ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

// Descriptors and chosen algorithms for one conv2d shape. Never destroyed: the cache lives as long
// as the process (destroying them at exit could run after the cuDNN handle is gone).
struct CudnnConvPlan {
  cudnnTensorDescriptor_t input = nullptr;        // [N, C_in, H, W]
  cudnnTensorDescriptor_t output = nullptr;       // [N, C_out, Ho, Wo]
  cudnnTensorDescriptor_t output_bias = nullptr;  // [1, C_out, 1, 1]
  cudnnTensorDescriptor_t input_bias = nullptr;   // [1, C_in, 1, 1] (conv_transpose2d's bias)
  cudnnFilterDescriptor_t filter = nullptr;       // [C_out, C_in, kh, kw]
  cudnnConvolutionDescriptor_t conv = nullptr;

  AlgorithmChoice<cudnnConvolutionFwdAlgo_t> forward;
  AlgorithmChoice<cudnnConvolutionBwdDataAlgo_t> backward_data;
  AlgorithmChoice<cudnnConvolutionBwdFilterAlgo_t> backward_filter;
};

using ShapeKey = std::tuple<int, int, int, int, int, int, int, int, int, int, int, int>;

ShapeKey key_of(const Conv2dParams& p, CudnnAlgorithms algorithms) {
  return {p.batch,    p.in_channels, p.in_height, p.in_width, p.out_channels, p.kernel_h,
          p.kernel_w, p.stride_h,    p.stride_w,  p.pad_h,    p.pad_w,       int(algorithms)};
}

std::mutex& plan_mutex() {
  static std::mutex m;
  return m;
}
std::map<ShapeKey, CudnnConvPlan>& plan_cache() {
  static std::map<ShapeKey, CudnnConvPlan> cache;
  return cache;
}

void check_params(const Conv2dParams& p, const char* op) {
  FM_CHECK(p.batch > 0 && p.in_channels > 0 && p.out_channels > 0 && p.kernel_h > 0 &&
               p.kernel_w > 0 && p.stride_h > 0 && p.stride_w > 0 && p.pad_h >= 0 && p.pad_w >= 0,
           ValueError, op,
           ": bad parameters (batch, channels, kernel and stride must be positive, "
           "padding non-negative)");
  FM_CHECK(p.in_height > 0 && p.in_width > 0 && p.out_height() > 0 && p.out_width() > 0, ValueError,
           op, ": kernel ", p.kernel_h, "x", p.kernel_w, " does not fit the padded ", p.in_height,
           "x", p.in_width, " input");
}

// The plan for a shape and way of choosing, creating its descriptors on first use. Caller holds
// plan_mutex().
CudnnConvPlan& plan_for(const Conv2dParams& p, CudnnAlgorithms algorithms) {
  auto [it, inserted] = plan_cache().try_emplace(key_of(p, algorithms));
  CudnnConvPlan& plan = it->second;
  if (!inserted) return plan;
  try {
    FM_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan.input));
    FM_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan.output));
    FM_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan.output_bias));
    FM_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan.input_bias));
    FM_CUDNN_CHECK(cudnnCreateFilterDescriptor(&plan.filter));
    FM_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&plan.conv));
    FM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan.input, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                              p.batch, p.in_channels, p.in_height, p.in_width));
    FM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan.output, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                              p.batch, p.out_channels, p.out_height(),
                                              p.out_width()));
    FM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan.output_bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                              1, p.out_channels, 1, 1));
    FM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan.input_bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                              1, p.in_channels, 1, 1));
    FM_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan.filter, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                              p.out_channels, p.in_channels, p.kernel_h,
                                              p.kernel_w));
    // Cross-correlation (what deep-learning frameworks call convolution), no dilation, FP32
    // accumulation, and the way's math type.
    FM_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(plan.conv, p.pad_h, p.pad_w, p.stride_h,
                                                   p.stride_w, 1, 1, CUDNN_CROSS_CORRELATION,
                                                   CUDNN_DATA_FLOAT));
    FM_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, way_math_type(algorithms)));
    int n = 0, c = 0, h = 0, w = 0;
    FM_CUDNN_CHECK(
        cudnnGetConvolution2dForwardOutputDim(plan.conv, plan.input, plan.filter, &n, &c, &h, &w));
    FM_CHECK(n == p.batch && c == p.out_channels && h == p.out_height() && w == p.out_width(),
             DeviceError, "conv2d_cudnn: cuDNN computes a ", n, "x", c, "x", h, "x", w,
             " output, expected ", p.batch, "x", p.out_channels, "x", p.out_height(), "x",
             p.out_width());
  } catch (...) {
    // (Leaks the few descriptors created so far; this path is fatal anyway.)
    plan_cache().erase(it);
    throw;
  }
  return plan;
}

// True for algorithms that may run on TF32 tensor cores.
bool uses_tensor_ops(cudnnMathType_t math) {
  return math == CUDNN_TENSOR_OP_MATH || math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// Keeps, from cuDNN's ranked list (fastest first), the usable candidates: FP32 math, workspace
// within the limit and accepted by the workspace query; deterministic ones first, so that training
// runs reproduce whenever cuDNN has a deterministic algorithm for the pass.
// `workspace_of(algo, &bytes)` returns the cuDNN status of that query.
// True for the transform-based algorithms (FFT, Winograd) of each pass.
bool transforms_data(cudnnConvolutionFwdAlgo_t algo) {
  return algo == CUDNN_CONVOLUTION_FWD_ALGO_FFT || algo == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
         algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
bool transforms_data(cudnnConvolutionBwdDataAlgo_t algo) {
  return algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
         algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD ||
         algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}
bool transforms_data(cudnnConvolutionBwdFilterAlgo_t algo) {
  return algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT || algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
         algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

// `ranked` is the heuristics' list (Spatial*) or cudnnFind's timings (Fastest*), best first.
// Spatial*: sums in the spatial domain only, deterministic ones first. Fastest*: in cudnnFind's order.
// Without TF32, algorithms that cuDNN rated with tensor-core math are dropped and the rest run with
// FMA math; with TF32, everything but the FP16 down-conversion runs with the math type cuDNN rated.
// The workspace is queried under the math type the candidate will run with (the size may depend on
// it); the descriptor is put back to the way's own math type afterwards.
template <typename Perf, typename Algo, typename WorkspaceQuery>
void rank_algorithms(const std::vector<Perf>& ranked, WorkspaceQuery workspace_of, cudnnConvolutionDescriptor_t conv,
                     AlgorithmChoice<Algo>& choice, CudnnAlgorithms algorithms, const char* op) {
  const bool tf32 = allows_tf32(algorithms), spatial_only = !timed_by_find(algorithms);
  for (bool deterministic : {true, false})
    for (const Perf& perf : ranked) {
      if (perf.status != CUDNN_STATUS_SUCCESS || perf.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
      if (!tf32 && uses_tensor_ops(perf.mathType)) continue;
      if (spatial_only && transforms_data(perf.algo)) continue;
      if (spatial_only && (perf.determinism == CUDNN_DETERMINISTIC) != deterministic) continue;
      if (!spatial_only && !deterministic) continue;  // one pass over the timed list, in its order
      const cudnnMathType_t math = tf32 ? perf.mathType : CUDNN_FMA_MATH;
      FM_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, math));
      std::size_t bytes = 0;
      if (workspace_of(perf.algo, &bytes) != CUDNN_STATUS_SUCCESS || bytes > kMaxWorkspaceBytes)
        continue;
      choice.candidates.push_back(perf.algo);
      choice.workspace_bytes.push_back(bytes);
      choice.math_types.push_back(math);
    }
  FM_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, way_math_type(algorithms)));
  FM_CHECK(!choice.candidates.empty(), DeviceError, op, ": cuDNN offers no ", tf32 ? "FP32/TF32" : "FP32 (non-TF32)",
           spatial_only ? ", non-FFT/Winograd" : "", " algorithm for this shape");
  choice.ranked = true;
}

void rank_forward(CudnnConvPlan& plan, cudnnHandle_t handle, CudnnAlgorithms algorithms, const char* op) {
  if (plan.forward.ranked) return;
  // The last call of another pass left the shared descriptor at its algorithm's math type.
  FM_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, way_math_type(algorithms)));
  int max_count = 0, returned = 0;
  FM_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(handle, &max_count));
  std::vector<cudnnConvolutionFwdAlgoPerf_t> ranked(std::size_t(std::max(max_count, 1)));
  if (timed_by_find(algorithms))
    FM_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(handle, plan.input, plan.filter, plan.conv, plan.output,
                                                        int(ranked.size()), &returned, ranked.data()));
  else
    FM_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, plan.input, plan.filter, plan.conv,
                                                          plan.output, int(ranked.size()), &returned,
                                                          ranked.data()));
  ranked.resize(std::size_t(returned));
  auto query = [&](cudnnConvolutionFwdAlgo_t algo, std::size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(handle, plan.input, plan.filter, plan.conv,
                                                   plan.output, algo, bytes);
  };
  rank_algorithms(ranked, query, plan.conv, plan.forward, algorithms, op);
}

void rank_backward_data(CudnnConvPlan& plan, cudnnHandle_t handle, CudnnAlgorithms algorithms, const char* op) {
  if (plan.backward_data.ranked) return;
  // The last call of another pass left the shared descriptor at its algorithm's math type.
  FM_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, way_math_type(algorithms)));
  int max_count = 0, returned = 0;
  FM_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(handle, &max_count));
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> ranked(std::size_t(std::max(max_count, 1)));
  if (timed_by_find(algorithms))
    FM_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(handle, plan.filter, plan.output, plan.conv, plan.input,
                                                             int(ranked.size()), &returned, ranked.data()));
  else
    FM_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        handle, plan.filter, plan.output, plan.conv, plan.input, int(ranked.size()), &returned,
        ranked.data()));
  ranked.resize(std::size_t(returned));
  auto query = [&](cudnnConvolutionBwdDataAlgo_t algo, std::size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(handle, plan.filter, plan.output, plan.conv,
                                                        plan.input, algo, bytes);
  };
  rank_algorithms(ranked, query, plan.conv, plan.backward_data, algorithms, op);
}

void rank_backward_filter(CudnnConvPlan& plan, cudnnHandle_t handle, CudnnAlgorithms algorithms, const char* op) {
  if (plan.backward_filter.ranked) return;
  // The last call of another pass left the shared descriptor at its algorithm's math type.
  FM_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, way_math_type(algorithms)));
  int max_count = 0, returned = 0;
  FM_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(handle, &max_count));
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> ranked(std::size_t(std::max(max_count, 1)));
  if (timed_by_find(algorithms))
    FM_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(handle, plan.input, plan.output, plan.conv,
                                                               plan.filter, int(ranked.size()), &returned,
                                                               ranked.data()));
  else
    FM_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        handle, plan.input, plan.output, plan.conv, plan.filter, int(ranked.size()), &returned,
        ranked.data()));
  ranked.resize(std::size_t(returned));
  auto query = [&](cudnnConvolutionBwdFilterAlgo_t algo, std::size_t* bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, plan.input, plan.output,
                                                          plan.conv, plan.filter, algo, bytes);
  };
  rank_algorithms(ranked, query, plan.conv, plan.backward_filter, algorithms, op);
}

// Scratch memory from the caching allocator for the duration of one call. Freeing it right after
// the launch is safe: everything runs on the one stream, so a later user of the block is ordered
// after this call's kernels.
struct Workspace {
  void* ptr = nullptr;
  std::size_t bytes = 0;
  explicit Workspace(std::size_t size) : bytes(size) {
    if (size) ptr = cuda_malloc(size);
  }
  ~Workspace() { cuda_free(ptr); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
};

// Runs `call(algo, workspace, bytes)` with the choice's current algorithm; until one has succeeded,
// an algorithm that answers CUDNN_STATUS_NOT_SUPPORTED is dropped for the next candidate.
// The descriptor's math type is set to the candidate's first (one descriptor serves the three passes).
template <typename Algo, typename Call>
void run_with_choice(AlgorithmChoice<Algo>& choice, cudnnConvolutionDescriptor_t conv, const char* op, Call call) {
  for (;;) {
    FM_CHECK(choice.current < choice.candidates.size(), DeviceError, op,
             ": every usable cuDNN algorithm for this shape answered NOT_SUPPORTED");
    FM_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, choice.math_types[choice.current]));
    Workspace workspace(choice.workspace_bytes[choice.current]);
    const cudnnStatus_t status =
        call(choice.candidates[choice.current], workspace.ptr, workspace.bytes);
    if (status == CUDNN_STATUS_NOT_SUPPORTED && !choice.confirmed) {
      ++choice.current;
      continue;
    }
    FM_CUDNN_CHECK(status);
    count_library_call();  // kernels/runtime.h's counters
    choice.confirmed = true;
    return;
  }
}

// The passes of the conv2d described by `p`; `input`/`output` are in conv2d's roles.
void run_forward(const Conv2dParams& p, CudnnAlgorithms algorithms, const float* input, const float* weight,
                 const float* output_bias, float* output, const char* op) {
  check_params(p, op);
  cudnnHandle_t handle = cudnn_handle();
  std::lock_guard<std::mutex> lock(plan_mutex());
  CudnnConvPlan& plan = plan_for(p, algorithms);
  rank_forward(plan, handle, algorithms, op);
  const float one = 1.f, zero = 0.f;  // beta = 0: the output is not read (poison stays out)
  run_with_choice(
      plan.forward, plan.conv, op, [&](cudnnConvolutionFwdAlgo_t algo, void* ws, std::size_t bytes) {
        return cudnnConvolutionForward(handle, &one, plan.input, input, plan.filter, weight,
                                       plan.conv, algo, ws, bytes, &zero, plan.output, output);
      });
  if (output_bias) {
    FM_CUDNN_CHECK(
        cudnnAddTensor(handle, &one, plan.output_bias, output_bias, &one, plan.output, output));
    count_library_call();
  }
}

void run_backward_data(const Conv2dParams& p, CudnnAlgorithms algorithms, const float* output_grad,
                       const float* weight, const float* input_bias, float* input_grad, const char* op) {
  check_params(p, op);
  cudnnHandle_t handle = cudnn_handle();
  std::lock_guard<std::mutex> lock(plan_mutex());
  CudnnConvPlan& plan = plan_for(p, algorithms);
  rank_backward_data(plan, handle, algorithms, op);
  const float one = 1.f, zero = 0.f;
  run_with_choice(plan.backward_data, plan.conv, op,
                  [&](cudnnConvolutionBwdDataAlgo_t algo, void* ws, std::size_t bytes) {
                    return cudnnConvolutionBackwardData(handle, &one, plan.filter, weight,
                                                        plan.output, output_grad, plan.conv, algo,
                                                        ws, bytes, &zero, plan.input, input_grad);
                  });
  if (input_bias) {
    FM_CUDNN_CHECK(
        cudnnAddTensor(handle, &one, plan.input_bias, input_bias, &one, plan.input, input_grad));
    count_library_call();
  }
}

void run_backward_filter(const Conv2dParams& p, CudnnAlgorithms algorithms, const float* input,
                         const float* output_grad, float* weight_grad, const char* op) {
  check_params(p, op);
  cudnnHandle_t handle = cudnn_handle();
  std::lock_guard<std::mutex> lock(plan_mutex());
  CudnnConvPlan& plan = plan_for(p, algorithms);
  rank_backward_filter(plan, handle, algorithms, op);
  const float one = 1.f, zero = 0.f;
  run_with_choice(plan.backward_filter, plan.conv, op,
                  [&](cudnnConvolutionBwdFilterAlgo_t algo, void* ws, std::size_t bytes) {
                    return cudnnConvolutionBackwardFilter(
                        handle, &one, plan.input, input, plan.output, output_grad, plan.conv, algo,
                        ws, bytes, &zero, plan.filter, weight_grad);
                  });
}

// bias_grad[c] = Σ over batch and pixels of conv2d's output (over_output) or input (for
// conv_transpose2d, whose output is that input).
void run_backward_bias(const Conv2dParams& p, bool over_output, const float* grad, float* bias_grad,
                       const char* op) {
  check_params(p, op);
  cudnnHandle_t handle = cudnn_handle();
  std::lock_guard<std::mutex> lock(plan_mutex());
  CudnnConvPlan& plan = plan_for(p, CudnnAlgorithms::SpatialFp32);  // descriptors only: any plan does
  const float one = 1.f, zero = 0.f;
  FM_CUDNN_CHECK(cudnnConvolutionBackwardBias(
      handle, &one, over_output ? plan.output : plan.input, grad, &zero,
      over_output ? plan.output_bias : plan.input_bias, bias_grad));
  count_library_call();
}

}  // namespace

// ---- conv2d -------------------------------------------------------------------------------------

void conv2d_forward_cudnn_with(CudnnAlgorithms algorithms, const float* x, const float* weight, const float* bias,
                               float* y, const Conv2dParams& p) {
  run_forward(p, algorithms, x, weight, bias, y, "conv2d_forward_cudnn");
}

void conv2d_backward_input_cudnn_with(CudnnAlgorithms algorithms, const float* dy, const float* weight, float* dx,
                                      const Conv2dParams& p) {
  run_backward_data(p, algorithms, dy, weight, nullptr, dx, "conv2d_backward_input_cudnn");
}

void conv2d_backward_weight_cudnn_with(CudnnAlgorithms algorithms, const float* x, const float* dy, float* dweight,
                                       float* dbias, const Conv2dParams& p) {
  run_backward_filter(p, algorithms, x, dy, dweight, "conv2d_backward_weight_cudnn");
  if (dbias) run_backward_bias(p, true, dy, dbias, "conv2d_backward_weight_cudnn");
}

// ---- conv_transpose2d ---------------------------------------------------------------------------

void conv_transpose2d_forward_cudnn_with(CudnnAlgorithms algorithms, const float* x, const float* weight,
                                         const float* bias, float* y, const ConvTranspose2dParams& p) {
  run_backward_data(p.as_conv2d(), algorithms, x, weight, bias, y, "conv_transpose2d_forward_cudnn");
}

void conv_transpose2d_backward_input_cudnn_with(CudnnAlgorithms algorithms, const float* dy, const float* weight,
                                                float* dx, const ConvTranspose2dParams& p) {
  run_forward(p.as_conv2d(), algorithms, dy, weight, nullptr, dx, "conv_transpose2d_backward_input_cudnn");
}

void conv_transpose2d_backward_weight_cudnn_with(CudnnAlgorithms algorithms, const float* x, const float* dy,
                                                 float* dweight, float* dbias, const ConvTranspose2dParams& p) {
  // The equivalent conv2d reads dy as its input and x as its output gradient; the bias gradient
  // sums dy, which is that conv2d's *input*.
  const Conv2dParams c = p.as_conv2d();
  run_backward_filter(c, algorithms, dy, x, dweight, "conv_transpose2d_backward_weight_cudnn");
  if (dbias) run_backward_bias(c, false, dy, dbias, "conv_transpose2d_backward_weight_cudnn");
}

}  // namespace fm::kernels
