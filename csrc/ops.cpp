// The op schema, argument checks and dispatch of the native extension (one per build: the
// namespace comes from W4A16_OPS_NAMESPACE). Every check names the argument the way
// w4a16_rdna3/checks.py does; a call that passes them cannot make a kernel read out of bounds.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <optional>
#include <string>

#include "gather_columns.h"
#include "gemm_dot2.h"
#include "gemm_wmma.h"

namespace w4a16 {
namespace {

using OptTensor = std::optional<torch::Tensor>;

constexpr int64_t kPack = 8;  // 4-bit values per int32

// Integers reach the messages as strings made here: on the H100 build (torch 2.11), streaming an
// int64_t into a TORCH_CHECK message from this module crashed the process (seen twice, cause not
// found), while strings, devices and dtypes streamed fine.
std::string num(int64_t value) { return std::to_string(value); }

// "[d0, d1, ...]", as Python prints a shape.
std::string list_str(c10::IntArrayRef values) {
  std::string s = "[";
  for (size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + num(values[i]);
  return s + "]";
}
std::string shape_str(const torch::Tensor& t) { return list_str(t.sizes()); }
std::string strides_str(const torch::Tensor& t) { return list_str(t.strides()); }

void check_placement(const char* name, const torch::Tensor& t, const torch::Tensor& a) {
  TORCH_CHECK(t.device() == a.device(), name, ": expected device ", a.device(), " (same as a), got ", t.device());
  TORCH_CHECK(t.is_contiguous(), name, ": expected a contiguous tensor, got strides ", strides_str(t), " for shape ",
              shape_str(t));
}

void check_gemm_args(const torch::Tensor& a, const torch::Tensor& b_q, const torch::Tensor& scales,
                     const OptTensor& zeros, const OptTensor& perm, const OptTensor& bias) {
  TORCH_CHECK(a.is_cuda(), "a: expected a tensor on a GPU device, got device ", a.device());
  TORCH_CHECK(a.scalar_type() == torch::kHalf || a.scalar_type() == torch::kBFloat16,
              "a: expected dtype torch.float16 or torch.bfloat16, got ", a.scalar_type());
  TORCH_CHECK(a.dim() == 2, "a: expected a 2-D tensor [M, K] (flatten leading dimensions first), got shape ",
              shape_str(a));
  const int64_t k = a.size(1);
  TORCH_CHECK(k > 0 && k % kPack == 0, "a: expected K = a.shape[1] a positive multiple of 8, got K = ", num(k));
  TORCH_CHECK(a.is_contiguous(), "a: expected a contiguous tensor, got strides ", strides_str(a), " for shape ",
              shape_str(a));

  TORCH_CHECK(b_q.scalar_type() == torch::kInt, "b_q: expected dtype torch.int32, got ", b_q.scalar_type());
  TORCH_CHECK(b_q.dim() == 2, "b_q: expected a 2-D tensor [K/8, N], got shape ", shape_str(b_q));
  TORCH_CHECK(b_q.size(0) == k / kPack, "b_q: expected shape [K/8, N] = [", num(k / kPack), ", N] (K = ", num(k),
              " from a), got shape ", shape_str(b_q));
  const int64_t n = b_q.size(1);
  TORCH_CHECK(n > 0 && n % kPack == 0, "b_q: expected N = b_q.shape[1] a positive multiple of 8, got N = ", num(n));
  // The decode kernel's b_q pitch (4 N bytes) is 32-bit, as are the Triton fallback's row offsets
  // (row x N): one bound, shared with w4a16_rdna3/checks.py, for both (an 8 GiB layer).
  TORCH_CHECK(k / kPack * n < (int64_t{1} << 31),
              "b_q: expected fewer than 2^31 words K/8 x N (32-bit row offsets), got ", num(k / kPack), " x ", num(n),
              " = ", num(k / kPack * n));
  check_placement("b_q", b_q, a);

  TORCH_CHECK(scales.scalar_type() == a.scalar_type(), "scales: expected dtype ", a.scalar_type(),
              " (same as a), got ", scales.scalar_type());
  TORCH_CHECK(scales.dim() == 2 && scales.size(1) == n, "scales: expected a 2-D tensor [K/G, N] with N = ", num(n),
              ", got shape ", shape_str(scales));
  const int64_t groups = scales.size(0);
  TORCH_CHECK(groups > 0 && k % groups == 0, "scales: expected a number of rows K/G that divides K = ", num(k), ", got ",
              num(groups), " rows");
  TORCH_CHECK((k / groups) % kPack == 0, "scales: expected group size G = K / scales.shape[0] a multiple of 8, got G = ",
              num(k), " / ", num(groups), " = ", num(k / groups));
  check_placement("scales", scales, a);

  if (zeros) {
    TORCH_CHECK(zeros->scalar_type() == torch::kInt, "zeros: expected dtype torch.int32, got ", zeros->scalar_type());
    TORCH_CHECK(zeros->dim() == 2 && zeros->size(0) == groups && zeros->size(1) == n / kPack,
                "zeros: expected shape [K/G, N/8] = [", num(groups), ", ", num(n / kPack), "], got ", shape_str(*zeros));
    check_placement("zeros", *zeros, a);
  }
  if (perm) {
    // perm's values are not read here (that would be a device sync per call): the act-order gather
    // turns an entry outside [0, K) into NaN columns, never an out-of-bounds read, and does not see a
    // repeated entry. w4a16_rdna3.gemm checks them where perm is on the CPU.
    TORCH_CHECK(perm->scalar_type() == torch::kInt, "perm: expected dtype torch.int32, got ", perm->scalar_type());
    TORCH_CHECK(perm->dim() == 1 && perm->size(0) == k, "perm: expected shape [K] = [", num(k), "], got ", shape_str(*perm));
    check_placement("perm", *perm, a);
  }
  if (bias) {
    TORCH_CHECK(bias->scalar_type() == a.scalar_type(), "bias: expected dtype ", a.scalar_type(), " (same as a), got ",
                bias->scalar_type());
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == n, "bias: expected shape [N] = [", num(n), "], got ", shape_str(*bias));
    check_placement("bias", *bias, a);
  }
  // N is below 2^31 by the b_q bound above.
  TORCH_CHECK(a.size(0) <= INT32_MAX, "a: expected M = a.shape[0] below 2^31 (32-bit kernel indices), got M = ",
              num(a.size(0)));
  TORCH_CHECK(k <= gemm_wmma_max_k(), "a: expected K = a.shape[1] at most ", num(gemm_wmma_max_k()),
              " (the prefill kernel addresses a tile's rows of a by 32-bit byte offsets), got K = ", num(k));
}

using Launcher = void (*)(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const OptTensor&,
                          const OptTensor&, torch::Tensor&);

// The kernels read a, b_q and perm 16 bytes at a time and scales 8 bytes at a time; a tensor that
// is a view at an odd offset is copied once to an aligned buffer (fresh tensors never are). The
// act-order gather reads `a` 2 bytes at a time and writes a fresh tensor: `a` is not copied there.
torch::Tensor aligned(const torch::Tensor& t, uintptr_t alignment) {
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % alignment == 0 ? t : t.clone();
}

// Checks the arguments, then runs the kernel that pick(a, k, group size) returns (it may refuse
// the call with its own check). Act-order: a[:, perm] is gathered once into the weights' K order
// (gather_columns.h) and the kernels run as for a symmetric layer. Gathering inside the kernels,
// every column block for itself, took 3.6-9.1x the symmetric time in the WMMA tiles and up to
// 4.3x in the decode kernel (M = 16) on an H200 (README, "Act-order").
template <class Pick>
torch::Tensor run(Pick pick, const torch::Tensor& a, const torch::Tensor& b_q, const torch::Tensor& scales,
                  const OptTensor& zeros, const OptTensor& perm, const OptTensor& bias) {
  check_gemm_args(a, b_q, scales, zeros, perm, bias);
  const Launcher launch = pick(a, a.size(1), a.size(1) / scales.size(0));
  const c10::cuda::CUDAGuard guard(a.device());
  torch::Tensor out = torch::empty({a.size(0), b_q.size(1)}, a.options());
  if (a.size(0) == 0) return out;
  const torch::Tensor a_in_k_order = perm ? gather_columns(a, aligned(*perm, 16)) : aligned(a, 16);
  launch(a_in_k_order, aligned(b_q, 16), aligned(scales, 8), zeros, bias, out);
  return out;
}

bool dot2_takes_group(int64_t k, int64_t group) { return group == k || group % gemm_dot2_group_multiple() == 0; }

torch::Tensor gemm_dot2(const torch::Tensor& a, const torch::Tensor& b_q, const torch::Tensor& scales,
                        const OptTensor& zeros, const OptTensor& perm, const OptTensor& bias) {
  const auto pick = [](const torch::Tensor&, int64_t k, int64_t group) -> Launcher {
    TORCH_CHECK(dot2_takes_group(k, group), "scales: gemm_dot2 of this build expects a group size G = K / "
                "scales.shape[0] that is a multiple of ", num(gemm_dot2_group_multiple()), " or K itself, got G = ",
                num(group), " (gemm takes the WMMA kernel for it)");
    return gemm_dot2_launch;
  };
  return run(pick, a, b_q, scales, zeros, perm, bias);
}

torch::Tensor gemm_wmma(const torch::Tensor& a, const torch::Tensor& b_q, const torch::Tensor& scales,
                        const OptTensor& zeros, const OptTensor& perm, const OptTensor& bias) {
  const auto pick = [](const torch::Tensor&, int64_t, int64_t) -> Launcher { return gemm_wmma_launch; };
  return run(pick, a, b_q, scales, zeros, perm, bias);
}

// The M-dependent choice lives here, inside the op, so that a graph compiled at one M still picks
// the right kernel at another (DESIGN.md). The threshold is per backend (csrc/arch/); a group size
// the decode kernel cannot take goes to the WMMA kernel at every M.
torch::Tensor gemm(const torch::Tensor& a, const torch::Tensor& b_q, const torch::Tensor& scales,
                   const OptTensor& zeros, const OptTensor& perm, const OptTensor& bias) {
  const auto pick = [](const torch::Tensor& a, int64_t k, int64_t group) -> Launcher {
    const bool decode = a.size(0) <= gemm_dot2_max_m() && dot2_takes_group(k, group);
    return decode ? gemm_dot2_launch : gemm_wmma_launch;
  };
  return run(pick, a, b_q, scales, zeros, perm, bias);
}

}  // namespace
}  // namespace w4a16

// TORCH_LIBRARY pastes and stringifies its namespace argument: one level of indirection lets the
// W4A16_OPS_NAMESPACE definition expand first.
#define W4A16_TORCH_LIBRARY(ns, m) TORCH_LIBRARY(ns, m)
#define W4A16_TORCH_LIBRARY_IMPL(ns, key, m) TORCH_LIBRARY_IMPL(ns, key, m)

W4A16_TORCH_LIBRARY(W4A16_OPS_NAMESPACE, m) {
#define W4A16_GEMM_ARGS "(Tensor a, Tensor b_q, Tensor scales, Tensor? zeros, Tensor? perm, Tensor? bias) -> Tensor"
  m.def("gemm" W4A16_GEMM_ARGS);
  m.def("gemm_dot2" W4A16_GEMM_ARGS);
  m.def("gemm_wmma" W4A16_GEMM_ARGS);
#undef W4A16_GEMM_ARGS
}

W4A16_TORCH_LIBRARY_IMPL(W4A16_OPS_NAMESPACE, CUDA, m) {
  m.impl("gemm", &w4a16::gemm);
  m.impl("gemm_dot2", &w4a16::gemm_dot2);
  m.impl("gemm_wmma", &w4a16::gemm_wmma);
}
