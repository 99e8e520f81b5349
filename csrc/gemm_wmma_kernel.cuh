// Prefill W4A16 GEMM on 16x16x16 WMMA tiles: out[M, N] = a[M, K] (gathered through perm) @
// dequant(b_q)[K, N] (+ bias). Pure device code (no torch), so the gfx1100 ISA check compiles it
// with clang and the HIP headers alone.
//
// One block computes a kBM x kBN output tile; each wave (warp) owns kWarpM x kWarpN of it as a
// grid of 16x16 accumulators. K advances kBK at a time through two LDS buffers: while the waves
// multiply buffer s, each thread holds its share of the next K tile (activations and raw int4
// words) in registers, then dequantises the words ONCE into fp16/bf16 and writes buffer s ^ 1.
#pragma once

#include <stdint.h>

#include "arch/arch.cuh"
#include "dequant.cuh"

namespace w4a16 {

// Block tile: kBM x kBN outputs, kBK-deep K steps, kWarpsM x kWarpsN waves.
template <int BM, int BN, int BK, int WarpsM, int WarpsN>
struct WmmaTile {
  static constexpr int kBM = BM, kBN = BN, kBK = BK;
  static constexpr int kWarpsM = WarpsM, kWarpsN = WarpsN;
  static constexpr int kThreads = arch::kWaveSize * WarpsM * WarpsN;
  static constexpr int kWarpM = BM / WarpsM, kWarpN = BN / WarpsN;
  static constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 16;

  // LDS rows are K-contiguous ([m][k] for A, [n][k] for B, see the arch WMMA section) with a
  // 16-byte pad: a pitch of kBK + 8 elements moves consecutive rows by 4 banks (kBK = 32: 80 B,
  // kBK = 64: 144 B), so the eight 16-byte row pieces one ldmatrix / ds_read_b128 phase fetches
  // from eight rows, and the 16-byte dequant stores down a column of B, hit distinct banks.
  static constexpr int kLd = BK + 8;
  static constexpr int kStageElems = (BM + BN) * kLd;
  // Epilogue: the output tile in LDS (out dtype), pitch padded the same way, for 16-byte stores.
  static constexpr int kOutLd = BN + 8;
  static constexpr int kLdsElems =
      2 * kStageElems > BM * kOutLd ? 2 * kStageElems : BM * kOutLd;
  static constexpr int kLdsBytes = kLdsElems * 2;

  // Per-thread shares of one K tile: 16-byte activation vectors and int4 words.
  static constexpr int kAVecs = BM * BK / 8 / kThreads;
  static constexpr int kBWords = BK / 8 * BN / kThreads;

  static_assert(BM % (16 * WarpsM) == 0 && BN % (16 * WarpsN) == 0, "warp tile of whole 16x16 tiles");
  static_assert(BK % 16 == 0, "K step of whole 16-deep WMMA steps");
  static_assert(kAVecs * kThreads == BM * BK / 8, "A tile splits evenly over the threads");
  static_assert(kBWords * kThreads == BK / 8 * BN, "B tile splits evenly over the threads");
  static_assert(kLdsBytes <= 65536, "RDNA3 gives a workgroup at most 64 KiB of LDS");
};

struct WmmaGemmArgs {
  const uint16_t* a;       // [M, K] fp16/bf16 bits
  const uint32_t* b_q;     // [K / 8, N], nibble i of a word = K offset i
  const uint16_t* scales;  // [K / G, N]
  const uint32_t* zeros;   // [K / G, N / 8] packed along N, or null (symmetric: zero 8)
  const int32_t* perm;     // [K] (act-order: kernel K index -> column of a), or null
  const uint16_t* bias;    // [N] or null
  uint16_t* out;           // [M, N]
  int m, n, k, group_size;
};

// One thread's share of the next K tile, held in registers while the current tile is multiplied.
template <class Tile>
struct WmmaStage {
  uint4 a[Tile::kAVecs];            // 8 consecutive K values of one row of a (zero outside)
  uint32_t b[Tile::kBWords];        // one b_q word: 8 K values of one column (0 outside)
  uint16_t scale[Tile::kBWords];    // its group's scale (0 outside, so the column dequantises to 0)
  uint32_t zero[Tile::kBWords];     // its group's zero point
};

// Activation vector v of the tile: row v / (kBK / 8), K offset 8 * (v % (kBK / 8)). Consecutive
// threads read consecutive 16-byte pieces of a row (coalesced).
template <class Tile, bool kHasPerm>
__device__ inline void load_a_tile(WmmaStage<Tile>& st, const WmmaGemmArgs& p, int m0, int k0) {
  constexpr int kVecsPerRow = Tile::kBK / 8;
#pragma unroll
  for (int j = 0; j < Tile::kAVecs; ++j) {
    const int v = arch::thread_id() + j * Tile::kThreads;
    const int row = m0 + v / kVecsPerRow;
    const int k = k0 + 8 * (v % kVecsPerRow);
    uint4 val = make_uint4(0u, 0u, 0u, 0u);
    if (row < p.m && k < p.k) {  // K % 8 == 0: a vector is wholly inside or outside
      const uint16_t* a_row = p.a + static_cast<int64_t>(row) * p.k;
      if constexpr (kHasPerm) {
        // Act-order: kernel K index k reads column perm[k] of a.
        const int4 c0 = *reinterpret_cast<const int4*>(p.perm + k);
        const int4 c1 = *reinterpret_cast<const int4*>(p.perm + k + 4);
        val.x = a_row[c0.x] | (static_cast<uint32_t>(a_row[c0.y]) << 16);
        val.y = a_row[c0.z] | (static_cast<uint32_t>(a_row[c0.w]) << 16);
        val.z = a_row[c1.x] | (static_cast<uint32_t>(a_row[c1.y]) << 16);
        val.w = a_row[c1.z] | (static_cast<uint32_t>(a_row[c1.w]) << 16);
      } else {
        val = *reinterpret_cast<const uint4*>(a_row + k);
      }
    }
    st.a[j] = val;
  }
}

// Word w of the tile: b_q row k0 / 8 + w / kBN, column n0 + w % kBN. Consecutive threads read
// consecutive columns (coalesced); G % 8 == 0, so all 8 K values of a word share one group.
template <class Tile, bool kHasZeros>
__device__ inline void load_b_tile(WmmaStage<Tile>& st, const WmmaGemmArgs& p, int n0, int k0) {
#pragma unroll
  for (int j = 0; j < Tile::kBWords; ++j) {
    const int w = arch::thread_id() + j * Tile::kThreads;
    const int n = n0 + w % Tile::kBN;
    const int k = k0 + 8 * (w / Tile::kBN);
    uint32_t word = 0u, zero = 0u;
    uint16_t scale = 0u;
    if (n < p.n && k < p.k) {
      const int g = k / p.group_size;
      word = p.b_q[static_cast<int64_t>(k / 8) * p.n + n];
      scale = p.scales[static_cast<int64_t>(g) * p.n + n];
      if constexpr (kHasZeros) {
        zero = zero_of(p.zeros[static_cast<int64_t>(g) * (p.n / 8) + n / 8], n);
      } else {
        zero = 8u;
      }
    }
    st.b[j] = word;
    st.scale[j] = scale;
    st.zero[j] = zero;
  }
}

// Registers -> LDS buffer: activations as they are, weights dequantised (natural K order) so the
// 8 values of a word become one 16-byte piece of row n of the [n][k] B tile.
template <class Tile, bool kBf16>
__device__ inline void store_stage(const WmmaStage<Tile>& st, uint16_t* a_lds, uint16_t* b_lds) {
  constexpr int kVecsPerRow = Tile::kBK / 8;
#pragma unroll
  for (int j = 0; j < Tile::kAVecs; ++j) {
    const int v = arch::thread_id() + j * Tile::kThreads;
    *reinterpret_cast<uint4*>(a_lds + (v / kVecsPerRow) * Tile::kLd + 8 * (v % kVecsPerRow)) = st.a[j];
  }
#pragma unroll
  for (int j = 0; j < Tile::kBWords; ++j) {
    const int w = arch::thread_id() + j * Tile::kThreads;
    uint32_t q[4];
    dequant8<kBf16>(st.b[j], make_group_dequant<kBf16>(st.scale[j], st.zero[j]), q);
    *reinterpret_cast<uint4*>(b_lds + (w % Tile::kBN) * Tile::kLd + 8 * (w / Tile::kBN)) =
        make_uint4(q[0], q[1], q[2], q[3]);
  }
}

template <class Tile, bool kBf16, bool kHasZeros, bool kHasPerm>
__global__ void __launch_bounds__(Tile::kThreads) gemm_wmma_kernel(const WmmaGemmArgs p) {
  __shared__ uint4 lds_raw[Tile::kLdsBytes / 16];
  uint16_t* const lds = reinterpret_cast<uint16_t*>(lds_raw);

  const int lane = arch::lane_id();
  const int wave = arch::thread_id() / arch::kWaveSize;
  const int wave_m = (wave / Tile::kWarpsN) * Tile::kWarpM;  // first tile row of this wave
  const int wave_n = (wave % Tile::kWarpsN) * Tile::kWarpN;  // first tile column of this wave
  const int m0 = arch::block_id_y() * Tile::kBM;
  const int n0 = arch::block_id_x() * Tile::kBN;
  const int k_tiles = (p.k + Tile::kBK - 1) / Tile::kBK;

  arch::WmmaAcc acc[Tile::kFragsM][Tile::kFragsN];
#pragma unroll
  for (int i = 0; i < Tile::kFragsM; ++i) {
#pragma unroll
    for (int j = 0; j < Tile::kFragsN; ++j) arch::wmma_zero(acc[i][j]);
  }

  WmmaStage<Tile> st;
  load_a_tile<Tile, kHasPerm>(st, p, m0, 0);
  load_b_tile<Tile, kHasZeros>(st, p, n0, 0);
  store_stage<Tile, kBf16>(st, lds, lds + Tile::kBM * Tile::kLd);
  arch::barrier();

  for (int kt = 0; kt < k_tiles; ++kt) {
    const bool has_next = kt + 1 < k_tiles;
    if (has_next) {  // global loads of the next tile are in flight during the math below
      load_a_tile<Tile, kHasPerm>(st, p, m0, (kt + 1) * Tile::kBK);
      load_b_tile<Tile, kHasZeros>(st, p, n0, (kt + 1) * Tile::kBK);
    }
    const uint16_t* a_lds = lds + (kt & 1) * Tile::kStageElems;
    const uint16_t* b_lds = a_lds + Tile::kBM * Tile::kLd;
#pragma unroll
    for (int ks = 0; ks < Tile::kBK; ks += 16) {
      arch::WmmaFragA fa[Tile::kFragsM];
      arch::WmmaFragB fb[Tile::kFragsN];
#pragma unroll
      for (int i = 0; i < Tile::kFragsM; ++i)
        arch::wmma_load_a(fa[i], a_lds + (wave_m + 16 * i) * Tile::kLd + ks, Tile::kLd, lane);
#pragma unroll
      for (int j = 0; j < Tile::kFragsN; ++j)
        arch::wmma_load_b(fb[j], b_lds + (wave_n + 16 * j) * Tile::kLd + ks, Tile::kLd, lane);
#pragma unroll
      for (int i = 0; i < Tile::kFragsM; ++i) {
#pragma unroll
        for (int j = 0; j < Tile::kFragsN; ++j) arch::wmma_mma<kBf16>(acc[i][j], fa[i], fb[j]);
      }
    }
    if (has_next) {
      uint16_t* next = lds + ((kt + 1) & 1) * Tile::kStageElems;
      store_stage<Tile, kBf16>(st, next, next + Tile::kBM * Tile::kLd);
    }
    // One barrier per K step suffices with two buffers: it publishes buffer (kt + 1) & 1 and
    // retires reads of buffer kt & 1, the next step's write target.
    arch::barrier();
  }

  // Epilogue: accumulators (+ bias, in fp32) -> out dtype -> LDS tile -> 16-byte global stores.
  uint16_t* const out_lds = lds;
#pragma unroll
  for (int j = 0; j < Tile::kFragsN; ++j) {
    float bias[arch::kWmmaAccPerLane];
#pragma unroll
    for (int e = 0; e < arch::kWmmaAccPerLane; ++e) {
      const int n = n0 + wave_n + 16 * j + arch::wmma_acc_col(lane, e);
      bias[e] = (p.bias != nullptr && n < p.n) ? arch::bits_to_float<kBf16>(p.bias[n]) : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < Tile::kFragsM; ++i) {
#pragma unroll
      for (int e = 0; e < arch::kWmmaAccPerLane; ++e) {
        const int r = wave_m + 16 * i + arch::wmma_acc_row(lane, e);
        const int c = wave_n + 16 * j + arch::wmma_acc_col(lane, e);
        out_lds[r * Tile::kOutLd + c] = arch::float_to_bits<kBf16>(acc[i][j].v[e] + bias[e]);
      }
    }
  }
  arch::barrier();
  // N % 8 == 0: an 8-wide output vector is wholly inside or outside.
  constexpr int kVecsPerRow = Tile::kBN / 8;
  for (int v = arch::thread_id(); v < Tile::kBM * kVecsPerRow; v += Tile::kThreads) {
    const int r = v / kVecsPerRow;
    const int c = 8 * (v % kVecsPerRow);
    const int m = m0 + r, n = n0 + c;
    if (m < p.m && n < p.n) {
      *reinterpret_cast<uint4*>(p.out + static_cast<int64_t>(m) * p.n + n) =
          *reinterpret_cast<const uint4*>(out_lds + r * Tile::kOutLd + c);
    }
  }
}

// The tile table the launcher picks from (by M; see gemm_wmma.cu). Measured on the H100: 8 waves
// of 64x32 beat 4 of 64x64 (fewer registers, more warps to hide the staging latency); 64x64 wave
// tiles also spill on gfx11.
using WmmaTileLarge = WmmaTile<128, 128, 32, 2, 4>;  // waves of 64 x 32
using WmmaTileMedium = WmmaTile<64, 128, 32, 2, 4>;  // waves of 32 x 32
using WmmaTileSmall = WmmaTile<32, 64, 32, 2, 2>;    // waves of 16 x 32

}  // namespace w4a16
