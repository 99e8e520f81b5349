// Deliberately wrong kernels: the ISA check must reject both (tests/test_isa.py).
#pragma once

#include <hip/hip_runtime.h>

// Named like a WMMA kernel, but multiplies a 16x16 tile with plain fp32 FMAs: no v_wmma.
__global__ void gemm_wmma_fp32_fixture_kernel(const float* a, const float* b, float* c, int k) {
  const int row = threadIdx.y, col = threadIdx.x;
  float acc = 0.0f;
  for (int i = 0; i < k; ++i) acc = fmaf(a[row * k + i], b[i * 16 + col], acc);
  c[row * 16 + col] = acc;
}

// Named like a decode kernel, but sums through a per-thread array indexed at run time, which
// the compiler places in scratch memory, and never uses dot2.
__global__ void gemm_dot2_scratch_fixture_kernel(const float* a, const int* index, float* out) {
  float buffer[64];
  for (int i = 0; i < 64; ++i) buffer[i] = a[threadIdx.x * 64 + i];
  out[threadIdx.x] = buffer[index[threadIdx.x] & 63];
}
