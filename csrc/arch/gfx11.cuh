// gfx11: see arch.cuh. Sections: common types and barrier; dot2 (decode); WMMA 16x16x16 (prefill).
#pragma once

#include <hip/hip_runtime.h>
#include <stdint.h>

namespace w4a16::arch {

// ---- common ----
// 16-bit values travel as raw bits (uint16_t; a pair in a uint32_t, element 0 in the low half) so
// that kernel code needs no header-specific half/bfloat type: ROCm 6 and Debian's HIP 5.2 headers
// differ there, the compiler's _Float16 does not.
constexpr int kWaveSize = 32;  // gfx11 builds are wave32 (clang's default there); layouts assume it
typedef _Float16 F16x2 __attribute__((ext_vector_type(2)));

// Ids and the barrier straight from builtins: HIP's threadIdx / blockIdx / __syncthreads call into
// the device library, which the -nogpulib ISA check cannot link (calls would remain in the ISA).
__device__ inline int lane_id() { return __builtin_amdgcn_mbcnt_lo(~0u, 0u); }
__device__ inline int thread_id() { return __builtin_amdgcn_workitem_id_x(); }
// x, which must be the same in every lane of the wave, read from the first lane (v_readfirstlane):
// the compiler then knows it is uniform and keeps it, and what derives from it, in scalar registers.
__device__ inline int wave_uniform(int x) { return __builtin_amdgcn_readfirstlane(x); }
__device__ inline int block_id_x() { return __builtin_amdgcn_workgroup_id_x(); }
__device__ inline int block_id_y() { return __builtin_amdgcn_workgroup_id_y(); }
__device__ inline int block_id_z() { return __builtin_amdgcn_workgroup_id_z(); }
__device__ inline void barrier() {
  __builtin_amdgcn_fence(__ATOMIC_RELEASE, "workgroup");
  __builtin_amdgcn_s_barrier();
  __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "workgroup");
}

__device__ inline float as_float(uint32_t u) { return __builtin_bit_cast(float, u); }
__device__ inline uint32_t as_uint(float f) { return __builtin_bit_cast(uint32_t, f); }

template <bool kBf16>
__device__ inline float bits_to_float(uint32_t bits16) {
  if constexpr (kBf16) {
    return as_float(bits16 << 16);
  } else {
    return static_cast<float>(__builtin_bit_cast(_Float16, static_cast<uint16_t>(bits16)));
  }
}

// (a & mask) | bits: one v_and_or_b32.
__device__ inline uint32_t and_or(uint32_t a, uint32_t mask, uint32_t bits) { return (a & mask) | bits; }
// The low (high) 16-bit halves of lo and hi as one pair, lo's in the low half: one v_perm_b32
// (selector bytes 0-3 pick from its second operand, 4-7 from its first).
__device__ inline uint32_t low_halves(uint32_t lo, uint32_t hi) { return __builtin_amdgcn_perm(hi, lo, 0x05040100u); }
__device__ inline uint32_t high_halves(uint32_t lo, uint32_t hi) { return __builtin_amdgcn_perm(hi, lo, 0x07060302u); }

// x & 0x0f0f0f0f, the low nibble of every byte, for NibbleBytes to convert byte by byte
// (v_cvt_f32_ubyte1..3 read bytes 1-3 in place). In asm, because LLVM would otherwise narrow the
// one mask into a bit-field extract per byte, an instruction more per converted value.
__device__ inline uint32_t byte_low_nibbles(uint32_t x) {
  uint32_t masked;
  asm("v_and_b32 %0, 0x0f0f0f0f, %1" : "=v"(masked) : "v"(x));
  return masked;
}

// fp32 -> fp16 bits, round to nearest even (v_cvt_f16_f32).
__device__ inline uint16_t f16_bits(float x) { return __builtin_bit_cast(uint16_t, static_cast<_Float16>(x)); }

}  // namespace w4a16::arch

#include "gfx11_bf16_math.cuh"  // bf16 rounding and packed subtraction on the bits; float_to_bits

namespace w4a16::arch {

// Packed fp16 arithmetic on bit pairs (v_pk_add_f16 / v_pk_mul_f16 / v_pk_fma_f16), IEEE round to
// nearest even.
__device__ inline uint32_t pk_sub_f16(uint32_t a, uint32_t b) {
  return __builtin_bit_cast(uint32_t, __builtin_bit_cast(F16x2, a) - __builtin_bit_cast(F16x2, b));
}
__device__ inline uint32_t pk_mul_f16(uint32_t a, uint32_t b) {
  return __builtin_bit_cast(uint32_t, __builtin_bit_cast(F16x2, a) * __builtin_bit_cast(F16x2, b));
}
__device__ inline uint32_t pk_fma_f16(uint32_t a, uint32_t b, uint32_t c) {
  const F16x2 product = __builtin_elementwise_fma(__builtin_bit_cast(F16x2, a), __builtin_bit_cast(F16x2, b),
                                                   __builtin_bit_cast(F16x2, c));
  return __builtin_bit_cast(uint32_t, product);
}

// ---- dot2 (decode) ----
// v_dot2_f32_f16 / v_dot2_f32_bf16 read packed 16-bit pairs straight from a VGPR, so an operand
// is the raw pair: nothing to prepare.
typedef uint32_t Dot2Operand;
typedef short Dot2S2 __attribute__((ext_vector_type(2)));

template <bool kBf16>
__device__ inline Dot2Operand dot2_operand(uint32_t pair) { return pair; }

// acc + a.lo * b.lo + a.hi * b.hi. clang 19 declares the bf16 builtin's operands as short2 (raw
// bits); later LLVM moves bf16 operands to __bf16 vectors, and a same-size vector converts
// implicitly to either, so raw short2 bits compile against both.
template <bool kBf16>
__device__ inline float dot2(Dot2Operand a, Dot2Operand b, float acc) {
  if constexpr (kBf16) {
    return __builtin_amdgcn_fdot2_f32_bf16(__builtin_bit_cast(Dot2S2, a), __builtin_bit_cast(Dot2S2, b),
                                           acc, false);
  } else {
    return __builtin_amdgcn_fdot2(__builtin_bit_cast(F16x2, a), __builtin_bit_cast(F16x2, b), acc, false);
  }
}

// Weights are read exactly once: a nontemporal load keeps them from evicting the activations and
// scales that are reused from cache.
typedef uint32_t Dot2V4U __attribute__((ext_vector_type(4)));
__device__ inline U32x4 load_stream16(const uint32_t* p) {
  return __builtin_bit_cast(U32x4, __builtin_nontemporal_load(reinterpret_cast<const Dot2V4U*>(p)));
}

// gfx11 has no prefetch into the L2 without a register to load into: nothing.
__device__ inline void prefetch_l2(const void*) {}

}  // namespace w4a16::arch

#include "decode_lanes.cuh"  // DecodeMath, SplitSums, kGemmDot2MaxM

namespace w4a16::arch {

// ---- WMMA 16x16x16 (prefill) ----
// Interface (same names in cuda.cuh and rdna3_emu.cuh): WmmaFragA / WmmaFragB, wmma_load_a,
// wmma_load_b, wmma_mma<kBf16> for the fragment loop (wmma_fragments.cuh); WmmaAcc,
// kWmmaAccPerLane, wmma_zero, wmma_acc_row / wmma_acc_col and WmmaImpl (LDS layout, stage math,
// tile table) for gemm_wmma_kernel.cuh.
// Operand tiles sit in LDS as raw 16-bit values with K contiguous: A as [m][k], B as [n][k];
// `tile` points at element (0, 0) of one 16x16 sub-tile, `ld` is the row pitch in elements
// (a multiple of 8, so every row starts 16-byte aligned).

typedef short WmmaV16s __attribute__((ext_vector_type(16)));
// The same 32 bytes as they sit in an LDS row: 16-byte aligned only (a row of 40 elements puts every
// odd row at 16 mod 32), where a WmmaV16s load would promise the compiler 32.
typedef short WmmaV16sRow __attribute__((ext_vector_type(16), aligned(16)));
typedef _Float16 WmmaV16h __attribute__((ext_vector_type(16)));
typedef float WmmaV8f __attribute__((ext_vector_type(8)));

// wave32 A operand: lane t holds A[t % 16][k = 0..15]; lanes 16-31 repeat lanes 0-15.
struct WmmaFragA { WmmaV16s v; };
// wave32 B operand: lane t holds B[k = 0..15][n = t % 16]; lanes 16-31 repeat lanes 0-15.
struct WmmaFragB { WmmaV16s v; };
// wave32 fp32 C/D: lane t, slot i holds C[2i + t / 16][t % 16].
struct WmmaAcc { WmmaV8f v; };
constexpr int kWmmaAccPerLane = 8;

__device__ inline void wmma_zero(WmmaAcc& c) {
  for (int i = 0; i < 8; ++i) c.v[i] = 0.0f;
}

// A[m][k] rows are K-contiguous in LDS: lane t reads the 32 bytes of row t % 16.
__device__ inline void wmma_load_a(WmmaFragA& f, const uint16_t* tile, int ld, int lane) {
  f.v = *reinterpret_cast<const WmmaV16sRow*>(tile + (lane & 15) * ld);
}

// B is stored transposed ([n][k]), so column n = t % 16 is one contiguous 32-byte row.
__device__ inline void wmma_load_b(WmmaFragB& f, const uint16_t* tile, int ld, int lane) {
  f.v = *reinterpret_cast<const WmmaV16sRow*>(tile + (lane & 15) * ld);
}

// clang 19 declares the bf16 operands as 16 x short ("V16s"); should a later clang declare them
// as 16 x __bf16, bit-cast f.v to that vector type here and nowhere else.
template <bool kBf16>
__device__ inline void wmma_mma(WmmaAcc& c, const WmmaFragA& a, const WmmaFragB& b) {
  if constexpr (kBf16) {
    c.v = __builtin_amdgcn_wmma_f32_16x16x16_bf16_w32(a.v, b.v, c.v);
  } else {
    c.v = __builtin_amdgcn_wmma_f32_16x16x16_f16_w32(__builtin_bit_cast(WmmaV16h, a.v),
                                                     __builtin_bit_cast(WmmaV16h, b.v), c.v);
  }
}

// Row / column of accumulator slot i in lane `lane` (the C layout above).
__device__ inline int wmma_acc_row(int lane, int i) { return 2 * i + (lane >> 4); }
__device__ inline int wmma_acc_col(int lane, int /*i*/) { return lane & 15; }

// bias[n] for output column n of the epilogue (bias not null): the load has no predicate (a column
// past N reads column N - 1, whose output is never stored), so that the loads of a lane's 8
// accumulators, which share one column (wmma_acc_col), merge into one. Predicated, each was a
// branch of its own, waited for before the next load left.
template <bool kBf16>
__device__ inline float epilogue_bias(const uint16_t* bias, int n, int n_total) {
  return bits_to_float<kBf16>(bias[min(n, n_total - 1)]);
}

// K steps per turn of the prefill kernel's one-stage loop. Two put the two LDS stage buffers back
// in place at every turn, so each step's LDS addresses are fixed registers and constant offsets,
// not recomputed after each swap: 4-5 VALU instructions fewer per K step (fp16 32x64 tile 43 to
// 38.5, bf16 99 to 94, 128x128 59 to 55 and 110 to 107), 10-22 more VGPRs, the same waves per
// SIMD (gfx1100 ISA; not timed there).
constexpr int kWmmaStepsPerTurn = 2;

// A lane's byte offset that stays fixed over the K loop, handed to a load inside it, opaque to the
// optimiser (an empty asm), so that the load is one scalar base + 32-bit offset (gfx11's saddr
// form, no VALU). Left visible, LLVM widens the offset to 64 bits once before the loop and adds
// every step's base to it in VALU: a v_mad_u64_u32 or two v_add_co a load.
__device__ inline uint32_t loop_lane_offset(uint32_t x) {
  asm volatile("" : "+v"(x));
  return x;
}

}  // namespace w4a16::arch

#include "lane_address.cuh"
#include "wmma_fragments.cuh"

namespace w4a16::arch {
using WmmaImpl = FragmentWmma;  // the prefill math: 16x16x16 fragments (wmma_fragments.cuh)
template <class T>
using LaneAddress = SplitLaneAddress<T>;  // the staging loads: scalar base + lane offset
}  // namespace w4a16::arch
