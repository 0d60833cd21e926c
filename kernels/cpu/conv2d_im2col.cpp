// kernels/cpu/conv2d_im2col.cpp — the CPU convolution the engine trains with: im2col + GEMM.
//
// For one image, unfold the input into a matrix col[K, P] with K = C_in·kh·kw rows (one per kernel
// tap (c, r, s)) and P = Ho·Wo columns (one per output pixel):
//     col[(c·kh + r)·kw + s, i·Wo + j] = x[c, i·S − P + r, j·S − P + s]   (0 in the padding)
// Then with the weight read as a matrix W[C_out, K] (its natural memory layout):
//     forward          y_n  = W · col_n                   (+ bias per row)
//     backward input   dx_n = col2im(Wᵀ · dy_n)           (col2im is the adjoint of im2col: it adds
//                                                          every column entry back onto its pixel)
//     backward weight  dW   = Σ_n dy_n · col_nᵀ,  db = Σ_{n,pixels} dy
// (Chellapilla et al., "High Performance Convolutional Neural Networks for Document Processing",
// 2006.) The GEMMs are kernels/cpu/gemm.cpp; a 1×1 stride-1 unpadded conv needs no unfolding at all
// (col_n is the image itself).
//
// Threads: with a batch of several images per thread, each thread takes whole images with its own
// K·P scratch buffer (per-image GEMMs are too small to split well: M = C_out is 16–128 rows).
// With fewer images, one image at a time, with threads inside im2col/col2im and the GEMM.
//
// conv_transpose2d reuses conv2d (see ConvTranspose2dParams::as_conv2d): its forward is conv2d's
// backward input, its backward input is conv2d's forward, and its weight gradient is conv2d's
// weight gradient with the roles of x and dy exchanged.
//
// Determinism: every output element is written by one thread and summed in a fixed order. The
// weight gradient sums over images in a fixed number of chunks (set by the batch size alone), each
// chunk's partial sum added in chunk order, so the result does not depend on the thread count.
#include <algorithm>
#include <cstdint>
#include <vector>

#include <omp.h>

#include "kernels/conv2d.h"
#include "kernels/gemm.h"

namespace fm::kernels {
namespace {

// Work below this many elements is not worth waking the OpenMP team for.
constexpr std::int64_t kParallelThreshold = 16384;

// A 1×1 kernel with stride 1 and no padding reads each pixel exactly once, in order: col == x.
bool is_pointwise(const Conv2dParams& p) {
  return p.kernel_h == 1 && p.kernel_w == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 &&
         p.pad_w == 0;
}

// Output positions o in [begin, end) whose tap o·stride − pad + tap lands inside [0, in_size):
// the rest read zero padding. Computing the range once keeps the copy loops branch-free.
void valid_output_range(int out_size, int in_size, int stride, int pad, int tap, int& begin,
                        int& end) {
  const int first = pad - tap;               // o·stride >= pad − tap
  const int last = in_size - 1 + pad - tap;  // o·stride <= in_size − 1 + pad − tap
  begin = first <= 0 ? 0 : (first + stride - 1) / stride;
  end = last < 0 ? 0 : last / stride + 1;
  begin = std::min(begin, out_size);
  end = std::max(begin, std::min(end, out_size));
}

// A stride-1 "same" convolution (Wo == W, e.g. 3×3 with padding 1): row i of tap (r, s)'s col
// row is image row i + r − P shifted by s − P columns, so the valid rows of the whole tap row are
// ONE contiguous stretch of the plane, shifted. im2col_same_width_row copies it in one loop and then
// zeroes the padding columns, which the shifted copy filled from the neighbouring image rows,
// instead of one short copy per output row (28 floats at 28×28: loop overhead, not bandwidth).
bool same_width_stride_one(const Conv2dParams& p) {
  return p.stride_h == 1 && p.stride_w == 1 && p.out_width() == p.in_width;
}

template <typename T>
void im2col_same_width_row(const T* plane, const Conv2dParams& p, int r, int s, T* dst) {
  const int H = p.in_height, W = p.in_width, Ho = p.out_height();
  // Output rows i whose image row h = i + r − P is inside: [i_begin, i_end).
  const int i_begin = std::clamp(p.pad_h - r, 0, Ho), i_end = std::clamp(H + p.pad_h - r, i_begin, Ho);
  std::fill(dst, dst + std::int64_t(i_begin) * W, T(0));
  std::fill(dst + std::int64_t(i_end) * W, dst + std::int64_t(Ho) * W, T(0));
  // dst[t] = plane[t + shift] for t over the valid rows, clipped to the plane (the clipped ends
  // are padding columns, zeroed below).
  const std::int64_t shift = std::int64_t(r - p.pad_h) * W + (s - p.pad_w);
  const std::int64_t t_begin = std::max<std::int64_t>(std::int64_t(i_begin) * W, -shift);
  const std::int64_t t_end = std::min<std::int64_t>(std::int64_t(i_end) * W, std::int64_t(H) * W - shift);
  const T* src = plane + (t_begin + shift);
  T* dst_valid = dst + t_begin;
#pragma omp simd
  for (std::int64_t t = 0; t < t_end - t_begin; ++t) dst_valid[t] = src[t];
  int j_begin, j_end;  // the columns of each row that read inside the image
  valid_output_range(p.out_width(), W, 1, p.pad_w, s, j_begin, j_end);
  for (int i = i_begin; i < i_end; ++i) {
    T* dst_row = dst + std::int64_t(i) * W;
    // Columns [0, j_begin) and [j_end, W) in one loop of a few stores; two std::fill calls would
    // each become a memset call per image row.
    for (int e = 0; e < j_begin + (W - j_end); ++e)
      dst_row[e < j_begin ? e : j_end + (e - j_begin)] = T(0);
  }
}

// col[K, Ho·Wo] from one image [C_in, H, W].
template <typename T>
void im2col(const T* image, const Conv2dParams& p, T* col) {
  const int Ho = p.out_height(), Wo = p.out_width();
  const int taps = p.kernel_h * p.kernel_w;
  const int rows = p.in_channels * taps;
  const std::int64_t pixels = std::int64_t(Ho) * Wo;
#pragma omp parallel for schedule(static) if (rows * pixels > kParallelThreshold)
  for (int row = 0; row < rows; ++row) {
    const int c = row / taps, r = row % taps / p.kernel_w, s = row % p.kernel_w;
    const T* plane = image + std::int64_t(c) * p.in_height * p.in_width;
    T* dst = col + row * pixels;
    if (same_width_stride_one(p)) {
      im2col_same_width_row(plane, p, r, s, dst);
      continue;
    }
    int j_begin, j_end;
    valid_output_range(Wo, p.in_width, p.stride_w, p.pad_w, s, j_begin, j_end);
    for (int i = 0; i < Ho; ++i) {
      T* dst_row = dst + std::int64_t(i) * Wo;
      const int h = i * p.stride_h - p.pad_h + r;
      if (h < 0 || h >= p.in_height) {
        std::fill(dst_row, dst_row + Wo, T(0));
        continue;
      }
      // x[c, h, j·S − P + s] = plane[row_start + j·S]; only j in [j_begin, j_end) is inside.
      const std::int64_t row_start = std::int64_t(h) * p.in_width - p.pad_w + s;
      std::fill(dst_row, dst_row + j_begin, T(0));
      if (p.stride_w == 1) {  // the common case: a unit-stride copy that vectorises inline
        const T* src = plane + row_start + j_begin;
        T* dst_valid = dst_row + j_begin;
#pragma omp simd
        for (int j = 0; j < j_end - j_begin; ++j) dst_valid[j] = src[j];
      } else {
        for (int j = j_begin; j < j_end; ++j) dst_row[j] = plane[row_start + j * p.stride_w];
      }
      std::fill(dst_row + j_end, dst_row + Wo, T(0));
    }
  }
}

// image[C_in, H, W] = Σ of the col entries that im2col copied from each pixel (the adjoint of
// im2col). One thread per channel, taps in a fixed order: deterministic.
template <typename T>
void col2im(const T* col, const Conv2dParams& p, T* image) {
  const int Ho = p.out_height(), Wo = p.out_width();
  const int taps = p.kernel_h * p.kernel_w;
  const std::int64_t pixels = std::int64_t(Ho) * Wo;
  const std::int64_t plane_size = std::int64_t(p.in_height) * p.in_width;
#pragma omp parallel for schedule(static) if (p.in_channels * taps * pixels > kParallelThreshold)
  for (int c = 0; c < p.in_channels; ++c) {
    T* plane = image + c * plane_size;
    std::fill(plane, plane + plane_size, T(0));
    for (int r = 0; r < p.kernel_h; ++r)
      for (int s = 0; s < p.kernel_w; ++s) {
        const T* src = col + (std::int64_t(c) * taps + r * p.kernel_w + s) * pixels;
        int j_begin, j_end;
        valid_output_range(Wo, p.in_width, p.stride_w, p.pad_w, s, j_begin, j_end);
        for (int i = 0; i < Ho; ++i) {
          const int h = i * p.stride_h - p.pad_h + r;
          if (h < 0 || h >= p.in_height) continue;
          const std::int64_t row_start = std::int64_t(h) * p.in_width - p.pad_w + s;
          const T* src_row = src + std::int64_t(i) * Wo;
          if (p.stride_w == 1) {  // the common case: a unit-stride add that vectorises
            T* dst = plane + row_start + j_begin;
            const T* src_valid = src_row + j_begin;
#pragma omp simd
            for (int j = 0; j < j_end - j_begin; ++j) dst[j] += src_valid[j];
          } else {
            for (int j = j_begin; j < j_end; ++j) plane[row_start + j * p.stride_w] += src_row[j];
          }
        }
      }
  }
}

// y[n, c, :] += bias[c] over a [N, C, pixels] array.
template <typename T>
void add_channel_bias(T* y, const T* bias, int batch, int channels, std::int64_t pixels) {
  for (int n = 0; n < batch; ++n)
    for (int c = 0; c < channels; ++c) {
      T* plane = y + (std::int64_t(n) * channels + c) * pixels;
      for (std::int64_t i = 0; i < pixels; ++i) plane[i] += bias[c];
    }
}

// sums[c] = Σ_{n, pixels} a[n, c, pixel]: the bias gradient.
template <typename T>
void channel_sums(const T* a, int batch, int channels, std::int64_t pixels, T* sums) {
  for (int c = 0; c < channels; ++c) {
    T total = T(0);
    for (int n = 0; n < batch; ++n) {
      const T* plane = a + (std::int64_t(n) * channels + c) * pixels;
      for (std::int64_t i = 0; i < pixels; ++i) total += plane[i];
    }
    sums[c] = total;
  }
}

// Calls body(r, first, end, col) for the consecutive ranges r = 0 .. ranges−1 of images
// [first, end) covering the batch, all of (nearly) equal size. The ranges are spread over the
// OpenMP threads when each thread gets at least two of them and the convolution is big enough to
// be worth waking them (macs: its multiply-adds), each thread with its own col scratch of
// col_size elements. Otherwise they run in order on this thread, and threads work inside
// im2col/col2im and the GEMM instead.
template <typename T, typename Body>
void for_each_image_range(int batch, int ranges, std::size_t col_size, std::int64_t macs,
                          const Body& body) {
  const auto range_begin = [&](int r) { return int(std::int64_t(batch) * r / ranges); };
  const int threads = omp_get_max_threads();
  const bool across_ranges = threads > 1 && ranges >= 2 * threads && macs > (std::int64_t(1) << 20);
#pragma omp parallel if (across_ranges)
  {
    std::vector<T> col(col_size);
#pragma omp for schedule(static)
    for (int r = 0; r < ranges; ++r) body(r, range_begin(r), range_begin(r + 1), col.data());
  }
}

// Multiply-adds of the whole convolution (each of its three GEMMs has this many).
std::int64_t macs(const Conv2dParams& p) {
  return std::int64_t(p.batch) * p.out_channels * p.out_height() * p.out_width() * p.in_channels *
         p.kernel_h * p.kernel_w;
}

// Weight gradients are summed over this many chunks of images at most (see Determinism above).
constexpr int kWeightGradChunks = 8;

}  // namespace

// ---- conv2d ----------------------------------------------------------------------------------

template <typename T>
void conv2d_forward_im2col(const T* x, const T* weight, const T* bias, T* y,
                           const Conv2dParams& p) {
  const int K = p.in_channels * p.kernel_h * p.kernel_w;
  const int pixels = p.out_height() * p.out_width();
  const std::int64_t image_size = std::int64_t(p.in_channels) * p.in_height * p.in_width;
  const bool pointwise = is_pointwise(p);
  for_each_image_range<T>(p.batch, p.batch, pointwise ? 0 : std::size_t(K) * pixels, macs(p),
                          [&](int, int first, int end, T* col) {
    for (int n = first; n < end; ++n) {
      const T* x_n = x + n * image_size;
      if (!pointwise) im2col(x_n, p, col);
      // y_n[C_out, P] = W[C_out, K] · col[K, P]
      gemm_cpu<T>(false, false, p.out_channels, pixels, K, T(1), weight, K, pointwise ? x_n : col,
                  pixels, T(0), y + std::int64_t(n) * p.out_channels * pixels, pixels);
    }
  });
  if (bias) add_channel_bias(y, bias, p.batch, p.out_channels, pixels);
}

template <typename T>
void conv2d_backward_input_im2col(const T* dy, const T* weight, T* dx, const Conv2dParams& p) {
  const int K = p.in_channels * p.kernel_h * p.kernel_w;
  const int pixels = p.out_height() * p.out_width();
  const std::int64_t image_size = std::int64_t(p.in_channels) * p.in_height * p.in_width;
  const bool pointwise = is_pointwise(p);
  for_each_image_range<T>(p.batch, p.batch, pointwise ? 0 : std::size_t(K) * pixels, macs(p),
                          [&](int, int first, int end, T* col) {
    for (int n = first; n < end; ++n) {
      const T* dy_n = dy + std::int64_t(n) * p.out_channels * pixels;
      T* dx_n = dx + n * image_size;
      // col[K, P] = Wᵀ[K, C_out] · dy_n[C_out, P]; for a pointwise conv col is dx_n itself.
      gemm_cpu<T>(true, false, K, pixels, p.out_channels, T(1), weight, K, dy_n, pixels, T(0),
                  pointwise ? dx_n : col, pixels);
      if (!pointwise) col2im(col, p, dx_n);
    }
  });
}

template <typename T>
void conv2d_backward_weight_im2col(const T* x, const T* dy, T* dweight, T* dbias,
                                   const Conv2dParams& p) {
  const int K = p.in_channels * p.kernel_h * p.kernel_w;
  const int pixels = p.out_height() * p.out_width();
  const std::int64_t image_size = std::int64_t(p.in_channels) * p.in_height * p.in_width;
  const bool pointwise = is_pointwise(p);
  const std::size_t weight_size = std::size_t(p.out_channels) * K;
  if (p.batch == 0) std::fill(dweight, dweight + weight_size, T(0));
  // Chunk 0 sums straight into dweight, chunk c > 0 into partial[c − 1]; then the partial sums
  // are added to dweight in chunk order.
  const int chunks = std::min(p.batch, kWeightGradChunks);
  std::vector<T> partial(std::size_t(std::max(chunks - 1, 0)) * weight_size);
  for_each_image_range<T>(p.batch, chunks, pointwise ? 0 : std::size_t(K) * pixels, macs(p),
                          [&](int chunk, int first, int end, T* col) {
    T* target = chunk == 0 ? dweight : partial.data() + std::size_t(chunk - 1) * weight_size;
    for (int n = first; n < end; ++n) {
      const T* x_n = x + n * image_size;
      if (!pointwise) im2col(x_n, p, col);
      // target[C_out, K] (+)= dy_n[C_out, P] · col[K, P]ᵀ; the chunk's first image overwrites.
      gemm_cpu<T>(false, true, p.out_channels, K, pixels, T(1),
                  dy + std::int64_t(n) * p.out_channels * pixels, pixels, pointwise ? x_n : col,
                  pixels, n == first ? T(0) : T(1), target, K);
    }
  });
  for (int chunk = 1; chunk < chunks; ++chunk) {
    const T* source = partial.data() + std::size_t(chunk - 1) * weight_size;
    for (std::size_t i = 0; i < weight_size; ++i) dweight[i] += source[i];
  }
  if (dbias) channel_sums(dy, p.batch, p.out_channels, pixels, dbias);
}

// ---- conv_transpose2d: the same machinery with the roles swapped -----------------------------

template <typename T>
void conv_transpose2d_forward_im2col(const T* x, const T* weight, const T* bias, T* y,
                                     const ConvTranspose2dParams& p) {
  conv2d_backward_input_im2col<T>(x, weight, y, p.as_conv2d());
  if (bias)
    add_channel_bias(y, bias, p.batch, p.out_channels,
                     std::int64_t(p.out_height()) * p.out_width());
}

template <typename T>
void conv_transpose2d_backward_input_im2col(const T* dy, const T* weight, T* dx,
                                            const ConvTranspose2dParams& p) {
  conv2d_forward_im2col<T>(dy, weight, nullptr, dx, p.as_conv2d());
}

template <typename T>
void conv_transpose2d_backward_weight_im2col(const T* x, const T* dy, T* dweight, T* dbias,
                                             const ConvTranspose2dParams& p) {
  // In the equivalent conv2d, dy plays the input and x the output gradient.
  conv2d_backward_weight_im2col<T>(dy, x, dweight, nullptr, p.as_conv2d());
  if (dbias)
    channel_sums(dy, p.batch, p.out_channels, std::int64_t(p.out_height()) * p.out_width(), dbias);
}

#define FM_INSTANTIATE_CONV2D_IM2COL(T)                                                            \
  template void conv2d_forward_im2col<T>(const T*, const T*, const T*, T*, const Conv2dParams&);   \
  template void conv2d_backward_input_im2col<T>(const T*, const T*, T*, const Conv2dParams&);      \
  template void conv2d_backward_weight_im2col<T>(const T*, const T*, T*, T*, const Conv2dParams&); \
  template void conv_transpose2d_forward_im2col<T>(const T*, const T*, const T*, T*,               \
                                                   const ConvTranspose2dParams&);                  \
  template void conv_transpose2d_backward_input_im2col<T>(const T*, const T*, T*,                  \
                                                          const ConvTranspose2dParams&);           \
  template void conv_transpose2d_backward_weight_im2col<T>(const T*, const T*, T*, T*,             \
                                                           const ConvTranspose2dParams&);
FM_INSTANTIATE_CONV2D_IM2COL(float)
FM_INSTANTIATE_CONV2D_IM2COL(double)
#undef FM_INSTANTIATE_CONV2D_IM2COL

}  // namespace fm::kernels
