// torch -> gather_columns_kernel launch: the act-order gather ops.cpp runs before either kernel.
#include "gather_columns.h"

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>

#include "gather_columns_launch.h"

namespace w4a16 {

torch::Tensor gather_columns(const torch::Tensor& a, const torch::Tensor& perm) {
  torch::Tensor gathered = torch::empty_like(a);
  const auto* from = reinterpret_cast<const uint16_t*>(a.data_ptr());
  auto* into = reinterpret_cast<uint16_t*>(gathered.data_ptr());
  const int m = static_cast<int>(a.size(0)), k = static_cast<int>(a.size(1));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int32_t* const order = perm.data_ptr<int32_t>();
  C10_CUDA_CHECK(a.scalar_type() == torch::kBFloat16 ? launch_gather_columns<true>(from, order, m, k, into, stream)
                                                     : launch_gather_columns<false>(from, order, m, k, into, stream));
  return gathered;
}

}  // namespace w4a16
