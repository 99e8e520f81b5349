// The decode kernel's grid and K split: how many splits, and how many b_q rows each, for a given
// layer on a device with `slots` resident blocks, and the launch of that grid. Host code without
// torch, shared by the launcher (gemm_dot2.cu), the decode tuner (benchmarks/tune_dot2.cu) and the
// gfx11 launch shim of the ISA interpreter's tests (tests/gfx11_host/launch_shim.hip), and compiled
// hipified for gfx11 by the HIP host-code check (w4a16_rdna3/hip_host.py).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "gemm_dot2_kernel.cuh"
#include "split_k_launch.h"

namespace w4a16::dot2 {

constexpr int64_t kMinRowsPerWave = 4;  // b_q rows a split gives each wave at least
constexpr int64_t kMaxSplits = 64;
// Split-K workspace traffic (fp32 write + read, 8 bytes per output and split) is kept under 1/8 of
// the int4 weight bytes (K * N / 2): splits <= K / (128 * M).
constexpr int64_t kWorkspaceShare = 128;
// Blocks run in waves of (SMs x resident blocks per SM). A grid short of one full wave gets K
// splits, more blocks at work: the fewest splits whose waves are at least this full win, since
// every split adds workspace traffic, a reduction and shorter runs of loads per wave (a single wave
// a little short of full only leaves some SMs with fewer blocks; the memory system, not the SM, is
// the limit). Measured on an H100 (decode tuner, forced splits): on (4096, 14336) at M = 1 one split
// (one wave 0.85 full) took 14.5 us against 15.9 to 19.7 for 2 to 7 splits.
constexpr double kFullWaves = 0.75;

// b_q rows per split when `packed_rows` are cut into about `splits` parts of whole `warps` rows.
inline int64_t split_rows(int64_t packed_rows, int64_t splits, int64_t warps) {
  return ceil_div(ceil_div(packed_rows, splits), warps) * warps;
}

struct Plan {
  int64_t splits;
  int64_t rows_per_split;
};

// m_eff: the rows of `a` the blocks cover (row tiles x tile rows); slots: SMs/WGPs x resident blocks
// of the kernel on each; warps: waves per block. A split's b_q rows are a multiple of `warps`.
inline Plan plan_splits(int64_t m_eff, int64_t k, int64_t col_tiles, int64_t row_tiles, int64_t slots,
                        int64_t warps) {
  const int64_t packed_rows = k / 8;
  // A grid that fills every slot unsplit stays so: its last, partial wave has the memory system to
  // itself and costs less than a full one. Measured (decode tuner, M = 16, where 448 and 864 column
  // tiles exceed 396 slots), one split against the two of the fill rule on (4096, 14336) /
  // (5120, 27648): 23.47 / 43.27 against 24.89 / 46.96 us on an H100 (zero points: 26.54 / 49.42
  // against 27.49 / 53.65), 21.96 / 40.95 against 22.65 / 44.35 on an H200 (zero points: 24.66 /
  // 47.27 against 24.47 / 50.67).
  if (col_tiles * row_tiles >= slots) return {1, packed_rows};
  int64_t max_splits = std::min(kMaxSplits, packed_rows / (kMinRowsPerWave * warps));
  max_splits = std::min(max_splits, k / (kWorkspaceShare * m_eff));
  Plan best{1, packed_rows};
  double best_fill = 0.0;
  for (int64_t want = 1; want <= std::max<int64_t>(max_splits, 1); ++want) {
    const int64_t rows = split_rows(packed_rows, want, warps);
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

// The grid of one call: x column tiles, y K splits, z row tiles of kRows rows; blocks of `warps`
// waves.
struct Launch {
  int64_t col_tiles, row_tiles;
  Plan plan;
  int64_t warps;

  int64_t blocks() const { return col_tiles * row_tiles * plan.splits; }
};

// f(std::integral_constant<int, R>{}) for the row tile R of a call with M rows: the smallest that
// holds M (M > kMaxRows: tiles of kMaxRows along grid z).
template <class F>
inline auto with_row_tile(int64_t m, F&& f) {
  if (m <= 1) return f(std::integral_constant<int, 1>{});
  if (m <= 2) return f(std::integral_constant<int, 2>{});
  if (m <= 4) return f(std::integral_constant<int, 4>{});
  if (m <= 8) return f(std::integral_constant<int, 8>{});
  return f(std::integral_constant<int, kMaxRows>{});
}

// f(std::integral_constant<int, W>{}) for the tile's block size W == warps (kWarps, kWarps / 2, ...
// kMinWarps; anything else gets kMinWarps): a kernel is built for each, the plan picks one at run
// time.
template <int kRows, int W = Tile<kRows>::kWarps, class F>
inline auto with_block_size(int64_t warps, F&& f) {
  if constexpr (W == Tile<kRows>::kMinWarps) {
    return f(std::integral_constant<int, W>{});
  } else {
    if (warps == W) return f(std::integral_constant<int, W>{});
    return with_block_size<kRows, W / 2>(warps, std::forward<F>(f));
  }
}

// The grid of one call in blocks of `warps` waves, on a device with `slots` resident blocks of them.
template <int kRows>
inline Launch plan_block_size(int64_t m, int64_t n, int64_t k, int64_t warps, int64_t slots) {
  const int64_t col_tiles = ceil_div(n, Tile<kRows>::kColsPerBlock);
  const int64_t row_tiles = ceil_div(m, kRows);
  const int64_t m_eff = std::min<int64_t>(m, kRows) * row_tiles;
  return {col_tiles, row_tiles, plan_splits(m_eff, k, col_tiles, row_tiles, slots, warps), warps};
}

// b_q rows on the busiest SM/WGP of a grid whose blocks spread evenly: ceil(blocks / sms) blocks.
inline int64_t busiest_rows(const Launch& shape, int64_t sms) {
  return ceil_div(shape.blocks(), sms) * shape.plan.rows_per_split;
}

// Most K splits a block size below the tile's largest two may take (plan_launch).
constexpr int64_t kMaxBalancingSplits = 3;

// slots_of(warps): SMs/WGPs x resident blocks of `warps` waves of the kernel on each. Of the tile's
// largest block size and its half, the one with the fewest K splits wins, then the one with the
// fewest waves of blocks: a last wave mostly empty costs nearly a full one. Measured on an H100
// (decode tuner, two column groups, M = 1..8): 16 warps took 13.8-14.5 against 15.1-15.8 us with 8
// warps and 2 splits on (4096, 14336); 8 warps (one wave, 0.82 full) took 29.8-30.9 against
// 30.6-32.3 us with 16 (two waves) on (5120, 27648).
// A smaller size replaces that choice where its finer K splits, at most kMaxBalancingSplits of
// them, leave the busiest SM fewer rows: a grid whose blocks leave some SMs one tile more than
// others is evened out. Measured on an H200 (decode sweep, benchmarks/results_plan_H200.md: 16
// layer shapes, M = 1..8, every block size alone): 4-warp blocks with 2 or 3 splits were 2-9%
// faster at M = 1 than 16-warp blocks on all 6 shapes where they took that many (7.95 against 8.74
// us on (1536, 17920), 25.95 against 26.61 on (5120, 27648), 20.96 against 21.69 on
// (4096, 28672)); with 4 splits 4-8% slower on both shapes that took 4 ((4096, 14336): 12.61
// against 11.71), with 5 to 13 mostly slower; unsplit, with as many rows on the busiest SM as
// 8-warp blocks, slower on (8192, 57344) (73.23 against 72.16).
template <int kRows, class SlotsOf>
inline Launch plan_launch(int64_t m, int64_t n, int64_t k, int64_t sms, SlotsOf slots_of) {
  Launch best{};
  int64_t best_waves = 0;
  for (int64_t warps = Tile<kRows>::kWarps; warps >= Tile<kRows>::kMinWarps; warps /= 2) {
    const int64_t slots = slots_of(warps);
    const Launch shape = plan_block_size<kRows>(m, n, k, warps, slots);
    const int64_t waves = ceil_div(shape.blocks(), slots);
    if (2 * warps < Tile<kRows>::kWarps) {
      if (shape.plan.splits <= kMaxBalancingSplits && busiest_rows(shape, sms) < busiest_rows(best, sms)) best = shape;
    } else if (best.warps == 0 || shape.plan.splits < best.plan.splits ||
               (shape.plan.splits == best.plan.splits && waves < best_waves)) {
      best = shape;
      best_waves = waves;
    }
  }
  return best;
}

// Resident blocks per SM/WGP of the kernel for blocks of kWarps waves, asked once per kernel (it
// depends on its registers). A failed query counts as one block and clears its error, so that the
// launch check after it does not report it. On gfx11, HIP's query before rocm-systems pull
// request 9571 (merged 2026-07) counted LDS per CU and the rest per WGP: where LDS limits the
// blocks it can give half of what a WGP holds, and the plan then splits K less. Not measured (no
// gfx1100 here).
template <bool kBf16, bool kHasZeros, int kRows, int kWarps>
int blocks_per_sm() {
  static const int blocks = [] {
    int n = 0;
    const cudaError_t err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &n, gemm_dot2_kernel<kBf16, kHasZeros, kRows, kWarps>, kWarps * arch::kWaveSize, 0);
    if (err != cudaSuccess) (void)cudaGetLastError();
    return err == cudaSuccess && n > 0 ? n : 1;
  }();
  return blocks;
}

// Resident blocks of `warps` waves on a device of `sms` SMs/WGPs, asked of their kernel.
template <bool kBf16, bool kHasZeros, int kRows>
int64_t device_slots(int64_t sms, int64_t warps) {
  return sms * with_block_size<kRows>(warps, [](auto block_warps) {
           return blocks_per_sm<kBf16, kHasZeros, kRows, decltype(block_warps)::value>();
         });
}

// The grid of one call on a device of `sms` SMs/WGPs: plan_launch over the block sizes' slots.
template <bool kBf16, bool kHasZeros, int kRows>
Launch plan_for_device(int64_t m, int64_t n, int64_t k, int64_t sms) {
  return plan_launch<kRows>(m, n, k, sms,
                           [&](int64_t warps) { return device_slots<kBf16, kHasZeros, kRows>(sms, warps); });
}

// Where the K splits of one call meet: nowhere (one split), in one cluster per tile (where the
// arch's SplitSums has clusters, the splits fit one, and the device holds every tile's cluster at
// once: a second wave of clusters costs more than the reduction kernel saves), or in an fp32
// workspace that split_k_reduce_kernel sums.
enum class SplitMeeting { kNone, kCluster, kWorkspace };

template <bool kBf16, bool kHasZeros, int kRows>
SplitMeeting split_meeting(const Launch& shape) {
  if (shape.plan.splits == 1) return SplitMeeting::kNone;
  using SplitSums = typename Tile<kRows>::SplitSums;
  if constexpr (SplitSums::kMaxClusterSplits > 0) {
    if (shape.plan.splits <= SplitSums::kMaxClusterSplits) {
      // Clusters of 2..kMaxClusterSplits blocks the device holds, asked once per kernel.
      const int holds = with_block_size<kRows>(shape.warps, [&](auto block_warps) {
        constexpr int kWarps = decltype(block_warps)::value;
        static const auto clusters = [] {
          std::array<int, SplitSums::kMaxClusterSplits + 1> held{};
          for (int splits = 2; splits <= SplitSums::kMaxClusterSplits; ++splits) {
            held[splits] = SplitSums::max_active_clusters(
                gemm_dot2_kernel<kBf16, kHasZeros, kRows, kWarps, true>, splits,
                dim3(kWarps * arch::kWaveSize), Tile<kRows>::inbox_bytes(splits));
          }
          return held;
        }();
        return clusters[shape.plan.splits];
      });
      if (shape.col_tiles * shape.row_tiles <= holds) return SplitMeeting::kCluster;
    }
  }
  return SplitMeeting::kWorkspace;
}

// One call on the grid of `shape`, its K splits meeting as `meeting` says (split_meeting): with
// kWorkspace, args.partial must hold a [splits, M, N] fp32 workspace, summed by
// split_k_reduce_kernel after the decode kernel. Returns the first launch error.
template <bool kBf16, bool kHasZeros, int kRows>
cudaError_t launch_planned(Dot2Args args, const Launch& shape, SplitMeeting meeting, cudaStream_t stream) {
  args.rows_per_split = static_cast<int>(shape.plan.rows_per_split);
  args.splits = static_cast<int>(shape.plan.splits);
  const dim3 grid(static_cast<unsigned>(shape.col_tiles), static_cast<unsigned>(shape.plan.splits),
                  static_cast<unsigned>(shape.row_tiles));
  const cudaError_t launched = with_block_size<kRows>(shape.warps, [&](auto block_warps) {
    constexpr int kWarps = decltype(block_warps)::value;
    const dim3 block(kWarps * arch::kWaveSize);
    using SplitSums = typename Tile<kRows>::SplitSums;
    if constexpr (SplitSums::kMaxClusterSplits > 0) {
      if (meeting == SplitMeeting::kCluster) {
        return SplitSums::launch(gemm_dot2_kernel<kBf16, kHasZeros, kRows, kWarps, true>, grid, block,
                                 Tile<kRows>::inbox_bytes(args.splits), stream, args);
      }
    }
    gemm_dot2_kernel<kBf16, kHasZeros, kRows, kWarps><<<grid, block, 0, stream>>>(args);
    return cudaGetLastError();
  });
  if (launched != cudaSuccess || meeting != SplitMeeting::kWorkspace) return launched;
  return launch_split_k_reduce<kBf16>(args.partial, args.splits, args.m, args.n, args.bias, args.out, stream);
}

}  // namespace w4a16::dot2
