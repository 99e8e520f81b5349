// Decode GEMM (small M): out[M, N] = a[M, K] @ dequant(b_q, scales, zeros)[K, N] (+ bias).
//
// Memory bound: every int4 weight is read once, 16 bytes per lane per load, a batch of loads in
// flight per wave and many waves per CU/SM (few registers: no second batch held in registers).
// Activations of the block's rows are staged in LDS one K chunk at a time (gathered through perm
// for act-order) and meet the weights in the arch's decode math for the row tile (DecodeMath):
// per-lane dot2 on gfx11 (arch/decode_lanes.cuh), on NVIDIA the same at M = 1 and a warp-wide mma
// above (arch/cuda.cuh), fp32 accumulation in all. Pure device code: no torch, so the gfx1100 ISA
// check compiles it alone.
//
// Block: kWarps waves over the same kColsPerBlock columns, each wave taking its own contiguous
// run of b_q rows of the chunk; the waves' sums meet in LDS at the end. Grid: x = column tiles,
// y = K splits, z = row tiles of kRows rows. With one split the block writes `out` (bias,
// conversion); otherwise fp32 partial sums go to a [splits, M, N] workspace that
// gemm_dot2_reduce_kernel sums in split order: the result does not depend on timing.
#pragma once

#include "arch/arch.cuh"
#include "dequant.cuh"
#include "group_divisor.cuh"

namespace w4a16::dot2 {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * arch::kWaveSize;
constexpr int kColsPerLane = 4;  // one 16-byte b_q load: 4 int32 columns
constexpr int kMaxRows = 16;                                      // largest row tile (M) of one block
constexpr int kReduceRows = 4;                                    // rows per pass of the in-block reduction
constexpr int kReduceThreads = 256;

// A block with a row tile of kRows: the arch's decode math for it, the columns and rows of a wave
// step, and its LDS: one chunk of activations (8 KiB whatever the tile; 4096 K values at one row)
// with its 8-value sums, later reused for the waves' reduction.
template <int kRows>
struct Tile {
  using Math = arch::DecodeMath<kRows>;
  // A wave step covers kLaneRows b_q rows; its lanes split into that many row groups, each group
  // spanning kColsPerBlock contiguous columns (128 with one row: 512 bytes of one b_q row).
  static constexpr int kLaneRows = Math::kLaneRows;
  static constexpr int kColsPerBlock = arch::kWaveSize / kLaneRows * kColsPerLane;
  static constexpr int kLoadsInFlight = Math::kLoadsInFlight;  // wave steps (a 16-byte load per lane each)
  static constexpr int kChunkK = kRows == 1 ? 4096 : 8192 / kRows;
  static constexpr int kChunkRows = kChunkK / 8;  // b_q rows per chunk
  static constexpr int kPassRows = kRows < kReduceRows ? kRows : kReduceRows;
  static constexpr int kActBytes = kRows * kChunkK * 2 + kRows * kChunkRows * 4;
  static constexpr int kReduceBytes = kWarps * kPassRows * kColsPerBlock * 4;
  static constexpr int kSmemBytes = kActBytes > kReduceBytes ? kActBytes : kReduceBytes;
};

struct Dot2Args {
  const uint16_t* a;       // [M, K]
  const uint32_t* b_q;     // [K / 8, N]
  const uint16_t* scales;  // [K / G, N]
  const uint32_t* zeros;   // [K / G, N / 8] or null
  const int32_t* perm;     // [K] or null
  const uint16_t* bias;    // [N] or null
  float* partial;          // [splits, M, N] when gridDim.y > 1
  uint16_t* out;           // [M, N]
  int m, k, n;
  GroupDivisor group;      // K index -> row of scales and zeros
  int rows_per_split;      // packed b_q rows per K split
  int splits;              // gridDim.y
};

// One chunk of activations into LDS. act[r][c * 8 + interleave_k8(i)] = a[m0 + r][perm[k]] with
// k = (chunk0 + c) * 8 + i: the (j, j + 4) pair order of offset_int_pairs, so a lane's one 16-byte
// LDS read gives the four dot2 operands of one b_q int32. asum[r][c] = sum of those 8 values in
// fp32, for the zero-point term. Rows past M are zeros; a perm entry outside [0, K) gives NaN
// (never an out-of-bounds read).
template <bool kBf16, bool kHasPerm, int kRows>
__device__ inline void stage_activations(const Dot2Args& p, uint16_t* act, float* asum, int m0, int chunk0,
                                         int rows) {
  constexpr int kChunkK = Tile<kRows>::kChunkK;
  constexpr int kChunkRows = Tile<kRows>::kChunkRows;
  constexpr uint16_t kNaN = kBf16 ? 0x7FC0 : 0x7E00;
  for (int idx = arch::thread_id(); idx < kRows * rows; idx += kThreads) {
    const int r = idx / rows;
    const int c = idx - r * rows;
    const int m = m0 + r;
    uint16_t v[8];
    if (m < p.m) {
      const int k0 = (chunk0 + c) * 8;
      const uint16_t* a_row = p.a + static_cast<size_t>(m) * p.k;
      if constexpr (kHasPerm) {
        for (int i = 0; i < 8; ++i) {
          const int src = p.perm[k0 + i];
          v[i] = static_cast<unsigned>(src) < static_cast<unsigned>(p.k) ? a_row[src] : kNaN;
        }
      } else {
        const arch::U32x4 raw = *reinterpret_cast<const arch::U32x4*>(a_row + k0);
        const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
        for (int i = 0; i < 8; ++i) v[i] = static_cast<uint16_t>(words[i / 2] >> (16 * (i % 2)));
      }
    } else {
      for (int i = 0; i < 8; ++i) v[i] = 0;
    }
    uint16_t inter[8];
    float sum = 0.0f;
    for (int i = 0; i < 8; ++i) {
      inter[interleave_k8(i)] = v[i];
      sum += arch::bits_to_float<kBf16>(v[i]);
    }
    arch::U32x4 packed;
    packed.x = inter[0] | (uint32_t{inter[1]} << 16);
    packed.y = inter[2] | (uint32_t{inter[3]} << 16);
    packed.z = inter[4] | (uint32_t{inter[5]} << 16);
    packed.w = inter[6] | (uint32_t{inter[7]} << 16);
    *reinterpret_cast<arch::U32x4*>(act + r * kChunkK + c * 8) = packed;
    asum[r * kChunkRows + c] = sum;
  }
}

// The lane's share of one b_q row: 4 int32 columns, their scales and zero points; all zeros for a
// lane outside the rows or columns (scale 0 makes its weights exact zeros).
struct RowLoad {
  arch::U32x4 w;
  arch::U32x2 scales;  // scales of columns n0, n0 + 1 (x) and n0 + 2, n0 + 3 (y)
  uint32_t zero_word;  // zeros int32 holding columns n0 .. n0 + 7 (n0 % 8 is 0 or 4)
};

// Every address from the row itself (a multiply-high for its group, no running cursor): the loads
// of a batch are independent and branch-free, so they all leave before the first is used.
template <bool kHasZeros>
__device__ inline RowLoad load_row(const Dot2Args& p, int kk, int n0, bool valid) {
  RowLoad l{{0u, 0u, 0u, 0u}, {0u, 0u}, 0u};
  if (valid) {
    const uint32_t group = p.group(static_cast<uint32_t>(kk) * 8u);
    l.w = arch::load_stream16(p.b_q + static_cast<size_t>(kk) * p.n + n0);
    l.scales = *reinterpret_cast<const arch::U32x2*>(p.scales + static_cast<size_t>(group) * p.n + n0);
    l.zero_word = kHasZeros ? p.zeros[static_cast<size_t>(group) * (p.n / 8) + n0 / 8] : 0u;
  }
  return l;
}

// Loads of the wave steps at chunk rows step, step + kLaneRows, ... (kLoadsInFlight of them); the
// lane's row in a step is step + lane_row, loaded when below r_end and the columns are in range.
template <bool kHasZeros, int kRows>
__device__ inline void load_batch(const Dot2Args& p, RowLoad (&loads)[Tile<kRows>::kLoadsInFlight], int chunk0,
                                  int step, int r_end, int lane_row, bool cols_in_range, int n0) {
#pragma unroll
  for (int u = 0; u < Tile<kRows>::kLoadsInFlight; ++u) {
    const int r = step + u * Tile<kRows>::kLaneRows + lane_row;
    loads[u] = load_row<kHasZeros>(p, chunk0 + r, n0, r < r_end && cols_in_range);
  }
}

// One wave step of one lane: its b_q row's weights in the arch's form (exact offset integers
// 16 + q, or (q - z) * s), scales and zero terms, then the arch's decode math.
template <bool kBf16, bool kHasZeros, int kRows>
__device__ inline void accumulate_step(typename Tile<kRows>::Math::Acc& acc, const RowLoad& l,
                                       const uint16_t* act_row, const float* asum_row, int n0, bool row_valid) {
  const uint32_t words[kColsPerLane] = {l.w.x, l.w.y, l.w.z, l.w.w};
  const uint32_t scale_bits[kColsPerLane] = {l.scales.x & 0xFFFFu, l.scales.x >> 16, l.scales.y & 0xFFFFu,
                                             l.scales.y >> 16};
  uint32_t pairs[kColsPerLane][4];
  float scale[kColsPerLane], zero_bias[kColsPerLane];
#pragma unroll
  for (int c = 0; c < kColsPerLane; ++c) {
    const uint32_t zero = kHasZeros ? zero_of(l.zero_word, n0 + c) : 8u;
    if constexpr (Tile<kRows>::Math::kFullDequant) {
      dequant8_interleaved<kBf16>(words[c], make_pair_dequant<kBf16>(scale_bits[c], zero), pairs[c]);
    } else {
      offset_int_pairs<kBf16>(words[c], pairs[c]);
    }
    scale[c] = arch::bits_to_float<kBf16>(scale_bits[c]);
    zero_bias[c] = kOffsetIntBias + static_cast<float>(zero);
  }
  using T = Tile<kRows>;
  T::Math::template accumulate<kBf16, T::kChunkK, T::kChunkRows>(acc, pairs, scale, zero_bias, act_row, asum_row,
                                                                 row_valid);
}

template <bool kBf16, bool kHasZeros, bool kHasPerm, int kRows>
__global__ void __launch_bounds__(kThreads) gemm_dot2_kernel(Dot2Args p) {
  static_assert(kRows >= 1 && kRows <= kMaxRows, "row tile");
  static_assert(Tile<kRows>::kSmemBytes <= 64 * 1024, "RDNA3 allows 64 KiB of LDS per workgroup");
  using Math = typename Tile<kRows>::Math;
  constexpr int kLaneRows = Tile<kRows>::kLaneRows;
  constexpr int kColsPerBlock = Tile<kRows>::kColsPerBlock;
  constexpr int kLoadsInFlight = Tile<kRows>::kLoadsInFlight;
  static_assert(Tile<kRows>::kChunkRows % kLaneRows == 0, "a chunk is whole wave steps");
  constexpr int kChunkK = Tile<kRows>::kChunkK;
  constexpr int kChunkRows = Tile<kRows>::kChunkRows;
  __shared__ arch::U32x4 smem[Tile<kRows>::kSmemBytes / 16];
  uint16_t* act = reinterpret_cast<uint16_t*>(smem);
  float* asum = reinterpret_cast<float*>(act + kRows * kChunkK);
  float* reduce = reinterpret_cast<float*>(smem);

  const int lane = arch::lane_id();
  const int warp = arch::thread_id() / arch::kWaveSize;
  // b_q rows are contiguous along N: the lanes of one row group read 16 contiguous bytes each
  // (columns n0 .. n0 + 3), kColsPerBlock columns together; group lane_row reads b_q row
  // step + lane_row of each wave step.
  const int lane_row = lane % kLaneRows;
  const int n0 = arch::block_id_x() * kColsPerBlock + lane / kLaneRows * kColsPerLane;
  const bool cols_in_range = n0 < p.n;  // N % 8 == 0: a lane's 4 columns are all in or all out
  const int m0 = arch::block_id_z() * kRows;
  const int kk_begin = arch::block_id_y() * p.rows_per_split;
  const int kk_end = min(p.k / 8, kk_begin + p.rows_per_split);

  typename Math::Acc acc;
  Math::zero(acc);

  for (int chunk0 = kk_begin; chunk0 < kk_end; chunk0 += kChunkRows) {
    const int rows = min(kChunkRows, kk_end - chunk0);
    // Wave w takes chunk rows [r_begin, r_end), whole steps: contiguous, so groups only step up.
    const int per_warp = (rows + kWarps * kLaneRows - 1) / (kWarps * kLaneRows) * kLaneRows;
    const int r_begin = min(rows, warp * per_warp);
    const int r_end = min(rows, r_begin + per_warp);
    // The first loads go out before the activations are staged: weights do not wait for LDS.
    RowLoad batch[kLoadsInFlight];
    load_batch<kHasZeros, kRows>(p, batch, chunk0, r_begin, r_end, lane_row, cols_in_range, n0);
    arch::barrier();  // the previous chunk's activations are no longer read
    stage_activations<kBf16, kHasPerm, kRows>(p, act, asum, m0, chunk0, rows);
    arch::barrier();
    constexpr int kBatchRows = kLoadsInFlight * kLaneRows;
    for (int step = r_begin; step < r_end; step += kBatchRows) {
      // One batch in registers at a time: while this wave waits for it, the many other resident
      // waves (few registers each) keep the memory system busy.
      if (step > r_begin) load_batch<kHasZeros, kRows>(p, batch, chunk0, step, r_end, lane_row, cols_in_range, n0);
#pragma unroll
      for (int u = 0; u < kLoadsInFlight; ++u) {
        const int r = step + u * kLaneRows + lane_row;
        if (step + u * kLaneRows < r_end) {  // the same for the whole wave: the mma needs all lanes
          accumulate_step<kBf16, kHasZeros, kRows>(acc, batch[u], act + r * 8, asum + r, n0, r < r_end);
        }
      }
    }
  }

  // The waves' sums meet in LDS, kPassRows rows at a time: reduce[w][r][col] with the arch's
  // accumulator map (slot -> row, column), then thread t sums column t % kColsPerBlock over the
  // waves in wave order.
  constexpr int kPassRows = Tile<kRows>::kPassRows;
  const bool single_split = p.splits == 1;
#pragma unroll
  for (int r0 = 0; r0 < kRows; r0 += kPassRows) {
    arch::barrier();
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
      if (m >= p.m || n >= p.n) continue;
      float sum = 0.0f;
      for (int w = 0; w < kWarps; ++w) sum += reduce[(w * kPassRows + r) * kColsPerBlock + col];
      if (single_split) {
        if (p.bias != nullptr) sum += arch::bits_to_float<kBf16>(p.bias[n]);
        p.out[static_cast<size_t>(m) * p.n + n] = arch::float_to_bits<kBf16>(sum);
      } else {
        p.partial[(static_cast<size_t>(arch::block_id_y()) * p.m + m) * p.n + n] = sum;
      }
    }
  }
}

// out[i] = sum over splits s (in order) of partial[s][i] (+ bias), one output per thread.
template <bool kBf16>
__global__ void __launch_bounds__(kReduceThreads)
    gemm_dot2_reduce_kernel(const float* partial, int splits, int m, int n, const uint16_t* bias, uint16_t* out) {
  const size_t total = static_cast<size_t>(m) * n;
  const size_t i = static_cast<size_t>(arch::block_id_x()) * kReduceThreads + arch::thread_id();
  if (i >= total) return;
  float sum = 0.0f;
  for (int s = 0; s < splits; ++s) sum += partial[s * total + i];
  if (bias != nullptr) sum += arch::bits_to_float<kBf16>(bias[i % n]);
  out[i] = arch::float_to_bits<kBf16>(sum);
}

}  // namespace w4a16::dot2
