// Act-order activations in the weights' K order: a[:, perm] as a new [M, K] tensor, gathered on the
// current stream (gather_columns_kernel.cuh). ops.cpp calls it before either kernel's launcher; a
// perm entry outside [0, K) gives a NaN column. Arguments checked by ops.cpp, perm 16-byte aligned.
#pragma once

#include <torch/types.h>

namespace w4a16 {

torch::Tensor gather_columns(const torch::Tensor& a, const torch::Tensor& perm);

}  // namespace w4a16
