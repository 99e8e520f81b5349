// Act-order activations put in the weights' K order once per call: gathered[m][k] = a[m][perm[k]].
// The decode and WMMA kernels then read them as a symmetric layer's, with 16-byte loads. Gathering
// inside those kernels instead cost eight scattered 2-byte loads per 16 bytes of activations,
// repeated by every column block: on an H200, 3.6-9.1x the symmetric layer's time in the WMMA tiles
// at M = 32..4096, up to 4.3x in the decode kernel at M = 16. Pure device code.
#pragma once

#include <stdint.h>

#include "arch/arch.cuh"

namespace w4a16 {

constexpr int kGatherThreads = 256;
constexpr int kGatherRowsPerBlock = 4;                  // rows a block gathers with one read of perm
constexpr int kGatherKPerBlock = 8 * kGatherThreads;   // K indices of a block

// Grid: x = blocks of 4 rows, y = blocks of 2048 K indices. Each thread takes 8 consecutive K
// indices (two 16-byte loads of perm) of the block's rows (one 16-byte store per row). A perm entry
// outside [0, K) gives NaN, never an out-of-bounds read (the host does not check perm's values:
// that would need a device sync).
template <bool kBf16>
__global__ void __launch_bounds__(kGatherThreads)
    gather_columns_kernel(const uint16_t* __restrict__ a, const int32_t* __restrict__ perm, int m, int k,
                          uint16_t* __restrict__ gathered) {
  constexpr uint16_t kNaN = kBf16 ? 0x7FC0 : 0x7E00;
  const int row0 = arch::block_id_x() * kGatherRowsPerBlock;
  const int rows = m - row0 < kGatherRowsPerBlock ? m - row0 : kGatherRowsPerBlock;
  const int k0 = arch::block_id_y() * kGatherKPerBlock + 8 * arch::thread_id();
  if (k0 >= k) return;
  const arch::U32x4 first = *reinterpret_cast<const arch::U32x4*>(perm + k0);
  const arch::U32x4 second = *reinterpret_cast<const arch::U32x4*>(perm + k0 + 4);
  const uint32_t src[8] = {first.x, first.y, first.z, first.w, second.x, second.y, second.z, second.w};
  bool inside[8];
  uint32_t column[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    inside[i] = src[i] < static_cast<uint32_t>(k);
    column[i] = inside[i] ? src[i] : 0u;
  }
  // Every row's gathers leave before any store (no predicate per load: a row past M reads the
  // last row again and is not stored), so the 32 loads are in flight together.
  uint32_t v[kGatherRowsPerBlock][8];
#pragma unroll
  for (int r = 0; r < kGatherRowsPerBlock; ++r) {
    const uint16_t* a_row = a + static_cast<size_t>(row0 + (r < rows ? r : rows - 1)) * k;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const uint32_t value = a_row[column[i]];
      v[r][i] = inside[i] ? value : kNaN;
    }
  }
#pragma unroll
  for (int r = 0; r < kGatherRowsPerBlock; ++r) {
    if (r < rows) {
      *reinterpret_cast<arch::U32x4*>(gathered + static_cast<size_t>(row0 + r) * k + k0) = arch::U32x4{
          v[r][0] | v[r][1] << 16, v[r][2] | v[r][3] << 16, v[r][4] | v[r][5] << 16, v[r][6] | v[r][7] << 16};
    }
  }
}

}  // namespace w4a16
