// Picks the one arch implementation this translation unit is built for.
// Kernel bodies include this file and nothing arch-specific.
#pragma once

#include <stdint.h>

namespace w4a16::arch {
// 16 bytes moved by one vector load or store (b_q: 4 int32 columns; activations: 8 16-bit values).
struct alignas(16) U32x4 {
  uint32_t x, y, z, w;
};
// 8 bytes: the scales of a decode lane's 4 columns.
struct alignas(8) U32x2 {
  uint32_t x, y;
};
// Where the K splits of a decode tile meet (each arch's SplitSums): without thread-block clusters,
// in the fp32 workspace that split_k_reduce_kernel.cuh sums; cuda.cuh's sm_90 builds may take
// cluster_split_sums_sm90.cuh instead.
struct WorkspaceSplitSums {
  static constexpr int kMaxClusterSplits = 0;  // no split meets another in a cluster
};
}  // namespace w4a16::arch

// The decode math (DecodeMath of each arch header): per-lane dot2 on gfx11 and in its emulation
// (decode_lanes.cuh), a warp-wide mma on NVIDIA at every M. bf16 rounding and packed bf16 math:
// gfx11's on the bits (gfx11_bf16_math.cuh) on gfx11 and in its emulation, native on NVIDIA.
#if defined(__HIP_PLATFORM_AMD__) || defined(__HIPCC__)
#include "gfx11.cuh"
#elif defined(W4A16_RDNA3_EMULATION)
#include "rdna3_emu.cuh"
#else
#include "cuda.cuh"
#endif
