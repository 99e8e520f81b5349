// Host code shared by the decode and prefill launch plans (gemm_dot2_plan.h, gemm_wmma_plan.h):
// ceil_div, and the launch of split_k_reduce_kernel over a [splits, M, N] fp32 workspace. Apart
// from the kernel's header, which the gfx1100 ISA check compiles alone, without the runtime's
// stream type; this one is compiled hipified with the plans by the HIP host-code check.
//
// Both plans size their grids by `sms`, the multiprocessor count the runtime reports
// (multiProcessorCount): SMs on NVIDIA; on gfx11, where HIP runs workgroups in WGP mode, WGPs of
// two CUs (48 on an RX 7900 XTX, 96 CUs), whose four SIMDs make a WGP the counterpart of an SM.
#pragma once

#include <cstdint>

#include "split_k_reduce_kernel.cuh"

namespace w4a16 {

inline int64_t ceil_div(int64_t x, int64_t y) { return (x + y - 1) / y; }

// out = the splits' partial sums added in split order (+ bias), after the kernel that wrote them
// on the same stream. Returns the launch error.
template <bool kBf16>
cudaError_t launch_split_k_reduce(const float* partial, int splits, int m, int n, const uint16_t* bias, uint16_t* out,
                                  cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(ceil_div(static_cast<int64_t>(m) * n, kSplitKReduceThreads));
  split_k_reduce_kernel<kBf16><<<blocks, kSplitKReduceThreads, 0, stream>>>(partial, splits, m, n, bias, out);
  return cudaGetLastError();
}

}  // namespace w4a16
