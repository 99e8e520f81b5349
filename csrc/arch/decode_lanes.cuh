// Per-lane decode math, gfx11's and its emulation's (NVIDIA native runs an mma, see cuda.cuh): every
// lane multiplies its own 4 columns x 8 K values of one b_q row with dot2, so a wave spans one b_q
// row of 128 columns. Weights come as the exact offset integers 16 + q of offset_int_pairs; scale and
// zero point are applied in fp32 once per batch of kLoadsInFlight b_q rows, which lie in one group.
// Included by the arch header after its dot2 section.
#pragma once

namespace w4a16::arch {

template <int kRows>
struct LaneDecode {
  static constexpr int kLaneRows = 1;          // b_q rows one wave covers per step
  static constexpr int kColGroups = 1;         // 16-byte column groups per lane (4 columns)
  // Waves per block. Measured on an H100 with the mma math (decode tuner, M = 1..8, with the split
  // plan of each): 8 waves beat 4 by 5-8% on (4096, 14336), where one wave of blocks then needs no
  // K split, and trail by up to 4% on (14336, 4096) and (5120, 27648). Not measured on gfx11.
  static constexpr int kWarps = 8;
  static constexpr int kMinWarps = 8;
  // gfx11 has no L2 prefetch without a register to load into (gfx11.cuh).
  __host__ __device__ static constexpr bool prefetches_l2(int) { return false; }
  static constexpr bool kCentredWeights = false;  // weights as offset integers 16 + q, not q - z
  static constexpr bool kUsesActSums = true;      // the zero term needs the 8-value activation sums
  // Wave steps whose loads a wave issues together: 64 bytes per lane (28 VGPRs with scales and
  // zeros). Not measured on gfx11 (no card here).
  static constexpr int kLoadsInFlight = 4;
  // b_q rows under one scale: a wave's batch (kLoadsInFlight steps of one row). Its dot2 sums chain
  // across the batch and meet scale and zero point once: per row and column 2 FMAs a batch instead
  // of 2 a step, 31% and 40% of the loop's VALU instructions at M = 8 and 16 (gfx1100 ISA; not
  // measured there). Batches start at multiples of 4 rows, so groups of 32 K values (and their
  // multiples) hold whole batches.
  static constexpr int kRowsPerScale = kLaneRows * kLoadsInFlight;
  // Resident waves per CU the decode kernel's __launch_bounds__ asks for, in whole blocks (HIP reads
  // the block count as waves per SIMD): one block, no minimum.
  static constexpr int kMinResidentWarps = kWarps;
  // Rows per pass of the waves' reduction in LDS at the end of a block: 16 KiB for 8 waves x 128
  // columns, within the activation chunk's LDS at M = 8 and 16.
  static constexpr int kReduceRows = 4;

  struct Acc {
    float v[kRows][4];        // scaled sums of the batches so far
    float batch[kRows][4];    // this batch's dot2 sums, before scale and zero point
    float batch_act[kRows];   // this batch's activation sums (the zero term)
    float scale[4], zero_bias[4];  // this batch's group
  };
  static constexpr int kAccSlots = kRows * 4;

  // Slot s of a lane holds row s / 4, column 4 * lane + s % 4 of the wave's columns.
  __device__ static int acc_row(int /*lane*/, int slot) { return slot / 4; }
  __device__ static int acc_col(int lane, int slot) { return 4 * lane + slot % 4; }
  __device__ static float acc_value(const Acc& acc, int slot) { return acc.v[slot / 4][slot % 4]; }

  __device__ static void zero(Acc& acc) {
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc.v[r][c] = 0.0f;
  }

  // Activations are read row by row inside accumulate (few registers): the fetch only carries the
  // lane's LDS view along, or nothing for a lane whose row is outside the range (its LDS row was
  // not staged).
  static constexpr bool kGlobalActivations = false;  // staged in LDS, with the sums the zero term needs
  template <class Activations>
  struct Fetched {
    Activations acts;
    bool row_valid;
  };
  template <class Activations>
  __device__ static Fetched<Activations> fetch(const Activations& acts, bool row_valid) {
    return {acts, row_valid};
  }

  // One step: batch[r][c] += sum_i (16 + q_ci) * a_ri over the 8 K values of the lane's b_q row, and
  // batch_act[r] += their activation sum; the batch's first step starts them and keeps the group's
  // scale and zero bias. w[c][j] is column c's pair j in the (j, j + 4) order; the fetched view gives
  // the lane's activations in the same order and their sums (the kernel's LdsActivations).
  template <bool kBf16, class Activations>
  __device__ static void accumulate(Acc& acc, int /*group: always 0*/, const uint32_t (&w)[4][4],
                                    const float (&scale)[4], const float (&zero_bias)[4],
                                    const Fetched<Activations>& f, bool first_of_batch) {
    if (!f.row_valid) return;
    if (first_of_batch) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        acc.scale[c] = scale[c];
        acc.zero_bias[c] = zero_bias[c];
      }
    }
    const Activations& acts = f.acts;
    Dot2Operand wop[4][4];
#pragma unroll
    for (int c = 0; c < 4; ++c)
#pragma unroll
      for (int j = 0; j < 4; ++j) wop[c][j] = dot2_operand<kBf16>(w[c][j]);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const U32x4 a4 = Activations::pairs_of(acts.load(r));
      acc.batch_act[r] = first_of_batch ? acts.sum(r) : acc.batch_act[r] + acts.sum(r);
      const Dot2Operand aop[4] = {dot2_operand<kBf16>(a4.x), dot2_operand<kBf16>(a4.y),
                                  dot2_operand<kBf16>(a4.z), dot2_operand<kBf16>(a4.w)};
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        float d = first_of_batch ? 0.0f : acc.batch[r][c];
#pragma unroll
        for (int j = 0; j < 4; ++j) d = dot2<kBf16>(aop[j], wop[c][j], d);
        acc.batch[r][c] = d;
      }
    }
  }

  // After a batch whose first step was accumulated: v[r][c] += scale[c] * (batch[r][c] -
  // zero_bias[c] * batch_act[r]).
  __device__ static void end_batch(Acc& acc) {
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        acc.v[r][c] = fmaf(acc.scale[c], fmaf(-acc.zero_bias[c], acc.batch_act[r], acc.batch[r][c]), acc.v[r][c]);
      }
  }
};

// The decode of gfx11 and of its emulation, so that the emulation build runs gfx11's dispatch too.
template <int kRows>
using DecodeMath = LaneDecode<kRows>;
using SplitSums = WorkspaceSplitSums;  // no thread-block clusters

// Largest M for which the gemm op takes the decode kernel. Not measured (no gfx1100 here): at
// M = 16 the dot2 work of a (4096, 14336) layer (~0.47 G v_dot2 at ~2 per lane per clock on 96
// CUs) takes about as long as reading its 30 MB of weights at 960 GB/s; the whole loop, 1183 VALU
// instructions per 2 KiB of a wave's weights in fp16, would need about 1.2x the issue slots that
// streaming leaves (README, "Decode: the dot2 kernel"), where the WMMA kernel's 32-row tile would
// compute half padding. Where the two cross is for a gfx1100 card to measure.
constexpr int kGemmDot2MaxM = 16;

}  // namespace w4a16::arch
