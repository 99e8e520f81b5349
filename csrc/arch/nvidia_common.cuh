// NVIDIA helpers shared by cuda.cuh and rdna3_emu.cuh: ids, barrier, and 16-bit values as raw
// bits (uint16_t; a pair in a uint32_t, element 0 in the low half), the representation gfx11.cuh
// uses too, so kernel code is shared unchanged.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

namespace w4a16::arch {

__device__ inline int lane_id() {
  int lane;
  asm("mov.u32 %0, %%laneid;" : "=r"(lane));
  return lane;
}
__device__ inline int thread_id() { return threadIdx.x; }
__device__ inline int block_id_x() { return blockIdx.x; }
__device__ inline int block_id_y() { return blockIdx.y; }
__device__ inline int block_id_z() { return blockIdx.z; }
__device__ inline void barrier() { __syncthreads(); }

__device__ inline float as_float(uint32_t u) { return __uint_as_float(u); }
__device__ inline uint32_t as_uint(float f) { return __float_as_uint(f); }

template <bool kBf16>
__device__ inline float bits_to_float(uint32_t bits16) {
  if constexpr (kBf16) {
    return __uint_as_float(bits16 << 16);
  } else {
    return __half2float(__ushort_as_half(static_cast<unsigned short>(bits16)));
  }
}

// bias[n] for output column n of the WMMA epilogue (bias not null), 0 past N: predicated loads,
// which ptxas issues one by one. Unpredicated, as gfx11 reads it, ptxas batched them and the peak
// registers rose (measured on the 128x128 wgmma tile with act-order, which no longer exists: 128 ->
// 130, one block per SM fewer).
template <bool kBf16>
__device__ inline float epilogue_bias(const uint16_t* bias, int n, int n_total) {
  return n < n_total ? bits_to_float<kBf16>(bias[n]) : 0.0f;
}

// A pair of 16-bit values (__half2, __nv_bfloat162) from its 32 bits, and back.
template <class Pair>
__device__ inline Pair pair_from_bits(uint32_t u) {
  Pair pair;
  memcpy(&pair, &u, sizeof(u));
  return pair;
}
template <class Pair>
__device__ inline uint32_t bits_of_pair(Pair pair) {
  uint32_t u;
  memcpy(&u, &pair, sizeof(u));
  return u;
}

// Packed fp16 arithmetic on bit pairs (HSUB2 / HMUL2 / HFMA2), IEEE round to nearest even as gfx11's
// v_pk_add_f16 / v_pk_mul_f16 / v_pk_fma_f16 compute them (fp16 denormals kept).
__device__ inline uint32_t pk_sub_f16(uint32_t a, uint32_t b) {
  return bits_of_pair(__hsub2(pair_from_bits<__half2>(a), pair_from_bits<__half2>(b)));
}
__device__ inline uint32_t pk_mul_f16(uint32_t a, uint32_t b) {
  return bits_of_pair(__hmul2(pair_from_bits<__half2>(a), pair_from_bits<__half2>(b)));
}
__device__ inline uint32_t pk_fma_f16(uint32_t a, uint32_t b, uint32_t c) {
  return bits_of_pair(__hfma2(pair_from_bits<__half2>(a), pair_from_bits<__half2>(b), pair_from_bits<__half2>(c)));
}

// (a & mask) | bits in one LOP3 (the compiler splits it in two when both constants are immediates).
__device__ inline uint32_t and_or(uint32_t a, uint32_t mask, uint32_t bits) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(a), "r"(mask), "r"(bits));
  return r;
}

// The low (high) 16-bit halves of lo and hi as one pair, lo's in the low half: one PRMT.
__device__ inline uint32_t low_halves(uint32_t lo, uint32_t hi) { return __byte_perm(lo, hi, 0x5410u); }
__device__ inline uint32_t high_halves(uint32_t lo, uint32_t hi) { return __byte_perm(lo, hi, 0x7632u); }

// Decode weights are read exactly once (gfx11 uses a nontemporal load): a read-only load that
// does not allocate in L1 keeps them from evicting the scales that are reused from cache.
// U32x4 comes from arch.cuh, the only includer of the arch headers.
__device__ inline U32x4 load_stream16(const uint32_t* p) {
  U32x4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Asks the L2 for the cache line holding `p`, with no register held and nothing to wait for.
__device__ inline void prefetch_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

}  // namespace w4a16::arch
