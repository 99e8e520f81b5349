// gfx11's fp32 -> bf16 roundings (csrc/arch/gfx11_bf16_math.cuh), compiled for the host with
// clang -x hip --cuda-host-only, so that tests/test_gfx11_bf16_rounding.py runs them on the CPU for
// every input class: the GPU tests reach them only through the emulation build's kernels.
#include <stddef.h>

#include "arch/arch.cuh"  // gfx11.cuh, in a HIP compile

// out[i] = the fp32 value of bits x[i] rounded to bf16 by bf16_in_high_half, or by
// bf16_in_high_half_of_non_nan.
extern "C" void round_to_bf16(const uint32_t* x, uint16_t* out, size_t n, int of_non_nan) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t high = of_non_nan ? w4a16::arch::bf16_in_high_half_of_non_nan(x[i])
                                           : w4a16::arch::bf16_in_high_half(x[i]);
    out[i] = static_cast<uint16_t>(high >> 16);
  }
}
