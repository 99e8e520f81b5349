// Deliberately slow loops: the ISA check's loop checks must reject all four (tests/test_isa.py).
#pragma once

#include <hip/hip_runtime.h>

typedef _Float16 Half16 __attribute__((ext_vector_type(16)));
typedef float Float8 __attribute__((ext_vector_type(8)));

// A WMMA main loop that loads its operands from global memory and multiplies them at once (no
// load in flight under the multiply), with a divergent `if` inside (an exec-mask branch: a load
// that only some lanes may make cannot become a select).
__global__ void gemm_wmma_unbuffered_fixture_kernel(const Half16* a, const Half16* b, const int* zeroed, Float8* c,
                                                    int k_tiles) {
  Float8 acc = {};
  for (int kt = 0; kt < k_tiles; ++kt) {
    Half16 a_frag = a[kt * 32 + threadIdx.x];
    if (threadIdx.x % 3 == 0 && zeroed[kt] != 0) a_frag = Half16{};
    acc = __builtin_amdgcn_wmma_f32_16x16x16_f16_w32(a_frag, b[kt * 32 + threadIdx.x], acc);
  }
  c[threadIdx.x] = acc;
}

// A WMMA main loop whose loads address through a pointer of each lane's own (read from memory, so
// the compiler cannot split it into a scalar base and an offset): every load a 64-bit VGPR address.
__global__ void gemm_wmma_lane_pointer_fixture_kernel(const Half16* const* a_rows, const Half16* b, Float8* c,
                                                      int k_tiles, int pitch) {
  const Half16* a = a_rows[threadIdx.x];
  Float8 acc = {};
  for (int kt = 0; kt < k_tiles; ++kt) {
    acc = __builtin_amdgcn_wmma_f32_16x16x16_f16_w32(a[kt * pitch], b[kt * 32 + threadIdx.x], acc);
  }
  c[threadIdx.x] = acc;
}

typedef short Short2 __attribute__((ext_vector_type(2)));
typedef _Float16 Half2 __attribute__((ext_vector_type(2)));

// A decode loop with one 16-byte weight load per iteration, used right away (the decode kernel
// keeps a batch of four in flight).
__global__ void gemm_dot2_one_load_fixture_kernel(const uint4* w, const Half2* x, float* out, int rows) {
  float acc = 0.0f;
  for (int r = 0; r < rows; ++r) {
    const uint4 q = w[r * 64 + threadIdx.x];
    const Half2 xr = x[r];
    acc = __builtin_amdgcn_fdot2(__builtin_bit_cast(Half2, q.x), xr, acc, false);
    acc = __builtin_amdgcn_fdot2(__builtin_bit_cast(Half2, q.y), xr, acc, false);
    acc = __builtin_amdgcn_fdot2(__builtin_bit_cast(Half2, q.z), xr, acc, false);
    acc = __builtin_amdgcn_fdot2(__builtin_bit_cast(Half2, q.w), xr, acc, false);
  }
  out[threadIdx.x] = acc;
}

// A gather whose loads each sit behind their own predicate: each is waited for before the next
// leaves (as the decode kernel's act-order staging was until its gathers lost the predicate).
__global__ void serial_gather_fixture_kernel(const float* a, const int* perm, float* out, int n, int k) {
  for (int c = threadIdx.x; c < n; c += blockDim.x) {
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int src = perm[c * 8 + i];
      if (static_cast<unsigned>(src) < static_cast<unsigned>(k)) sum += a[src];
    }
    out[c] = sum;
  }
}
