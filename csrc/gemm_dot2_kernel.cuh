// Decode GEMM (small M): out[M, N] = a[M, K] @ dequant(b_q, scales, zeros)[K, N] (+ bias).
//
// Memory bound: every int4 weight is read once, 16 bytes per lane per load, a batch of loads in
// flight per wave and many waves per CU/SM (few registers: no second batch held in registers).
// The weights meet the activations in the arch's decode math for the row tile (DecodeMath), fp32
// accumulation in all: per-lane dot2 on gfx11 and in its emulation (arch/decode_lanes.cuh), with
// the activations staged in LDS one K chunk at a time; a warp-wide mma on NVIDIA (arch/cuda.cuh),
// whose lanes read their activations straight from `a`. Act-order layers come with `a` already in
// the weights' K order (gather_columns_kernel.cuh). Pure device code: no torch, so the gfx1100 ISA
// check compiles it alone.
//
// Block: kWarps waves (one of the tile's two block sizes) over the same kColsPerBlock columns, going
// down the K split together in bands of b_q rows (a batch of loads per wave each); the waves' sums
// meet in LDS at the end.
// Grid: x = column tiles, y = K splits, z = row tiles of kRows rows. With one split the block
// writes `out` (bias, conversion). Otherwise the splits' fp32 sums meet in a [splits, M, N]
// workspace that split_k_reduce_kernel.cuh sums in split order or, in the kClusterSums kernels
// (where the arch's SplitSums has clusters and the launch makes each tile's splits one cluster), in
// the shared memory of its first split, which sums them in the same order. Either way the result
// does not depend on timing.
#pragma once

#include "arch/arch.cuh"
#include "dequant.cuh"
#include "group_divisor.cuh"
#include "row_pointer.cuh"

namespace w4a16::dot2 {

constexpr int kColsPerLoad = 4;  // one 16-byte b_q load: 4 int32 columns
constexpr int kMaxRows = 16;                                      // largest row tile (M) of one block

// A block with a row tile of kRows: the arch's decode math for it, its waves, the columns and rows
// of a wave step, and its LDS: one chunk of activations (8 KiB whatever the tile; 4096 K values at
// one row) with its 8-value sums, later reused for the waves' reduction. Where the K splits meet in
// a cluster, the launch adds the inbox for them (dynamic LDS of inbox_bytes(splits)).
template <int kRows>
struct Tile {
  using Math = arch::DecodeMath<kRows>;
  using SplitSums = arch::SplitSums;  // named through the tile, so that kernel code depends on it
  // Waves per block: kWarps, kWarps / 2, ... down to kMinWarps (the arch's math), the launch's
  // choice (gemm_dot2_plan.h); a kernel is built for each.
  static constexpr int kWarps = Math::kWarps;
  static constexpr int kMinWarps = Math::kMinWarps;
  static_assert(kMinWarps > 0 && kWarps % kMinWarps == 0 && ((kWarps / kMinWarps) & (kWarps / kMinWarps - 1)) == 0,
                "block sizes halve from kWarps to kMinWarps");
  __host__ __device__ static constexpr bool is_block_size(int warps) {
    return warps >= kMinWarps && warps <= kWarps && kWarps % warps == 0 && warps % kMinWarps == 0;
  }
  // A wave step covers kLaneRows b_q rows; its lanes split into that many row groups. A row group
  // reads kColGroups runs of kColsPerGroup contiguous columns (128 with one row: 512 bytes of one
  // b_q row), each lane 16 bytes of every run (kColGroups loads sharing one activation fetch).
  static constexpr int kLaneRows = Math::kLaneRows;
  static constexpr int kColGroups = Math::kColGroups;
  static constexpr int kColsPerGroup = arch::kWaveSize / kLaneRows * kColsPerLoad;
  static constexpr int kColsPerBlock = kColsPerGroup * kColGroups;
  static constexpr int kLoadsInFlight = Math::kLoadsInFlight;  // wave steps (kColGroups loads per lane each)
  static constexpr int kChunkK = kRows == 1 ? 4096 : 8192 / kRows;
  static constexpr int kChunkRows = kChunkK / 8;  // b_q rows per chunk
  // Rows per pass of the waves' reduction in LDS (the arch's choice, at most the tile's).
  static constexpr int kPassRows = kRows < Math::kReduceRows ? kRows : Math::kReduceRows;
  static constexpr int kActBytes = kRows * kChunkK * 2 + kRows * kChunkRows * 4;
  static constexpr int kReduceBytes = kWarps * kPassRows * kColsPerBlock * 4;
  static constexpr int kSmemBytes = kActBytes > kReduceBytes ? kActBytes : kReduceBytes;
  // inbox[split][row][column]: the tile's sums from every split.
  static constexpr size_t inbox_bytes(int splits) { return static_cast<size_t>(splits) * kRows * kColsPerBlock * 4; }
};

// Group sizes the decode kernel takes: the arch's decode math puts kRowsPerScale b_q rows (8
// kRowsPerScale K values: a step of NVIDIA's mma layout, a batch of gfx11's per-lane one) under one
// scale row, so a group must hold whole runs of them (or be the one group of all K). Both are 4
// rows: G = 8 or 16 would put two groups under one scale (measured on NVIDIA: relative error 0.28
// at G = 16), so `gemm` takes the WMMA kernel for them and `gemm_dot2` refuses them.
constexpr int kGroupMultiple = 8 * Tile<1>::Math::kRowsPerScale;

struct Dot2Args {
  const uint16_t* a;       // [M, K]
  const uint32_t* b_q;     // [K / 8, N]
  const uint16_t* scales;  // [K / G, N]
  const uint32_t* zeros;   // [K / G, N / 8] or null
  const uint16_t* bias;    // [N] or null
  float* partial;          // [splits, M, N] when gridDim.y > 1
  uint16_t* out;           // [M, N]
  int m, k, n;
  GroupDivisor group;      // K index -> row of scales and zeros
  int rows_per_split;      // packed b_q rows per K split
  int splits;              // gridDim.y
};

// One chunk of activations into LDS. act[r][c * 8 .. c * 8 + 7] = a[m0 + r][k] for
// k = (chunk0 + c) * 8 + i, in the (j, j + 4) pair order of interleave_pairs, so a lane's one 16-byte
// LDS read gives the four dot2 operands of one b_q int32. asum[r][c] = sum of those 8 values in
// fp32, for the zero-point term of the decode math that takes it (kUsesActSums). Rows past M are
// zeros.
template <bool kBf16, int kRows, int kThreads>
__device__ inline void stage_activations(const Dot2Args& p, uint16_t* act, float* asum, int m0, int chunk0,
                                         int rows) {
  constexpr int kChunkK = Tile<kRows>::kChunkK;
  constexpr int kChunkRows = Tile<kRows>::kChunkRows;
  for (int idx = arch::thread_id(); idx < kRows * kChunkRows; idx += kThreads) {
    const int r = idx / kChunkRows;  // a power of two: a shift
    const int c = idx % kChunkRows;
    if (c >= rows) continue;
    const int m = m0 + r;
    // Natural K order: words[i / 2] holds K offsets i (low half) and i + 1.
    arch::U32x4 raw{0u, 0u, 0u, 0u};
    if (m < p.m) {
      raw = *reinterpret_cast<const arch::U32x4*>(p.a + static_cast<size_t>(m) * p.k + (chunk0 + c) * 8);
    }
    *reinterpret_cast<arch::U32x4*>(act + r * kChunkK + c * 8) = interleave_pairs(raw);
    if constexpr (Tile<kRows>::Math::kUsesActSums) {
      const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
      float sum = 0.0f;
      for (int i = 0; i < 8; ++i) sum += arch::bits_to_float<kBf16>((words[i / 2] >> (16 * (i % 2))) & 0xFFFFu);
      asum[r * kChunkRows + c] = sum;
    }
  }
}

// Where the decode math finds a lane's activations: load(r) gives the 16 bytes of tile row r at the
// lane's b_q row as the source keeps them, pairs_of turns them into the 8 values in the (j, j + 4)
// pair order; apart, so that the loads of a batch all leave before any is used. LDS also gives the
// 8-value sums, sum(r), for the per-lane math.

// Staged in LDS by stage_activations (already paired, sums included).
template <int kRows>
struct LdsActivations {
  const uint16_t* act;  // the lane's b_q row in tile row 0
  const float* asum;
  __device__ arch::U32x4 load(int r) const {
    return *reinterpret_cast<const arch::U32x4*>(act + r * Tile<kRows>::kChunkK);
  }
  __device__ static arch::U32x4 pairs_of(const arch::U32x4& loaded) { return loaded; }
  __device__ float sum(int r) const { return asum[r * Tile<kRows>::kChunkRows]; }
};

// Read from `a` itself (no sums), paired in registers. A row past M reads the tile's last
// row instead, so every load is in bounds; the decode math that reads `a` (kGlobalActivations) keeps
// such rows out of the stored outputs.
struct GlobalActivations {
  const uint16_t* a;  // a[m0][8 kk] for the lane's b_q row kk
  uint32_t row_bytes;  // 2K
  int rows;            // rows of the tile inside M
  __device__ arch::U32x4 load(int r) const {
    return *at_row(reinterpret_cast<const arch::U32x4*>(a), static_cast<uint32_t>(min(r, rows - 1)), row_bytes);
  }
  __device__ static arch::U32x4 pairs_of(const arch::U32x4& loaded) { return interleave_pairs(loaded); }
};

// The lane's share of one b_q row: 4 int32 columns per column group, their scales and zero points.
template <int kColGroups>
struct RowLoad {
  arch::U32x4 w[kColGroups];
  arch::U32x2 scales[kColGroups];  // scales of columns n, n + 1 (x) and n + 2, n + 3 (y)
  uint32_t zero_word[kColGroups];  // zeros int32 holding columns n .. n + 7 (n % 8 is 0 or 4)
};

// The lane's columns n .. n + 3 of each column group (n = n0 + g group_cols for group g) in b_q,
// scales and zeros (row 0); rows follow at pitch. A group past N reads the last 4 columns instead:
// its sums are never stored.
template <int kColGroups>
struct LaneColumns {
  const uint32_t* b_q;  // group 0
  const uint16_t* scales;
  const uint32_t* zeros;
  int first;               // group 0's first column
  int offset[kColGroups];  // columns from group 0 to group g (0 for g = 0)
  uint32_t b_q_pitch, scales_pitch, zeros_pitch;  // bytes

  __device__ static LaneColumns of(const Dot2Args& p, int n0, int group_cols) {
    const int first = min(n0, p.n - kColsPerLoad);
    LaneColumns cols{p.b_q + first, p.scales + first, p.zeros, first, {}, 4u * p.n, 2u * p.n,
                     static_cast<uint32_t>(p.n) / 2u};
#pragma unroll
    for (int g = 0; g < kColGroups; ++g) cols.offset[g] = min(n0 + g * group_cols, p.n - kColsPerLoad) - first;
    return cols;
  }
};

// Every address from the row itself (a multiply-high for its group, no running cursor) and no
// predicate: the loads of a batch are independent, so they all leave before the first is used.
template <bool kHasZeros, int kColGroups>
__device__ inline RowLoad<kColGroups> load_row(const Dot2Args& p, const LaneColumns<kColGroups>& cols, uint32_t kk) {
  const uint32_t group = p.group(kk * 8u);
  const uint32_t* b_q_row = at_row(cols.b_q, kk, cols.b_q_pitch);
  const uint16_t* scales_row = at_row(cols.scales, group, cols.scales_pitch);
  const uint32_t* zeros_row = at_row(cols.zeros, group, cols.zeros_pitch);
  RowLoad<kColGroups> l;
#pragma unroll
  for (int g = 0; g < kColGroups; ++g) {
    l.w[g] = arch::load_stream16(b_q_row + cols.offset[g]);
    l.scales[g] = *reinterpret_cast<const arch::U32x2*>(scales_row + cols.offset[g]);
    l.zero_word[g] = kHasZeros ? zeros_row[(cols.first + cols.offset[g]) / 8] : 0u;
  }
  return l;
}

// Loads of the wave steps at chunk rows step, step + kLaneRows, ... (kLoadsInFlight of them); the
// lane's row in a step is step + lane_row. A row past the chunk's last one (`last`) reads that row
// again: the decode math ignores it (fetch gets row_valid false).
template <bool kHasZeros, int kRows, int kColGroups = Tile<kRows>::kColGroups>
__device__ inline void load_batch(const Dot2Args& p, const LaneColumns<kColGroups>& cols,
                                  RowLoad<kColGroups> (&loads)[Tile<kRows>::kLoadsInFlight], int chunk0, int step,
                                  int last, int lane_row) {
#pragma unroll
  for (int u = 0; u < Tile<kRows>::kLoadsInFlight; ++u) {
    const int r = min(step + u * Tile<kRows>::kLaneRows + lane_row, last);
    loads[u] = load_row<kHasZeros>(p, cols, static_cast<uint32_t>(chunk0 + r));
  }
}

// The lane's b_q row `ahead` rows on, asked of the L2 (where the arch can: arch::prefetch_l2), so
// that a wave keeps more of memory busy than its one batch of registers.
template <int kColGroups>
__device__ inline void prefetch_row(const LaneColumns<kColGroups>& cols, int chunk0, int ahead, int rows) {
  if (ahead >= rows) return;
  const uint32_t* b_q_row = at_row(cols.b_q, static_cast<uint32_t>(chunk0 + ahead), cols.b_q_pitch);
#pragma unroll
  for (int g = 0; g < kColGroups; ++g) arch::prefetch_l2(b_q_row + cols.offset[g]);
}

// One wave step of one lane: its b_q row's weights in the arch's form (exact offset integers
// 16 + q, or exact q - z), scales and zero terms, then the arch's decode math. Lane column
// 4 g + c is column c of group g: column n0 + g group_cols + c, whose zero point sits at nibble
// (n0 + c) % 8 since group_cols is a multiple of 8.
template <bool kBf16, bool kHasZeros, int kRows, int kColGroups, class Fetched>
__device__ inline void accumulate_step(typename Tile<kRows>::Math::Acc& acc, const RowLoad<kColGroups>& l,
                                       const Fetched& acts, int n0, bool first_of_batch) {
#pragma unroll
  for (int g = 0; g < kColGroups; ++g) {
    const uint32_t words[kColsPerLoad] = {l.w[g].x, l.w[g].y, l.w[g].z, l.w[g].w};
    const uint32_t scale_bits[kColsPerLoad] = {l.scales[g].x & 0xFFFFu, l.scales[g].x >> 16,
                                               l.scales[g].y & 0xFFFFu, l.scales[g].y >> 16};
    // The lane's 4 zero points as nibbles 0..3, its columns starting at nibble n0 % 8 (0 or 4):
    // one shift by a lane register, then shifts by constants. Shifting by n0 + c for each column
    // kept four shift amounts live: with zero points at M = 2..8 ptxas spilled 28 (fp16) or 44
    // (bf16) bytes at 64 registers, now 0 or 4. Measured on an H200 (decode tuner, same call, zero
    // points, M = 2 / 4 / 8, with the prefetch below): 14.87 / 15.35 / 16.53 against 15.41 / 15.87 /
    // 17.09 us on (14336, 4096), 15.19 / 15.35 / 16.22 against 15.30 / 15.67 / 16.63 on
    // (4096, 14336), 35.45 / 35.53 / 36.29 against 34.65 / 35.15 / 36.63 on (5120, 27648).
    const uint32_t lane_zeros = l.zero_word[g] >> (4 * (n0 & 7));
    uint32_t pairs[kColsPerLoad][4];
    float scale[kColsPerLoad], zero_bias[kColsPerLoad];
#pragma unroll
    for (int c = 0; c < kColsPerLoad; ++c) {
      const uint32_t zero = kHasZeros ? zero_of(lane_zeros, c) : 8u;
      if constexpr (Tile<kRows>::Math::kCentredWeights) {
        centred_int_pairs<kBf16>(words[c], make_centred_pairs<kBf16>(zero), pairs[c]);
      } else {
        offset_int_pairs<kBf16>(words[c], pairs[c]);
      }
      scale[c] = arch::bits_to_float<kBf16>(scale_bits[c]);
      zero_bias[c] = kOffsetIntBias + static_cast<float>(zero);
    }
    Tile<kRows>::Math::template accumulate<kBf16>(acc, g, pairs, scale, zero_bias, acts, first_of_batch);
  }
}

// out[m][n] = sum (+ bias), rounded once.
template <bool kBf16>
__device__ inline void store_output(const Dot2Args& p, int m, int n, float sum) {
  if (p.bias != nullptr) sum += arch::bits_to_float<kBf16>(p.bias[n]);
  p.out[static_cast<size_t>(m) * p.n + n] = arch::float_to_bits<kBf16>(sum);
}

template <bool kBf16, bool kHasZeros, int kRows, int kWarps, bool kClusterSums = false>
__global__ void __launch_bounds__(kWarps* arch::kWaveSize, Tile<kRows>::Math::kMinResidentWarps / kWarps)
    gemm_dot2_kernel(Dot2Args p) {
  static_assert(kRows >= 1 && kRows <= kMaxRows, "row tile");
  static_assert(Tile<kRows>::kSmemBytes <= 64 * 1024, "RDNA3 allows 64 KiB of LDS per workgroup");
  using Math = typename Tile<kRows>::Math;
  static_assert(Tile<kRows>::is_block_size(kWarps), "a block size of the tile");
  static_assert(Tile<kRows>::Math::kRowsPerScale * 8 == kGroupMultiple, "one group multiple for every row tile");
  constexpr int kThreads = kWarps * arch::kWaveSize;
  constexpr int kColGroups = Tile<kRows>::kColGroups;
  constexpr int kLaneRows = Tile<kRows>::kLaneRows;
  constexpr int kColsPerBlock = Tile<kRows>::kColsPerBlock;
  constexpr int kLoadsInFlight = Tile<kRows>::kLoadsInFlight;
  static_assert(Tile<kRows>::kChunkRows % kLaneRows == 0, "a chunk is whole wave steps");
  // Runs of kRowsPerScale rows under one scale start at multiples of it: chunks, K splits (whole
  // blocks of kWarps rows, gemm_dot2_plan.h) and batches all do.
  static_assert(Tile<kRows>::kChunkRows % Math::kRowsPerScale == 0 && kWarps % Math::kRowsPerScale == 0 &&
                    (kLoadsInFlight * kLaneRows) % Math::kRowsPerScale == 0,
                "a run of rows under one scale lies in one group");
  constexpr int kChunkK = Tile<kRows>::kChunkK;
  constexpr int kChunkRows = Tile<kRows>::kChunkRows;
  __shared__ arch::U32x4 smem[Tile<kRows>::kSmemBytes / 16];
  uint16_t* act = reinterpret_cast<uint16_t*>(smem);
  float* asum = reinterpret_cast<float*>(act + kRows * kChunkK);
  float* reduce = reinterpret_cast<float*>(smem);
  using SplitSums = typename Tile<kRows>::SplitSums;
  static_assert(!kClusterSums || SplitSums::kMaxClusterSplits > 0, "K splits meet in clusters only where the arch has them");
  // The first split's arrival barrier counts every split's sums in bytes (an mbarrier counts fewer
  // than 2^20): each split sends all kRows x kColsPerBlock of them, inside M and N or not.
  constexpr int kSplitSumBytes = kRows * Tile<kRows>::kColsPerBlock * 4;
  static_assert(!kClusterSums || SplitSums::kMaxClusterSplits * kSplitSumBytes < (1 << 20),
                "the sends of a cluster fit the arrival barrier's byte count");
  if constexpr (kClusterSums) SplitSums::announce_start(static_cast<uint32_t>(p.splits * kSplitSumBytes));

  const int lane = arch::lane_id();
  const int warp = arch::thread_id() / arch::kWaveSize;
  // b_q rows are contiguous along N: the lanes of one row group read 16 contiguous bytes each
  // (columns n0 .. n0 + 3, then the same kColsPerGroup further per column group), kColsPerGroup
  // columns together per group; group lane_row reads b_q row step + lane_row of each wave step.
  const int lane_row = lane % kLaneRows;
  const int n0 = arch::block_id_x() * kColsPerBlock + lane / kLaneRows * kColsPerLoad;
  const int m0 = arch::block_id_z() * kRows;
  const int kk_begin = arch::block_id_y() * p.rows_per_split;
  const int kk_end = min(p.k / 8, kk_begin + p.rows_per_split);

  typename Math::Acc acc;
  Math::zero(acc);

  // Activations come from LDS, staged per chunk, unless the arch's math reads them straight from
  // `a`: then no staging and no barriers in the K loop.
  constexpr bool kStaged = !Math::kGlobalActivations;
  const auto cols = LaneColumns<kColGroups>::of(p, n0, Tile<kRows>::kColsPerGroup);
  const uint16_t* a_tile = p.a + static_cast<size_t>(m0) * p.k;
  const auto activations_of = [&](int chunk0, int r) {
    if constexpr (kStaged) {
      return LdsActivations<kRows>{act + r * 8, asum + r};
    } else {
      return GlobalActivations{a_tile + 8u * static_cast<uint32_t>(chunk0 + r), 2u * p.k, p.m - m0};
    }
  };

  // Without staging a chunk is the whole split. The waves go down a chunk in bands of kBandRows b_q
  // rows, wave w taking the band's w-th batch (kLoadsInFlight steps): the block reads one band at a
  // time, not kWarps places a run apart. Measured on an H100 (decode tuner, M = 1..8, with the
  // activation loads of MmaDecode::fetch): 0.7 to 2.5 us faster than a contiguous run per wave on
  // (14336, 4096) and (5120, 27648), the same within the run-to-run spread on (4096, 14336).
  constexpr int kBatchRows = kLoadsInFlight * kLaneRows;
  constexpr int kBandRows = kWarps * kBatchRows;
  const int chunk_rows = kStaged ? kChunkRows : kk_end - kk_begin;
  for (int chunk0 = kk_begin; chunk0 < kk_end; chunk0 += chunk_rows) {
    const int rows = min(chunk_rows, kk_end - chunk0);
    // The chunk's first weight loads go out right before its activations are staged, so that the
    // two fetches overlap. After the barrier that frees the LDS, not before it: gfx11 waits for
    // every load in flight at an s_barrier (the compiler puts vmcnt(0) before each one), so loads
    // issued before it would be waited for before the staging loads could even leave.
    if constexpr (kStaged) arch::barrier();  // the previous chunk's activations are no longer read
    RowLoad<kColGroups> batch[kLoadsInFlight];
    load_batch<kHasZeros, kRows>(p, cols, batch, chunk0, warp * kBatchRows, rows - 1, lane_row);
    if constexpr (kStaged) {
      stage_activations<kBf16, kRows, kThreads>(p, act, asum, m0, chunk0, rows);
      arch::barrier();
    }
    for (int band = 0; band < rows; band += kBandRows) {
      const int step = band + warp * kBatchRows;
      // One batch in registers at a time: while this wave waits for it, the many other resident
      // waves (few registers each) keep the memory system busy.
      if (band > 0) load_batch<kHasZeros, kRows>(p, cols, batch, chunk0, step, rows - 1, lane_row);
      // Two bands ahead, in the block sizes the arch's math says (Math::prefetches_l2). Measured on
      // an H200 (decode tuner, same call, M = 1 / 2 / 4 / 8, against none), 16-warp blocks: 12.10 /
      // 12.21 / 12.54 / 13.43 against 12.75 / 12.81 / 13.08 / 13.84 us on (4096, 14336), 12.47 /
      // 12.65 / 13.01 / 14.17 against 12.79 / 12.86 / 13.45 / 14.44 on (14336, 4096); with zero
      // points 0.6-1.4 us faster on both at M = 2..8. Four bands ahead was no better. A bulk
      // prefetch of the block's whole K range at its start was 2.4-5.5 us slower everywhere.
      if constexpr (Math::prefetches_l2(kWarps)) {
        prefetch_row(cols, chunk0, step + 2 * kBandRows + lane_row, rows);
      }
      // The batch's activations, loaded before any of it is multiplied (from `a` their loads leave
      // with the weights').
      using Fetched = decltype(Math::fetch(activations_of(chunk0, 0), false));
      Fetched fetched[kLoadsInFlight];
#pragma unroll
      for (int u = 0; u < kLoadsInFlight; ++u) {
        const int r = step + u * kLaneRows + lane_row;
        fetched[u] = Math::fetch(activations_of(chunk0, min(r, rows - 1)), r < rows);
      }
#pragma unroll
      for (int u = 0; u < kLoadsInFlight; ++u) {
        if (step + u * kLaneRows < rows) {  // the same for the whole wave: the mma needs all lanes
          accumulate_step<kBf16, kHasZeros, kRows>(acc, batch[u], fetched[u], n0, u == 0);
        }
      }
      if (step < rows) Math::end_batch(acc);  // the batch's sums meet their scale (gfx11's math)
    }
  }

  // The waves' sums meet in LDS, kPassRows rows at a time: reduce[w][r][col] with the arch's
  // accumulator map (slot -> row, column), then thread t sums column t % kColsPerBlock over the
  // waves in wave order. A wave stores its first pass as soon as its band loop ends where no chunk
  // of activations was staged (the LDS is free): its stores then overlap the other waves' loops
  // instead of all waiting for the last. Measured on an H100 (decode tuner, same call, two rounds,
  // against a barrier first): M = 4 / 8 13.12-13.13 / 13.50-13.54 against 13.49-13.59 / 14.27-14.32
  // us on (4096, 14336), 13.51-13.63 / 14.10-14.28 against 13.82-13.89 / 14.89-14.93 on
  // (14336, 4096), 29.57-29.65 against 29.95-29.97 at M = 8 on (5120, 27648); M = 1, 2 and 16
  // within 0.3 us.
  constexpr int kPassRows = Tile<kRows>::kPassRows;
  const bool single_split = p.splits == 1;
  if constexpr (kClusterSums) SplitSums::wait_all_started();
#pragma unroll
  for (int r0 = 0; r0 < kRows; r0 += kPassRows) {
    if (kStaged || r0 > 0) arch::barrier();  // the LDS holds activations or the last pass's sums
#pragma unroll
    for (int slot = 0; slot < Math::kAccSlots; ++slot) {
      const int r = Math::acc_row(lane, slot) - r0;
      if (r >= 0 && r < kPassRows) {
        reduce[(warp * kPassRows + r) * kColsPerBlock + Math::acc_col(lane, slot)] = Math::acc_value(acc, slot);
      }
    }
    arch::barrier();
    for (int idx = arch::thread_id(); idx < kPassRows * kColsPerBlock; idx += kThreads) {
      const int r = idx / kColsPerBlock;
      const int col = idx - r * kColsPerBlock;
      const int m = m0 + r0 + r;
      const int n = arch::block_id_x() * kColsPerBlock + col;
      // Every slot goes to the cluster's first split, outside M and N too: it counts the bytes.
      if (!kClusterSums && (m >= p.m || n >= p.n)) continue;
      float sum = 0.0f;
      for (int w = 0; w < kWarps; ++w) sum += reduce[(w * kPassRows + r) * kColsPerBlock + col];
      if constexpr (kClusterSums) {
        SplitSums::send_to_first((arch::block_id_y() * kRows + r0 + r) * kColsPerBlock + col, sum);
      } else if (single_split) {
        store_output<kBf16>(p, m, n, sum);
      } else {
        p.partial[(static_cast<size_t>(arch::block_id_y()) * p.m + m) * p.n + n] = sum;
      }
    }
  }

  // The first split of a cluster adds every split's sums in split order, as split_k_reduce_kernel.
  if constexpr (kClusterSums) {
    if (arch::block_id_y() != 0) return;
    SplitSums::wait_all_sent();
    const float* inbox = SplitSums::inbox();
    for (int idx = arch::thread_id(); idx < kRows * kColsPerBlock; idx += kThreads) {
      const int r = idx / kColsPerBlock;
      const int col = idx - r * kColsPerBlock;
      const int m = m0 + r;
      const int n = arch::block_id_x() * kColsPerBlock + col;
      if (m >= p.m || n >= p.n) continue;
      float sum = 0.0f;
      for (int s = 0; s < p.splits; ++s) sum += inbox[(s * kRows + r) * kColsPerBlock + col];
      store_output<kBf16>(p, m, n, sum);
    }
  }
}

}  // namespace w4a16::dot2
