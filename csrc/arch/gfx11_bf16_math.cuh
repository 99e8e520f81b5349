// Packed bf16 arithmetic of gfx11, which has no packed bf16 instructions: each half is widened
// (exact), combined in fp32 and narrowed with round to nearest even, the result of an IEEE bf16
// operation. Included by arch.cuh after gfx11.cuh or rdna3_emu.cuh (whose pk_bf16_pack and as_float
// it uses), so that the emulation runs this very code.
#pragma once

namespace w4a16::arch {

__device__ inline uint32_t pk_sub_bf16(uint32_t a, uint32_t b) {
  return pk_bf16_pack(as_float(a << 16) - as_float(b << 16), as_float(a & 0xFFFF0000u) - as_float(b & 0xFFFF0000u));
}

}  // namespace w4a16::arch
