// Programmatic dependent launch (sm_90 and later; cuda.cuh takes this where every device pass has
// it). A decode kernel launched this way may start while the kernel before it in the stream is
// still finishing: its blocks take the SMs that kernel's blocks leave, ask the L2 for their first
// weights (a prefetch reads nothing into registers, so it is right whatever that kernel writes), and
// wait for that kernel's grid to complete before they read any input.
#pragma once

#include <cuda_runtime.h>

namespace w4a16::arch {

struct ProgrammaticLaunch {
  static constexpr bool kProgrammatic = true;

  // The next kernel in the stream may launch once every block of this one has said so.
  __device__ static void allow_dependents() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
  // The kernel before this one in the stream has completed and its writes are visible.
  __device__ static void wait_for_prior() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

  // The launch attribute that lets `kernel` start before the kernel ahead of it completes.
  static cudaLaunchAttribute attribute() {
    cudaLaunchAttribute attr{};
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    return attr;
  }

  template <class... Params, class... Args>
  static cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream, Args... args) {
    cudaLaunchAttribute attrs[1] = {attribute()};
    cudaLaunchConfig_t config{};
    config.gridDim = grid;
    config.blockDim = block;
    config.stream = stream;
    config.attrs = attrs;
    config.numAttrs = 1;
    return cudaLaunchKernelEx(&config, kernel, args...);
  }
};

}  // namespace w4a16::arch
