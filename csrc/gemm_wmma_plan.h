// The prefill kernel's block tile, grid and K split for one call, and the launch of that grid. Host
// code without torch, shared by the launcher (gemm_wmma.cu), the gfx11 launch shim of the ISA
// interpreter's tests (tests/gfx11_host/launch_shim.hip) and the HIP host-code check
// (w4a16_rdna3/hip_host.py), which compiles it hipified for gfx11 on a machine without ROCm torch.
#pragma once

#include <algorithm>
#include <cstdint>

#include "gemm_wmma_kernel.cuh"
#include "split_k_launch.h"

namespace w4a16::wmma {

// The block tiles of the arch's table (gemm_wmma_kernel.cuh) a call may take.
enum class TileSize { kSmall, kMedium, kLarge };

template <class Tile>
int64_t blocks_of(int64_t m, int64_t n) {
  return ceil_div(m, Tile::kBM) * ceil_div(n, Tile::kBN);
}

// The tile of an M x N output on `sms` SMs/WGPs. Large tiles reuse each loaded value most; with
// fragments they only pay once they give every SM/WGP a block, with wgmma from M = 128 on (the
// arch's table says which).
inline TileSize choose_tile(int64_t m, int64_t n, int64_t sms) {
  if (m >= 128 && (kWmmaLargeWithFewBlocks || blocks_of<WmmaTileLarge>(m, n) >= sms)) return TileSize::kLarge;
  if (m > 32) return TileSize::kMedium;
  return TileSize::kSmall;
}

// A tile type as a value, for with_tile's generic lambdas (C++17 has no std::type_identity).
template <class T>
struct TileType {
  using type = T;
};

// f(TileType<Tile>{}) for the block tile type of `size`.
template <class F>
auto with_tile(TileSize size, F&& f) {
  if (size == TileSize::kLarge) return f(TileType<WmmaTileLarge>{});
  if (size == TileSize::kMedium) return f(TileType<WmmaTileMedium>{});
  return f(TileType<WmmaTileSmall>{});
}

// K tiles a split takes at least: each split loads its first tile with nothing to overlap it, and
// adds M x N fp32 partial sums to write and read back.
constexpr int64_t kMinKTilesPerSplit = 8;
// Weight columns whose K loops an SM/WGP should have at work: one block of 128-column tiles, two of
// 64-column tiles.
constexpr int64_t kColumnsPerSm = 128;

// K splits for a grid of `blocks` output tiles of `tile_cols` columns on `sms` SMs/WGPs. Every step
// of the K loop waits on the global loads of the next K tile, so an SM/WGP with too few blocks
// leaves that latency unhidden: splitting K gives it more. The fewest splits that give every SM/WGP
// kColumnsPerSm columns, rounded up to a power of two. Measured on an H200 (wgmma tiles, fp16,
// forced splits 1-16 on (4096, 14336), (14336, 4096), (5120, 27648) and (4096, 4096), M = 16..1024;
// README): within 1.12x of the best count with the large tile (M >= 128), 1.24x with the medium
// and 1.27x with the small one (M = 16..128), one K tile in flight; with two, the best count for the
// medium tile at M = 64 on all four. Filling every resident block slot instead lost by up to 1.5x;
// (14336, 4096) at M = 256 took 98.5 against 223.0 us unsplit.
inline int64_t plan_splits(int64_t blocks, int64_t tile_cols, int64_t sms, int64_t k_tiles) {
  const int64_t wanted = sms * std::max<int64_t>(1, kColumnsPerSm / tile_cols);
  int64_t splits = 1;
  while (splits * blocks < wanted) splits *= 2;
  return std::max<int64_t>(1, std::min(splits, k_tiles / kMinKTilesPerSplit));
}

// The grid of one call with block tile `Tile`: x column tiles, y row tiles, z K splits of
// tiles_per_split K tiles each.
struct Launch {
  int64_t col_tiles, row_tiles, splits, tiles_per_split;
};

template <class Tile>
Launch plan_launch(int64_t m, int64_t n, int64_t k, int64_t sms) {
  const int64_t col_tiles = ceil_div(n, Tile::kBN), row_tiles = ceil_div(m, Tile::kBM);
  const int64_t k_tiles = ceil_div(k, Tile::kBK);
  const int64_t tiles_per_split = ceil_div(k_tiles, plan_splits(col_tiles * row_tiles, Tile::kBN, sms, k_tiles));
  return {col_tiles, row_tiles, ceil_div(k_tiles, tiles_per_split), tiles_per_split};
}

// One call on the grid of `shape` (row_tiles at most 65535, the grid's y limit): with more than one
// split, args.partial must hold a [splits, M, N] fp32 workspace, summed by split_k_reduce_kernel
// after the WMMA kernel. Returns the first error.
template <class Tile, bool kBf16, bool kHasZeros>
cudaError_t launch_planned(WmmaGemmArgs args, const Launch& shape, cudaStream_t stream) {
  const auto kernel = gemm_wmma_kernel<Tile, kBf16, kHasZeros>;
  int lds_bytes = 0;
  if constexpr (Tile::Lds::kDynamicLds) {
    // Past 48 KiB a kernel must opt in to dynamic LDS (cheap, and allowed while a graph is captured).
    lds_bytes = Tile::kLdsBytes;
    const cudaError_t opted = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, lds_bytes);
    if (opted != cudaSuccess) return opted;
  }
  args.k_per_split = static_cast<int>(shape.tiles_per_split * Tile::kBK);
  const dim3 grid(static_cast<unsigned>(shape.col_tiles), static_cast<unsigned>(shape.row_tiles),
                  static_cast<unsigned>(shape.splits));
  kernel<<<grid, Tile::kThreads, lds_bytes, stream>>>(args);
  const cudaError_t launched = cudaGetLastError();
  if (launched != cudaSuccess || shape.splits == 1) return launched;
  return launch_split_k_reduce<kBf16>(args.partial, static_cast<int>(shape.splits), args.m, args.n, args.bias, args.out, stream);
}

}  // namespace w4a16::wmma
