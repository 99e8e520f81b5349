// Prefill launcher: picks a block tile from the arch's table (gemm_wmma_kernel.cuh) by M, splits K
// where the tiles alone leave CUs/SMs idle, and launches the kernel instantiation for (dtype, zeros
// or symmetric, act-order or not).
#include "gemm_wmma.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>

#include "gemm_wmma_kernel.cuh"
#include "split_k_reduce_kernel.cuh"

namespace w4a16 {
namespace {

int64_t ceil_div(int64_t x, int64_t y) { return (x + y - 1) / y; }

// K tiles a split takes at least: each split loads its first tile with nothing to overlap it, and
// adds M x N fp32 partial sums to write and read back.
constexpr int64_t kMinKTilesPerSplit = 8;
// Weight columns whose K loops a CU/SM should have at work: one block of 128-column tiles, two of
// 64-column tiles.
constexpr int64_t kColumnsPerSm = 128;

// K splits for a grid of `blocks` output tiles of `tile_cols` columns on `sms` CUs/SMs. Every step of
// the K loop waits on the global loads of the next K tile, so a CU/SM with too few blocks leaves
// that latency unhidden: splitting K gives it more. The fewest splits that give every CU/SM
// kColumnsPerSm columns, rounded up to a power of two. Measured on an H200 (wgmma tiles, fp16,
// forced splits 1-16 on (4096, 14336), (14336, 4096), (5120, 27648) and (4096, 4096), M = 16..1024;
// README): within 1.12x of the best count with the large tile (M >= 128), 1.24x with the medium
// and 1.27x with the small one (M = 16..128), one K tile in flight; with two, the best count for the
// medium tile at M = 64 on all four. Filling every resident block slot instead lost by up to 1.5x;
// (14336, 4096) at M = 256 took 98.5 against 223.0 us unsplit.
int64_t plan_splits(int64_t blocks, int64_t tile_cols, int64_t sms, int64_t k_tiles) {
  const int64_t wanted = sms * std::max<int64_t>(1, kColumnsPerSm / tile_cols);
  int64_t splits = 1;
  while (splits * blocks < wanted) splits *= 2;
  return std::max<int64_t>(1, std::min(splits, k_tiles / kMinKTilesPerSplit));
}

template <class Tile, bool kBf16, bool kHasZeros, bool kHasPerm>
void launch_tile(WmmaGemmArgs p, const torch::Tensor& a, int64_t sms, cudaStream_t stream) {
  const auto kernel = gemm_wmma_kernel<Tile, kBf16, kHasZeros, kHasPerm>;
  int lds_bytes = 0;
  if constexpr (Tile::Lds::kDynamicLds) {
    // Past 48 KiB a kernel must opt in to dynamic LDS (cheap, and allowed while a graph is captured).
    lds_bytes = Tile::kLdsBytes;
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, lds_bytes));
  }
  const int64_t col_tiles = ceil_div(p.n, Tile::kBN), row_tiles = ceil_div(p.m, Tile::kBM);
  TORCH_CHECK(row_tiles <= 65535, "gemm_wmma: M = ", std::to_string(p.m), " needs more than 65535 row blocks");
  const int64_t k_tiles = ceil_div(p.k, Tile::kBK);
  const int64_t tiles_per_split = ceil_div(k_tiles, plan_splits(col_tiles * row_tiles, Tile::kBN, sms, k_tiles));
  const int64_t splits = ceil_div(k_tiles, tiles_per_split);
  p.k_per_split = static_cast<int>(tiles_per_split * Tile::kBK);
  torch::Tensor workspace;
  if (splits > 1) {
    workspace = torch::empty({splits, p.m, p.n}, a.options().dtype(torch::kFloat));
    p.partial = workspace.data_ptr<float>();
  }
  const dim3 grid(static_cast<unsigned>(col_tiles), static_cast<unsigned>(row_tiles), static_cast<unsigned>(splits));
  kernel<<<grid, Tile::kThreads, lds_bytes, stream>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (splits > 1) {
    split_k_reduce_kernel<kBf16><<<split_k_reduce_blocks(p.m, p.n), kSplitKReduceThreads, 0, stream>>>(
        p.partial, static_cast<int>(splits), p.m, p.n, p.bias, p.out);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

template <class Tile, bool kBf16>
void launch_flags(const WmmaGemmArgs& p, const torch::Tensor& a, int64_t sms, cudaStream_t stream) {
  const bool zeros = p.zeros != nullptr, perm = p.perm != nullptr;
  if (zeros && perm) return launch_tile<Tile, kBf16, true, true>(p, a, sms, stream);
  if (zeros) return launch_tile<Tile, kBf16, true, false>(p, a, sms, stream);
  if (perm) return launch_tile<Tile, kBf16, false, true>(p, a, sms, stream);
  return launch_tile<Tile, kBf16, false, false>(p, a, sms, stream);
}

template <class Tile>
void launch_variant(const WmmaGemmArgs& p, const torch::Tensor& a, int64_t sms, cudaStream_t stream) {
  if (a.scalar_type() == at::kBFloat16) return launch_flags<Tile, true>(p, a, sms, stream);
  return launch_flags<Tile, false>(p, a, sms, stream);
}

template <class Tile>
int64_t blocks_of(int64_t m, int64_t n) {
  return ceil_div(m, Tile::kBM) * ceil_div(n, Tile::kBN);
}

}  // namespace

void gemm_wmma_launch(const torch::Tensor& a, const torch::Tensor& b_q, const torch::Tensor& scales,
                      const std::optional<torch::Tensor>& zeros, const std::optional<torch::Tensor>& perm,
                      const std::optional<torch::Tensor>& bias, torch::Tensor& out) {
  const int64_t m = a.size(0), k = a.size(1), n = b_q.size(1);
  if (m == 0 || n == 0) return;
  TORCH_CHECK(reinterpret_cast<uintptr_t>(out.data_ptr()) % 16 == 0, "gemm_wmma: out must be 16-byte aligned");

  WmmaGemmArgs p;
  p.a = reinterpret_cast<const uint16_t*>(a.data_ptr());
  p.b_q = reinterpret_cast<const uint32_t*>(b_q.data_ptr());
  p.scales = reinterpret_cast<const uint16_t*>(scales.data_ptr());
  p.zeros = zeros ? reinterpret_cast<const uint32_t*>(zeros->data_ptr()) : nullptr;
  p.perm = perm ? perm->data_ptr<int32_t>() : nullptr;
  p.bias = bias ? reinterpret_cast<const uint16_t*>(bias->data_ptr()) : nullptr;
  p.out = reinterpret_cast<uint16_t*>(out.data_ptr());
  p.partial = nullptr;
  p.m = static_cast<int>(m);
  p.n = static_cast<int>(n);
  p.k = static_cast<int>(k);
  p.group = GroupDivisor::of(static_cast<int>(k / scales.size(0)));

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  // The op's device guard makes a's device the current one; ATen caches its properties.
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  // Large tiles reuse each loaded value most; with fragments they only pay once they give every
  // CU/SM a block, with wgmma from M = 128 on (the arch's table says which).
  if (m >= 128 && (kWmmaLargeWithFewBlocks || blocks_of<WmmaTileLarge>(m, n) >= sms)) {
    launch_variant<WmmaTileLarge>(p, a, sms, stream);
  } else if (m > 32) {
    launch_variant<WmmaTileMedium>(p, a, sms, stream);
  } else {
    launch_variant<WmmaTileSmall>(p, a, sms, stream);
  }
}

}  // namespace w4a16
