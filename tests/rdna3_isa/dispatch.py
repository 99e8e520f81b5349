"""Run one kernel over a grid: each workgroup's waves in turn, each until it ends or reaches a
barrier, the barrier released once every wave still running has reached it.

Entry state (code object v5, gfx11, as the kernel descriptor enables it): s[0:1] the kernarg
segment's address; the workgroup ids x, y, z (those enabled) in the SGPRs from
user_sgpr_count on; v0 the thread's x id (only x ids are supported: the kernels' blocks are 1-D);
EXEC the wave's lanes inside the block.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter

import numpy as np

from rdna3_isa import memory_ops, packed_ops, scalar_ops, vector_ops
from rdna3_isa.memory import GlobalMemory, Lds
from rdna3_isa.memory_ops import MemoryContext
from rdna3_isa.program import Instruction, Kernel
from rdna3_isa.wave import EXEC_LO, LANES, IsaFault, NotModelled, Wave

_REGISTER_HANDLERS = {**scalar_ops.HANDLERS, **vector_ops.HANDLERS, **packed_ops.HANDLERS}
# Descriptor fields the entry state above does not model: a kernel that enables one is refused.
_UNSUPPORTED = ("user_sgpr_dispatch_ptr", "user_sgpr_queue_ptr", "user_sgpr_dispatch_id",
                "user_sgpr_private_segment_size", "enable_private_segment", "system_vgpr_workitem_id",
                "system_sgpr_workgroup_info", "uses_dynamic_stack")
MAX_STEPS_PER_WAVE = 5_000_000


@functools.lru_cache(maxsize=None)
def _base_opcode(opcode: str) -> str:
    """v_dual_fmac_f32 -> v_fmac_f32; v_add_co_u32_e64 -> v_add_co_u32."""
    if opcode.startswith("v_dual_"):
        opcode = "v_" + opcode[len("v_dual_"):]
    for suffix in ("_e32", "_e64"):
        if opcode.endswith(suffix):
            return opcode[: -len(suffix)]
    return opcode


def _execute(w: Wave, ins: Instruction, memory: MemoryContext) -> None:
    if ins.modifiers.get("clamp"):
        raise NotModelled(f"{ins.text}: clamp is not modelled")
    opcode = _base_opcode(ins.opcode)
    handler = _REGISTER_HANDLERS.get(opcode)
    if handler is not None:
        handler(w, ins)
        return
    memory_handler = memory_ops.HANDLERS.get(opcode)
    if memory_handler is None:
        raise NotModelled(f"instruction not modelled: {ins.text}")
    memory_handler(w, ins, memory)


def _run_wave(kernel: Kernel, w: Wave, memory: MemoryContext, tally: Counter[str]) -> None:
    """Until the wave ends or stops at a barrier; each instruction run counted in `tally`."""
    steps = kernel.steps
    while not w.ended and not w.at_barrier:
        step = steps[w.pc]
        w.pc += 1
        w.executed += 1
        if w.executed > MAX_STEPS_PER_WAVE:
            raise IsaFault(f"{kernel.symbol}: a wave ran past {MAX_STEPS_PER_WAVE} instructions")
        try:
            tally.update(ins.opcode for ins in step.instructions)
            if len(step.instructions) == 1:
                _execute(w, step.instructions[0], memory)
            else:
                w.defer_writes()
                for ins in step.instructions:
                    _execute(w, ins, memory)
                w.flush_writes()
        except IsaFault as fault:
            raise type(fault)(f"{kernel.symbol}, step {w.pc - 1} ({' :: '.join(i.text for i in step.instructions)}): "
                           f"{fault}") from None


def _entry_waves(kernel: Kernel, group_id: tuple[int, int, int], block_threads: int, vgprs: int,
                 kernarg_address: int) -> list[Wave]:
    d = kernel.descriptor
    waves = []
    for index, first_thread in enumerate(range(0, block_threads, LANES)):
        w = Wave(vgprs, index)
        w.labels = kernel.labels
        w.s[0], w.s[1] = kernarg_address & 0xFFFFFFFF, kernarg_address >> 32
        sgpr = d["user_sgpr_count"]
        for axis, group in zip("xyz", group_id):
            if d.get(f"system_sgpr_workgroup_id_{axis}", 0):
                w.s[sgpr] = group
                sgpr += 1
        threads = first_thread + np.arange(LANES)
        w.v[0] = threads.astype(np.uint32)
        w.s[EXEC_LO] = int(np.packbits(threads < block_threads, bitorder="little").view(np.uint32)[0])
        waves.append(w)
    return waves


def run(kernel: Kernel, memory: GlobalMemory, grid: tuple[int, int, int], block_threads: int,
        kernarg: bytes) -> Counter[str]:
    """Run `kernel` over `grid` workgroups of `block_threads` threads; returns how many times each
    opcode ran (summed over waves; the two halves of a VOPD pair count once each)."""
    enabled = [name for name in _UNSUPPORTED if kernel.descriptor.get(name, 0)]
    if enabled:
        raise NotModelled(f"{kernel.symbol}: entry state not modelled: {', '.join(enabled)}")
    if len(kernarg) != kernel.kernarg_size:
        raise IsaFault(f"{kernel.symbol}: {len(kernarg)} kernarg bytes for a {kernel.kernarg_size}-byte segment")
    kernarg_address = memory.allocate(f"kernarg of {kernel.symbol}", kernarg)
    vgprs = max(kernel.descriptor["next_free_vgpr"], 1)
    tally: Counter[str] = Counter()
    for gz, gy, gx in itertools.product(range(grid[2]), range(grid[1]), range(grid[0])):
        context = MemoryContext(memory, Lds(kernel.lds_bytes))
        waves = _entry_waves(kernel, (gx, gy, gz), block_threads, vgprs, kernarg_address)
        while not all(w.ended for w in waves):
            for w in waves:
                _run_wave(kernel, w, context, tally)
            running = [w for w in waves if not w.ended]
            if running and not all(w.at_barrier for w in running):
                raise IsaFault(f"{kernel.symbol}: waves neither ended nor all at a barrier")
            for w in running:
                w.at_barrier = False
            context.lds.barrier()
    return tally
