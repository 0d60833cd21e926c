// kernels/cpu/conv2d_reference.cpp — conv2d and conv_transpose2d written as the plain loops of
// their definitions (see kernels/conv2d.h for the formulas). Slow on purpose: these are what the
// tests trust and what a student reads first; the engine trains with the im2col path and the GPU
// kernels.
//
// Gradients, from y[n,o,i,j] = b[o] + Σ_{c,r,s} x[n,c,i·S−P+r, j·S−P+s] · w[o,c,r,s]:
//   ∂L/∂x[n,c,h,v] = Σ over every (o,i,j,r,s) whose tap lands on (h,v) of dy[n,o,i,j] · w[o,c,r,s]
//   ∂L/∂w[o,c,r,s] = Σ_{n,i,j} x[n,c,i·S−P+r, j·S−P+s] · dy[n,o,i,j]
//   ∂L/∂b[o]       = Σ_{n,i,j} dy[n,o,i,j]
// The backward-input loops below walk the forward loops and scatter, so they are visibly the
// transpose of the forward pass.
#include <algorithm>
#include <cstddef>

#include "kernels/conv2d.h"

namespace fm::kernels {
namespace {
// Flat NCHW index of element (n, c, h, w) in a [N, C, H, W] array.
inline std::size_t at(int n, int c, int h, int w, int C, int H, int W) {
  return ((std::size_t(n) * C + c) * H + h) * W + w;
}
}  // namespace

// ---- conv2d ----------------------------------------------------------------------------------

template <typename T>
void conv2d_forward_cpu(const T* x, const T* weight, const T* bias, T* y, const Conv2dParams& p) {
  const int Ho = p.out_height(), Wo = p.out_width();
  for (int n = 0; n < p.batch; ++n)
    for (int o = 0; o < p.out_channels; ++o)
      for (int i = 0; i < Ho; ++i)
        for (int j = 0; j < Wo; ++j) {
          T sum = bias ? bias[o] : T(0);
          for (int c = 0; c < p.in_channels; ++c)
            for (int r = 0; r < p.kernel_h; ++r)
              for (int s = 0; s < p.kernel_w; ++s) {
                const int h = i * p.stride_h - p.pad_h + r;
                const int v = j * p.stride_w - p.pad_w + s;
                if (h < 0 || h >= p.in_height || v < 0 || v >= p.in_width) continue;  // padding
                sum += x[at(n, c, h, v, p.in_channels, p.in_height, p.in_width)] *
                       weight[at(o, c, r, s, p.in_channels, p.kernel_h, p.kernel_w)];
              }
          y[at(n, o, i, j, p.out_channels, Ho, Wo)] = sum;
        }
}

template <typename T>
void conv2d_backward_input_cpu(const T* dy, const T* weight, T* dx, const Conv2dParams& p) {
  const int Ho = p.out_height(), Wo = p.out_width();
  std::fill(dx, dx + std::size_t(p.batch) * p.in_channels * p.in_height * p.in_width, T(0));
  for (int n = 0; n < p.batch; ++n)
    for (int o = 0; o < p.out_channels; ++o)
      for (int i = 0; i < Ho; ++i)
        for (int j = 0; j < Wo; ++j) {
          const T g = dy[at(n, o, i, j, p.out_channels, Ho, Wo)];
          for (int c = 0; c < p.in_channels; ++c)
            for (int r = 0; r < p.kernel_h; ++r)
              for (int s = 0; s < p.kernel_w; ++s) {
                const int h = i * p.stride_h - p.pad_h + r;
                const int v = j * p.stride_w - p.pad_w + s;
                if (h < 0 || h >= p.in_height || v < 0 || v >= p.in_width) continue;
                dx[at(n, c, h, v, p.in_channels, p.in_height, p.in_width)] +=
                    g * weight[at(o, c, r, s, p.in_channels, p.kernel_h, p.kernel_w)];
              }
        }
}

template <typename T>
void conv2d_backward_weight_cpu(const T* x, const T* dy, T* dweight, T* dbias,
                                const Conv2dParams& p) {
  const int Ho = p.out_height(), Wo = p.out_width();
  for (int o = 0; o < p.out_channels; ++o)
    for (int c = 0; c < p.in_channels; ++c)
      for (int r = 0; r < p.kernel_h; ++r)
        for (int s = 0; s < p.kernel_w; ++s) {
          T sum = T(0);
          for (int n = 0; n < p.batch; ++n)
            for (int i = 0; i < Ho; ++i)
              for (int j = 0; j < Wo; ++j) {
                const int h = i * p.stride_h - p.pad_h + r;
                const int v = j * p.stride_w - p.pad_w + s;
                if (h < 0 || h >= p.in_height || v < 0 || v >= p.in_width) continue;
                sum += x[at(n, c, h, v, p.in_channels, p.in_height, p.in_width)] *
                       dy[at(n, o, i, j, p.out_channels, Ho, Wo)];
              }
          dweight[at(o, c, r, s, p.in_channels, p.kernel_h, p.kernel_w)] = sum;
        }
  if (dbias) {
    for (int o = 0; o < p.out_channels; ++o) {
      T sum = T(0);
      for (int n = 0; n < p.batch; ++n)
        for (int i = 0; i < Ho; ++i)
          for (int j = 0; j < Wo; ++j) sum += dy[at(n, o, i, j, p.out_channels, Ho, Wo)];
      dbias[o] = sum;
    }
  }
}

// ---- conv_transpose2d ------------------------------------------------------------------------
// Written from its own definition (each input pixel scatters a weighted copy of the kernel into the
// output), not by calling the conv2d loops, so that tests comparing the fast paths — which do
// reuse the conv2d machinery — against these loops check that reuse too.

template <typename T>
void conv_transpose2d_forward_cpu(const T* x, const T* weight, const T* bias, T* y,
                                  const ConvTranspose2dParams& p) {
  const int Ho = p.out_height(), Wo = p.out_width();
  for (int n = 0; n < p.batch; ++n)
    for (int o = 0; o < p.out_channels; ++o)
      for (int h = 0; h < Ho; ++h)
        for (int v = 0; v < Wo; ++v)
          y[at(n, o, h, v, p.out_channels, Ho, Wo)] = bias ? bias[o] : T(0);
  for (int n = 0; n < p.batch; ++n)
    for (int c = 0; c < p.in_channels; ++c)
      for (int i = 0; i < p.in_height; ++i)
        for (int j = 0; j < p.in_width; ++j) {
          const T value = x[at(n, c, i, j, p.in_channels, p.in_height, p.in_width)];
          for (int o = 0; o < p.out_channels; ++o)
            for (int r = 0; r < p.kernel_h; ++r)
              for (int s = 0; s < p.kernel_w; ++s) {
                const int h = i * p.stride_h - p.pad_h + r;
                const int v = j * p.stride_w - p.pad_w + s;
                if (h < 0 || h >= Ho || v < 0 || v >= Wo) continue;  // cropped by the padding
                y[at(n, o, h, v, p.out_channels, Ho, Wo)] +=
                    value * weight[at(c, o, r, s, p.out_channels, p.kernel_h, p.kernel_w)];
              }
        }
}

template <typename T>
void conv_transpose2d_backward_input_cpu(const T* dy, const T* weight, T* dx,
                                         const ConvTranspose2dParams& p) {
  // ∂L/∂x[n,c,i,j] = Σ_{o,r,s} dy[n, o, i·S−P+r, j·S−P+s] · w[c,o,r,s]: a gather over the window
  // that input pixel scattered into.
  const int Ho = p.out_height(), Wo = p.out_width();
  for (int n = 0; n < p.batch; ++n)
    for (int c = 0; c < p.in_channels; ++c)
      for (int i = 0; i < p.in_height; ++i)
        for (int j = 0; j < p.in_width; ++j) {
          T sum = T(0);
          for (int o = 0; o < p.out_channels; ++o)
            for (int r = 0; r < p.kernel_h; ++r)
              for (int s = 0; s < p.kernel_w; ++s) {
                const int h = i * p.stride_h - p.pad_h + r;
                const int v = j * p.stride_w - p.pad_w + s;
                if (h < 0 || h >= Ho || v < 0 || v >= Wo) continue;
                sum += dy[at(n, o, h, v, p.out_channels, Ho, Wo)] *
                       weight[at(c, o, r, s, p.out_channels, p.kernel_h, p.kernel_w)];
              }
          dx[at(n, c, i, j, p.in_channels, p.in_height, p.in_width)] = sum;
        }
}

template <typename T>
void conv_transpose2d_backward_weight_cpu(const T* x, const T* dy, T* dweight, T* dbias,
                                          const ConvTranspose2dParams& p) {
  // ∂L/∂w[c,o,r,s] = Σ_{n,i,j} x[n,c,i,j] · dy[n, o, i·S−P+r, j·S−P+s];  ∂L/∂b[o] = Σ dy[n,o,·,·]
  const int Ho = p.out_height(), Wo = p.out_width();
  for (int c = 0; c < p.in_channels; ++c)
    for (int o = 0; o < p.out_channels; ++o)
      for (int r = 0; r < p.kernel_h; ++r)
        for (int s = 0; s < p.kernel_w; ++s) {
          T sum = T(0);
          for (int n = 0; n < p.batch; ++n)
            for (int i = 0; i < p.in_height; ++i)
              for (int j = 0; j < p.in_width; ++j) {
                const int h = i * p.stride_h - p.pad_h + r;
                const int v = j * p.stride_w - p.pad_w + s;
                if (h < 0 || h >= Ho || v < 0 || v >= Wo) continue;
                sum += x[at(n, c, i, j, p.in_channels, p.in_height, p.in_width)] *
                       dy[at(n, o, h, v, p.out_channels, Ho, Wo)];
              }
          dweight[at(c, o, r, s, p.out_channels, p.kernel_h, p.kernel_w)] = sum;
        }
  if (dbias) {
    for (int o = 0; o < p.out_channels; ++o) {
      T sum = T(0);
      for (int n = 0; n < p.batch; ++n)
        for (int h = 0; h < Ho; ++h)
          for (int v = 0; v < Wo; ++v) sum += dy[at(n, o, h, v, p.out_channels, Ho, Wo)];
      dbias[o] = sum;
    }
  }
}

#define FM_INSTANTIATE_CONV2D_REFERENCE(T)                                                      \
  template void conv2d_forward_cpu<T>(const T*, const T*, const T*, T*, const Conv2dParams&);   \
  template void conv2d_backward_input_cpu<T>(const T*, const T*, T*, const Conv2dParams&);      \
  template void conv2d_backward_weight_cpu<T>(const T*, const T*, T*, T*, const Conv2dParams&); \
  template void conv_transpose2d_forward_cpu<T>(const T*, const T*, const T*, T*,               \
                                                const ConvTranspose2dParams&);                  \
  template void conv_transpose2d_backward_input_cpu<T>(const T*, const T*, T*,                  \
                                                       const ConvTranspose2dParams&);           \
  template void conv_transpose2d_backward_weight_cpu<T>(const T*, const T*, T*, T*,             \
                                                        const ConvTranspose2dParams&);
FM_INSTANTIATE_CONV2D_REFERENCE(float)
FM_INSTANTIATE_CONV2D_REFERENCE(double)
#undef FM_INSTANTIATE_CONV2D_REFERENCE

}  // namespace fm::kernels
