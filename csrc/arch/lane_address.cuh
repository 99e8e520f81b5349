// Where a lane loads from inside a K loop: a base shared by the whole block, moved by the loop
// (index * stride bytes), plus the lane's own byte offset, fixed for the loop. Each arch header
// picks one form as LaneAddress<T> (and defines loop_lane_offset before including this file):
// - SplitLaneAddress (gfx11, and its emulation, so that the emulation runs the same offsets): base
//   and offset stay apart up to the load, which gfx11 then issues in its scalar-base + 32-bit
//   VGPR-offset form, with no VALU for the address. The offset must fit 32 bits.
// - LanePointer (NVIDIA): base + offset as one per-lane pointer, made once; a load then adds
//   index * stride with one IMAD.WIDE.U32, which is what the fixed offset costs there.
#pragma once

#include <stdint.h>

#include "../row_pointer.cuh"

namespace w4a16::arch {

template <class T>
struct SplitLaneAddress {
  const T* base;
  uint32_t offset_bytes;

  // The lane's element array[element], in a block whose own elements start at array[block_first]
  // (the same in every lane; element - block_first < 2^32 / sizeof(T)).
  __device__ static SplitLaneAddress of(const T* array, int64_t block_first, int64_t element) {
    return {array + block_first, static_cast<uint32_t>(element - block_first) * static_cast<uint32_t>(sizeof(T))};
  }
  // The lane's element with the block's base moved by index * stride_bytes. loop_lane_offset hides
  // the offset from the optimiser (gfx11.cuh says why).
  __device__ const T* at(uint32_t index, uint32_t stride_bytes) const {
    const char* moved = reinterpret_cast<const char*>(at_row(base, index, stride_bytes));
    return reinterpret_cast<const T*>(moved + loop_lane_offset(offset_bytes));
  }
};

template <class T>
struct LanePointer {
  const T* lane;

  __device__ static LanePointer of(const T* array, int64_t /*block_first*/, int64_t element) {
    return {array + element};
  }
  // The same element as SplitLaneAddress::at.
  __device__ const T* at(uint32_t index, uint32_t stride_bytes) const { return at_row(lane, index, stride_bytes); }
};

}  // namespace w4a16::arch
