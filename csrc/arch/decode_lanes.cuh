// Per-lane decode math, gfx11's (and its emulation's; NVIDIA's too at M = 1, see cuda.cuh): every
// lane multiplies its own 4 columns x 8 K values of one b_q row with dot2, so a wave spans one b_q
// row of 128 columns. Weights come as the exact offset integers 16 + q of offset_int_pairs; scale and
// zero point are applied per b_q row in fp32. Included by the arch header after its dot2 section.
#pragma once

namespace w4a16::arch {

template <int kRows>
struct LaneDecode {
  static constexpr int kLaneRows = 1;          // b_q rows one wave covers per step
  static constexpr bool kFullDequant = false;  // weights as offset integers, not (q - z) * s
  // Wave steps whose loads a wave issues together: 64 bytes per lane (28 VGPRs with scales and
  // zeros). Not measured on gfx11 (no card here).
  static constexpr int kLoadsInFlight = 4;

  struct Acc {
    float v[kRows][4];
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

  // acc[r][c] += scale[c] * (sum_i (16 + q_ci) * a_ri - zero_bias[c] * asum[r]) over the 8 K values
  // of the lane's b_q row. w[c][j] is column c's pair j in the (j, j + 4) order; `act` points at the
  // lane's b_q row in activation row 0 (4 words in the same order, rows kActStride values apart),
  // `asum` at its 8-value sum (rows kSumStride apart). A lane whose row is outside the range does
  // nothing (its LDS row was not staged).
  template <bool kBf16, int kActStride, int kSumStride>
  __device__ static void accumulate(Acc& acc, const uint32_t (&w)[4][4], const float (&scale)[4],
                                    const float (&zero_bias)[4], const uint16_t* act, const float* asum,
                                    bool row_valid) {
    if (!row_valid) return;
    Dot2Operand wop[4][4];
#pragma unroll
    for (int c = 0; c < 4; ++c)
#pragma unroll
      for (int j = 0; j < 4; ++j) wop[c][j] = dot2_operand<kBf16>(w[c][j]);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const U32x4 a4 = *reinterpret_cast<const U32x4*>(act + r * kActStride);
      const float a_sum = asum[r * kSumStride];
      const Dot2Operand aop[4] = {dot2_operand<kBf16>(a4.x), dot2_operand<kBf16>(a4.y),
                                  dot2_operand<kBf16>(a4.z), dot2_operand<kBf16>(a4.w)};
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        float d = 0.0f;
#pragma unroll
        for (int j = 0; j < 4; ++j) d = dot2<kBf16>(aop[j], wop[c][j], d);
        acc.v[r][c] = fmaf(scale[c], fmaf(-zero_bias[c], a_sum, d), acc.v[r][c]);
      }
    }
  }
};

}  // namespace w4a16::arch
