// rdna3_emu: see arch.cuh. Sections: common types and barrier; dot2 (decode); WMMA 16x16x16 (prefill).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "nvidia_common.cuh"

namespace w4a16::arch {

// ---- common ----
// Ids, barrier and 16-bit bit-pattern helpers: nvidia_common.cuh. bf16 rounding and packed bf16
// arithmetic: gfx11's own code, gfx11_bf16_math.cuh (included below).
constexpr int kWaveSize = 32;  // an NVIDIA warp models one RDNA3 wave32

// v_readfirstlane as gfx11's wave_uniform uses it: lane 0's x in every lane (all 32 are active
// wherever it is called), so a value that is not in fact uniform gives wrong results here too.
__device__ inline int wave_uniform(int x) { return __shfl_sync(0xffffffffu, x, 0); }

// x & 0x0f0f0f0f, the low nibble of every byte (gfx11 masks in asm, for its byte conversions).
__device__ inline uint32_t byte_low_nibbles(uint32_t x) { return x & 0x0F0F0F0Fu; }

// fp32 -> fp16 bits, round to nearest even, as gfx11's v_cvt_f16_f32.
__device__ inline uint16_t f16_bits(float x) { return __half_as_ushort(__float2half_rn(x)); }

}  // namespace w4a16::arch

#include "gfx11_bf16_math.cuh"  // float_to_bits: bf16 as gfx11 rounds it

namespace w4a16::arch {

// ---- dot2 (decode) ----
// The dot2 instructions gfx11's decode compiles to, modelled in fp32 as the ISA guide's pseudocode
// gives each (lo pairs with lo, hi with hi); the decode math is gfx11's own (decode_lanes.cuh) at
// every row tile. Each product of two 16-bit values is exact in fp32 (11- or 8-bit significands),
// each add rounds. fp16, v_dot2acc_f32_f16 (VOP2): D += lo * lo, then D += hi * hi. bf16,
// v_dot2_f32_bf16 (VOP3P): lo * lo + hi * hi, then + S2. Silicon may round otherwise (gfx1151 was
// measured to, ROCm/rocm-systems issue 12056): the tests bound errors, they do not ask for bits.
// An operand is the raw pair widened to fp32 (exact).
struct Dot2Operand {
  float lo, hi;
};

template <bool kBf16>
__device__ inline Dot2Operand dot2_operand(uint32_t pair) {
  return {bits_to_float<kBf16>(pair & 0xffffu), bits_to_float<kBf16>(pair >> 16)};
}

template <bool kBf16>
__device__ inline float dot2(Dot2Operand a, Dot2Operand b, float acc) {
  if constexpr (kBf16) {
    return __fadd_rn(fmaf(a.hi, b.hi, __fmul_rn(a.lo, b.lo)), acc);
  } else {
    return fmaf(a.hi, b.hi, fmaf(a.lo, b.lo, acc));
  }
}

}  // namespace w4a16::arch

#include "decode_lanes.cuh"  // gfx11's DecodeMath, SplitSums and kGemmDot2MaxM

namespace w4a16::arch {

// ---- WMMA 16x16x16 (prefill) ----
// The interface of gfx11.cuh's WMMA section with the same fragment contents, LDS loads and
// accumulator map; only v_wmma itself is emulated (warp shuffles, fp32 math). Operand tiles sit
// in LDS as raw 16-bit values with K contiguous: A as [m][k], B as [n][k]; `tile` points at
// element (0, 0) of a 16x16 sub-tile, `ld` is the row pitch in elements (a multiple of 8).

// wave32 A operand: lane t holds A[t % 16][k = 0..15] (word j = k 2j, 2j+1); lanes 16-31 repeat.
struct WmmaFragA { uint32_t w[8]; };
// wave32 B operand: lane t holds B[k = 0..15][n = t % 16] (word j = k 2j, 2j+1); lanes 16-31 repeat.
struct WmmaFragB { uint32_t w[8]; };
// wave32 fp32 C/D: lane t, slot i holds C[2i + t / 16][t % 16].
struct WmmaAcc { float v[8]; };
constexpr int kWmmaAccPerLane = 8;

__device__ inline void wmma_zero(WmmaAcc& c) {
  for (int i = 0; i < 8; ++i) c.v[i] = 0.0f;
}

// A[m][k] rows are K-contiguous in LDS: lane t reads the 32 bytes of row t % 16.
__device__ inline void wmma_load_a(WmmaFragA& f, const uint16_t* tile, int ld, int lane) {
  const uint4* row = reinterpret_cast<const uint4*>(tile + (lane & 15) * ld);
  const uint4 lo = row[0], hi = row[1];
  f.w[0] = lo.x; f.w[1] = lo.y; f.w[2] = lo.z; f.w[3] = lo.w;
  f.w[4] = hi.x; f.w[5] = hi.y; f.w[6] = hi.z; f.w[7] = hi.w;
}

// B is stored transposed ([n][k]), so column n = t % 16 is one contiguous 32-byte row.
__device__ inline void wmma_load_b(WmmaFragB& f, const uint16_t* tile, int ld, int lane) {
  const uint4* row = reinterpret_cast<const uint4*>(tile + (lane & 15) * ld);
  const uint4 lo = row[0], hi = row[1];
  f.w[0] = lo.x; f.w[1] = lo.y; f.w[2] = lo.z; f.w[3] = lo.w;
  f.w[4] = hi.x; f.w[5] = hi.y; f.w[6] = hi.z; f.w[7] = hi.w;
}

// v_wmma_f32_16x16x16_{f16,bf16}: D = A x B + C with every product exact in fp32 (11- or 8-bit
// significands) and fp32 accumulation. Lane t owns D[2i + t/16][t%16]: its B column is already
// local; row 2i + t/16 of A is fetched from the lane that holds it (lane 2i + t/16).
template <bool kBf16>
__device__ inline void wmma_mma(WmmaAcc& c, const WmmaFragA& a, const WmmaFragB& b) {
  const int lane = lane_id();
  float bcol[16];
  for (int j = 0; j < 8; ++j) {
    bcol[2 * j] = bits_to_float<kBf16>(b.w[j] & 0xffffu);
    bcol[2 * j + 1] = bits_to_float<kBf16>(b.w[j] >> 16);
  }
  for (int i = 0; i < 8; ++i) {
    const int src = 2 * i + (lane >> 4);
    float acc = c.v[i];
    for (int j = 0; j < 8; ++j) {
      const uint32_t aw = __shfl_sync(0xffffffffu, a.w[j], src);
      acc = fmaf(bits_to_float<kBf16>(aw & 0xffffu), bcol[2 * j], acc);
      acc = fmaf(bits_to_float<kBf16>(aw >> 16), bcol[2 * j + 1], acc);
    }
    c.v[i] = acc;
  }
}

// Row / column of accumulator slot i in lane `lane` (the C layout above).
__device__ inline int wmma_acc_row(int lane, int i) { return 2 * i + (lane >> 4); }
__device__ inline int wmma_acc_col(int lane, int /*i*/) { return lane & 15; }

// gfx11's loop shape (gfx11.cuh), so that the emulation runs it.
constexpr int kWmmaStepsPerTurn = 2;

// gfx11's opaque loop offset (gfx11.cuh): here just the value.
__device__ inline uint32_t loop_lane_offset(uint32_t x) { return x; }

}  // namespace w4a16::arch

#include "lane_address.cuh"
#include "wmma_fragments.cuh"

namespace w4a16::arch {
using WmmaImpl = FragmentWmma;  // the prefill math: 16x16x16 fragments (wmma_fragments.cuh)
template <class T>
using LaneAddress = SplitLaneAddress<T>;  // gfx11's staging addresses, so that their offsets run here
}  // namespace w4a16::arch
