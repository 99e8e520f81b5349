// The prefill math on 16x16x16 fragments (gfx11, the RDNA3 emulation, and NVIDIA without wgmma):
// each wave loads its own A and B fragments from LDS with the arch's wmma_load_a / wmma_load_b and
// multiplies them with wmma_mma, synchronously. The arch headers include this after their WMMA
// section (the primitives it calls) and name it arch::WmmaImpl.
#pragma once

#include <stdint.h>

namespace w4a16::arch {

struct FragmentWmma {
  // LDS operand tiles are K-contiguous rows ([m][k] for A, [n][k] for B) with a 16-byte pad: a
  // pitch of kBK + 8 elements moves consecutive rows by 4 banks (kBK = 32: 80 B, kBK = 64: 144 B),
  // so the eight 16-byte row pieces one ldmatrix / ds_read_b128 phase fetches from eight rows, and
  // the 16-byte dequant stores down a column of B, hit distinct banks.
  template <int kBK>
  struct Layout {
    static constexpr int kPitch = kBK + 8;
    static constexpr bool kDynamicLds = false;  // a static LDS array: the kernel's size is known
    __host__ __device__ static constexpr int elems(int rows) { return rows * kPitch; }
    // Element (row, k) of an operand tile; k is a multiple of 8 (one 16-byte piece).
    __device__ static int index(int row, int k) { return row * kPitch + k; }
  };

  template <class Tile>
  struct Math {
    using Lds = Layout<Tile::kBK>;
    using Acc = WmmaAcc[Tile::kFragsM][Tile::kFragsN];

    // One K tile of this wave's accumulators; a_tile / b_tile are the stage's operand tiles, the
    // wave's first row of A and of B ([n][k]) is wave_m / wave_n.
    template <bool kBf16>
    __device__ static void multiply(Acc& acc, const uint16_t* a_tile, const uint16_t* b_tile, int wave_m, int wave_n,
                                    int lane) {
      const uint16_t* const a_lds = a_tile + wave_m * Lds::kPitch;
      const uint16_t* const b_lds = b_tile + wave_n * Lds::kPitch;
#pragma unroll
      for (int ks = 0; ks < Tile::kBK; ks += 16) {
        WmmaFragA fa[Tile::kFragsM];
        WmmaFragB fb[Tile::kFragsN];
#pragma unroll
        for (int i = 0; i < Tile::kFragsM; ++i) wmma_load_a(fa[i], a_lds + 16 * i * Lds::kPitch + ks, Lds::kPitch, lane);
#pragma unroll
        for (int j = 0; j < Tile::kFragsN; ++j) wmma_load_b(fb[j], b_lds + 16 * j * Lds::kPitch + ks, Lds::kPitch, lane);
#pragma unroll
        for (int i = 0; i < Tile::kFragsM; ++i) {
#pragma unroll
          for (int j = 0; j < Tile::kFragsN; ++j) wmma_mma<kBf16>(acc[i][j], fa[i], fb[j]);
        }
      }
    }

    // The products above are complete when multiply returns, and the matrix units read their
    // operands through the wave's own loads, which the barrier orders: nothing to wait for or fence.
    __device__ static void wait(Acc&) {}
    __device__ static void fence_operand_stores() {}
  };

  // The tile table the launcher picks from (by M; see gemm_wmma.cu): T<BM, BN, BK, WarpsM, WarpsN,
  // TilesInFlight>. Measured on the H100: 8 waves of 64x32 beat 4 of 64x64 (fewer registers, more
  // warps to hide the staging latency); 64x64 wave tiles also spill on gfx11. One K tile in
  // flight: two raise gfx1100's VGPRs by 30-56 per tile (Large bf16 then spills) and are not
  // measured on gfx11.
  template <template <int, int, int, int, int, int> class T>
  struct Tiles {
    using Large = T<128, 128, 32, 2, 4, 1>;  // waves of 64 x 32
    using Medium = T<64, 128, 32, 2, 4, 1>;  // waves of 32 x 32
    using Small = T<32, 64, 32, 2, 2, 1>;    // waves of 16 x 32
    static constexpr bool kLargeWithFewBlocks = false;
  };
};

}  // namespace w4a16::arch
