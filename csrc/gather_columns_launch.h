// Host launch of gather_columns_kernel.cuh, without torch: ops.cpp calls it through
// gather_columns.h, and the HIP host-code check (w4a16_rdna3/hip_host.py) compiles it hipified.
#pragma once

#include <cstdint>

#include "gather_columns_kernel.cuh"
#include "split_k_launch.h"

namespace w4a16 {

// gathered = a[:, perm] ([M, K], the weights' K order), on `stream`. perm 16-byte aligned
// (ops.cpp). Returns the launch error.
template <bool kBf16>
cudaError_t launch_gather_columns(const uint16_t* a, const int32_t* perm, int m, int k, uint16_t* gathered,
                                  cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(ceil_div(m, kGatherRowsPerBlock)),
                  static_cast<unsigned>(ceil_div(k, kGatherKPerBlock)));
  gather_columns_kernel<kBf16><<<grid, kGatherThreads, 0, stream>>>(a, perm, m, k, gathered);
  return cudaGetLastError();
}

}  // namespace w4a16
