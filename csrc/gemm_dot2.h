// Launcher of the decode kernel (gemm_dot2_kernel.cuh), `a` already in the weights' K order (ops.cpp
// gathers act-order activations first). Arguments are already checked by ops.cpp: contiguous, on
// one device, shapes consistent; a and b_q 16-byte aligned, scales 8-byte aligned.
#pragma once

#include <optional>

#include <torch/types.h>

namespace w4a16 {

void gemm_dot2_launch(const torch::Tensor& a, const torch::Tensor& b_q, const torch::Tensor& scales,
                      const std::optional<torch::Tensor>& zeros, const std::optional<torch::Tensor>& bias,
                      torch::Tensor& out);

// Largest M for which the `gemm` op takes the decode kernel (the WMMA kernel above it).
int64_t gemm_dot2_max_m();

// The decode kernel takes group size G (K / scales rows) if G is a multiple of this or G = K
// (gemm_dot2_kernel.cuh, kGroupMultiple).
int64_t gemm_dot2_group_multiple();

}  // namespace w4a16
