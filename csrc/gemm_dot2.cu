// torch -> gemm_dot2_kernel launch: row tile, K split sized to fill the device, fp32 workspace.
#include "gemm_dot2.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

#include <cstdint>

#include "gemm_dot2_kernel.cuh"
#include "gemm_dot2_plan.h"

namespace w4a16 {
namespace {

template <bool kBf16, bool kHasZeros, int kRows>
void launch(dot2::Dot2Args args, const torch::Tensor& a) {
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const dot2::Launch shape = dot2::plan_for_device<kBf16, kHasZeros, kRows>(args.m, args.n, args.k, sms);
  const dot2::SplitMeeting meeting = dot2::split_meeting<kBf16, kHasZeros, kRows>(shape);
  torch::Tensor workspace;
  if (meeting == dot2::SplitMeeting::kWorkspace) {
    workspace = torch::empty({shape.plan.splits, args.m, args.n}, a.options().dtype(torch::kFloat));
    args.partial = workspace.data_ptr<float>();
  }
  C10_CUDA_CHECK((dot2::launch_planned<kBf16, kHasZeros, kRows>(args, shape, meeting,
                                                               at::cuda::getCurrentCUDAStream())));
}

template <bool kBf16, bool kHasZeros>
void launch_rows(const dot2::Dot2Args& args, const torch::Tensor& a) {
  dot2::with_row_tile(args.m, [&](auto rows) { launch<kBf16, kHasZeros, decltype(rows)::value>(args, a); });
}

template <bool kBf16>
void launch_flags(const dot2::Dot2Args& args, const torch::Tensor& a) {
  if (args.zeros != nullptr) return launch_rows<kBf16, true>(args, a);
  return launch_rows<kBf16, false>(args, a);
}

}  // namespace

void gemm_dot2_launch(const torch::Tensor& a, const torch::Tensor& b_q, const torch::Tensor& scales,
                      const std::optional<torch::Tensor>& zeros, const std::optional<torch::Tensor>& bias,
                      torch::Tensor& out) {
  if (a.size(0) == 0) return;
  dot2::Dot2Args args{};
  args.a = reinterpret_cast<const uint16_t*>(a.data_ptr());
  args.b_q = reinterpret_cast<const uint32_t*>(b_q.data_ptr());
  args.scales = reinterpret_cast<const uint16_t*>(scales.data_ptr());
  args.zeros = zeros ? reinterpret_cast<const uint32_t*>(zeros->data_ptr()) : nullptr;
  args.bias = bias ? reinterpret_cast<const uint16_t*>(bias->data_ptr()) : nullptr;
  args.out = reinterpret_cast<uint16_t*>(out.data_ptr());
  args.m = static_cast<int>(a.size(0));
  args.k = static_cast<int>(a.size(1));
  args.n = static_cast<int>(b_q.size(1));
  args.group = GroupDivisor::of(static_cast<int>(a.size(1) / scales.size(0)));
  if (a.scalar_type() == torch::kBFloat16) {
    launch_flags<true>(args, a);
  } else {
    launch_flags<false>(args, a);
  }
}

int64_t gemm_dot2_max_m() { return arch::kGemmDot2MaxM; }

int64_t gemm_dot2_group_multiple() { return dot2::kGroupMultiple; }

}  // namespace w4a16
