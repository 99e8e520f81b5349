// Picks the one arch implementation this translation unit is built for.
// Kernel bodies include this file and nothing arch-specific.
#pragma once

#if defined(__HIP_PLATFORM_AMD__) || defined(__HIPCC__)
#include "gfx11.cuh"
#elif defined(W4A16_RDNA3_EMULATION)
#include "rdna3_emu.cuh"
#else
#include "cuda.cuh"
#endif
