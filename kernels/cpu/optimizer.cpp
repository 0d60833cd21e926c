// kernels/cpu/optimizer.cpp — the fused optimiser step, the per-parameter sums of squares for the
// gradient norm, and in-place gradient accumulation on the CPU (see kernels/optimizer.h).
// CMakeLists.txt compiles this file with -fno-math-errno: sqrt then has no branch to set errno for a
// negative input (the result is the same IEEE value), and the Adam loop vectorises.
#include "kernels/optimizer.h"

#include <algorithm>

namespace fm::kernels {
namespace {
// Below this many elements a parallel region costs more than it saves.
constexpr std::int64_t kParallelThreshold = 1 << 15;

// Elements per chunk: the chunk's gradients and parameters stay in L1 between the stages.
constexpr std::int64_t kChunk = 1024;

// The fused step on one chunk of n elements: each stage of kernels/optimizer.h runs as its own loop
// over the chunk (straight-line code the compiler vectorises; the flags are tested once per chunk,
// not per element). Every element still passes through the stages in fused_step_element's order,
// so the result is the same bits. `a` is a private copy: the compiler then knows that the stores
// into the buffers cannot change the scalars. The buffers never overlap (omp simd may assume it).
template <typename T>
void fused_step_chunk(const FusedStepArgs<T> a, std::int64_t begin, std::int64_t n) {
  T* param = a.param + begin;
  if (a.rule != UpdateRule::None) {
    T* grad_out = a.grad + begin;
    T g[kChunk], theta[kChunk];
#pragma omp simd
    for (std::int64_t j = 0; j < n; ++j) g[j] = grad_out[j], theta[j] = param[j];
    if (a.clip) {
#pragma omp simd
      for (std::int64_t j = 0; j < n; ++j) grad_out[j] = g[j] = clip_stage(g[j], a);
    }
    if (a.rule == UpdateRule::SGD) {
      if (a.weight_decay) {
#pragma omp simd
        for (std::int64_t j = 0; j < n; ++j) g[j] = weight_decay_stage(g[j], theta[j], a);
      }
      if (a.has_momentum) {
        T* b = a.momentum + begin;
        if (a.first_momentum_step) {
#pragma omp simd
          for (std::int64_t j = 0; j < n; ++j) b[j] = g[j];
        } else {
#pragma omp simd
          for (std::int64_t j = 0; j < n; ++j) b[j] = momentum_stage(b[j], g[j], a);
        }
        if (a.nesterov) {
#pragma omp simd
          for (std::int64_t j = 0; j < n; ++j) g[j] = nesterov_stage(g[j], b[j], a);
        } else {
#pragma omp simd
          for (std::int64_t j = 0; j < n; ++j) g[j] = b[j];
        }
      }
#pragma omp simd
      for (std::int64_t j = 0; j < n; ++j) param[j] = sgd_update_stage(theta[j], g[j], a);
    } else {
      if (a.weight_decay && a.decoupled) {
#pragma omp simd
        for (std::int64_t j = 0; j < n; ++j) theta[j] = decoupled_decay_stage(theta[j], a);
      } else if (a.weight_decay) {
#pragma omp simd
        for (std::int64_t j = 0; j < n; ++j) g[j] = weight_decay_stage(g[j], theta[j], a);
      }
      T* m = a.exp_avg + begin;
      T* v = a.exp_avg_sq + begin;
#pragma omp simd
      for (std::int64_t j = 0; j < n; ++j) param[j] = adam_stage(theta[j], g[j], m[j], v[j], a);
    }
  }
  if (a.shadow) {
    T* shadow = a.shadow + begin;
#pragma omp simd
    for (std::int64_t j = 0; j < n; ++j) shadow[j] = ema_stage(shadow[j], param[j], a);
  }
}

}  // namespace

template <typename T>
void fused_step_cpu(const FusedStepArgs<T>& args) {
  const std::int64_t chunks = (args.count + kChunk - 1) / kChunk;
  // Chunks are independent, so the result does not depend on how they are shared between threads.
#pragma omp parallel for schedule(static) if (args.count > kParallelThreshold)
  for (std::int64_t c = 0; c < chunks; ++c)
    fused_step_chunk(args, c * kChunk, std::min(kChunk, args.count - c * kChunk));
}

// No multiply-add contraction in this function: fm::sum(fm::square(g)) rounds each square to T
// before adding it (two kernels), so in double `total += g·g` must not become one FMA either.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
template <typename T>
void segment_sum_of_squares_cpu(const T* grad, const std::int64_t* offsets, const std::int64_t* counts,
                                int segments, double* sums) {
  // One segment per thread at a time: each sum runs in index order in one double, exactly as
  // sum_rows_cpu sums a row, so the bits do not depend on the thread count.
  std::int64_t total_count = 0;
  for (int k = 0; k < segments; ++k) total_count += counts[k];
#pragma omp parallel for schedule(dynamic) if (segments > 1 && total_count > kParallelThreshold)
  for (int k = 0; k < segments; ++k) {
    const T* g = grad + offsets[k];
    double total = 0;
    for (std::int64_t i = 0; i < counts[k]; ++i) {
      const T square = g[i] * g[i];  // UnaryOp::Square, in T
      total += double(square);
    }
    sums[k] = double(T(total));
  }
}
// Instantiated here: a template takes its options where it is instantiated.
template void segment_sum_of_squares_cpu<float>(const float*, const std::int64_t*, const std::int64_t*, int, double*);
template void segment_sum_of_squares_cpu<double>(const double*, const std::int64_t*, const std::int64_t*, int, double*);
#pragma GCC pop_options

template <typename T>
void add_into_cpu(T* dst, const T* src, std::int64_t count) {
#pragma omp parallel for schedule(static) if (count > kParallelThreshold)
  for (std::int64_t i = 0; i < count; ++i) dst[i] = dst[i] + src[i];
}

template <typename T>
void accumulate_loss_cpu(double* slots, const T* loss, bool begins_epoch) {
  accumulate_loss_slots(slots, double(*loss), begins_epoch);
}

template void accumulate_loss_cpu<float>(double*, const float*, bool);
template void accumulate_loss_cpu<double>(double*, const double*, bool);
template void fused_step_cpu<float>(const FusedStepArgs<float>&);
template void fused_step_cpu<double>(const FusedStepArgs<double>&);
template void add_into_cpu<float>(float*, const float*, std::int64_t);
template void add_into_cpu<double>(double*, const double*, std::int64_t);

}  // namespace fm::kernels
