// cuda: see arch.cuh. Sections: common types and barrier; dot2 (decode); WMMA 16x16x16 (prefill).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>


#include "nvidia_common.cuh"

namespace w4a16::arch {

// ---- common ----
// Ids, barrier and 16-bit bit-pattern helpers: nvidia_common.cuh.
constexpr int kWaveSize = 32;  // an NVIDIA warp, the counterpart of an RDNA3 wave32

// x, the same in every lane of the warp (gfx11 moves such values to scalar registers; NVIDIA's
// compiler finds its uniform values itself).
__device__ inline int wave_uniform(int x) { return x; }

// fp32 -> fp16 / bf16 bits, round to nearest even.
template <bool kBf16>
__device__ inline uint16_t float_to_bits(float x) {
  if constexpr (kBf16) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(x));
  } else {
    return __half_as_ushort(__float2half_rn(x));
  }
}

// Two fp32 values rounded to bf16 (nearest even), lo in the low half: one F2FP on sm_90.
__device__ inline uint32_t pk_bf16_pack(float lo, float hi) { return bits_of_pair(__floats2bfloat162_rn(lo, hi)); }
// The same for two values known not to be NaN (gfx11 saves its NaN select there).
__device__ inline uint32_t pk_bf16_pack_of_non_nan(float lo, float hi) { return pk_bf16_pack(lo, hi); }

// One b_q int32's nibbles as exact fp32 values kBias + q, for the bf16 WMMA staging
// (dequant8_bf16), byte by byte: the nibble in the mantissa of 16.0 (bits 19-22, ulp 1 there), ALU
// work only, where an int -> float conversion would run at a quarter of the ALU rate.
struct NibbleBytes {
  static constexpr uint32_t kBias = 16;
  uint32_t word;

  __device__ static NibbleBytes of(uint32_t w) { return {w}; }
  // K offsets 2b and 2b + 1.
  __device__ void floats(int b, float (&v)[2]) const {
    const uint32_t t = word >> (8 * b);
    v[0] = as_float(0x41800000u | (t & 0xFu) << 19);
    v[1] = as_float(0x41800000u | (t & 0xF0u) << 15);
  }
};

// Packed bf16 subtraction (sm_90 has it natively), IEEE round to nearest even.
__device__ inline uint32_t pk_sub_bf16(uint32_t a, uint32_t b) {
  return bits_of_pair(__hsub2(pair_from_bits<__nv_bfloat162>(a), pair_from_bits<__nv_bfloat162>(b)));
}

// ---- dot2 (decode) ----
// Decode math on NVIDIA, chosen per row tile (DecodeMath below): the warp multiplies with tensor
// cores (mma.sync m16n8k16, fp32 accumulation), since per-lane fp32 FMAs (one per weight and row)
// would cap decode at the FMA rate below memory speed. The weights are the m16 side, so a row tile
// of up to 8 fills the n8 side. A step of the warp is 4 b_q rows (32 K values) x 32 columns per
// column group: lane t holds b_q row t % 4 and columns 4 (t / 4) .. 4 (t / 4) + 3 of each group,
// a 16-byte load per group. Weights come as exact q - z pairs in the (j, j + 4) order of the LDS
// activations; the scale multiplies each step's fp32 sums.
template <bool kBf16>
__device__ inline void mma_m16n8k16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (kBf16) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

template <int kRows>
struct MmaDecode {
  static constexpr int kLaneRows = 4;             // b_q rows one warp covers per step
  static constexpr bool kCentredWeights = true;   // weights as exact q - z pairs
  static constexpr bool kUsesActSums = false;     // the zero point is inside the weights
  static constexpr int kRowTiles = kRows > 8 ? 2 : 1;  // n8 tiles of activation rows
  // Column groups per lane: two 16-byte loads of one b_q row share the lane's activation fetch,
  // which halves the activation loads and their addressing per weight byte. A block then spans 64
  // columns; it takes 16 warps where 8 would need more K splits to fill the GPU (gemm_dot2_plan.h),
  // 8 otherwise. Measured on an H100 (decode tuner, same call, M = 1 / 2 / 4 / 8, against one
  // group and 8 warps): 13.9 / 13.8 / 14.0 / 14.7 against 14.4 / 15.3 / 15.4 / 15.8 us on
  // (4096, 14336), 14.0 / 13.9 / 14.2 / 14.9 against 14.6 / 15.2 / 15.4 / 16.2 on (14336, 4096),
  // 29.4 / 29.3 / 29.4 / 30.1 against 30.1 / 30.7 / 30.7 / 31.5 on (5120, 27648). With zero points
  // it is mixed (the zero-point math needs more registers): 15.2-17.6 against 16.1-17.8 us on
  // (4096, 14336), 15.2-18.9 against 15.7-17.6 on (14336, 4096), 33.0-36.3 against 32.6-34.7 on
  // (5120, 27648).
  // The 16-row tile keeps one group: with two it took 126 registers, and 24.6 / 21.0 / 55.3 against
  // 24.0 / 21.3 / 48.5 us on the three layer shapes. Slower too: four groups (121 registers), and
  // 32-warp blocks of two column sets sharing the activations through L1.
  static constexpr int kColGroups = kRows > 8 ? 1 : 2;
  static constexpr int kWarps = kColGroups == 2 ? 16 : 8;
  // Row tiles up to 4 also have blocks of 4 warps: the plan takes them where their finer K splits
  // leave the busiest SM less work (gemm_dot2_plan.h). At M = 8 a 4-warp block keeps too few loads
  // in flight: measured on an H200 (decode sweep, benchmarks/results_sweep_blocks_H200.md) it was
  // slower than 8 or 16 warps on every one of 13 layer shapes, up to 36 us on (8192, 57344).
  static constexpr int kMinWarps = kRows <= 4 ? 4 : 8;
  // Blocks of `warps` ask the L2 for their weights two bands ahead (gemm_dot2_kernel.cuh): 16 and
  // 4 warps, not 8. Measured on an H200 (decode sweep, 8-warp blocks, M = 1 / 2 / 4 / 8, with
  // against without): 26.42 / 27.47 / 27.80 / 28.55 against 26.97 / 27.34 / 27.50 / 28.23 us on
  // (5120, 27648), 78.94 against 74.12 at M = 8 on (8192, 57344), and 0.9-1.2 us slower with zero
  // points on (5120, 27648) (stop 18); 4-warp blocks: 25.90 / 26.74 / 27.16 against 26.55 / 26.67 /
  // 27.06 on (5120, 27648), 24.12 / 25.09 / 25.83 against 25.23 / 25.70 / 26.33 on (3584, 37888).
  __host__ __device__ static constexpr bool prefetches_l2(int warps) { return warps != 8; }
  // Wave steps whose loads a warp issues together: 2 loads of 16 bytes per lane. Measured on an
  // H100 (decode sweep, M = 1..16, three layer shapes, one column group): 2 steps beat 3, 4 and 8,
  // since fewer registers per thread leave room for more resident warps, and resident warps hide
  // the memory latency better than a longer batch per warp.
  static constexpr int kLoadsInFlight = 2 / kColGroups;
  static constexpr int kRowsPerScale = kLaneRows;  // each step's sums meet their scale (accumulate)
  // Resident warps per SM the decode kernel's __launch_bounds__ asks for (in blocks), so that ptxas
  // keeps to 64 registers (80 for the 16-row tile). Measured on an H100 (decode tuner, 8-warp
  // blocks): unbound, the 8-row tile took 65 registers, 3 blocks per SM, and 20.7 instead of
  // 14.9 us on (4096, 14336); the 16-row tile 93, 2 blocks, and 29.8 / 27.7 / 70.1 instead of
  // 24.0 / 20.9 / 47.7 us on the three layer shapes.
  static constexpr int kMinResidentWarps = kRows > 8 ? 24 : 32;
  // Rows per pass of the waves' reduction in LDS at the end of a block (32 KiB for 16 warps x 8
  // rows x 64 columns). Measured on an H200 against 4 rows: at M = 8 (decode tuner, same call) one
  // pass took 14.39 against 14.58 us on (14336, 4096) and 28.24 against 28.85 on (5120, 27648), the
  // same within 0.1 us on (4096, 14336); at M = 16 (benchmark, two calls) two passes took 22.5 /
  // 20.3 / 44.0 against 24.6 / 21.2 / 47.4 us on the three layer shapes.
  static constexpr int kReduceRows = 8;

  static constexpr int kTilesM = 2 * kColGroups;  // m16 tiles of weight columns per step
  struct Acc {
    float c[kRowTiles][kTilesM][4];  // [n8 tile b][m16 tile u][C register e]
  };
  static constexpr int kAccSlots = kRowTiles * kTilesM * 4;

  // m16n8k16 for lane t (g = t / 4, q = t % 4). A (weights, 16 columns x 16 K) of m16 tile u: rows g
  // and g + 8 are the lane's columns 2u and 2u + 1 (column group u / 2, wave columns
  // 32 (u / 2) + 4g + 2 (u % 2) and one more). C register e of tile (b, u) is A row g + 8 (e / 2),
  // i.e. wave column 32 (u / 2) + 4g + 2 (u % 2) + e / 2, and activation row 8b + 2q + e % 2. Slot
  // (b kTilesM + u) 4 + e of a lane holds it.
  __device__ static int acc_row(int lane, int slot) {
    return 8 * (slot / (4 * kTilesM)) + 2 * (lane % 4) + slot % 2;
  }
  __device__ static int acc_col(int lane, int slot) {
    const int u = (slot / 4) % kTilesM;
    return 32 * (u / 2) + 4 * (lane / 4) + 2 * (u % 2) + (slot % 4) / 2;
  }
  __device__ static float acc_value(const Acc& acc, int slot) {
    return acc.c[slot / (4 * kTilesM)][(slot / 4) % kTilesM][slot % 4];
  }

  __device__ static void zero(Acc& acc) {
#pragma unroll
    for (int b = 0; b < kRowTiles; ++b)
#pragma unroll
      for (int u = 0; u < kTilesM; ++u)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc.c[b][u][e] = 0.0f;
  }

  // The B operands of one step (see accumulate), loaded apart from the multiply so that a batch's
  // activation loads leave together with its weight loads and nothing waits on one before the next
  // is issued: no branch, and the pairing waits for accumulate. Lane g loads tile row 8b + g; a row
  // the tile does not have (g >= kRows) re-reads the last one, and the source re-reads its last row
  // for a row past M: either only feeds C column g of the mma, an output row that is never stored.
  // Each B lane loads its own activation row from `a`, at every M (act-order layers too: ops.cpp
  // gathers them into K order first). Staging the one row of M = 1 in LDS first (one chunk, two
  // barriers) measured faster on an H100 with an earlier kernel (14.2 against 14.8 us on
  // (4096, 14336)), but slower on an H200 with this one (decode tuner, same call, two rounds):
  // 12.07-12.15 against 11.68-11.70 us on (4096, 14336), 12.46-12.52 against 12.12-12.14 on
  // (14336, 4096), 27.31-27.41 against 27.08-27.15 on (5120, 27648); with zero points 14.31 /
  // 14.37 / 32.31 against 13.72 / 13.58 / 31.81. At M = 2 staging was 0.4 us faster on
  // (4096, 14336) but 0.3-1.2 us slower on the others, at M = 4 and 8 0.6-8.5 us slower (H100).
  static constexpr bool kGlobalActivations = true;
  template <class Activations>
  struct Fetched {
    U32x4 loaded[kRowTiles];  // as the source keeps it (Activations::pairs_of gives the pairs)
    bool row_valid;           // the lane's b_q row is inside the wave's range
  };
  template <class Activations>
  __device__ static Fetched<Activations> fetch(const Activations& acts, bool row_valid) {
    const int g = lane_id() / 4;
    Fetched<Activations> f;
#pragma unroll
    for (int b = 0; b < kRowTiles; ++b) f.loaded[b] = acts.load(min(8 * b + g, kRows - 1));
    f.row_valid = row_valid;
    return f;
  }

  // One step of column group `group`, its m16 tiles u = 2 group and 2 group + 1: two k16 slabs s,
  // whose k order makes every operand register one stored pair. Lane t gives A[row g][k 2q, 2q + 1]
  // = pair 2s of the group's column 2 (u % 2) and A[row g][k 2q + 8, 2q + 9] = pair 2s + 1 (rows
  // g + 8: column 2 (u % 2) + 1), i.e. K offsets (2s, 2s + 4) and (2s + 1, 2s + 5) of b_q row q;
  // B[the same k][n g] are then pairs 2s and 2s + 1 of the fetched activations of b_q row q. Every
  // lane takes part in the mma. The step's sums start at zero and meet the scale of their column
  // in fp32.
  // A lane whose b_q row is outside the range gives zero activations: its weights are a re-read row.
  template <bool kBf16, class Activations>
  __device__ static void accumulate(Acc& acc, int group, const uint32_t (&w)[4][4], const float (&scale)[4],
                                    const float (&)[4], const Fetched<Activations>& f, bool /*first_of_batch*/) {
    uint32_t b[kRowTiles][4];
#pragma unroll
    for (int t = 0; t < kRowTiles; ++t) {
      const U32x4 pairs = f.row_valid ? Activations::pairs_of(f.loaded[t]) : U32x4{0u, 0u, 0u, 0u};
      b[t][0] = pairs.x;
      b[t][1] = pairs.y;
      b[t][2] = pairs.z;
      b[t][3] = pairs.w;
    }
    float step[kRowTiles][2][4] = {};
#pragma unroll
    for (int s = 0; s < 2; ++s)
#pragma unroll
      for (int u = 0; u < 2; ++u) {
        const uint32_t a[4] = {w[2 * u][2 * s], w[2 * u + 1][2 * s], w[2 * u][2 * s + 1], w[2 * u + 1][2 * s + 1]};
#pragma unroll
        for (int t = 0; t < kRowTiles; ++t) mma_m16n8k16<kBf16>(step[t][u], a, b[t][2 * s], b[t][2 * s + 1]);
      }
#pragma unroll
    for (int t = 0; t < kRowTiles; ++t)
#pragma unroll
      for (int u = 0; u < 2; ++u)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float& c = acc.c[t][2 * group + u][e];
          c = fmaf(scale[2 * u + e / 2], step[t][u][e], c);
        }
  }
  __device__ static void end_batch(Acc&) {}  // the steps are scaled already
};

// Measured on an H100 (decode tuner, fp16, three layer shapes): the mma layout beat gfx11's
// per-lane layout (decode_lanes.cuh, with the fp32 dot2 model) at every M, M = 1 included.
template <int kRows>
using DecodeMath = MmaDecode<kRows>;

// Largest M for which the gemm op takes the decode kernel (the WMMA kernel above it). Measured on an
// H200 against gemm_wmma with its best forced K split (README, "Between decode and prefill"):
// gemm_dot2 was faster at M = 32 on (4096, 14336), (14336, 4096), (5120, 27648) and (4096, 4096)
// (33.4 / 35.6 / 73.2 / 11.9 against 43.1 / 39.2 / 95.1 / 16.4 us) and slower at M = 64 on all but
// (4096, 4096) (60.6 / 69.5 / 138.1 against 51.6 / 47.9 / 114.0 us). Between them (H200, the ops as
// `gemm` calls them, M = 24..64 in steps of 8): in fp16 gemm_wmma was faster from M = 40 on every
// layer (gemm_dot2 / gemm_wmma 1.02-1.23 at M = 40, 0.65-0.79 at M = 32); in bf16 too but for
// (4096, 4096), where gemm_dot2 stayed 6-7% faster at M = 40 and 48.
constexpr int kGemmDot2MaxM = 32;

// ---- WMMA 16x16x16 (prefill) ----
// The interface of gfx11.cuh's WMMA section on NVIDIA tensor cores: one 16x16x16 product is two
// mma.sync.m16n8k16 (n = 0-7 and n = 8-15). Fragment contents and the accumulator map are
// NVIDIA's own. Operand tiles sit in LDS as raw 16-bit values with K contiguous: A as [m][k],
// B as [n][k]; `tile` points at element (0, 0) of a 16x16 sub-tile, `ld` is the row pitch in
// elements (a multiple of 8, so each ldmatrix row address is 16-byte aligned).

// m16n8k16 A (row-major), g = lane / 4, q = lane % 4: r0 = A[g][2q..2q+1], r1 = A[g+8][2q..],
// r2 = A[g][2q+8..], r3 = A[g+8][2q+8..].
struct WmmaFragA { uint32_t r[4]; };
// m16n8k16 B ("col", i.e. [n][k]) for two n8 halves h: r[2h] = B[k 2q..2q+1][n 8h+g],
// r[2h+1] = B[k 2q+8..][n 8h+g].
struct WmmaFragB { uint32_t r[4]; };
// m16n8 C for two n8 halves h: v[4h + j] = C[g + 8 * (j / 2)][8h + 2q + j % 2].
struct WmmaAcc { float v[8]; };
constexpr int kWmmaAccPerLane = 8;

__device__ inline void wmma_zero(WmmaAcc& c) {
  for (int i = 0; i < 8; ++i) c.v[i] = 0.0f;
}

__device__ inline uint32_t wmma_smem_addr(const uint16_t* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ldmatrix.x4 on A[m][k]: lanes 0-15 give rows 0-15 at k 0, lanes 16-31 rows 0-15 at k 8, so
// matrices 0..3 are (rows 0-7, k0), (rows 8-15, k0), (rows 0-7, k8), (rows 8-15, k8) = r0..r3.
__device__ inline void wmma_load_a(WmmaFragA& f, const uint16_t* tile, int ld, int lane) {
  const uint32_t addr = wmma_smem_addr(tile + (lane & 15) * ld + (lane >> 4) * 8);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(f.r[0]), "=r"(f.r[1]), "=r"(f.r[2]), "=r"(f.r[3])
               : "r"(addr));
}

// ldmatrix.x4 on B[n][k]: lane l gives row n = l % 8 + 8 * (l / 16) at k = 8 * ((l / 8) % 2), so
// matrices 0..3 are (n 0-7, k0), (n 0-7, k8), (n 8-15, k0), (n 8-15, k8) = r0..r3.
__device__ inline void wmma_load_b(WmmaFragB& f, const uint16_t* tile, int ld, int lane) {
  const int n = (lane & 7) + ((lane >> 4) << 3);
  const int k = ((lane >> 3) & 1) << 3;
  const uint32_t addr = wmma_smem_addr(tile + n * ld + k);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(f.r[0]), "=r"(f.r[1]), "=r"(f.r[2]), "=r"(f.r[3])
               : "r"(addr));
}

template <bool kBf16>
__device__ inline void wmma_mma(WmmaAcc& c, const WmmaFragA& a, const WmmaFragB& b) {
  for (int h = 0; h < 2; ++h) {
    float* d = c.v + 4 * h;
    if constexpr (kBf16) {
      asm volatile(
          "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
          "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
          : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
          : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[2]), "r"(a.r[3]), "r"(b.r[2 * h]), "r"(b.r[2 * h + 1]));
    } else {
      asm volatile(
          "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
          "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
          : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
          : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[2]), "r"(a.r[3]), "r"(b.r[2 * h]), "r"(b.r[2 * h + 1]));
    }
  }
}

// Row / column of accumulator slot i in lane `lane` (the C layout above).
__device__ inline int wmma_acc_row(int lane, int i) { return (lane >> 2) + 8 * ((i >> 1) & 1); }
__device__ inline int wmma_acc_col(int lane, int i) { return 8 * (i >> 2) + 2 * (lane & 3) + (i & 1); }

// K steps per turn of the prefill kernel's one-stage loop (gfx11 takes two): one, the loop the
// NVIDIA tiles were measured with.
constexpr int kWmmaStepsPerTurn = 1;

// gfx11's opaque loop offset (gfx11.cuh): here just the value (LanePointer does not use it).
__device__ inline uint32_t loop_lane_offset(uint32_t x) { return x; }

}  // namespace w4a16::arch

#include "lane_address.cuh"
#include "wgmma_sm90a.cuh"
#include "wmma_fragments.cuh"

namespace w4a16::arch {
// The prefill math: wgmma where the build targets sm_90a alone (CMakeLists.txt defines
// W4A16_CUDA_WGMMA then), mma.sync fragments otherwise. The choice is the build's, not each device
// pass's (__CUDA_ARCH_FEAT_SM90_ALL): the host launcher must see the same tile table.
#if defined(W4A16_CUDA_WGMMA)
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "W4A16_CUDA_WGMMA: every device pass must be sm_90a (-gencode=arch=compute_90a,code=sm_90a)"
#endif
using WmmaImpl = Wgmma;
#else
using WmmaImpl = FragmentWmma;
#endif
// The prefill staging loads: one per-lane pointer each (lane_address.cuh).
template <class T>
using LaneAddress = LanePointer<T>;
}  // namespace w4a16::arch

// Where a decode tile's K splits meet: in a thread-block cluster where every device pass has
// clusters (CMakeLists.txt defines W4A16_CUDA_CLUSTERS then; the launcher must know), in the
// workspace otherwise.
#if defined(W4A16_CUDA_CLUSTERS)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#error "W4A16_CUDA_CLUSTERS: every device pass must be sm_90 or later"
#endif
#include "cluster_split_sums_sm90.cuh"
namespace w4a16::arch {
using SplitSums = ClusterSplitSums;
}  // namespace w4a16::arch
#else
namespace w4a16::arch {
using SplitSums = WorkspaceSplitSums;
}  // namespace w4a16::arch
#endif
