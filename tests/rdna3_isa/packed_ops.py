"""VOP3P fp16 pairs, the dot2 instructions and WMMA, as csrc/arch/rdna3_emu.cuh models the last two:
products of 16-bit values exact, fp32 accumulation one product at a time, low product first."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rdna3_isa.fp32 import fused_sum
from rdna3_isa.program import Instruction
from rdna3_isa.wave import LANES, IsaFault, NotModelled, Wave, parse_operand

HANDLERS: dict[str, Callable[[Wave, Instruction], None]] = {}


def _halves(w: Wave, ins: Instruction, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Source `index` of a VOP3P instruction as the (low result, high result) operands in float64:
    op_sel / op_sel_hi pick the half (defaults: low for the low result, high for the high one),
    neg_lo / neg_hi negate."""
    text = ins.operands[1 + index]
    op = parse_operand(text)
    if op.inline_float is not None:  # inline constants fill the low 16 bits only (ISA guide 7.5.1)
        word = np.full(LANES, np.array(op.inline_float, dtype=np.float16).view(np.uint16), dtype=np.uint32)
    elif op.inline:
        word = np.full(LANES, op.value & 0xFFFF, dtype=np.uint32)
    else:
        word = w.u32(text)
    pieces = []
    for select, default, negate in (("op_sel", 0, "neg_lo"), ("op_sel_hi", 1, "neg_hi")):
        high = ins.modifiers.get(select, (default,) * 3)[index]
        value = ((word >> (16 if high else 0)) & 0xFFFF).astype(np.uint16).view(np.float16).astype(np.float64)
        pieces.append(-value if ins.modifiers.get(negate, (0, 0, 0))[index] else value)
    return pieces[0], pieces[1]


def _pk_f16(opcode: str, arity: int, fn: Callable[..., np.ndarray]) -> None:
    def run(w: Wave, ins: Instruction) -> None:
        sources = [_halves(w, ins, i) for i in range(arity)]
        with np.errstate(all="ignore"):
            low = fn(*(s[0] for s in sources)).astype(np.float16).view(np.uint16).astype(np.uint32)
            high = fn(*(s[1] for s in sources)).astype(np.float16).view(np.uint16).astype(np.uint32)
        w.write_vector(ins.operands[0], low | (high << np.uint32(16)))
    HANDLERS[opcode] = run


_pk_f16("v_pk_add_f16", 2, lambda a, b: a + b)
_pk_f16("v_pk_mul_f16", 2, lambda a, b: a * b)
_pk_f16("v_pk_fma_f16", 3, lambda a, b, c: a * b + c)


def _pair(word: np.ndarray, bf16: bool) -> tuple[np.ndarray, np.ndarray]:
    """A register of two 16-bit values as (low, high) in float64 (exact)."""
    if bf16:
        low = (word << np.uint32(16)).view(np.float32)
        high = (word & np.uint32(0xFFFF0000)).view(np.float32)
    else:
        low = (word & np.uint32(0xFFFF)).astype(np.uint16).view(np.float16)
        high = (word >> np.uint32(16)).astype(np.uint16).view(np.float16)
    return low.astype(np.float64), high.astype(np.float64)


def _accumulate(acc: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """fp32 acc + a * b with the product exact (16-bit values in float64) and one rounding."""
    with np.errstate(all="ignore"):
        return fused_sum(acc, a * b)


def _dot2(bf16: bool, accumulates: bool) -> Callable[[Wave, Instruction], None]:
    """The ISA guide's pseudocode of each form (16.7, 16.10). v_dot2acc_f32_f16 D, S0, S1 (VOP2):
    D += S0.lo * S1.lo, then D += S0.hi * S1.hi. v_dot2_f32_f16 / v_dot2_f32_bf16 D, S0, S1, S2
    (VOP3P): the two products summed, then S2 added. Each product exact, each add rounded to fp32.
    The compiler takes the VOP2 and VOP3P forms of the fp16 builtin as the same, so the hardware
    cannot follow both orders exactly; measurements on gfx1151 (ROCm/rocm-systems issue 12056)
    follow neither: results within error bounds, not bits, are what the tests can ask.
    csrc/arch/rdna3_emu.cuh models the two forms the kernels use the same way."""
    def run(w: Wave, ins: Instruction) -> None:
        if set(ins.modifiers) - {"op_sel_hi"} or ins.modifiers.get("op_sel_hi", (1, 1, 1))[:2] != (1, 1):
            raise NotModelled(f"{ins.text}: dot2 operand modifiers are not modelled")
        d, s0, s1 = ins.operands[:3]
        a_low, a_high = _pair(w.u32(s0), bf16)
        b_low, b_high = _pair(w.u32(s1), bf16)
        if accumulates:
            result = _accumulate(_accumulate(w.u32(d).view(np.float32), a_low, b_low), a_high, b_high)
        else:
            products = _accumulate((a_low * b_low).astype(np.float32), a_high, b_high)
            addend = w.u32(ins.operands[3]).view(np.float32)
            result = fused_sum(products, addend)
        w.write_vector(d, result.view(np.uint32))
    return run


HANDLERS["v_dot2acc_f32_f16"] = _dot2(bf16=False, accumulates=True)
HANDLERS["v_dot2_f32_f16"] = _dot2(bf16=False, accumulates=False)
HANDLERS["v_dot2_f32_bf16"] = _dot2(bf16=True, accumulates=False)


def _wmma(bf16: bool) -> Callable[[Wave, Instruction], None]:
    """v_wmma_f32_16x16x16_{f16,bf16} D[8], A[8], B[8], C[8] (wave32; ISA guide 7.9). A: lane t < 16
    holds row t, K 2j and 2j + 1 in register j; B: lane t < 16 holds column t the same way; lanes
    16-31 must repeat lanes 0-15 (checked: which half the hardware reads is not documented). C/D:
    lane t, register i holds element (2i + t / 16, t % 16). Every lane is computed and written
    whatever EXEC holds (the guide's pseudocode sets EXEC to all ones around it)."""
    def run(w: Wave, ins: Instruction) -> None:
        if ins.modifiers:
            raise NotModelled(f"{ins.text}: WMMA modifiers are not modelled")
        d, a_text, b_text, c_text = ins.operands
        if parse_operand(c_text).kind == "const" and c_text != "0":
            raise NotModelled(f"{ins.text}: a constant C other than 0 is not modelled")
        a_regs, b_regs = w.vector(a_text, 8), w.vector(b_text, 8)
        for name, regs in (("A", a_regs), ("B", b_regs)):
            if not np.array_equal(regs[:, :16], regs[:, 16:]):
                raise IsaFault(f"{ins.text}: lanes 16-31 of {name} do not repeat lanes 0-15")
        a = np.stack(_pair(a_regs[:, :16], bf16), axis=1).reshape(16, 16).T  # [k, row] -> A[row][k]
        b = np.stack(_pair(b_regs[:, :16], bf16), axis=1).reshape(16, 16)  # [k, col] = B[k][col]
        c = w.vector(c_text, 8).view(np.float32)
        rows = 2 * np.arange(8)[:, None] + (np.arange(LANES)[None, :] >= 16)
        cols = np.broadcast_to(np.arange(LANES) % 16, (8, LANES))
        acc = c.copy()
        for k in range(16):
            acc = _accumulate(acc, a[rows, k], b[k, cols])
        w.write_vector(d, acc.view(np.uint32), lanes=np.ones(LANES, dtype=bool))  # EXEC is all lanes for WMMA
    return run


HANDLERS["v_wmma_f32_16x16x16_f16"] = _wmma(bf16=False)
HANDLERS["v_wmma_f32_16x16x16_bf16"] = _wmma(bf16=True)
