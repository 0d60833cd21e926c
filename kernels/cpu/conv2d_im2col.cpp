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
// (col_n is the image itself). Where col is GEMM input (forward, weight gradient) it is never
// materialised: the GEMM's B panels are packed straight from the image (gemm_cpu_pack_b,
// kernels/cpu/gemm_pack_b.h). The stride-1 "same" convolutions and the stride-2 ones (the U-Net's
// 3×3 and 4×4 downsampling kernels) skip even that: their forward and weight gradient read a padded
// copy of the image in place (see PaddedLayout below; the weight gradient as dot products along the
// pixels, kernels/cpu/conv_weight_grad_kernel.h, which need neither col nor its transpose). The
// backward input of a stride-1 "same" convolution is itself such a convolution (of dy with the
// flipped kernel, see input_gradient_as_convolution), and that of a stride-2 one a stride-1
// convolution over phase planes (input_gradient_by_phases); only the other backward inputs (other
// strides) write col (the GEMM's output) for col2im.
//
// Threads: with a batch of several images per thread, each thread takes whole images (with its own
// K·P col scratch for the backward input; per-image GEMMs are too small to split well: M = C_out is
// 16–128 rows). With fewer images, one image at a time, with threads inside col2im and the GEMM.
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
#include <cstring>
#include <type_traits>
#include <vector>

#include <omp.h>

#include "kernels/conv2d.h"
#include "kernels/cpu/bfloat16_buffers.h"
#include "kernels/cpu/conv_forward_kernel.h"
#include "kernels/cpu/conv_weight_grad_kernel.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/gemm_pack_b.h"
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
// ONE contiguous stretch of the plane, shifted; only the padding columns, which the shifted stretch
// would take from the neighbouring image rows, need zeroing. col2im below works on such stretches
// instead of one short copy per output row (28 floats at 28×28: loop overhead, not bandwidth).
bool same_width_stride_one(const Conv2dParams& p) {
  return p.stride_h == 1 && p.stride_w == 1 && p.out_width() == p.in_width;
}

// ---- im2col straight into the GEMM's packed panels (kernels/cpu/gemm_pack_b.h) ----------------
// The forward and weight-gradient GEMMs' B operand, col[K, P] (or colᵀ), is packed panel by panel
// from the image itself, so the K×P col matrix is never written and read back: the GEMM's own copy
// into its panels is the only copy. (The stride-1 "same" and the stride-2 convolutions skip even
// that: they read a padded copy of the image in place, see forward_from_padded_images below.)
//
// Any other convolution (stride 3, or strides differing by direction) is packed through a gather
// table: for each tap (r, s) and output pixel t, the index of the input pixel it reads inside one
// channel plane, or −1 in the padding. The pattern is the same for every channel, so the table is
// taps × P entries, built once per convolution.
template <typename T>
struct GatherIm2col {
  const T* image;
  const Conv2dParams* p;
  const std::vector<int>* index;  // index[tap·P + t]
};

std::vector<int> gather_table(const Conv2dParams& p) {
  const int Ho = p.out_height(), Wo = p.out_width(), taps = p.kernel_h * p.kernel_w;
  std::vector<int> index(std::size_t(taps) * Ho * Wo);
  for (int tap = 0; tap < taps; ++tap) {
    const int r = tap / p.kernel_w, s = tap % p.kernel_w;
    for (int i = 0; i < Ho; ++i)
      for (int j = 0; j < Wo; ++j) {
        const int h = i * p.stride_h - p.pad_h + r, w = j * p.stride_w - p.pad_w + s;
        const bool inside = h >= 0 && h < p.in_height && w >= 0 && w < p.in_width;
        index[(std::size_t(tap) * Ho + i) * Wo + j] = inside ? h * p.in_width + w : -1;
      }
  }
  return index;
}

// dst[t] = col[row, t0 + t] for t < count through the gather table.
template <typename T>
inline void gather_col_row(const GatherIm2col<T>& source, int row, int t0, int count, T* dst) {
  const Conv2dParams& p = *source.p;
  const int taps = p.kernel_h * p.kernel_w, pixels = p.out_height() * p.out_width();
  const T* plane = source.image + std::int64_t(row / taps) * p.in_height * p.in_width;
  const int* index = source.index->data() + std::size_t(row % taps) * pixels + t0;
  for (int t = 0; t < count; ++t) dst[t] = index[t] >= 0 ? plane[index[t]] : T(0);
}

// panel[k·width + j] = col[k0 + k, j0 + j] (0 for j ≥ cols) through the gather table: the
// forward's gemm_cpu_pack_b callback.
template <typename T>
void pack_gather_im2col(const void* context, int k0, int kc, int j0, int cols, int width,
                        T* panel) {
  const auto& source = *static_cast<const GatherIm2col<T>*>(context);
  for (int k = 0; k < kc; ++k) {
    T* dst = panel + std::size_t(k) * width;
    gather_col_row(source, k0 + k, j0, cols, dst);
    for (int j = cols; j < width; ++j) dst[j] = T(0);
  }
}

// The weight gradient's GEMM reads col transposed: op(B)[k, j] = col[j, k], k a pixel, j a tap row.
// panel[k·width + j] = col[j0 + j, k0 + k] (0 for j ≥ cols): each group of 8 tap rows is gathered
// into a small row-major block (8 × kc, in L1) and transposed into the panel 8×8 at a time.
template <typename T>
void pack_gather_im2col_transposed(const void* context, int k0, int kc, int j0, int cols,
                                   int width, T* panel) {
  const auto& source = *static_cast<const GatherIm2col<T>*>(context);
  constexpr int kGroup = 8;
  alignas(64) T block[kGroup][kGemmMaxSliceDepth];
  for (int g = 0; g < width; g += kGroup) {
    for (int jj = 0; jj < kGroup; ++jj) {
      if (g + jj < cols)
        gather_col_row(source, j0 + g + jj, k0, kc, block[jj]);
      else
        std::fill(block[jj], block[jj] + kc, T(0));
    }
    int k = 0;
    if constexpr (std::is_same_v<T, float>)
      for (; k + 8 <= kc; k += 8)
        transpose_8x8(&block[0][k], kGemmMaxSliceDepth, 1.0f, panel + std::size_t(k) * width + g,
                      width);
    for (; k < kc; ++k)
      for (int jj = 0; jj < kGroup; ++jj) panel[std::size_t(k) * width + g + jj] = block[jj][k];
  }
}

// Whether the padded-image kernels (forward_from_padded_images, weight_grad_dot_products_by_chunk)
// handle this convolution: stride 1 keeping the width (the 3×3 "same" ones), or stride 2 both ways
// (the 4×4 downsampling ones, read through phase planes: see PaddedLayout), and not a pointwise
// one (that is a plain GEMM).
bool stride_two(const Conv2dParams& p) { return p.stride_h == 2 && p.stride_w == 2; }

bool reads_padded_image(const Conv2dParams& p) {
  return (same_width_stride_one(p) || stride_two(p)) && !is_pointwise(p);
}

// image[C_in, H, W] = Σ of the col entries that im2col copied from each pixel (the adjoint of
// im2col). One thread per channel, taps in a fixed order: deterministic.
//
// For a stride-1 "same" convolution each tap row of col adds onto ONE contiguous, shifted stretch
// of the plane (see same_width_stride_one), once its padding columns, which would land on the
// neighbouring image rows, are zeroed in col (col is scratch). One long vector loop per tap
// instead of one short one per image row. Adding those zeros leaves the sums bitwise unchanged: a
// plane sum that starts at +0 is never −0, and x + (+0) = x for every other x.
template <typename T>
void col2im(T* col, const Conv2dParams& p, T* image) {
  const int Ho = p.out_height(), Wo = p.out_width();
  const int taps = p.kernel_h * p.kernel_w;
  const std::int64_t pixels = std::int64_t(Ho) * Wo;
  const std::int64_t plane_size = std::int64_t(p.in_height) * p.in_width;
  const bool same_width = same_width_stride_one(p);
#pragma omp parallel for schedule(static) if (p.in_channels * taps * pixels > kParallelThreshold)
  for (int c = 0; c < p.in_channels; ++c) {
    T* plane = image + c * plane_size;
    std::fill(plane, plane + plane_size, T(0));
    if (same_width) {
      const int W = p.in_width, H = p.in_height;
      for (int r = 0; r < p.kernel_h; ++r) {
        const int i_begin = std::clamp(p.pad_h - r, 0, Ho), i_end = std::clamp(H + p.pad_h - r, i_begin, Ho);
        for (int s = 0; s < p.kernel_w; ++s) {
          T* src = col + (std::int64_t(c) * taps + r * p.kernel_w + s) * pixels;
          int j_begin, j_end;
          valid_output_range(Wo, W, 1, p.pad_w, s, j_begin, j_end);
          for (int i = i_begin; i < i_end; ++i) {
            T* src_row = src + std::int64_t(i) * W;
            for (int e = 0; e < j_begin + (W - j_end); ++e)
              src_row[e < j_begin ? e : j_end + (e - j_begin)] = T(0);
          }
          // plane[t + shift] += src[t] over the valid rows, clipped to the plane (the clipped
          // ends are padding columns).
          const std::int64_t shift = std::int64_t(r - p.pad_h) * W + (s - p.pad_w);
          const std::int64_t t_begin = std::max<std::int64_t>(std::int64_t(i_begin) * W, -shift);
          const std::int64_t t_end = std::min<std::int64_t>(std::int64_t(i_end) * W, std::int64_t(H) * W - shift);
          T* dst = plane + (t_begin + shift);
          const T* src_valid = src + t_begin;
#pragma omp simd
          for (std::int64_t t = 0; t < t_end - t_begin; ++t) dst[t] += src_valid[t];
        }
      }
      continue;
    }
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

// sums[c] = Σ_{n, pixels} a[n, c, pixel]: the bias gradient. Each channel is one running sum in
// a fixed order (n, then pixels ascending), whatever the threads. One such sum is a chain of
// dependent adds (one per add latency), so a block of kChains channels is summed side by side:
// independent chains that overlap, each still in its own order, so the same bits.
template <typename T>
void channel_sums(const T* a, int batch, int channels, std::int64_t pixels, T* sums) {
  constexpr int kChains = 8;
  const int blocks = (channels + kChains - 1) / kChains;
#pragma omp parallel for schedule(static) if (std::int64_t(batch) * channels * pixels > (std::int64_t(1) << 18))
  for (int block = 0; block < blocks; ++block) {
    const int c0 = block * kChains, count = std::min(kChains, channels - c0);
    T total[kChains] = {};
    for (int n = 0; n < batch; ++n) {
      const T* planes = a + (std::int64_t(n) * channels + c0) * pixels;
      if (count == kChains) {
        for (std::int64_t i = 0; i < pixels; ++i)
          for (int chain = 0; chain < kChains; ++chain) total[chain] += planes[chain * pixels + i];
      } else {
        for (int chain = 0; chain < count; ++chain)
          for (std::int64_t i = 0; i < pixels; ++i) total[chain] += planes[chain * pixels + i];
      }
    }
    for (int chain = 0; chain < count; ++chain) sums[c0 + chain] = total[chain];
  }
}

// This thread's scratch of at least `size` elements, kept between calls: a fresh zero-filled
// vector per call cost a memset of K·P floats (up to 1 MB) per convolution pass, and every entry
// is overwritten before it is read anyway. Slot 0: col; slot 1: the weight gradient's partial sums;
// 2: the weight gradient's padded chunk; 3: the padded forward's image; 4: the phase planes of
// input_gradient_by_phases; 5: the weight gradient's vector accumulators.
template <typename T, int kSlot = 0>
T* scratch_buffer(std::size_t size) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < size) buffer.resize(size);
  return buffer.data();
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
    T* col = scratch_buffer<T>(col_size);
#pragma omp for schedule(static)
    for (int r = 0; r < ranges; ++r) body(r, range_begin(r), range_begin(r + 1), col);
  }
}

// Multiply-adds of the whole convolution (each of its three GEMMs has this many).
std::int64_t macs(const Conv2dParams& p) {
  return std::int64_t(p.batch) * p.out_channels * p.out_height() * p.out_width() * p.in_channels *
         p.kernel_h * p.kernel_w;
}

// Weight gradients are summed over this many chunks of images at most (see Determinism above).
constexpr int kWeightGradChunks = 8;

// ---- convolutions read from padded images (no im2col) ----------------------------------------
// The forward pass (kernels/cpu/conv_forward_kernel.h) and the weight gradient's dot products
// (kernels/cpu/conv_weight_grad_kernel.h) read each image zero-padded to Hp × Wp planes, where every
// tap of an output position is a constant shift: position t = i·Wp + j reads tap (c, r, s) at
// t + tap_offsets[(c·kh + r)·kw + s]. Positions run in rows of width Wp; their count is padded to
// whole 128-byte blocks (two 64-byte vectors, the forward kernel's step).
//
// Stride S = 2 (both ways) reads the same way after a polyphase split: the padded image x̃ becomes
// S² phase planes per channel, phase (ρ, σ)[u, v] = x̃[S·u + ρ, S·v + σ], each ⌈(H + 2P)/S⌉ ×
// ⌈(W + 2P)/S⌉. Output (i, j) reads x̃[S·i + r, S·j + s]; with r = S·a + ρ and s = S·b + σ that is
// phase (ρ, σ)[i + a, j + b]: again a constant shift (a·Wp + b) of position t = i·Wp + j inside one
// plane. So the 4×4 stride-2 convolution is a stride-1 2×2 one over 4·C_in phase planes, and the
// same kernels run it. For every valid output the rows and columns it reads stay inside its plane
// (S·(Ho − 1) + kh ≤ H + 2P gives Ho + (kh − 1)/S ≤ Hp); the extra columns j ≥ Wo of a wide row
// read on into the next row and are dropped, as with stride 1.
struct PaddedLayout {
  int stride = 1;                 // S: 1, or 2 (phase planes)
  int Wp = 0, Hp = 0, positions = 0;
  std::int64_t plane_stride = 0, image_stride = 0;
  std::vector<std::int64_t> tap_offsets;
};

template <typename T>
PaddedLayout padded_layout(const Conv2dParams& p) {
  PaddedLayout l;
  const int S = l.stride = p.stride_h;  // 1 or 2, == p.stride_w (reads_padded_image)
  l.Wp = (p.in_width + 2 * p.pad_w + S - 1) / S;
  l.Hp = (p.in_height + 2 * p.pad_h + S - 1) / S;
  constexpr int kBlock = 128 / int(sizeof(T));
  l.positions = (p.out_height() * l.Wp + kBlock - 1) / kBlock * kBlock;
  l.plane_stride = std::int64_t(l.Hp) * l.Wp;
  // The farthest read is the last tap's shift plus a whole row of positions, which ends below
  // (planes · plane_stride) + kernel_w + one block (Ho + (kernel_h − 1)/S ≤ Hp); zeros up to there.
  const std::int64_t planes = std::int64_t(p.in_channels) * S * S;
  l.image_stride = (planes * l.plane_stride + p.kernel_w + 2 * kBlock) / kBlock * kBlock;
  const int taps = p.in_channels * p.kernel_h * p.kernel_w;
  l.tap_offsets.resize(std::size_t(taps));
  for (int k = 0; k < taps; ++k) {
    const int c = k / (p.kernel_h * p.kernel_w), r = k / p.kernel_w % p.kernel_h, s = k % p.kernel_w;
    const std::int64_t plane = (std::int64_t(c) * S + r % S) * S + s % S;
    l.tap_offsets[std::size_t(k)] = plane * l.plane_stride + std::int64_t(r / S) * l.Wp + s / S;
  }
  return l;
}

// One input row split between the two column phases of stride 2: even[v] = src[2v − P], odd[v] =
// src[2v + 1 − P] (0 outside the row). In the middle, where both are inside, the pairs are read in
// order (GCC vectorises the two interleaved streams); the one or two columns at each end are checked.
template <typename T>
void split_row_in_two(const T* src, int width, int pad, int Wp, T* even, T* odd) {
  const int lo = (pad + 1) / 2, hi = std::max(lo, std::min(Wp, (width + pad) / 2));
  const auto at = [&](int w) { return w >= 0 && w < width ? src[w] : T(0); };
  for (int v = 0; v < lo; ++v) even[v] = at(2 * v - pad), odd[v] = at(2 * v + 1 - pad);
  const T* pairs = src + 2 * lo - pad;
  for (int v = lo; v < hi; ++v) {
    even[v] = pairs[2 * (v - lo)];
    odd[v] = pairs[2 * (v - lo) + 1];
  }
  for (int v = hi; v < Wp; ++v) even[v] = at(2 * v - pad), odd[v] = at(2 * v + 1 - pad);
}

// dst (image_stride elements) = image [C_in, H, W] zero-padded into the layout's planes (for
// S = 2 the phase planes: dst plane (c·S + ρ)·S + σ, entry [u, v] = image[c, S·u + ρ − P, S·v + σ − P]
// or 0 in the padding).
template <typename T>
void pad_image(const T* image, const Conv2dParams& p, const PaddedLayout& l, T* dst) {
  std::fill(dst, dst + l.image_stride, T(0));
  if (l.stride == 1) {
    for (int c = 0; c < p.in_channels; ++c)
      for (int h = 0; h < p.in_height; ++h)
        std::memcpy(dst + c * l.plane_stride + std::int64_t(h + p.pad_h) * l.Wp + p.pad_w,
                    image + (std::int64_t(c) * p.in_height + h) * p.in_width, sizeof(T) * p.in_width);
    return;
  }
  // S = 2: input row h is padded row h + P_h, so phase row ρ = (h + P_h) mod 2, u = (h + P_h) / 2.
  for (int c = 0; c < p.in_channels; ++c)
    for (int h = 0; h < p.in_height; ++h) {
      const int rho = (h + p.pad_h) % 2, u = (h + p.pad_h) / 2;
      T* even = dst + (std::int64_t(c) * 4 + rho * 2) * l.plane_stride + std::int64_t(u) * l.Wp;
      split_row_in_two(image + (std::int64_t(c) * p.in_height + h) * p.in_width, p.in_width, p.pad_w, l.Wp, even,
                       even + l.plane_stride);
    }
}

// y = conv(x) + bias for a convolution that reads_padded_image, image by image: pad the image, run the forward
// kernel into a wide [C_out, positions] block, then copy its valid columns out, adding the bias.
template <typename T>
void forward_from_padded_images(const T* x, const T* weight, const T* bias, T* y, const Conv2dParams& p) {
  const PaddedLayout l = padded_layout<T>(p);
  const int taps = p.in_channels * p.kernel_h * p.kernel_w;
  const bool avx512 = use_avx512_kernels();
  const int rows = avx512 ? kForwardPanelRowsAvx512 : kForwardPanelRowsPortable;
  // The weight packed panel by panel, tap-major: panels[(o / rows)·taps·rows + k·rows + o % rows].
  const int panel_count = (p.out_channels + rows - 1) / rows;
  std::vector<T> panels(std::size_t(panel_count) * taps * rows, T(0));
  for (int o = 0; o < p.out_channels; ++o)
    for (int k = 0; k < taps; ++k)
      panels[(std::size_t(o / rows) * taps + k) * rows + o % rows] = weight[std::size_t(o) * taps + k];
  const int Ho = p.out_height(), Wo = p.out_width();
  const std::int64_t image_size = std::int64_t(p.in_channels) * p.in_height * p.in_width;
  const std::int64_t out_size = std::int64_t(p.out_channels) * Ho * Wo;
  for_each_image_range<T>(p.batch, p.batch, 0, macs(p), [&](int, int first, int end, T*) {
    T* scratch = scratch_buffer<T, 3>(std::size_t(l.image_stride) + std::size_t(p.out_channels) * l.positions);
    T* x_padded = scratch;
    T* y_wide = scratch + l.image_stride;
    for (int n = first; n < end; ++n) {
      pad_image(x + n * image_size, p, l, x_padded);
      const ForwardFromPadded<T> pass{x_padded, l.tap_offsets.data(), panels.data(), p.out_channels, taps,
                                      l.positions, y_wide};
      if (avx512)
        forward_from_padded_avx512(pass);
      else
        forward_from_padded_portable(pass);
      for (int o = 0; o < p.out_channels; ++o) {
        const T b = bias ? bias[o] : T(0);  // + 0 without a bias: as the GEMM's C = acc + 0
        for (int i = 0; i < Ho; ++i) {
          const T* src = y_wide + std::int64_t(o) * l.positions + std::int64_t(i) * l.Wp;
          T* dst = y + n * out_size + (std::int64_t(o) * Ho + i) * Wo;
          for (int j = 0; j < Wo; ++j) dst[j] = src[j] + b;
        }
      }
    }
  });
}

// The weight gradient of a convolution that reads_padded_image as dot products along the pixels: each chunk of
// images is laid out in this thread's scratch, x padded and dy written at row width Wp with zero
// extra columns, then the kernel writes the chunk's sum into targets(chunk).
template <typename T, typename Targets>
void weight_grad_dot_products_by_chunk(const T* x, const T* dy, const Conv2dParams& p, int chunks,
                                       const Targets& targets) {
  const PaddedLayout l = padded_layout<T>(p);
  const int Ho = p.out_height(), Wo = p.out_width();
  const std::int64_t dy_image_stride = std::int64_t(p.out_channels) * l.positions;
  const int taps = p.in_channels * p.kernel_h * p.kernel_w;
  const std::int64_t image_size = std::int64_t(p.in_channels) * p.in_height * p.in_width;
  const std::int64_t out_size = std::int64_t(p.out_channels) * Ho * Wo;
  const int most_images = (p.batch + chunks - 1) / chunks;
  for_each_image_range<T>(p.batch, chunks, 0, macs(p), [&](int chunk, int first, int end, T*) {
    T* scratch = scratch_buffer<T, 2>(std::size_t(most_images) * (l.image_stride + dy_image_stride));
    T* x_padded = scratch;
    T* dy_wide = scratch + std::int64_t(end - first) * l.image_stride;
    for (int n = first; n < end; ++n) {
      pad_image(x + n * image_size, p, l, x_padded + (n - first) * l.image_stride);
      T* dw = dy_wide + (n - first) * dy_image_stride;
      std::fill(dw, dw + dy_image_stride, T(0));
      for (int o = 0; o < p.out_channels; ++o)
        for (int i = 0; i < Ho; ++i)
          std::memcpy(dw + std::int64_t(o) * l.positions + std::int64_t(i) * l.Wp,
                      dy + n * out_size + (std::int64_t(o) * Ho + i) * Wo, sizeof(T) * Wo);
    }
    T* accumulators = scratch_buffer<T, 5>(std::size_t(weight_grad_scratch_elements<T>(taps)));
    const WeightGradDots<T> dots{dy_wide,        x_padded,    l.tap_offsets.data(), dy_image_stride,
                                 l.image_stride, end - first, p.out_channels,       taps,
                                 l.positions,    targets(chunk), accumulators};
    if (use_avx512_kernels())
      weight_grad_dot_products_avx512(dots);
    else
      weight_grad_dot_products_portable(dots);
  });
}

}  // namespace

// ---- conv2d ----------------------------------------------------------------------------------

template <typename T>
void conv2d_forward_im2col(const T* x, const T* weight, const T* bias, T* y,
                           const Conv2dParams& p) {
  const int K = p.in_channels * p.kernel_h * p.kernel_w;
  const int pixels = p.out_height() * p.out_width();
  const std::int64_t image_size = std::int64_t(p.in_channels) * p.in_height * p.in_width;
  const bool pointwise = is_pointwise(p);
  if (reads_padded_image(p)) {  // read from the padded image in place (forward_from_padded_images)
    forward_from_padded_images(x, weight, bias, y, p);
    return;
  }
  if (!pointwise) {  // col packed straight from the image through a gather table
    const std::vector<int> index = gather_table(p);
    for_each_image_range<T>(p.batch, p.batch, 0, macs(p), [&](int, int first, int end, T*) {
      for (int n = first; n < end; ++n) {
        const GatherIm2col<T> source{x + n * image_size, &p, &index};
        gemm_cpu_pack_b<T>(false, p.out_channels, pixels, K, T(1), weight, K,
                           GemmPackB<T>{pack_gather_im2col<T>, &source}, T(0),
                           y + std::int64_t(n) * p.out_channels * pixels, pixels);
      }
    });
    if (bias) add_channel_bias(y, bias, p.batch, p.out_channels, pixels);
    return;
  }
  // A pointwise convolution: col_n is x_n itself.
  for_each_image_range<T>(p.batch, p.batch, 0, macs(p), [&](int, int first, int end, T*) {
    for (int n = first; n < end; ++n) {
      // y_n[C_out, P] = W[C_out, K] · x_n[K, P]
      gemm_cpu<T>(false, false, p.out_channels, pixels, K, T(1), weight, K, x + n * image_size,
                  pixels, T(0), y + std::int64_t(n) * p.out_channels * pixels, pixels);
    }
  });
  if (bias) add_channel_bias(y, bias, p.batch, p.out_channels, pixels);
}

namespace {

// A stride-1 convolution's input gradient is itself a stride-1 convolution: of dy, with the kernel
// flipped in both axes and its channel roles swapped, padded by k − 1 − pad on each side
// (dx[c, h, w] = Σ_{o, r, s} W[o, c, r, s] · dy[o, h + pad − r, w + pad − s]). The parameters of that
// convolution, when it is one the padded-image forward handles (a 3×3 "same" convolution gives
// another one): the input gradient then reads dy in place like a forward pass, instead of writing
// the K×P col matrix (9× dx's size for a 3×3 kernel) and adding it back with col2im.
bool input_gradient_as_convolution(const Conv2dParams& p, Conv2dParams& flipped) {
  if (p.stride_h != 1 || p.stride_w != 1 || p.pad_h > p.kernel_h - 1 || p.pad_w > p.kernel_w - 1) return false;
  flipped = p;
  flipped.in_channels = p.out_channels;
  flipped.out_channels = p.in_channels;
  flipped.in_height = p.out_height();
  flipped.in_width = p.out_width();
  flipped.pad_h = p.kernel_h - 1 - p.pad_h;
  flipped.pad_w = p.kernel_w - 1 - p.pad_w;
  return reads_padded_image(flipped);
}

// W'[c, o, r, s] = W[o, c, kh − 1 − r, kw − 1 − s]: the kernel of that convolution.
template <typename T>
std::vector<T> flipped_kernel(const T* weight, const Conv2dParams& p) {
  const int kh = p.kernel_h, kw = p.kernel_w;
  std::vector<T> flipped(std::size_t(p.out_channels) * p.in_channels * kh * kw);
  for (int o = 0; o < p.out_channels; ++o)
    for (int c = 0; c < p.in_channels; ++c)
      for (int r = 0; r < kh; ++r)
        for (int s = 0; s < kw; ++s)
          flipped[((std::size_t(c) * p.out_channels + o) * kh + r) * kw + s] =
              weight[((std::size_t(o) * p.in_channels + c) * kh + (kh - 1 - r)) * kw + (kw - 1 - s)];
  return flipped;
}

// ---- the input gradient of a stride-2 convolution, one phase plane at a time --------------------
// With x̃ the padded input (X = h + P) and X = 2u + ρ, Y = 2v + σ, the forward's sum inverts to
//     dx̃[c, 2u + ρ, 2v + σ] = Σ_{o, a, b} W[o, c, 2a + ρ, 2b + σ] · dy[o, u − a, v − b]
// (dy is 0 outside its map): for each of the four phases (ρ, σ) a stride-1 "full" correlation of dy
// with a sub-kernel of A × A taps (A = ⌈k/2⌉; for a 3×3 kernel the odd phase's missing taps are 0).
// All four phases read the same dy, so they are ONE stride-1 convolution with 4·C_in output channels
// (channel (c·2 + ρ)·2 + σ), an A × A kernel flipped, padding A − 1, on a (Ho + A − 1) × (Wo + A − 1)
// output: the padded-image forward runs it with no col matrix and no col2im. Its planes are then
// interleaved back into dx (merge_row_from_two), dropping the padding.

// The parameters of that convolution.
Conv2dParams phase_gradient_params(const Conv2dParams& p) {
  const int A_h = (p.kernel_h + 1) / 2, A_w = (p.kernel_w + 1) / 2;
  return Conv2dParams{p.batch, p.out_channels, p.out_height(), p.out_width(), 4 * p.in_channels,
                      A_h,     A_w,            1,              1,             A_h - 1,
                      A_w - 1};
}

// Its kernel: W'[(c·2 + ρ)·2 + σ, o, a', b'] = W[o, c, 2(A_h − 1 − a') + ρ, 2(A_w − 1 − b') + σ], 0 past the
// kernel's edge.
template <typename T>
std::vector<T> phase_gradient_kernel(const T* weight, const Conv2dParams& p, const Conv2dParams& q) {
  const int A_h = q.kernel_h, A_w = q.kernel_w;
  std::vector<T> kernel(std::size_t(q.out_channels) * q.in_channels * A_h * A_w, T(0));
  for (int c = 0; c < p.in_channels; ++c)
    for (int rho = 0; rho < 2; ++rho)
      for (int sigma = 0; sigma < 2; ++sigma)
        for (int o = 0; o < p.out_channels; ++o)
          for (int a = 0; a < A_h; ++a)
            for (int b = 0; b < A_w; ++b) {
              const int r = 2 * (A_h - 1 - a) + rho, s = 2 * (A_w - 1 - b) + sigma;
              if (r >= p.kernel_h || s >= p.kernel_w) continue;
              const std::size_t phase = (std::size_t(c) * 2 + rho) * 2 + sigma;
              kernel[((phase * p.out_channels + o) * A_h + a) * A_w + b] =
                  weight[((std::size_t(o) * p.in_channels + c) * p.kernel_h + r) * p.kernel_w + s];
            }
  return kernel;
}

// dst[w] for w in [0, width) from the two column phases of stride 2, the inverse of split_row_in_two:
// dst[2v − P] = even[v], dst[2v + 1 − P] = odd[v], for v < planes_width (0 past it). The middle
// pairs are written in order (vectorised), the columns at each end one by one.
template <typename T>
void merge_row_from_two(const T* even, const T* odd, int planes_width, int width, int pad, T* dst) {
  const auto from = [&](int w) {
    const int v = (w + pad) / 2;
    return v >= planes_width ? T(0) : ((w + pad) % 2 == 0 ? even[v] : odd[v]);
  };
  const int lo = (pad + 1) / 2, hi = std::max(lo, std::min(planes_width, (width + pad) / 2));
  for (int w = 0; w < std::min(width, 2 * lo - pad); ++w) dst[w] = from(w);
  T* pairs = dst + 2 * lo - pad;
  for (int v = lo; v < hi; ++v) {
    pairs[2 * (v - lo)] = even[v];
    pairs[2 * (v - lo) + 1] = odd[v];
  }
  for (int w = std::max(0, 2 * hi - pad); w < width; ++w) dst[w] = from(w);
}

template <typename T>
void input_gradient_by_phases(const T* dy, const T* weight, T* dx, const Conv2dParams& p) {
  const Conv2dParams q = phase_gradient_params(p);
  const int Hq = q.out_height(), Wq = q.out_width();
  const std::int64_t plane = std::int64_t(Hq) * Wq;
  // The four phase planes of every image (this thread's scratch: the forward's own is slot 3).
  T* phases = scratch_buffer<T, 4>(std::size_t(p.batch) * q.out_channels * plane);
  forward_from_padded_images<T>(dy, phase_gradient_kernel(weight, p, q).data(), nullptr, phases, q);
  const bool threads = std::int64_t(p.batch) * p.in_channels * p.in_height * p.in_width > kParallelThreshold;
#pragma omp parallel for schedule(static) if (threads)
  for (std::int64_t nc = 0; nc < std::int64_t(p.batch) * p.in_channels; ++nc) {
    const T* planes = phases + nc * 4 * plane;  // (ρ, σ) = (0, 0), (0, 1), (1, 0), (1, 1)
    for (int h = 0; h < p.in_height; ++h) {
      const int rho = (h + p.pad_h) % 2, u = (h + p.pad_h) / 2;
      T* dst = dx + (nc * p.in_height + h) * p.in_width;
      if (u >= Hq) {  // past every phase row: no output read this input row
        std::fill(dst, dst + p.in_width, T(0));
        continue;
      }
      const T* even = planes + 2 * rho * plane + std::int64_t(u) * Wq;
      merge_row_from_two(even, even + plane, Wq, p.in_width, p.pad_w, dst);
    }
  }
}

}  // namespace

template <typename T>
void conv2d_backward_input_im2col(const T* dy, const T* weight, T* dx, const Conv2dParams& p) {
  Conv2dParams flipped;
  if (input_gradient_as_convolution(p, flipped)) {
    conv2d_forward_im2col<T>(dy, flipped_kernel(weight, p).data(), nullptr, dx, flipped);
    return;
  }
  if (stride_two(p)) {
    input_gradient_by_phases(dy, weight, dx, p);
    return;
  }
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
  T* partial = scratch_buffer<T, 1>(std::size_t(std::max(chunks - 1, 0)) * weight_size);
  const auto target_of = [&](int chunk) {
    return chunk == 0 ? dweight : partial + std::size_t(chunk - 1) * weight_size;
  };
  if (reads_padded_image(p)) {
    // Dot products along the pixels, no im2col (weight_grad_dot_products_by_chunk).
    weight_grad_dot_products_by_chunk<T>(x, dy, p, chunks, target_of);
  } else {
    // GEMMs: colᵀ packed straight from the image through a gather table, or x itself (pointwise).
    const std::vector<int> index = pointwise ? std::vector<int>() : gather_table(p);
    for_each_image_range<T>(p.batch, chunks, 0, macs(p), [&](int chunk, int first, int end, T*) {
      T* target = target_of(chunk);
      for (int n = first; n < end; ++n) {
        const T* x_n = x + n * image_size;
        const T* dy_n = dy + std::int64_t(n) * p.out_channels * pixels;
        const T beta = n == first ? T(0) : T(1);  // the chunk's first image overwrites
        // target[C_out, K] (+)= dy_n[C_out, P] · col[K, P]ᵀ
        if (pointwise) {
          gemm_cpu<T>(false, true, p.out_channels, K, pixels, T(1), dy_n, pixels, x_n, pixels, beta,
                      target, K);
        } else {
          const GatherIm2col<T> source{x_n, &p, &index};
          gemm_cpu_pack_b<T>(false, p.out_channels, K, pixels, T(1), dy_n, pixels,
                             GemmPackB<T>{pack_gather_im2col_transposed<T>, &source}, beta, target,
                             K);
        }
      }
    });
  }
  for (int chunk = 1; chunk < chunks; ++chunk) {
    const T* source = partial + std::size_t(chunk - 1) * weight_size;
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

// ---- bfloat16 activations: x, y, dy, dx in bfloat16, weight, bias and their gradients float32 ------
// Widened, the float path above, each output rounded once (kernels/cpu/bfloat16_buffers.h).
namespace {
std::size_t input_count(const Conv2dParams& p) {
  return std::size_t(p.batch) * p.in_channels * p.in_height * p.in_width;
}
std::size_t output_count(const Conv2dParams& p) {
  return std::size_t(p.batch) * p.out_channels * p.out_height() * p.out_width();
}
}  // namespace

void conv2d_forward_im2col(const bf16* x, const float* weight, const float* bias, bf16* y, const Conv2dParams& p) {
  std::vector<float> yf(output_count(p));
  conv2d_forward_im2col<float>(widened(x, input_count(p)).data(), weight, bias, yf.data(), p);
  round_into(yf, y);
}
void conv2d_backward_input_im2col(const bf16* dy, const float* weight, bf16* dx, const Conv2dParams& p) {
  std::vector<float> dxf(input_count(p));
  conv2d_backward_input_im2col<float>(widened(dy, output_count(p)).data(), weight, dxf.data(), p);
  round_into(dxf, dx);
}
void conv2d_backward_weight_im2col(const bf16* x, const bf16* dy, float* dweight, float* dbias,
                                   const Conv2dParams& p) {
  conv2d_backward_weight_im2col<float>(widened(x, input_count(p)).data(), widened(dy, output_count(p)).data(),
                                       dweight, dbias, p);
}
// conv_transpose2d's input is its conv2d's output and the other way round.
void conv_transpose2d_forward_im2col(const bf16* x, const float* weight, const float* bias, bf16* y,
                                     const ConvTranspose2dParams& p) {
  std::vector<float> yf(input_count(p.as_conv2d()));
  conv_transpose2d_forward_im2col<float>(widened(x, output_count(p.as_conv2d())).data(), weight, bias, yf.data(),
                                         p);
  round_into(yf, y);
}
void conv_transpose2d_backward_input_im2col(const bf16* dy, const float* weight, bf16* dx,
                                            const ConvTranspose2dParams& p) {
  std::vector<float> dxf(output_count(p.as_conv2d()));
  conv_transpose2d_backward_input_im2col<float>(widened(dy, input_count(p.as_conv2d())).data(), weight, dxf.data(),
                                                p);
  round_into(dxf, dx);
}
void conv_transpose2d_backward_weight_im2col(const bf16* x, const bf16* dy, float* dweight, float* dbias,
                                             const ConvTranspose2dParams& p) {
  conv_transpose2d_backward_weight_im2col<float>(widened(x, output_count(p.as_conv2d())).data(),
                                                 widened(dy, input_count(p.as_conv2d())).data(), dweight, dbias,
                                                 p);
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
