// K splits that meet in a thread-block cluster (sm_90 and later; cuda.cuh takes this where every
// device pass has clusters). The blocks of one decode tile's K splits (grid y, up to 8: the portable
// cluster size) are launched as one cluster; each block sends its fp32 sums into the shared memory
// of the cluster's first block (rank 0, the split at y = 0), which adds them in split order once
// its arrival barrier (an mbarrier) has counted every send's bytes. No workspace and no second
// kernel, and the same additions in the same order as split_k_reduce_kernel.cuh: the same bits.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

namespace w4a16::arch {

struct ClusterSplitSums {
  static constexpr int kMaxClusterSplits = 8;

  // A block may write another's shared memory only once that block runs: each block says it has
  // started (without waiting) on entry, and waits for all the others before its first send. The
  // first block's thread 0 first sets its arrival barrier to expect `bytes` of sends.
  __device__ static void announce_start(uint32_t bytes) {
    if (rank() == 0 && threadIdx.x == 0) {
      const uint32_t barrier = shared_address(arrivals());
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(barrier) : "memory");
      asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(barrier), "r"(bytes) : "memory");
      asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
  }
  __device__ static void wait_all_started() { asm volatile("barrier.cluster.wait.aligned;" ::: "memory"); }

  // The block's inbox: the dynamic shared memory of a cluster launch (`launch` sizes it).
  __device__ static float* inbox() {
    extern __shared__ float cluster_inbox[];
    return cluster_inbox;
  }

  // v into slot `slot` of the first block's inbox, counted by its arrival barrier as it lands: no
  // cluster barrier (whose release fence is a GPU-wide MEMBAR on sm_90: SASS) and no wait in the
  // sender, which exits. Measured on an H100 (decode tuner, plan splits, same call, two rounds each,
  // against stores and a cluster barrier): M = 1 / 8 12.67-12.71 / 13.57-13.61 against 13.18-14.00 /
  // 14.10-14.32 us on (14336, 4096), 4 splits; M = 1 28.29-28.34 against 28.85-30.34 on
  // (5120, 27648), 2 splits; layers of one split the same within 0.1 us.
  __device__ static void send_to_first(int slot, float v) {
    const uint32_t remote = first_block_address(inbox() + slot);
    const uint32_t remote_barrier = first_block_address(arrivals());
    asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.f32 [%0], %1, [%2];" ::"r"(remote), "f"(v),
                 "r"(remote_barrier)
                 : "memory");
  }

  // In the first block: every block's sends have landed (all the bytes announce_start expects).
  __device__ static void wait_all_sent() {
    const uint32_t barrier = shared_address(arrivals());
    uint32_t done = 0;
    while (!done) {
      asm volatile(
          "{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], 0;\n\t"
          "selp.u32 %0, 1, 0, p;\n\t}"
          : "=r"(done)
          : "r"(barrier)
          : "memory");
    }
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
  __device__ static uint32_t rank() {
    uint32_t r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
  }
  __device__ static uint64_t* arrivals() {
    __shared__ uint64_t barrier;
    return &barrier;
  }
  __device__ static uint32_t shared_address(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
  // The same shared variable in the cluster's first block.
  __device__ static uint32_t first_block_address(const void* p) {
    uint32_t remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, 0;" : "=r"(remote) : "r"(shared_address(p)));
    return remote;
  }
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
