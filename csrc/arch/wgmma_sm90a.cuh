// The prefill math on Hopper's warpgroup MMA (wgmma, sm_90a): the 4 warps of a warpgroup multiply
// a 64-row slab of A by the whole B tile of a stage, both read by the tensor cores straight from LDS
// (through matrix descriptors), asynchronously: the kernel dequantises the next stage meanwhile.
// cuda.cuh names this arch::WmmaImpl when the build targets sm_90a alone.
//
// The accumulators keep the WmmaAcc layout of cuda.cuh (mma.sync m16n8 C, two n8 halves per 16
// columns): wgmma's m64nN fp32 D gives warp w of the warpgroup rows 16 w .. 16 w + 15, register
// 8 f + 4 h + j holding D[16 w + g + 8 (j / 2)][16 f + 8 h + 2 q + j % 2] (g = lane / 4, q = lane % 4),
// which is fragment f of a 16 x N warp tile. So the kernel's epilogue and wmma_acc_row / _col serve
// both.
#pragma once

#include <stdint.h>

namespace w4a16::arch {

// The 8 accumulator registers of one 16-column fragment as asm operands (read and written).
#define W4A16_WGMMA_D16(f)                                                                               \
  "+f"(f.v[0]), "+f"(f.v[1]), "+f"(f.v[2]), "+f"(f.v[3]), "+f"(f.v[4]), "+f"(f.v[5]), "+f"(f.v[6]), \
      "+f"(f.v[7])

// D (64 x 64, fp32) += A (64 x 16) B (16 x 64); TYPE is f16 or bf16. The scale-d predicate is
// true (accumulate), A and B unscaled and K-major (no transpose).
#define W4A16_WGMMA_M64N64K16(TYPE)                                                            \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                   \
               "wgmma.mma_async.sync.aligned.m64n64k16.f32." #TYPE "." #TYPE " {"            \
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "       \
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, " \
               "%32, %33, p, 1, 1, 0, 0;\n}\n"                                               \
               : W4A16_WGMMA_D16(d[0]), W4A16_WGMMA_D16(d[1]), W4A16_WGMMA_D16(d[2]),         \
                 W4A16_WGMMA_D16(d[3])                                                        \
               : "l"(a_desc), "l"(b_desc), "n"(1))

// D (64 x 128, fp32) += A (64 x 16) B (16 x 128), as above.
#define W4A16_WGMMA_M64N128K16(TYPE)                                                           \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                   \
               "wgmma.mma_async.sync.aligned.m64n128k16.f32." #TYPE "." #TYPE " {"           \
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "       \
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
               "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
               "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, " \
               "%64, %65, p, 1, 1, 0, 0;\n}\n"                                               \
               : W4A16_WGMMA_D16(d[0]), W4A16_WGMMA_D16(d[1]), W4A16_WGMMA_D16(d[2]),         \
                 W4A16_WGMMA_D16(d[3]), W4A16_WGMMA_D16(d[4]), W4A16_WGMMA_D16(d[5]),         \
                 W4A16_WGMMA_D16(d[6]), W4A16_WGMMA_D16(d[7])                                 \
               : "l"(a_desc), "l"(b_desc), "n"(1))

template <bool kBf16>
__device__ inline void wgmma_m64n64k16(WmmaAcc (&d)[4], uint64_t a_desc, uint64_t b_desc) {
  if constexpr (kBf16) {
    W4A16_WGMMA_M64N64K16(bf16);
  } else {
    W4A16_WGMMA_M64N64K16(f16);
  }
}

template <bool kBf16>
__device__ inline void wgmma_m64n128k16(WmmaAcc (&d)[8], uint64_t a_desc, uint64_t b_desc) {
  if constexpr (kBf16) {
    W4A16_WGMMA_M64N128K16(bf16);
  } else {
    W4A16_WGMMA_M64N128K16(f16);
  }
}

#undef W4A16_WGMMA_M64N128K16
#undef W4A16_WGMMA_M64N64K16
#undef W4A16_WGMMA_D16

// Keeps the compiler from moving accumulator reads or writes across the asynchronous products
// (their registers change under it between wgmma and wgmma.wait_group).
__device__ inline void wgmma_fence_registers(WmmaAcc& f) {
#pragma unroll
  for (int i = 0; i < 8; ++i) asm volatile("" : "+f"(f.v[i])::"memory");
}

struct Wgmma {
  // LDS operand tiles: K-major rows of kBK elements (2 kBK = 32, 64 or 128 bytes), unpadded, in
  // wgmma's swizzled layout of that width: within each group of 8 rows (kAtomBytes, the
  // descriptor's stride between 8-row core-matrix groups) the 16-byte piece c of row r sits at
  // piece c ^ ((r / (128 / row bytes)) % pieces per row), i.e. byte-address bits 4.. XOR bits 7..
  // The tensor cores apply the same XOR to the absolute address, so tiles start at a multiple of
  // kAtomBytes. The XOR spreads both the 16-byte dequant stores down a column of B and the
  // tensor cores' reads over all banks.
  template <int kBK>
  struct Layout {
    static constexpr int kRowBytes = 2 * kBK;
    static_assert(kRowBytes == 32 || kRowBytes == 64 || kRowBytes == 128, "a swizzle width of wgmma");
    static constexpr uint32_t kPieceMask = kRowBytes / 16 - 1;
    static constexpr int kAtomBytes = 8 * kRowBytes;
    static constexpr int kAlign = 1024;  // the largest atom; the dynamic LDS base is aligned to it
    static constexpr bool kDynamicLds = true;  // 64 KiB stages need more than static LDS allows
    // Descriptor swizzle mode (bits 62-63): 1 = 128 B, 2 = 64 B, 3 = 32 B.
    static constexpr uint64_t kSwizzleMode = kRowBytes == 128 ? 1 : kRowBytes == 64 ? 2 : 3;

    __host__ __device__ static constexpr int elems(int rows) { return rows * kBK; }
    // Element (row, k) of an operand tile; k is a multiple of 8 (one 16-byte piece).
    __device__ static int index(int row, int k) {
      const uint32_t byte = row * kRowBytes + 2 * k;
      return (byte ^ (((byte >> 7) & kPieceMask) << 4)) / 2;
    }

    // Shared-memory matrix descriptor of the operand rows starting at `rows` (a multiple of 8
    // rows from a tile start): start address / 16 (bits 0-13), leading-dimension offset (bits
    // 16-29; unused for K-major swizzled operands, set to 1), stride between 8-row groups / 16
    // (bits 32-45), base offset 0 (tiles are atom aligned), swizzle mode (bits 62-63).
    __device__ static uint64_t descriptor(const uint16_t* rows) {
      const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(rows));
      return static_cast<uint64_t>((addr >> 4) & 0x3FFFu) | (uint64_t{1} << 16) |
             (static_cast<uint64_t>(kAtomBytes >> 4) << 32) | (kSwizzleMode << 62);
    }
  };

  template <class Tile>
  struct Math {
    using Lds = Layout<Tile::kBK>;
    using Acc = WmmaAcc[Tile::kFragsM][Tile::kFragsN];
    static_assert(Tile::kWarpsN == 1 && Tile::kWarpM == 16 && Tile::kWarpsM % 4 == 0,
                  "warps of 16 rows over the whole N, 4 consecutive ones (a warpgroup) per 64-row slab");
    static_assert(Tile::kBN % 64 == 0 && Tile::kBN <= 256, "wgmma N: whole n128 / n64 steps, at most 256");
    static_assert(Tile::kBM % 8 == 0 && Tile::kBN % 8 == 0, "operand tiles start on a swizzle atom");

    // One K tile: issues this warpgroup's products (kBK / 16 steps of m64 x kBN x k16) and returns
    // with them in flight. a_tile / b_tile are the stage's operand tiles; the warpgroup's slab of A
    // starts at row wave_m rounded down to 64.
    template <bool kBf16>
    __device__ static void multiply(Acc& acc, const uint16_t* a_tile, const uint16_t* b_tile, int wave_m, int,
                                    int) {
      const uint64_t a_desc = Lds::descriptor(a_tile + Lds::elems(wave_m & ~63));
      const uint64_t b_desc = Lds::descriptor(b_tile);
      fence_registers(acc);
      asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
      for (int ks = 0; ks < Tile::kBK / 16; ++ks) {
        // k16 step ks is 32 bytes into every row: + 2 in the descriptor's address field.
        const uint64_t a_k = a_desc + 2 * ks;
#pragma unroll
        for (int c = 0; c < Tile::kBN / 128; ++c) {
          wgmma_m64n128k16<kBf16>(*reinterpret_cast<WmmaAcc(*)[8]>(&acc[0][8 * c]), a_k,
                                  b_desc + 2 * ks + ((128 * c * Tile::kBK * 2) >> 4));
        }
        if constexpr (Tile::kBN % 128 != 0) {
          constexpr int c = Tile::kBN / 128;
          wgmma_m64n64k16<kBf16>(*reinterpret_cast<WmmaAcc(*)[4]>(&acc[0][8 * c]), a_k,
                                 b_desc + 2 * ks + ((128 * c * Tile::kBK * 2) >> 4));
        }
      }
      asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
      fence_registers(acc);
    }

    // Waits for this warpgroup's products: after it the accumulators are final and the stage's
    // operand tiles are no longer read.
    __device__ static void wait(Acc& acc) {
      asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
      fence_registers(acc);
    }

    // The tensor cores read LDS through the async proxy: each thread's ordinary stores of a stage
    // are made visible to it before the barrier that publishes the stage.
    __device__ static void fence_operand_stores() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

   private:
    __device__ static void fence_registers(Acc& acc) {
#pragma unroll
      for (int j = 0; j < Tile::kFragsN; ++j) wgmma_fence_registers(acc[0][j]);
    }
  };

  // The tile table the launcher picks from (by M; see gemm_wmma.cu): T<BM, BN, BK, WarpsM, WarpsN,
  // TilesInFlight>, one warp per 16 rows, a warpgroup per 64. Measured on the H100 (fp16, M =
  // 256..4096, the four layer shapes of the README): 128 x 128 x 64 beat 128 x 128 x 32 by 7-55%
  // and 64 x 128 x 64 (one warpgroup per block) by 14-40%, the latter also at M = 256 where Large
  // gives only 64 blocks on (14336, 4096) and (4096, 4096): 134 / 118 against 113 / 102 TFLOP/s
  // (before K splits). Two K tiles in flight against one, measured on an H200 (fp16, unsplit, the
  // same four shapes): Small and Medium 1.26-2.08x faster at M = 16..64 (e.g. (14336, 4096) at
  // M = 16: 137.1 against 281.9 us); Large 1.27-1.42x slower wherever its grid fills the SMs (M =
  // 128..1024; its accumulators leave no room for a second stage), and faster (up to 1.11x) only
  // on grids that K splits serve better ((14336, 4096) at M = 128: 68.0 against 60.1 us, each
  // with its best split).
  template <template <int, int, int, int, int, int> class T>
  struct Tiles {
    using Large = T<128, 128, 64, 8, 1, 1>;  // 2 warpgroups of 64 x 128
    using Medium = T<64, 128, 64, 4, 1, 2>;  // 1 warpgroup of 64 x 128
    using Small = T<64, 64, 64, 4, 1, 2>;    // 1 warpgroup of 64 x 64
    static constexpr bool kLargeWithFewBlocks = true;
  };
};

}  // namespace w4a16::arch
