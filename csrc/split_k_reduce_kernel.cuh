// The K-split reduction shared by the decode and prefill launchers: their kernels leave fp32 partial
// sums of each K split in a [splits, M, N] workspace, and this kernel adds them in split order (0,
// 1, 2, ...), so the result does not depend on which block finished first. Pure device code.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "arch/arch.cuh"

namespace w4a16 {

constexpr int kSplitKReduceThreads = 256;

// out[i] = sum over splits s (in order) of partial[s][i] (+ bias), one output per thread.
template <bool kBf16>
__global__ void __launch_bounds__(kSplitKReduceThreads)
    split_k_reduce_kernel(const float* partial, int splits, int m, int n, const uint16_t* bias, uint16_t* out) {
  const size_t total = static_cast<size_t>(m) * n;
  const size_t i = static_cast<size_t>(arch::block_id_x()) * kSplitKReduceThreads + arch::thread_id();
  if (i >= total) return;
  // Four splits' loads leave together (one at a time, gfx11 waited for each before the next left):
  // past the last split they read the last one again, which is not added. The adds stay in split
  // order.
  constexpr int kSplitsPerRound = 4;
  float sum = 0.0f;
  for (int s0 = 0; s0 < splits; s0 += kSplitsPerRound) {
    float part[kSplitsPerRound];
#pragma unroll
    for (int j = 0; j < kSplitsPerRound; ++j) part[j] = partial[min(s0 + j, splits - 1) * total + i];
#pragma unroll
    for (int j = 0; j < kSplitsPerRound; ++j) {
      if (s0 + j < splits) sum += part[j];
    }
  }
  if (bias != nullptr) sum += arch::bits_to_float<kBf16>(bias[i % n]);
  out[i] = arch::float_to_bits<kBf16>(sum);
}

}  // namespace w4a16
