// gfx11.cuh's fp32 -> bf16 rounding compiled for the host (clang -x hip --cuda-host-only), so that
// tests/test_gfx11_bf16_rounding.py can run it on the CPU: no GPU here runs gfx11 code, and the
// emulation build rounds with NVIDIA's own instruction.
#include <stddef.h>

#include "arch/arch.cuh"  // gfx11.cuh, in a HIP compile

// out[i] = x[i] rounded to bf16 by bf16_in_high_half, or by bf16_in_high_half_of_bf16_operands.
extern "C" void round_to_bf16(const float* x, uint16_t* out, size_t n, int of_bf16_operands) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t high = of_bf16_operands ? w4a16::arch::bf16_in_high_half_of_bf16_operands(x[i])
                                           : w4a16::arch::bf16_in_high_half(x[i]);
    out[i] = static_cast<uint16_t>(high >> 16);
  }
}
