// gfx11's bf16 arithmetic on the bits: it has neither a bf16 convert nor packed bf16 instructions.
// Included by gfx11.cuh and by rdna3_emu.cuh, after their as_float / as_uint / high_halves /
// f16_bits / byte_low_nibbles, so that the emulation build runs this very code in every bf16 kernel;
// tests/test_gfx11_bf16_rounding.py also runs the two roundings on the CPU against torch's (host and
// device functions of the bits).
#pragma once

namespace w4a16::arch {

// The fp32 value of bits u rounded to bf16 (nearest even) in the high half: adding 0x7fff and bit
// 16 carries into bit 16 exactly when rounding goes up; a NaN takes the quiet bit instead (the carry
// could turn it into infinity). Selected, not branched: an early return for NaN compiled to an
// exec-mask branch per value inside the bf16 WMMA staging loop.
__host__ __device__ inline uint32_t bf16_in_high_half(uint32_t u) {
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  return (nan ? u | 0x00400000u : u) + (nan ? 0u : 0x7fffu + ((u >> 16) & 1u));
}

// The same rounding for a value known not to be NaN (infinity rounds to itself): no select, 2
// instructions instead of 7. A NaN could carry into the sign bit (0x7fffffff, NVIDIA's canonical
// NaN, became -0 in the emulation build), so a caller must rule NaN out by construction.
__host__ __device__ inline uint32_t bf16_in_high_half_of_non_nan(uint32_t u) {
  return u + 0x7fffu + ((u >> 16) & 1u);
}

// x rounded to bf16 bits (NaN kept quiet).
__device__ inline uint16_t bf16_bits(float x) { return static_cast<uint16_t>(bf16_in_high_half(as_uint(x)) >> 16); }

// fp32 -> fp16 / bf16 bits, round to nearest even (NaN kept quiet): fp16 by the including header's
// f16_bits, bf16 as above.
template <bool kBf16>
__device__ inline uint16_t float_to_bits(float x) {
  if constexpr (kBf16) {
    return bf16_bits(x);
  } else {
    return f16_bits(x);
  }
}

// Two fp32 values rounded to bf16, lo in the low half: the high halves joined by one byte permute.
__device__ inline uint32_t pk_bf16_pack(float lo, float hi) {
  return high_halves(bf16_in_high_half(as_uint(lo)), bf16_in_high_half(as_uint(hi)));
}
// pk_bf16_pack of two values known not to be NaN (bf16_in_high_half_of_non_nan).
__device__ inline uint32_t pk_bf16_pack_of_non_nan(float lo, float hi) {
  return high_halves(bf16_in_high_half_of_non_nan(as_uint(lo)), bf16_in_high_half_of_non_nan(as_uint(hi)));
}

// One b_q int32's nibbles as exact fp32 values kBias + q, for the bf16 WMMA staging
// (dequant8_bf16): the low and the high nibble of every byte masked to bits 0-3 of their byte once
// per word (the including header's byte_low_nibbles), then one v_cvt_f32_ubyte0..3 per value.
// Building 16 + q in the mantissa of 16.0, as NVIDIA does, took two instructions per value here:
// 8-12 more VALU instructions per K step in the bf16 WMMA loops on gfx1100.
struct NibbleBytes {
  static constexpr uint32_t kBias = 0;
  uint32_t even, odd;  // byte b: nibble 2b, nibble 2b + 1

  __device__ static NibbleBytes of(uint32_t w) { return {byte_low_nibbles(w), byte_low_nibbles(w >> 4)}; }
  // K offsets 2b and 2b + 1.
  __device__ void floats(int b, float (&v)[2]) const {
    v[0] = static_cast<float>((even >> (8 * b)) & 0xFFu);
    v[1] = static_cast<float>((odd >> (8 * b)) & 0xFFu);
  }
};

// Packed bf16 subtraction: each half widened (exact), subtracted in fp32 and rounded to nearest
// even, the result of an IEEE bf16 subtraction.
__device__ inline uint32_t pk_sub_bf16(uint32_t a, uint32_t b) {
  return pk_bf16_pack(as_float(a << 16) - as_float(b << 16), as_float(a & 0xFFFF0000u) - as_float(b & 0xFFFF0000u));
}

}  // namespace w4a16::arch
