// The group (row of scales and zeros) of a K index without an integer division.
#pragma once

#include <stdint.h>

namespace w4a16 {

// k / G for 0 <= k < 2^31 and 8 <= G < 2^31 as a multiply-high and a shift (Granlund and
// Montgomery, "Division by invariant integers using multiplication", 1994): with
// 2^(l-1) < G <= 2^l, magic = ceil(2^(31+l) / G) < 2^32 and k / G = (k * magic) >> (31 + l) for
// every such k (k * (magic * G - 2^(31+l)) < 2^31 * G <= 2^(31+l)). Both kernels need the group of
// a K index in their inner loops; an integer division there costs tens of instructions.
struct GroupDivisor {
  uint32_t magic;
  int shift;  // l - 1, applied to the high 32 bits of k * magic

  __host__ __device__ static GroupDivisor of(int g) {
    int l = 0;
    while ((int64_t{1} << l) < g) ++l;
    return {static_cast<uint32_t>(((int64_t{1} << (31 + l)) + g - 1) / g), l - 1};
  }
  __device__ uint32_t operator()(uint32_t k) const {
    return static_cast<uint32_t>(static_cast<uint64_t>(k) * magic >> 32) >> shift;
  }
};

}  // namespace w4a16
