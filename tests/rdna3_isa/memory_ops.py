"""Scalar loads (s_load), global loads and stores, and LDS (ds_*) instructions.

Addresses: global_* with `off` take a 64-bit VGPR address; with an SGPR pair (saddr) the VGPR is a
32-bit unsigned offset from it. Both add the instruction's signed offset. ds_* add the unsigned
offset to a 32-bit VGPR address; the 2addr forms take two, offset0 and offset1 in dwords (x 64 for
stride64). Loads and stores move whole lanes at once in lane order; inactive lanes do nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rdna3_isa.memory import GlobalMemory, Lds
from rdna3_isa.program import Instruction
from rdna3_isa.wave import LANES, Wave


class MemoryContext:
    """What memory instructions reach: the dispatch's global memory and the workgroup's LDS."""

    def __init__(self, global_memory: GlobalMemory, lds: Lds) -> None:
        self.global_memory = global_memory
        self.lds = lds


Handler = Callable[[Wave, Instruction, MemoryContext], None]
HANDLERS: dict[str, Handler] = {}


def _s_load(dwords: int) -> Handler:
    def run(w: Wave, ins: Instruction, memory: MemoryContext) -> None:
        d, base, offset = ins.operands
        address = np.array([w.scalar(base, 2) + w.scalar(offset)], dtype=np.uint64)
        data = memory.global_memory.load(address, 4 * dwords, ins.text)[0].view(np.uint32)
        value = sum(int(word) << (32 * i) for i, word in enumerate(data))
        w.write_scalar(d, value, dwords)
    return run


for _dwords in (1, 2, 4, 8, 16):
    HANDLERS[f"s_load_b{32 * _dwords}"] = _s_load(_dwords)


def _global_addresses(w: Wave, ins: Instruction, vaddr: str, saddr: str) -> np.ndarray:
    offset = np.int64(ins.modifiers.get("offset", 0))
    if saddr == "off":
        base = w.u64(vaddr)
    else:
        base = np.uint64(w.scalar(saddr, 2)) + w.u32(vaddr).astype(np.uint64)
    return (base.astype(np.int64) + offset).astype(np.uint64)


def _store_payload(w: Wave, data: str, nbytes: int, high_half: bool) -> np.ndarray:
    """[lanes, nbytes] bytes a store writes from register(s) `data`: its low bytes, or with
    `high_half` (the d16_hi forms) the high 16 bits of its register."""
    registers = w.vector(data, max(nbytes // 4, 1))
    if high_half:
        registers = registers >> np.uint32(16)
    return np.ascontiguousarray(registers.T).view(np.uint8).reshape(LANES, -1)[:, :nbytes]


def _global_load(nbytes: int, extend: str = "") -> Handler:
    def run(w: Wave, ins: Instruction, memory: MemoryContext) -> None:
        d, vaddr, saddr = ins.operands
        lanes = w.exec_mask
        data = np.zeros((LANES, max(nbytes, 4)), dtype=np.uint8)
        if lanes.any():
            loaded = memory.global_memory.load(_global_addresses(w, ins, vaddr, saddr)[lanes], nbytes, ins.text)
            data[lanes, :nbytes] = loaded
        words = data.view(np.uint32).T  # [dwords, lanes]
        if extend == "d16_hi":
            words = (w.u32(d) & np.uint32(0xFFFF)) | (words[0] << np.uint32(16))
        w.write_vector(d, words)
    return run


def _global_store(nbytes: int, high_half: bool = False) -> Handler:
    def run(w: Wave, ins: Instruction, memory: MemoryContext) -> None:
        vaddr, data, saddr = ins.operands
        lanes = w.exec_mask
        if not lanes.any():
            return
        payload = _store_payload(w, data, nbytes, high_half)
        memory.global_memory.store(_global_addresses(w, ins, vaddr, saddr)[lanes], payload[lanes], ins.text)
    return run


HANDLERS.update({
    "global_load_b32": _global_load(4), "global_load_b64": _global_load(8), "global_load_b96": _global_load(12),
    "global_load_b128": _global_load(16), "global_load_u16": _global_load(2), "global_load_u8": _global_load(1),
    "global_load_d16_hi_b16": _global_load(2, "d16_hi"),
    "global_store_b32": _global_store(4), "global_store_b64": _global_store(8), "global_store_b128": _global_store(16),
    "global_store_b16": _global_store(2), "global_store_d16_hi_b16": _global_store(2, high_half=True),
})


def _lds_addresses(w: Wave, ins: Instruction, vaddr: str) -> np.ndarray:
    return w.u32(vaddr).astype(np.int64) + ins.modifiers.get("offset", 0)


def _ds_load(nbytes: int) -> Handler:
    def run(w: Wave, ins: Instruction, memory: MemoryContext) -> None:
        d, vaddr = ins.operands
        lanes = w.exec_mask
        data = np.zeros((LANES, nbytes), dtype=np.uint8)
        data[lanes] = memory.lds.load(_lds_addresses(w, ins, vaddr)[lanes], nbytes, ins.text, w.index)
        w.write_vector(d, data.view(np.uint32).T)
    return run


def _ds_load_2addr(stride: int) -> Handler:
    """ds_load_2addr{,_stride64}_b32 D[2], A offset0:i offset1:j: dwords at A + 4 stride i and A + 4 stride j."""
    def run(w: Wave, ins: Instruction, memory: MemoryContext) -> None:
        d, vaddr = ins.operands
        lanes = w.exec_mask
        base = w.u32(vaddr).astype(np.int64)[lanes]
        words = np.zeros((2, LANES), dtype=np.uint32)
        for slot, key in enumerate(("offset0", "offset1")):
            address = base + 4 * stride * ins.modifiers.get(key, 0)
            words[slot, lanes] = memory.lds.load(address, 4, ins.text, w.index).view(np.uint32)[:, 0]
        w.write_vector(d, words)
    return run


def _ds_store(nbytes: int, high_half: bool = False) -> Handler:
    def run(w: Wave, ins: Instruction, memory: MemoryContext) -> None:
        vaddr, data = ins.operands
        lanes = w.exec_mask
        payload = _store_payload(w, data, nbytes, high_half)
        memory.lds.store(_lds_addresses(w, ins, vaddr)[lanes], payload[lanes], ins.text, w.index)
    return run


HANDLERS.update({
    "ds_load_b32": _ds_load(4), "ds_load_b64": _ds_load(8), "ds_load_b128": _ds_load(16),
    "ds_load_2addr_b32": _ds_load_2addr(1), "ds_load_2addr_stride64_b32": _ds_load_2addr(64),
    "ds_store_b32": _ds_store(4), "ds_store_b64": _ds_store(8), "ds_store_b128": _ds_store(16),
    "ds_store_b16": _ds_store(2), "ds_store_b16_d16_hi": _ds_store(2, high_half=True),
})
