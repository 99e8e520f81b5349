// A deliberately wrong host source: the host-code check must reject it (tests/test_isa.py). It asks
// the cluster occupancy outside an sm_90-only guard; hipify has no HIP name for that call and HIP
// has no such function, so its translation does not compile.
#include <cuda_runtime.h>

int cluster_query_fixture() {
  int clusters = 0;
  return cudaOccupancyMaxActiveClusters(&clusters, nullptr, nullptr) == cudaSuccess ? clusters : 0;
}
