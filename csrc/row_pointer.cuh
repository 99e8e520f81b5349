// Pointer to row `row` of a row-major array whose rows are `pitch_bytes` apart.
#pragma once

#include <stdint.h>

#include <type_traits>

namespace w4a16 {

// base + row * pitch bytes as one 32 x 32 -> 64-bit multiply-add (IMAD.WIDE.U32, v_mad_u64_u32):
// no sign extension, no separate 64-bit shift.
template <class T>
__device__ inline T* at_row(T* base, uint32_t row, uint32_t pitch_bytes) {
  using Byte = std::conditional_t<std::is_const_v<T>, const char, char>;
  return reinterpret_cast<T*>(reinterpret_cast<Byte*>(base) + static_cast<uint64_t>(row) * pitch_bytes);
}

}  // namespace w4a16
