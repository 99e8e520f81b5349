// Prefill launcher: out = a @ dequant(b_q, scales, zeros) (+ bias) on 16x16x16 WMMA tiles, `a`
// already in the weights' K order (ops.cpp gathers act-order activations first). Arguments are
// already checked by ops.cpp (devices, dtypes, shapes, contiguity, 32-bit sizes; a and b_q 16-byte
// aligned, scales 4-byte aligned) and the device guard is set; out is [M, N] of a's dtype.
// Launches on the current stream.
#pragma once

#include <optional>

#include <torch/types.h>

namespace w4a16 {

void gemm_wmma_launch(const torch::Tensor& a, const torch::Tensor& b_q, const torch::Tensor& scales,
                      const std::optional<torch::Tensor>& zeros, const std::optional<torch::Tensor>& bias,
                      torch::Tensor& out);

// Largest K the prefill kernel takes (2^24 with 128-row tiles): its staging loads address a tile's
// rows of `a` by 32-bit byte offsets (arch::LaneAddress), 2 K bytes a row.
int64_t gemm_wmma_max_k();

}  // namespace w4a16
