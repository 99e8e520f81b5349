// Prefill launcher: picks a block tile from the arch's table (gemm_wmma_kernel.cuh) by M and launches
// the kernel instantiation for (dtype, zeros or symmetric, act-order or not).
#include "gemm_wmma.h"

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include "gemm_wmma_kernel.cuh"

namespace w4a16 {
namespace {

template <class Tile, bool kBf16, bool kHasZeros, bool kHasPerm>
void launch_tile(const WmmaGemmArgs& p, cudaStream_t stream) {
  const dim3 grid((p.n + Tile::kBN - 1) / Tile::kBN, (p.m + Tile::kBM - 1) / Tile::kBM);
  TORCH_CHECK(grid.y <= 65535u, "gemm_wmma: M = ", std::to_string(p.m), " needs more than 65535 row blocks");
  const auto kernel = gemm_wmma_kernel<Tile, kBf16, kHasZeros, kHasPerm>;
  int lds_bytes = 0;
  if constexpr (Tile::Lds::kDynamicLds) {
    // Past 48 KiB a kernel must opt in to dynamic LDS (cheap, and allowed while a graph is captured).
    lds_bytes = Tile::kLdsBytes;
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, lds_bytes));
  }
  kernel<<<grid, Tile::kThreads, lds_bytes, stream>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <class Tile>
void launch_variant(const WmmaGemmArgs& p, bool bf16, cudaStream_t stream) {
  const bool zeros = p.zeros != nullptr, perm = p.perm != nullptr;
  if (bf16) {
    if (zeros) {
      perm ? launch_tile<Tile, true, true, true>(p, stream) : launch_tile<Tile, true, true, false>(p, stream);
    } else {
      perm ? launch_tile<Tile, true, false, true>(p, stream) : launch_tile<Tile, true, false, false>(p, stream);
    }
  } else {
    if (zeros) {
      perm ? launch_tile<Tile, false, true, true>(p, stream) : launch_tile<Tile, false, true, false>(p, stream);
    } else {
      perm ? launch_tile<Tile, false, false, true>(p, stream) : launch_tile<Tile, false, false, false>(p, stream);
    }
  }
}

template <class Tile>
int64_t blocks_of(int64_t m, int64_t n) {
  return ((m + Tile::kBM - 1) / Tile::kBM) * ((n + Tile::kBN - 1) / Tile::kBN);
}

int multiprocessor_count(int device) {
  int count = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
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
  p.m = static_cast<int>(m);
  p.n = static_cast<int>(n);
  p.k = static_cast<int>(k);
  p.group = GroupDivisor::of(static_cast<int>(k / scales.size(0)));

  const bool bf16 = a.scalar_type() == at::kBFloat16;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t sms = multiprocessor_count(a.get_device());
  // Large tiles reuse each loaded value most; with fragments they only pay once they give every
  // CU/SM a block, with wgmma from M = 128 on (the arch's table says which).
  if (m >= 128 && (kWmmaLargeWithFewBlocks || blocks_of<WmmaTileLarge>(m, n) >= sms)) {
    launch_variant<WmmaTileLarge>(p, bf16, stream);
  } else if (m > 32) {
    launch_variant<WmmaTileMedium>(p, bf16, stream);
  } else {
    launch_variant<WmmaTileSmall>(p, bf16, stream);
  }
}

}  // namespace w4a16
