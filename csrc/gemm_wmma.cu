// Prefill launcher: takes the block tile the plan picks from the arch's table by M (gemm_wmma_plan.h,
// choose_tile), allocates the split-K workspace where the plan splits K, and launches the kernel
// instantiation for (dtype, zeros or symmetric).
#include "gemm_wmma.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "gemm_wmma_kernel.cuh"
#include "gemm_wmma_plan.h"

namespace w4a16 {
namespace {

template <class Tile, bool kBf16, bool kHasZeros>
void launch_tile(WmmaGemmArgs p, const torch::Tensor& a, int64_t sms, cudaStream_t stream) {
  const wmma::Launch shape = wmma::plan_launch<Tile>(p.m, p.n, p.k, sms);
  TORCH_CHECK(shape.row_tiles <= 65535, "gemm_wmma: M = ", std::to_string(p.m), " needs more than 65535 row blocks");
  torch::Tensor workspace;
  if (shape.splits > 1) {
    workspace = torch::empty({shape.splits, p.m, p.n}, a.options().dtype(torch::kFloat));
    p.partial = workspace.data_ptr<float>();
  }
  C10_CUDA_CHECK((wmma::launch_planned<Tile, kBf16, kHasZeros>(p, shape, stream)));
}

template <class Tile, bool kBf16>
void launch_flags(const WmmaGemmArgs& p, const torch::Tensor& a, int64_t sms, cudaStream_t stream) {
  if (p.zeros != nullptr) return launch_tile<Tile, kBf16, true>(p, a, sms, stream);
  return launch_tile<Tile, kBf16, false>(p, a, sms, stream);
}

template <class Tile>
void launch_variant(const WmmaGemmArgs& p, const torch::Tensor& a, int64_t sms, cudaStream_t stream) {
  if (a.scalar_type() == at::kBFloat16) return launch_flags<Tile, true>(p, a, sms, stream);
  return launch_flags<Tile, false>(p, a, sms, stream);
}

}  // namespace

int64_t gemm_wmma_max_k() {
  // std::max<int64_t>, not std::max: the ROCm build's hipify rewrites every `std::max(` to HIP's
  // two-argument ::max, which takes no list and is not constexpr.
  constexpr int64_t kTallest = std::max<int64_t>({WmmaTileLarge::kBM, WmmaTileMedium::kBM, WmmaTileSmall::kBM});
  return (int64_t{1} << 31) / kTallest;
}

void gemm_wmma_launch(const torch::Tensor& a, const torch::Tensor& b_q, const torch::Tensor& scales,
                      const std::optional<torch::Tensor>& zeros, const std::optional<torch::Tensor>& bias,
                      torch::Tensor& out) {
  const int64_t m = a.size(0), k = a.size(1), n = b_q.size(1);
  if (m == 0 || n == 0) return;
  TORCH_CHECK(reinterpret_cast<uintptr_t>(out.data_ptr()) % 16 == 0, "gemm_wmma: out must be 16-byte aligned");

  WmmaGemmArgs p;
  p.a = reinterpret_cast<const uint16_t*>(a.data_ptr());
  p.b_q = reinterpret_cast<const uint32_t*>(b_q.data_ptr());
  p.scales = reinterpret_cast<const uint16_t*>(scales.data_ptr());
  p.zeros = zeros ? reinterpret_cast<const uint32_t*>(zeros->data_ptr()) : nullptr;
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
  wmma::with_tile(wmma::choose_tile(m, n, sms),
                  [&](auto tile) { launch_variant<typename decltype(tile)::type>(p, a, sms, stream); });
}

}  // namespace w4a16
