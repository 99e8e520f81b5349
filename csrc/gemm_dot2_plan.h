// The decode kernel's grid and K split: how many splits, and how many b_q rows each, for a given
// layer on a device with `slots` resident blocks. Host code without torch, shared by the launcher
// (gemm_dot2.cu) and the decode tuner (benchmarks/tune_dot2.cu).
#pragma once

#include <algorithm>
#include <cstdint>

#include "gemm_dot2_kernel.cuh"

namespace w4a16::dot2 {

constexpr int64_t kMinRowsPerSplit = 4 * kWarps;  // a split gives each wave at least 4 b_q rows
constexpr int64_t kMaxSplits = 64;
// Split-K workspace traffic (fp32 write + read, 8 bytes per output and split) is kept under 1/8 of
// the int4 weight bytes (K * N / 2): splits <= K / (128 * M).
constexpr int64_t kWorkspaceShare = 128;
// Blocks run in waves of (SMs x resident blocks per SM); a last wave that is mostly empty costs
// nearly a full one, while a single wave a little short of full only leaves some SMs with fewer
// blocks (the memory system, not the SM, is the limit). The fewest splits whose waves are at least
// this full win: every split adds workspace traffic, a reduction and shorter runs of loads per
// wave. Measured on an H100 (decode tuner, forced splits, M = 1..16): on (4096, 14336) at M = 1 one
// split (one wave 0.85 full) took 14.5 us against 15.9 to 19.7 for 2 to 7 splits, and the best split
// count of every measured shape and M was the fewest reaching 0.75.
constexpr double kFullWaves = 0.75;

inline int64_t ceil_div(int64_t x, int64_t y) { return (x + y - 1) / y; }

struct Plan {
  int64_t splits;
  int64_t rows_per_split;
};

// m_eff: the rows of `a` the blocks cover (row tiles x tile rows); slots: SMs/CUs x resident blocks
// of the kernel on each.
inline Plan plan_splits(int64_t m_eff, int64_t k, int64_t col_tiles, int64_t row_tiles, int64_t slots) {
  const int64_t packed_rows = k / 8;
  int64_t max_splits = std::min(kMaxSplits, packed_rows / kMinRowsPerSplit);
  max_splits = std::min(max_splits, k / (kWorkspaceShare * m_eff));
  Plan best{1, packed_rows};
  double best_fill = 0.0;
  for (int64_t want = 1; want <= std::max<int64_t>(max_splits, 1); ++want) {
    const int64_t rows = ceil_div(ceil_div(packed_rows, want), kWarps) * kWarps;
    const int64_t splits = ceil_div(packed_rows, rows);
    const int64_t blocks = col_tiles * row_tiles * splits;
    const double fill = static_cast<double>(blocks) / static_cast<double>(ceil_div(blocks, slots) * slots);
    if (fill > best_fill + 1e-9) {
      best = {splits, rows};
      best_fill = fill;
    }
    if (fill >= kFullWaves) break;
  }
  return best;
}

// The grid of one call: x column tiles, y K splits, z row tiles of kRows rows.
struct Launch {
  int64_t col_tiles, row_tiles;
  Plan plan;
};

template <int kRows>
inline Launch plan_launch(int64_t m, int64_t n, int64_t k, int64_t slots) {
  const int64_t col_tiles = ceil_div(n, Tile<kRows>::kColsPerBlock);
  const int64_t row_tiles = ceil_div(m, kRows);
  return {col_tiles, row_tiles, plan_splits(std::min<int64_t>(m, kRows) * row_tiles, k, col_tiles, row_tiles, slots)};
}

}  // namespace w4a16::dot2
