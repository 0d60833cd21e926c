// cases/conv_transpose2d.h — the case table of conv_transpose2d (kernels/conv2d.h), the U-Net's
// 4×4 stride-2 upsampler: its shapes, FLOPs, implementations and listing. The case struct, the
// tolerances, the byte counts and the awkward shapes are conv2d's (cases/conv2d.h, namespace
// conv): the op is the adjoint of the conv2d with the same weight, stride and padding.
//
// Passes: forward, bwd-data, bwd-weight (dW and db), as for conv2d.
// Reference: conv_transpose2d_*_cpu<double> (kernels/cpu/conv2d_reference.cpp).
#pragma once
#include <vector>

#include "cases/case_table.h"
#include "cases/conv2d.h"
#include "kernels/conv2d.h"

namespace fm::cases {

using ConvTranspose2dCase = conv::ConvCase<kernels::ConvTranspose2dParams>;
using ConvTranspose2dImplementation = conv::ConvImplementation<kernels::ConvTranspose2dParams>;

// Every conv_transpose2d case: the U-Net's upsamplers at a small batch and the awkward shapes
// (tests), the gradcheck shape, and the U-Net's two upsamplers at batch 256 (the lab's default run)
// and at batch 8 (--shapes small).
const std::vector<ConvTranspose2dCase>& conv_transpose2d_cases();

// FLOPs of each pass (every input pixel meets the whole kernel; one multiply-add = 2 FLOPs):
//   2 · N · H · W · C_in · C_out · kh · kw   (H, W: the input's size)
double conv_transpose2d_flops(const kernels::ConvTranspose2dParams& p);

// The implementations this process can run: "cpu float" (the reference loops on float) and im2col
// on the CPU; v1 naive, v2 implicit GEMM and cuDNN (the baseline; only where cudnn_available()) on
// CUDA builds. As for conv2d (cases/conv2d.h).
const std::vector<ConvTranspose2dImplementation>& conv_transpose2d_implementations();
// conv_transpose2d_{forward,backward_input,backward_weight}_cpu<double>
const conv::ConvReference<kernels::ConvTranspose2dParams>& conv_transpose2d_reference();

OpListing conv_transpose2d_listing();

}  // namespace fm::cases
