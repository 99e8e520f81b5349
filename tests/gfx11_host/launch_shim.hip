// The host side of the kernels' gfx1100 launches, for the RDNA3 ISA interpreter's tests
// (tests/rdna3_isa/launches.py): the tile and grid the launchers' plans pick, and the bytes of each
// kernel's arguments, from the project's own host code. Compiled with clang -x hip --cuda-host-only
// against a hipified copy of csrc/ (hence the *_hip.h names: the plans use the CUDA runtime's
// names) and loaded with ctypes on machines without the HIP runtime library, so only pure host
// templates are instantiated here (plans, argument fills), never a launch or an occupancy query:
// the library must need no hip* symbol.
#include <stddef.h>
#include <stdint.h>

#include <cstring>
#include <type_traits>

#include "gather_columns_kernel_hip.cuh"
#include "gemm_dot2_plan_hip.h"
#include "gemm_wmma_plan_hip.h"

namespace {

using w4a16::GroupDivisor;
namespace dot2 = w4a16::dot2;
namespace wmma = w4a16::wmma;

// gfx11 has no thread-block clusters: a decode call's K splits meet in the fp32 workspace or, with
// one split, nowhere (dot2::split_meeting then needs no cluster query of the runtime).
static_assert(dot2::Tile<1>::SplitSums::kMaxClusterSplits == 0, "gfx11's decode splits meet in the workspace");

template <class T>
T device_pointer(uint64_t address) {
  return reinterpret_cast<T>(static_cast<uintptr_t>(address));
}

constexpr size_t align_up(size_t offset, size_t alignment) { return (offset + alignment - 1) / alignment * alignment; }

// A kernel's parameters as its kernarg segment holds them: in order, each at its own alignment (the
// AMDGPU ABI; the code object metadata's .args offsets), as HIP copies them at a launch. Taken from
// the kernel's type, so a changed parameter list changes the image.
template <class Kernel>
struct KernelArgs;

template <class... Params>
struct KernelArgs<void(Params...)> {
  static constexpr size_t size() {
    size_t offset = 0;
    ((offset = align_up(offset, alignof(Params)) + sizeof(Params)), ...);
    return offset;
  }
  static void pack(uint8_t* image, Params... args) {
    std::memset(image, 0, size());
    size_t offset = 0;
    ((offset = align_up(offset, alignof(Params)), std::memcpy(image + offset, &args, sizeof(Params)),
      offset += sizeof(Params)),
     ...);
  }
};

// Both dtypes' kernels take the same parameters.
using SplitKReduceArgs = KernelArgs<decltype(w4a16::split_k_reduce_kernel<false>)>;
static_assert(std::is_same_v<decltype(w4a16::split_k_reduce_kernel<false>), decltype(w4a16::split_k_reduce_kernel<true>)>);
using GatherColumnsArgs = KernelArgs<decltype(w4a16::gather_columns_kernel<false>)>;
static_assert(std::is_same_v<decltype(w4a16::gather_columns_kernel<false>), decltype(w4a16::gather_columns_kernel<true>)>);

const char* tile_name(wmma::TileSize size) {
  switch (size) {
    case wmma::TileSize::kLarge:
      return "WmmaTileLarge";
    case wmma::TileSize::kMedium:
      return "WmmaTileMedium";
    case wmma::TileSize::kSmall:
      break;
  }
  return "WmmaTileSmall";
}

}  // namespace

// The constants of the launchers that the Python side needs to build the launches they make.
struct LaunchConstants {
  int64_t dot2_max_m;              // gemm takes the decode kernel up to this M (ops.cpp gemm)
  int64_t dot2_group_multiple;     // ... for group sizes of this multiple, or K
  int64_t dot2_max_rows;           // the largest decode row tile (dot2::kMaxRows)
  int64_t split_k_reduce_threads;  // block of split_k_reduce_kernel, one output each
  int64_t gather_threads, gather_rows_per_block, gather_k_per_block;  // gather_columns_kernel's grid
};

extern "C" void launch_constants(LaunchConstants* out) {
  *out = {w4a16::arch::kGemmDot2MaxM, dot2::kGroupMultiple, dot2::kMaxRows, w4a16::kSplitKReduceThreads,
          w4a16::kGatherThreads, w4a16::kGatherRowsPerBlock, w4a16::kGatherKPerBlock};
}

// --- decode (gemm_dot2.cu, gemm_dot2_plan.h) ---

extern "C" size_t dot2_args_size() { return sizeof(dot2::Dot2Args); }

// The Dot2Args of a call, as gemm_dot2_launch fills them and launch_planned completes them.
extern "C" void dot2_args(uint64_t a, uint64_t b_q, uint64_t scales, uint64_t zeros, uint64_t bias, uint64_t partial,
                          uint64_t out, int m, int k, int n, int group_size, int rows_per_split, int splits,
                          uint8_t* image) {
  dot2::Dot2Args args;
  std::memset(&args, 0, sizeof args);  // the padding too: the same bytes for the same call
  args.a = device_pointer<const uint16_t*>(a);
  args.b_q = device_pointer<const uint32_t*>(b_q);
  args.scales = device_pointer<const uint16_t*>(scales);
  args.zeros = device_pointer<const uint32_t*>(zeros);
  args.bias = device_pointer<const uint16_t*>(bias);
  args.partial = device_pointer<float*>(partial);
  args.out = device_pointer<uint16_t*>(out);
  args.m = m;
  args.k = k;
  args.n = n;
  args.group = GroupDivisor::of(group_size);
  args.rows_per_split = rows_per_split;
  args.splits = splits;
  std::memcpy(image, &args, sizeof args);
}

struct DecodePlan {
  int64_t rows;                       // the row tile (kRows)
  int64_t tile_warps, tile_min_warps;  // its block sizes: Tile<kRows>::kWarps down to kMinWarps
  int64_t cols_per_block;             // Tile<kRows>::kColsPerBlock
  int64_t warps, block_threads;       // the block size the plan took
  int64_t col_tiles, row_tiles, splits, rows_per_split;
  int64_t uses_workspace;             // split_meeting: the splits meet in the fp32 workspace
};

// The row tile and its block sizes for a call of M rows (the sizes the slots table must cover).
extern "C" void dot2_row_tile(int64_t m, DecodePlan* plan) {
  dot2::with_row_tile(m, [&](auto rows) {
    using Tile = dot2::Tile<decltype(rows)::value>;
    *plan = {};
    plan->rows = decltype(rows)::value;
    plan->tile_warps = Tile::kWarps;
    plan->tile_min_warps = Tile::kMinWarps;
    plan->cols_per_block = Tile::kColsPerBlock;
  });
}

// The decode launcher's plan (plan_for_device) with slots_of(warps) = slots[i] where
// slot_warps[i] == warps; with forced_splits > 0, that many K splits instead, as the decode tuner
// forces them (benchmarks/tune_dot2.cu). Returns 0, or a block size the table lacks.
extern "C" int64_t dot2_plan(int64_t m, int64_t n, int64_t k, int64_t sms, const int64_t* slot_warps,
                             const int64_t* slots, int64_t slot_entries, int64_t forced_splits, DecodePlan* plan) {
  int64_t missing = 0;
  const auto slots_of = [&](int64_t warps) -> int64_t {
    for (int64_t i = 0; i < slot_entries; ++i) {
      if (slot_warps[i] == warps) return slots[i];
    }
    missing = warps;
    return 1;
  };
  dot2::with_row_tile(m, [&](auto rows) {
    constexpr int kRows = decltype(rows)::value;
    dot2::Launch shape = dot2::plan_launch<kRows>(m, n, k, sms, slots_of);
    if (forced_splits > 0) {
      const int64_t rows_per_split = dot2::split_rows(k / 8, forced_splits, shape.warps);
      shape.plan = {w4a16::ceil_div(k / 8, rows_per_split), rows_per_split};
    }
    // The meeting does not depend on the dtype or zero points where there are no clusters.
    const dot2::SplitMeeting meeting = dot2::split_meeting<false, false, kRows>(shape);
    dot2_row_tile(m, plan);
    plan->warps = shape.warps;
    plan->block_threads = shape.warps * w4a16::arch::kWaveSize;
    plan->col_tiles = shape.col_tiles;
    plan->row_tiles = shape.row_tiles;
    plan->splits = shape.plan.splits;
    plan->rows_per_split = shape.plan.rows_per_split;
    plan->uses_workspace = meeting == dot2::SplitMeeting::kWorkspace;
  });
  return missing;
}

// --- prefill (gemm_wmma.cu, gemm_wmma_plan.h) ---

extern "C" size_t wmma_args_size() { return sizeof(w4a16::WmmaGemmArgs); }

// The WmmaGemmArgs of a call, as gemm_wmma_launch fills them and launch_planned completes them.
extern "C" void wmma_args(uint64_t a, uint64_t b_q, uint64_t scales, uint64_t zeros, uint64_t bias, uint64_t out,
                          uint64_t partial, int m, int n, int k, int k_per_split, int group_size, uint8_t* image) {
  w4a16::WmmaGemmArgs args;
  std::memset(&args, 0, sizeof args);
  args.a = device_pointer<const uint16_t*>(a);
  args.b_q = device_pointer<const uint32_t*>(b_q);
  args.scales = device_pointer<const uint16_t*>(scales);
  args.zeros = device_pointer<const uint32_t*>(zeros);
  args.bias = device_pointer<const uint16_t*>(bias);
  args.out = device_pointer<uint16_t*>(out);
  args.partial = device_pointer<float*>(partial);
  args.m = m;
  args.n = n;
  args.k = k;
  args.k_per_split = k_per_split;
  args.group = GroupDivisor::of(group_size);
  std::memcpy(image, &args, sizeof args);
}

struct PrefillPlan {
  const char* tile;  // its name in gemm_wmma_kernel.cuh: WmmaTileSmall, WmmaTileMedium, WmmaTileLarge
  int64_t bm, bn, bk, threads;
  int64_t col_tiles, row_tiles, splits, tiles_per_split;
};

// The prefill launcher's tile (choose_tile) and plan (plan_launch) for a call.
extern "C" void wmma_plan(int64_t m, int64_t n, int64_t k, int64_t sms, PrefillPlan* plan) {
  const wmma::TileSize size = wmma::choose_tile(m, n, sms);
  wmma::with_tile(size, [&](auto tile) {
    using Tile = typename decltype(tile)::type;
    const wmma::Launch shape = wmma::plan_launch<Tile>(m, n, k, sms);
    *plan = {tile_name(size), Tile::kBM, Tile::kBN, Tile::kBK, Tile::kThreads,
             shape.col_tiles, shape.row_tiles, shape.splits, shape.tiles_per_split};
  });
}

// --- the kernels both launchers share: the K-split reduction and the act-order gather ---

extern "C" size_t split_k_reduce_args_size() { return SplitKReduceArgs::size(); }

extern "C" void split_k_reduce_args(uint64_t partial, int splits, int m, int n, uint64_t bias, uint64_t out,
                                    uint8_t* image) {
  SplitKReduceArgs::pack(image, device_pointer<const float*>(partial), splits, m, n,
                         device_pointer<const uint16_t*>(bias), device_pointer<uint16_t*>(out));
}

extern "C" size_t gather_columns_args_size() { return GatherColumnsArgs::size(); }

extern "C" void gather_columns_args(uint64_t a, uint64_t perm, int m, int k, uint64_t gathered, uint8_t* image) {
  GatherColumnsArgs::pack(image, device_pointer<const uint16_t*>(a), device_pointer<const int32_t*>(perm), m, k,
                          device_pointer<uint16_t*>(gathered));
}
