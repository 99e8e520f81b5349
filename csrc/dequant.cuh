// int4 -> fp16 / bf16 without an int -> float conversion per element: a nibble ORed into the low
// mantissa bits of a power of two is that power plus the nibble, exactly.
//
// One b_q int32 holds 8 consecutive K values of one column, nibble i (K offset i) at bits 4i.
// Results come as pairs of 16-bit values in a uint32_t (element 0 in the low half), the operand
// format of v_dot2_* and of packed fp16 math.
#pragma once

#include "arch/arch.cuh"

namespace w4a16 {

// ---- decode: offset integers, scale and zero applied by the caller in fp32 ----

// 16 + q for q in 0..15 is exact in both types with the nibble landing in the mantissa:
// fp16 16.0 = 0x4C00 (ulp 2^-6: nibble << 6), bf16 16.0 = 0x4180 (ulp 2^-3: nibble << 3).
constexpr float kOffsetIntBias = 16.0f;
template <bool kBf16>
struct OffsetIntFormat {
  static constexpr int kShift = kBf16 ? 3 : 6;
  static constexpr uint32_t kMagic = kBf16 ? 0x41804180u : 0x4C004C00u;
  static constexpr uint32_t kMask = 0x000F000Fu << kShift;
};

// p[j] = (16 + q[j], 16 + q[j + 4]): nibbles j and j + 4 sit 16 bits apart, so one shift (by a
// constant: to bit kShift) and one and-or per pair. Pairing K offsets (j, j + 4) means the
// activations must be paired the same way (see interleave_pairs).
template <bool kBf16>
__device__ inline void offset_int_pairs(uint32_t w, uint32_t (&p)[4]) {
  using F = OffsetIntFormat<kBf16>;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int right = 4 * j - F::kShift;
    const uint32_t moved = right >= 0 ? w >> right : w << -right;
    p[j] = (moved & F::kMask) | F::kMagic;
  }
}

// 8 consecutive 16-bit values (word w holds K offsets 2w, low half, and 2w + 1) in the pair order
// of offset_int_pairs: pair j = K offsets (j, j + 4), the low or high halves of words j / 2 and
// j / 2 + 2; K offset i lands in 16-bit slot 2 (i % 4) + i / 4.
// One byte permute per pair (the compiler's own shifts and masks took twice as many instructions).
__device__ inline arch::U32x4 interleave_pairs(const arch::U32x4& v) {
  return {arch::low_halves(v.x, v.z), arch::high_halves(v.x, v.z), arch::low_halves(v.y, v.w),
          arch::high_halves(v.y, v.w)};
}

// ---- exact q - z pairs in the (j, j + 4) order: NVIDIA's decode and the fp16 WMMA tiles ----

// 1024 + q (fp16 0x6400 | q) or 128 + q (bf16 0x4300 | q, ulp 1 there) minus 1024 + z / 128 + z is
// the exact integer q - z. fp16's 10-bit mantissa also holds a nibble four bits up: 0x6400 | 16 q is
// 1024 + 16 q, and (1024 + 16 q) / 16 - (64 + z) is again the exact q - z, in one fused
// multiply-add. Pairs 1 and 3 take that form and need no shift.
struct CentredPairs {
  uint32_t zero_pair;        // 1024 + z (fp16) or 128 + z (bf16) in both halves
  uint32_t neg_zero64_pair;  // fp16 -(64 + z) in both halves (unused for bf16)
};

template <bool kBf16>
__device__ inline CentredPairs make_centred_pairs(uint32_t zero) {
  return {((kBf16 ? 0x4300u : 0x6400u) + zero) * 0x00010001u, (0xD400u + 16u * zero) * 0x00010001u};
}

// p[j] = (q[j] - z, q[j + 4] - z), exact, in the pairing of offset_int_pairs.
template <bool kBf16>
__device__ inline void centred_int_pairs(uint32_t w, const CentredPairs& d, uint32_t (&p)[4]) {
  if constexpr (kBf16) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      p[j] = arch::pk_sub_bf16(arch::and_or(w >> (4 * j), 0x000F000Fu, 0x43004300u), d.zero_pair);
    }
  } else {
    constexpr uint32_t kMagic = 0x64006400u, kSixteenth = 0x2C002C00u;  // 1024, 1/16
    const uint32_t w8 = w >> 8;
    const uint32_t low[2] = {arch::and_or(w, 0x000F000Fu, kMagic), arch::and_or(w8, 0x000F000Fu, kMagic)};   // 0, 2
    const uint32_t high[2] = {arch::and_or(w, 0x00F000F0u, kMagic), arch::and_or(w8, 0x00F000F0u, kMagic)};  // 1, 3
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      p[2 * h] = arch::pk_sub_f16(low[h], d.zero_pair);
      p[2 * h + 1] = arch::pk_fma_f16(high[h], kSixteenth, d.neg_zero64_pair);
    }
  }
}

// ---- full dequant for the WMMA tiles: (q - z) * s as fp16 / bf16 ----

// fp16, in the pair order of offset_int_pairs: out[j] = dequantised K offsets (j, j + 4) of one b_q
// int32, the exact q - z pairs of centred_int_pairs times s (one rounding). Folding into
// q * s - (1024 + z) * s would round the constant to fp16 first (FACTS.md). On gfx11 13 instructions
// a word besides its two zero-point constants; the natural K order took about 24 (three shifts and
// masks per pair).
__device__ inline void dequant8_paired_f16(uint32_t w, uint32_t zero, uint16_t scale_bits, uint32_t (&out)[4]) {
  uint32_t centred[4];
  centred_int_pairs<false>(w, make_centred_pairs<false>(zero), centred);
#pragma unroll
  for (int j = 0; j < 4; ++j) out[j] = arch::pk_mul_f16(centred[j], scale_bits * 0x00010001u);
}

// bf16, in natural K order: gfx11 has no packed bf16 math, so fp32, one value at a time. The arch
// gives each nibble as the exact fp32 B + q (B = NibbleBytes::kBias), and (B + q) * s -
// (B + z) * s is (q - z) * s in one FMA: (B + z) * s is exact in fp32 (at most 5-bit times 8-bit
// significand), so the FMA is exact too ((q - z) * s fits 12 bits) and only the rounding to bf16
// remains. That holds for |s| < 2^123, every real scale. A scale past it, infinite or NaN gets scale
// 0 and offset +infinity instead: its group dequantises to +infinity and its outputs are not finite,
// as the reference's are. So the FMA never gives NaN, and the rounding needs no NaN select.
struct Bf16GroupDequant {
  float scale;
  float neg_offset_scale;  // -(B + z) * s

  __device__ static Bf16GroupDequant of(uint16_t scale_bits, uint32_t zero) {
    const float s = arch::bits_to_float<true>(scale_bits);
    const bool exact = fabsf(s) < 0x1p123f;  // false for NaN
    return {exact ? s : 0.0f,
            exact ? -static_cast<float>(arch::NibbleBytes::kBias + zero) * s : arch::as_float(0x7F800000u)};
  }
};

// out[j] = dequantised K offsets (2j, 2j + 1) of one b_q int32, low half first.
__device__ inline void dequant8_bf16(uint32_t w, const Bf16GroupDequant& g, uint32_t (&out)[4]) {
  const auto nibbles = arch::NibbleBytes::of(w);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    float offset[2];  // B + q of K offsets 2j, 2j + 1
    nibbles.floats(j, offset);
    out[j] = arch::pk_bf16_pack_of_non_nan(fmaf(offset[0], g.scale, g.neg_offset_scale),
                                           fmaf(offset[1], g.scale, g.neg_offset_scale));
  }
}

// Zero point of column n from one zeros int32 (packed along N: column n at nibble n % 8).
__device__ inline uint32_t zero_of(uint32_t zeros_word, int n) { return (zeros_word >> (4 * (n & 7))) & 0xFu; }

}  // namespace w4a16
