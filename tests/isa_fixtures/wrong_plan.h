// A deliberately wrong launch plan: the host-code check must reject it (tests/test_isa.py). It asks
// the cluster occupancy outside an sm_90-only guard; hipify has no HIP name for that call and HIP
// has no such function, so the hipified host code does not compile.
#pragma once

#include <cuda_runtime.h>

template <int kClusterBlocks>
int wrong_plan_fixture_clusters() {
  int clusters = 0;
  return cudaOccupancyMaxActiveClusters(&clusters, nullptr, nullptr) == cudaSuccess ? clusters : kClusterBlocks;
}
