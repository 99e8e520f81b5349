// K splits that meet in a thread-block cluster (sm_90 and later; cuda.cuh takes this where every
// device pass has clusters). The blocks of one decode tile's K splits (grid y, up to 8: the portable
// cluster size) are launched as one cluster; each block sends its fp32 sums into the shared memory
// of the cluster's first block (rank 0, the split at y = 0), which adds them in split order once
// every send has landed. No workspace and no second kernel, and the same additions in the same order
// as split_k_reduce_kernel.cuh: the same bits.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

namespace w4a16::arch {

struct ClusterSplitSums {
  static constexpr int kMaxClusterSplits = 8;

  // A block may write another's shared memory only once that block runs: each block says it has
  // started (without waiting) on entry, and waits for all the others before its first send.
  __device__ static void announce_start() { asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory"); }
  __device__ static void wait_all_started() { asm volatile("barrier.cluster.wait.aligned;" ::: "memory"); }

  // The block's inbox: the dynamic shared memory of a cluster launch (`launch` sizes it).
  __device__ static float* inbox() {
    extern __shared__ float cluster_inbox[];
    return cluster_inbox;
  }

  // v into slot `slot` of the first block's inbox.
  __device__ static void send_to_first(int slot, float v) {
    const uint32_t local = static_cast<uint32_t>(__cvta_generic_to_shared(inbox() + slot));
    uint32_t remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, 0;" : "=r"(remote) : "r"(local));
    asm volatile("st.shared::cluster.f32 [%0], %1;" ::"r"(remote), "f"(v) : "memory");
  }

  // Every block's sends have landed and are visible to the first block.
  __device__ static void sync() {
    asm volatile(
        "barrier.cluster.arrive.release.aligned;\n\t"
        "barrier.cluster.wait.acquire.aligned;" ::: "memory");
  }

  // Launches `kernel` with the grid's K splits (all of grid.y) as one cluster per (x, z), each block
  // with an inbox of `inbox_bytes`.
  template <class... Params, class... Args>
  static cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t inbox_bytes, cudaStream_t stream,
                            Args... args) {
    Config config(grid, block, inbox_bytes, stream);
    return cudaLaunchKernelEx(&config.config, kernel, args...);
  }

  // Clusters of `splits` blocks of `kernel` the device holds at once (0 if it cannot say; the error
  // is cleared, so that the launch check after it does not report it).
  template <class... Params>
  static int max_active_clusters(void (*kernel)(Params...), int splits, dim3 block, size_t inbox_bytes) {
    Config config(dim3(1, splits, 1), block, inbox_bytes, nullptr);
    int clusters = 0;
    if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config.config) == cudaSuccess) return clusters;
    cudaGetLastError();
    return 0;
  }

 private:
  // Clusters along grid y, placed for load balance: Hopper's default spread placement held 62
  // clusters of 4 two-per-SM 16-warp blocks on an H200, load balancing 66, so 64 tiles of 4 K splits
  // took a second wave (decode tuner, M = 1 on (14336, 4096): 17.0 against 11.8 us).
  struct Config {
    cudaLaunchAttribute attrs[2];
    cudaLaunchConfig_t config;
    Config(dim3 grid, dim3 block, size_t inbox_bytes, cudaStream_t stream) : attrs{}, config{} {
      attrs[0].id = cudaLaunchAttributeClusterDimension;
      attrs[0].val.clusterDim.x = 1;
      attrs[0].val.clusterDim.y = grid.y;
      attrs[0].val.clusterDim.z = 1;
      attrs[1].id = cudaLaunchAttributeClusterSchedulingPolicyPreference;
      attrs[1].val.clusterSchedulingPolicyPreference = cudaClusterSchedulingPolicyLoadBalancing;
      config.gridDim = grid;
      config.blockDim = block;
      config.dynamicSmemBytes = inbox_bytes;
      config.stream = stream;
      config.attrs = attrs;
      config.numAttrs = 2;
    }
    Config(const Config&) = delete;  // config.attrs points into this object
  };
};

}  // namespace w4a16::arch
