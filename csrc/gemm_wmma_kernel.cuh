// Prefill W4A16 GEMM on 16x16x16 WMMA tiles: out[M, N] = a[M, K] @ dequant(b_q)[K, N] (+ bias).
// Act-order layers come with `a` already in the weights' K order (gather_columns_kernel.cuh).
// Pure device code (no torch), so the gfx1100 ISA check compiles it with clang and the HIP
// headers alone.
//
// One block computes a kBM x kBN output tile; each wave (warp) owns kWarpM x kWarpN of it as a
// grid of 16x16 accumulators. K advances kBK at a time through two LDS buffers: while the waves
// multiply buffer s, each thread holds its share of the next K tile or two (activations and raw
// int4 words) in registers, then dequantises the nearer one's words ONCE into fp16/bf16 and
// writes buffer s ^ 1.
// The LDS layout, the multiplication of a stage and the tile table are the arch's
// (arch::WmmaImpl): 16x16x16 fragments per wave, or on sm_90a builds wgmma per warpgroup.
// Grid: x = column tiles, y = row tiles, z = K splits. With one split the block writes `out`
// (bias, conversion); otherwise its fp32 sums go to a [splits, M, N] workspace that
// split_k_reduce_kernel.cuh sums in split order.
#pragma once

#include <stdint.h>

#include <type_traits>

#include "arch/arch.cuh"
#include "dequant.cuh"
#include "group_divisor.cuh"
#include "row_pointer.cuh"

namespace w4a16 {

// Block tile: kBM x kBN outputs, kBK-deep K steps, kWarpsM x kWarpsN waves, kTilesInFlight (1 or
// 2) K tiles loading into registers at once. How a stage sits in LDS and how the waves multiply
// it is the arch's (arch::WmmaImpl: Layout and Math).
template <int BM, int BN, int BK, int WarpsM, int WarpsN, int TilesInFlight>
struct WmmaTile {
  static constexpr int kBM = BM, kBN = BN, kBK = BK;
  static constexpr int kWarpsM = WarpsM, kWarpsN = WarpsN;
  static constexpr int kTilesInFlight = TilesInFlight;
  static constexpr int kThreads = arch::kWaveSize * WarpsM * WarpsN;
  static constexpr int kWarpM = BM / WarpsM, kWarpN = BN / WarpsN;
  static constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 16;

  // A stage buffer holds the A operand tile (kBM rows), then the B operand tile (kBN rows).
  using Lds = arch::WmmaImpl::Layout<BK>;
  static constexpr int kAElems = Lds::elems(BM);
  static constexpr int kStageElems = kAElems + Lds::elems(BN);
  // Epilogue: the output tile in LDS (out dtype), pitch padded by 16 bytes, for 16-byte stores.
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
  static_assert(TilesInFlight == 1 || TilesInFlight == 2, "one or two K tiles in registers");
};

struct WmmaGemmArgs {
  const uint16_t* a;       // [M, K] fp16/bf16 bits
  const uint32_t* b_q;     // [K / 8, N], nibble i of a word = K offset i
  const uint16_t* scales;  // [K / G, N]
  const uint32_t* zeros;   // [K / G, N / 8] packed along N, or null (symmetric: zero 8)
  const uint16_t* bias;    // [N] or null
  uint16_t* out;           // [M, N]
  float* partial;          // [splits, M, N] fp32 sums of each K split, or null (one split: out)
  int m, n, k;             // K > 0 (ops.cpp checks it)
  int k_per_split;         // K values of split z: [z k_per_split, (z + 1) k_per_split), a multiple of kBK
  GroupDivisor group;      // K index -> its group (row of scales and zeros)
};

// fp16 tiles hold each 8-value K piece of A and B in LDS in the pair order of the decode,
// K offsets (0, 4), (1, 5), (2, 6), (3, 7) (dequant.cuh): the weights then come from one and-or per
// pair (dequant8_paired_f16) for one byte permute per pair of activations. Both operands share the
// order, so the products meet as in natural order. bf16 goes through fp32 one value at a time, where
// the order saves nothing: natural order.
template <bool kBf16>
constexpr bool kPairedK = !kBf16;

// One thread's share of the next K tile, held in registers while the current tile is multiplied.
template <class Tile>
struct WmmaStage {
  uint4 a[Tile::kAVecs];            // 8 K values of one row of a (zero past K), in K order
  uint32_t b[Tile::kBWords];        // one b_q word: 8 K values of one column (0 past K)
  uint16_t scale[Tile::kBWords];    // its group's scale (0 past K, so the word dequantises to 0)
  uint32_t zero[Tile::kBWords];     // its group's zeros word (zero points only; 0 past K)
};

// Where a thread's share sits in every K tile; computed once, before the K loop. kThreads is a
// multiple of kBK / 8 and of kBN, so all of a thread's activation vectors have one K offset and
// all of its words one column.
template <class Tile>
struct StageMap {
  static constexpr int kVecsPerRow = Tile::kBK / 8;
  static constexpr int kARowStep = Tile::kThreads / kVecsPerRow;  // tile rows from vector j to j + 1
  static constexpr int kBKStep = 8 * (Tile::kThreads / Tile::kBN);  // K offset from word j to j + 1
  static_assert(Tile::kThreads % kVecsPerRow == 0 && Tile::kThreads % Tile::kBN == 0,
                "a thread's vectors share one K offset and its words one column");
  static_assert(Tile::kBN % arch::kWaveSize == 0, "a wave's words share one K offset");

  // Activation vector j: tile row a_row + j * kARowStep, K offset a_k; consecutive threads read
  // consecutive 16-byte pieces of a row (coalesced).
  int a_row, a_k;
  // Word j: tile column b_col, K offset b_k + j * kBKStep; consecutive threads read consecutive
  // columns (coalesced). G % 8 == 0, so all 8 K values of a word share one group. A wave's threads
  // lie in one run of kBN, so b_k is the wave's: said so (arch::wave_uniform), gfx11 computes the
  // words' K index, group and row offsets in scalar registers, 9 VALU instructions fewer per K
  // step in the fp16 32x64 tile's loop (58 to 49).
  int b_col, b_k;

  __device__ static StageMap of_thread() {
    const int t = arch::thread_id();
    return {t / kVecsPerRow, 8 * (t % kVecsPerRow), t % Tile::kBN, 8 * arch::wave_uniform(t / Tile::kBN)};
  }
};

// A thread's global sources, fixed for the whole K loop: each the block's first element and the
// thread's own, in the arch's address form (arch::LaneAddress). On gfx11 the two stay apart, so
// that a load is a scalar base moved along K plus the thread's 32-bit byte offset, with no VALU
// for its address: per K step 6-9 VALU instructions fewer (fp16 32x64 tile 49 to 43, bf16 105 to
// 99; 128x128 67 to 59 and 119 to 110; gfx1100 ISA, not timed there) and 4-6 VGPRs. The offsets
// fit 32 bits: at most kBM rows of a (ops.cpp takes K up to gemm_wmma_max_k) and kBN columns of
// the weights. Rows past M and columns past N are clamped to the last real one: they only feed
// outputs the epilogue does not store, so every load stays in bounds without a mask.
template <class Tile>
struct StageSource {
  arch::LaneAddress<uint16_t> a[Tile::kAVecs];  // a[m0][0] + a[row of vector j][a_k], moved along K
  arch::LaneAddress<uint32_t> b;                // b_q[0][n0] + column n, moved along b_q rows
  arch::LaneAddress<uint16_t> scale;            // scales[0][n0] + column n, moved along groups
  arch::LaneAddress<uint32_t> zeros;            // zeros[0][n0 / 8] + the word of n (zero points only)
  int n;                                        // the thread's column of the weights

  template <bool kHasZeros>
  __device__ static StageSource of(const StageMap<Tile>& at, const WmmaGemmArgs& p, int m0, int n0) {
    StageSource s{};
    const int64_t a_block = static_cast<int64_t>(m0) * p.k;
#pragma unroll
    for (int j = 0; j < Tile::kAVecs; ++j) {
      const int row = m0 + at.a_row + j * StageMap<Tile>::kARowStep;
      const int64_t element = static_cast<int64_t>(row < p.m ? row : p.m - 1) * p.k + at.a_k;
      s.a[j] = arch::LaneAddress<uint16_t>::of(p.a, a_block, element);
    }
    s.n = n0 + at.b_col < p.n ? n0 + at.b_col : p.n - 1;
    s.b = arch::LaneAddress<uint32_t>::of(p.b_q, n0, s.n);
    s.scale = arch::LaneAddress<uint16_t>::of(p.scales, n0, s.n);
    // Only where there are zero points (p.zeros is null otherwise). Chosen at run time instead,
    // the select took registers: the wgmma 128x128 bf16 tile with zero points went from 128 to 132
    // and from two blocks per SM to one (1.4-1.9x slower at M >= 256 on an H200).
    if constexpr (kHasZeros) s.zeros = arch::LaneAddress<uint32_t>::of(p.zeros, n0 / 8, s.n / 8);
    return s;
  }
};

// Loads K tile k0 into registers. kMaskK: the tile may reach past k_end, the end of the block's
// K range (only its last tile can); K % 8 == 0, so a vector or word is wholly inside or outside.
template <class Tile, bool kBf16, bool kHasZeros, bool kMaskK>
__device__ inline void load_stage(WmmaStage<Tile>& st, const StageSource<Tile>& src, const StageMap<Tile>& at,
                                  const WmmaGemmArgs& p, int k0, int k_end) {
  const bool a_inside = !kMaskK || k0 + at.a_k < k_end;
#pragma unroll
  for (int j = 0; j < Tile::kAVecs; ++j) {
    st.a[j] = a_inside ? *reinterpret_cast<const uint4*>(src.a[j].at(k0, 2u)) : make_uint4(0u, 0u, 0u, 0u);
  }
#pragma unroll
  for (int j = 0; j < Tile::kBWords; ++j) {
    const uint32_t k = k0 + at.b_k + j * StageMap<Tile>::kBKStep;
    uint32_t word = 0u, zero = 0u;
    uint16_t scale = 0u;
    if (!kMaskK || k < static_cast<uint32_t>(k_end)) {
      const uint32_t g = p.group(k);
      // b_q row k / 8 starts (k / 8) * 4N = (k / 2) * N bytes in (k % 8 == 0).
      word = *src.b.at(k / 2, p.n);
      scale = *src.scale.at(g, 2u * p.n);
      // The whole zeros word: store_stage picks the column's nibble. Picked here, gfx11 waited
      // for the first loads before the last one left (bf16 with zero points, 32x64 and 64x128:
      // 6 of 7 loads in flight before the multiply).
      if constexpr (kHasZeros) zero = *src.zeros.at(g, p.n / 2u);
    }
    st.b[j] = word;
    st.scale[j] = scale;
    st.zero[j] = zero;
  }
}

// Registers -> LDS buffer: activations (paired here for a paired tile, after their loads, so that
// they stay in flight under the multiply), weights dequantised so the 8 values of a word become one
// 16-byte piece of row n of the [n][k] B tile, in the tile's K order, with the zero point of the
// thread's column n. Where a piece sits is the arch's layout (Tile::Lds).
template <class Tile, bool kBf16, bool kHasZeros>
__device__ inline void store_stage(const WmmaStage<Tile>& st, const StageMap<Tile>& at, int n, uint16_t* a_lds,
                                   uint16_t* b_lds) {
#pragma unroll
  for (int j = 0; j < Tile::kAVecs; ++j) {
    uint4 piece = st.a[j];
    if constexpr (kPairedK<kBf16>) {
      const arch::U32x4 paired = interleave_pairs({piece.x, piece.y, piece.z, piece.w});
      piece = make_uint4(paired.x, paired.y, paired.z, paired.w);
    }
    *reinterpret_cast<uint4*>(a_lds + Tile::Lds::index(at.a_row + j * StageMap<Tile>::kARowStep, at.a_k)) = piece;
  }
#pragma unroll
  for (int j = 0; j < Tile::kBWords; ++j) {
    const uint32_t zero = kHasZeros ? zero_of(st.zero[j], n) : 8u;
    uint32_t q[4];
    if constexpr (kPairedK<kBf16>) {
      dequant8_paired_f16(st.b[j], zero, st.scale[j], q);
    } else {
      dequant8_bf16(st.b[j], Bf16GroupDequant::of(st.scale[j], zero), q);
    }
    *reinterpret_cast<uint4*>(b_lds + Tile::Lds::index(at.b_col, at.b_k + j * StageMap<Tile>::kBKStep)) =
        make_uint4(q[0], q[1], q[2], q[3]);
  }
}

// The kernel's LDS: a static array where the layout allows, else the launch's dynamic LDS
// (aligned for the arch's swizzled operand tiles).
template <class Tile>
__device__ inline uint16_t* wmma_lds() {
  if constexpr (Tile::Lds::kDynamicLds) {
    alignas(Tile::Lds::kAlign) extern __shared__ uint4 lds_dynamic[];
    return reinterpret_cast<uint16_t*>(lds_dynamic);
  } else {
    __shared__ uint4 lds_static[Tile::kLdsBytes / 16];
    return reinterpret_cast<uint16_t*>(lds_static);
  }
}

template <class Tile, bool kBf16, bool kHasZeros>
__global__ void __launch_bounds__(Tile::kThreads) gemm_wmma_kernel(const WmmaGemmArgs p) {
  uint16_t* const lds = wmma_lds<Tile>();
  using Math = arch::WmmaImpl::Math<Tile>;

  const int lane = arch::lane_id();
  const int wave = arch::wave_uniform(arch::thread_id() / arch::kWaveSize);
  const int wave_m = (wave / Tile::kWarpsN) * Tile::kWarpM;  // first tile row of this wave
  const int wave_n = (wave % Tile::kWarpsN) * Tile::kWarpN;  // first tile column of this wave
  const int m0 = arch::block_id_y() * Tile::kBM;
  const int n0 = arch::block_id_x() * Tile::kBN;
  // The block's K range: split z (the launcher makes every split non-empty; only the last is short).
  const int k_begin = arch::block_id_z() * p.k_per_split;
  const int k_end = p.k - k_begin < p.k_per_split ? p.k : k_begin + p.k_per_split;

  arch::WmmaAcc acc[Tile::kFragsM][Tile::kFragsN];
#pragma unroll
  for (int i = 0; i < Tile::kFragsM; ++i) {
#pragma unroll
    for (int j = 0; j < Tile::kFragsN; ++j) arch::wmma_zero(acc[i][j]);
  }

  const StageMap<Tile> at = StageMap<Tile>::of_thread();
  const StageSource<Tile> src = StageSource<Tile>::template of<kHasZeros>(at, p, m0, n0);
  // Only the last tile can reach past k_end: every tile before it loads without K masks.
  const int k_tiles = (k_end - k_begin + Tile::kBK - 1) / Tile::kBK;
  const int k_whole_tiles = (k_end - k_begin) / Tile::kBK;
  const auto load = [&](WmmaStage<Tile>& into, int kt, auto mask_k) {
    load_stage<Tile, kBf16, kHasZeros, decltype(mask_k)::value>(into, src, at, p, k_begin + kt * Tile::kBK, k_end);
  };
  constexpr std::false_type kWhole{};
  constexpr std::true_type kMasked{};

  // K step kt, once the loads of the next tiles are asked for: tile kt is multiplied from buffer
  // `cur`, and tile kt + 1 (`held`, in registers) is stored to `next` while the products run (where
  // the arch's matrix units run them asynchronously). One barrier per step suffices with two
  // buffers: it publishes `next` and retires the reads of `cur` (waited for first), the following
  // step's write target.
  uint16_t* cur = lds;
  uint16_t* next = lds + Tile::kStageElems;
  const auto step = [&](const WmmaStage<Tile>& held) {
    Math::template multiply<kBf16>(acc, cur, cur + Tile::kAElems, wave_m, wave_n, lane);
    store_stage<Tile, kBf16, kHasZeros>(held, at, src.n, next, next + Tile::kAElems);
    Math::wait(acc);
    Math::fence_operand_stores();
    arch::barrier();
    uint16_t* const done = cur;
    cur = next;
    next = done;
  };
  const auto store_first = [&](const WmmaStage<Tile>& tile0) {
    store_stage<Tile, kBf16, kHasZeros>(tile0, at, src.n, lds, lds + Tile::kAElems);
    Math::fence_operand_stores();
    arch::barrier();
  };

  int kt = 0;
  if constexpr (Tile::kTilesInFlight == 1) {
    // One stage: tile kt + 1 loads while tile kt is multiplied, one or two steps a loop turn (the
    // arch's choice, arch::kWmmaStepsPerTurn: with two, the stage buffers are back in place at
    // every turn, so the addresses into them stay fixed over the loop).
    static_assert(arch::kWmmaStepsPerTurn == 1 || arch::kWmmaStepsPerTurn == 2, "one or two steps a turn");
    WmmaStage<Tile> st;
    load(st, 0, kMasked);
    store_first(st);
    if constexpr (arch::kWmmaStepsPerTurn == 2) {
      for (; kt + 2 < k_whole_tiles; kt += 2) {
        load(st, kt + 1, kWhole);
        step(st);
        load(st, kt + 2, kWhole);
        step(st);
      }
    }
    for (; kt + 1 < k_whole_tiles; ++kt) {  // one step a turn: all of them; two: the odd one left
      load(st, kt + 1, kWhole);
      step(st);
    }
    if (kt + 1 < k_tiles) {
      load(st, kt + 1, kMasked);
      step(st);
    }
  } else {
    // Two stages: tile kt + 2 loads while tile kt is multiplied and tile kt + 1, loaded during the
    // step before, is stored; each tile's loads have two steps of products to hide behind. Two
    // steps per turn keep the stages' names fixed: tile kt + 1 is in `second` at even steps.
    WmmaStage<Tile> first, second;
    load(first, 0, kMasked);
    if (k_tiles > 1) load(second, 1, kMasked);
    store_first(first);
    for (; kt + 3 < k_whole_tiles; kt += 2) {
      load(first, kt + 2, kWhole);
      step(second);
      load(second, kt + 3, kWhole);
      step(first);
    }
    // At most three steps are left (K tiles kt + 1 .. k_tiles - 1 to store).
    if (kt + 1 < k_tiles) {
      if (kt + 2 < k_tiles) load(first, kt + 2, kMasked);
      step(second);
      ++kt;
    }
    if (kt + 1 < k_tiles) {
      if (kt + 2 < k_tiles) load(second, kt + 2, kMasked);
      step(first);
      ++kt;
    }
    if (kt + 1 < k_tiles) step(second);
  }
  Math::template multiply<kBf16>(acc, cur, cur + Tile::kAElems, wave_m, wave_n, lane);
  Math::wait(acc);

  if (p.partial != nullptr) {
    // K split: the fp32 sums go from the accumulators straight to the split's workspace slice (the
    // reduction adds bias and converts; these writes are a small share of the bytes at the M that
    // split).
    float* const slice = p.partial + static_cast<size_t>(arch::block_id_z()) * p.m * p.n;
#pragma unroll
    for (int i = 0; i < Tile::kFragsM; ++i) {
#pragma unroll
      for (int j = 0; j < Tile::kFragsN; ++j) {
#pragma unroll
        for (int e = 0; e < arch::kWmmaAccPerLane; ++e) {
          const int m = m0 + wave_m + 16 * i + arch::wmma_acc_row(lane, e);
          const int n = n0 + wave_n + 16 * j + arch::wmma_acc_col(lane, e);
          if (m < p.m && n < p.n) slice[static_cast<size_t>(m) * p.n + n] = acc[i][j].v[e];
        }
      }
    }
    return;
  }
  arch::barrier();  // the epilogue below overwrites the stage buffers

  // Epilogue: accumulators (+ bias, in fp32) -> out dtype -> LDS tile -> 16-byte global stores.
  uint16_t* const out_lds = lds;
#pragma unroll
  for (int j = 0; j < Tile::kFragsN; ++j) {
    // The bias of the lane's columns (0 without one): one branch for the block, the loads as the
    // arch's epilogue_bias reads them.
    float bias[arch::kWmmaAccPerLane] = {};
    if (p.bias != nullptr) {
#pragma unroll
      for (int e = 0; e < arch::kWmmaAccPerLane; ++e) {
        bias[e] = arch::epilogue_bias<kBf16>(p.bias, n0 + wave_n + 16 * j + arch::wmma_acc_col(lane, e), p.n);
      }
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

// The tile table the launcher picks from (by M; see gemm_wmma.cu): the arch's (arch::WmmaImpl).
using WmmaTileLarge = arch::WmmaImpl::Tiles<WmmaTile>::Large;
using WmmaTileMedium = arch::WmmaImpl::Tiles<WmmaTile>::Medium;
using WmmaTileSmall = arch::WmmaImpl::Tiles<WmmaTile>::Small;
// Whether Large is taken from M = 128 on even where its blocks leave SMs/WGPs without one.
constexpr bool kWmmaLargeWithFewBlocks = arch::WmmaImpl::Tiles<WmmaTile>::kLargeWithFewBlocks;

}  // namespace w4a16
