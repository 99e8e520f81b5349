"""One `gemm` call as a gfx1100 would run it, in the interpreter: the kernels compiled for gfx1100
by the ISA check's clang (isa.compile_to_asm), the launches the product's host code plans
(launches.py), the buffers in bounds-checked global memory (memory.py), every launch run in turn
(dispatch.py)."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from rdna3_isa import dispatch
from rdna3_isa.launches import (
    GFX1100_WGPS, GemmBuffers, GemmShape, KernelLaunch, LaunchShim, decode_slots, workspace_bytes,
)
from rdna3_isa.memory import GlobalMemory
from rdna3_isa.program import Kernel, kernel_symbols, parse_kernel
from rdna3_isa.toolchain import compile_instance
from w4a16_rdna3 import isa
from w4a16_rdna3.formats import KernelWeights

# Output poison: a NaN of each dtype, so that an element no kernel writes fails the NaN check.
_NAN_BITS = {torch.float16: 0x7E00, torch.bfloat16: 0x7FC0}


class Gfx1100Kernels:
    """Kernel instances compiled for gfx1100, one translation unit each, on first use."""

    def __init__(self, toolchain: isa.Toolchain, work_dir: Path) -> None:
        self._toolchain = toolchain
        self._work_dir = work_dir
        self._kernels: dict[str, Kernel] = {}

    def _compile(self, instance: str) -> Kernel:
        asm = compile_instance(self._toolchain, instance, self._work_dir)
        symbols = kernel_symbols(asm)
        if len(symbols) != 1:
            raise RuntimeError(f"{instance}: {len(symbols)} kernels in its translation unit, expected one")
        return parse_kernel(asm, symbols[0])

    def prepare(self, instances: set[str]) -> None:
        """Compile the instances not compiled yet, in parallel."""
        missing = sorted(instances - self._kernels.keys())
        with ThreadPoolExecutor() as pool:
            self._kernels.update(zip(missing, pool.map(self._compile, missing)))

    def __getitem__(self, instance: str) -> Kernel:
        if instance not in self._kernels:
            self.prepare({instance})
        return self._kernels[instance]

    def decode_slots(self, shim: LaunchShim, m: int, bf16: bool, has_zeros: bool) -> dict[int, int]:
        """Resident blocks of each decode block size at M rows, from its kernel's gfx1100 VGPRs and LDS
        (what the launcher asks HIP's occupancy query)."""
        instances = shim.decode_instances(m, bf16, has_zeros)
        self.prepare(set(instances.values()))
        kernels = {warps: self[instance] for warps, instance in instances.items()}
        return decode_slots({warps: (kernel.descriptor["next_free_vgpr"], kernel.lds_bytes)
                             for warps, kernel in kernels.items()})


def _bits(t: torch.Tensor) -> np.ndarray:
    return t.contiguous().view(torch.int16).numpy().view(np.uint16)


def run_gemm(kernels: Gfx1100Kernels, shim: LaunchShim, a: torch.Tensor, weights: KernelWeights,
             bias: torch.Tensor | None = None, *, op: str = "gemm", decode_splits: int | None = None,
             tally: Counter[str] | None = None) -> torch.Tensor:
    """out [M, N] of the `op` ("gemm", "gemm_dot2" or "gemm_wmma") on CPU tensors, run in the
    interpreter, as a gfx1100 would run it (GFX1100_WGPS WGPs); `tally` adds up the opcodes run."""
    m, k = a.shape
    n = weights.n
    # K and the group size from `a` and the scales, as ops.cpp takes them (not from b_q).
    shape = GemmShape(m=m, n=n, k=k, group_size=k // weights.scales.shape[0], bf16=a.dtype == torch.bfloat16)
    memory = GlobalMemory()
    decode = op == "gemm_dot2" or (op == "gemm" and shim.takes_decode(shape))
    slots = kernels.decode_slots(shim, m, shape.bf16, weights.zeros is not None) if decode else {}
    if op == "gemm_wmma":
        plan = shim.prefill_plan(m, n, k, GFX1100_WGPS)
    elif op == "gemm_dot2":
        plan = shim.decode_plan(m, n, k, GFX1100_WGPS, slots, decode_splits)
    else:
        plan = shim.gemm_plan(shape, GFX1100_WGPS, slots, decode_splits)
    out_poison = np.full(m * n, _NAN_BITS[a.dtype], dtype=np.uint16)
    buffers = GemmBuffers(
        a=memory.allocate("a", _bits(a)),
        b_q=memory.allocate("b_q", weights.b_q.numpy()),
        scales=memory.allocate("scales", _bits(weights.scales)),
        out=memory.allocate("out", out_poison),
        zeros=None if weights.zeros is None else memory.allocate("zeros", weights.zeros.numpy()),
        bias=None if bias is None else memory.allocate("bias", _bits(bias)),
        perm=None if weights.perm is None else memory.allocate("perm", weights.perm.numpy()),
        gathered=None if weights.perm is None else memory.allocate("gathered", m * k * 2),
        workspace=memory.allocate("workspace", workspace_bytes(plan, m, n)) if plan.uses_workspace else None,
    )
    launches: list[KernelLaunch] = shim.launches(shape, buffers, plan)
    kernels.prepare({launch.kernel for launch in launches})
    for launch in launches:
        ran = dispatch.run(kernels[launch.kernel], memory, launch.grid, launch.block_threads, launch.kernarg)
        if tally is not None:
            tally.update(ran)
    out = memory.contents(buffers.out).view(np.int16).copy()
    return torch.from_numpy(out).view(a.dtype).reshape(m, n)
