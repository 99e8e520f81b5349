"""An interpreter of RDNA3 (gfx11, wave32) assembly, to run the gfx1100 kernels on the CPU.

No machine here has an AMD GPU. The emulation build runs the AMD lane layouts on NVIDIA with the
builtins modelled in CUDA; this package runs what clang actually emitted for gfx1100: the
instructions of each kernel's `.s` (isa.compile_to_asm), one wave32 at a time, the waves of a
workgroup in turn between barriers. It knows the instructions our kernels use and no more: an
unknown one raises NotModelled; an out-of-bounds or misaligned access, an LDS race between barriers
and a WMMA without its lanes repeated raise IsaFault. Its instruction semantics are the RDNA3 ISA
guide's pseudocode (checked against the guide and LLVM, 2026-12-05), shared with
csrc/arch/rdna3_emu.cuh where they meet (dot2 and WMMA in fp32, products exact): it finds faults in
how the kernels use the builtins, in the compiler's code and in addressing, not in that reading.

    toolchain.py    HIP source -> gfx1100 kernels (the ISA check's clang); the compiler it is fitted to
    program.py      the .s text of one kernel -> instructions, labels, descriptor, kernel arguments
    wave.py         one wave's registers and how operands read and write them
    memory.py       global memory (named allocations, bounds checked) and LDS
    scalar_ops.py   SALU and branches
    vector_ops.py   VALU: integer, compare, convert, fp32
    fp32.py         fp32 sums rounded once (FMA, exact-product accumulation)
    packed_ops.py   VOP3P fp16 pairs, dot2, WMMA
    memory_ops.py   s_load, global_*, ds_*
    dispatch.py     a grid of workgroups: entry state, barriers, the instruction loop
    launches.py     the launches of one call, from the product's host code (../gfx11_host/launch_shim.hip)
    gfx1100_gemm.py one gemm call: kernels compiled for gfx1100, buffers, the launches run in turn
"""
