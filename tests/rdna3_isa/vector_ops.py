"""VALU instructions (VOP1/VOP2/VOP3/VOPC and the VOPD halves): integer, compare, convert, fp32.

16-bit results (v_cvt_f16_f32) write the low half of their VGPR and keep the high half (ISA guide
7.1: dest_vgpr = {prev_dst_vgpr[31:16], result[15:0]}; LLVM: gfx10+ 16-bit instructions preserve
the high bits). v_max_f32 / v_min_f32 order +0 above -0 (IEEE mode). fp32 FMAs round once
(fp32.fused_sum of the exact product and the addend).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rdna3_isa.fp32 import fused_sum
from rdna3_isa.program import Instruction
from rdna3_isa.wave import LANES, NotModelled, Wave

HANDLERS: dict[str, Callable[[Wave, Instruction], None]] = {}
_U32 = np.uint32
_LANE_IDS = np.arange(LANES, dtype=np.uint32)


def _register(opcode: str, fn: Callable[[Wave, Instruction], None]) -> None:
    HANDLERS[opcode] = fn


def _u32_op(opcode: str, arity: int, fn: Callable[..., np.ndarray]) -> None:
    """D = fn(S0, ..., S[arity-1]) on uint32 lanes (int64 arithmetic, wrapped to 32 bits)."""
    def run(w: Wave, ins: Instruction) -> None:
        sources = [w.u32(text).astype(np.int64) for text in ins.operands[1:1 + arity]]
        w.write_vector(ins.operands[0], (fn(*sources) & 0xFFFFFFFF).astype(_U32))
    _register(opcode, run)


def _i32(x: np.ndarray) -> np.ndarray:
    return x.astype(np.uint32).view(np.int32).astype(np.int64)


_u32_op("v_mov_b32", 1, lambda a: a)
_u32_op("v_add_nc_u32", 2, lambda a, b: a + b)
_u32_op("v_sub_nc_u32", 2, lambda a, b: a - b)
_u32_op("v_subrev_nc_u32", 2, lambda a, b: b - a)
_u32_op("v_and_b32", 2, lambda a, b: a & b)
_u32_op("v_or_b32", 2, lambda a, b: a | b)
_u32_op("v_xor_b32", 2, lambda a, b: a ^ b)
_u32_op("v_lshlrev_b32", 2, lambda a, b: b << (a & 31))
_u32_op("v_lshrrev_b32", 2, lambda a, b: b >> (a & 31))
_u32_op("v_ashrrev_i32", 2, lambda a, b: _i32(b) >> (a & 31))
_u32_op("v_min_i32", 2, lambda a, b: np.minimum(_i32(a), _i32(b)))
_u32_op("v_max_i32", 2, lambda a, b: np.maximum(_i32(a), _i32(b)))
_u32_op("v_min_u32", 2, lambda a, b: np.minimum(a, b))
_u32_op("v_max_u32", 2, lambda a, b: np.maximum(a, b))
_u32_op("v_mul_lo_u32", 2, lambda a, b: (a * b) & 0xFFFFFFFF)
_u32_op("v_mul_hi_u32", 2, lambda a, b: (a.astype(np.uint64) * b.astype(np.uint64) >> np.uint64(32)).astype(np.int64))
_u32_op("v_mul_u32_u24", 2, lambda a, b: (a & 0xFFFFFF) * (b & 0xFFFFFF))
_u32_op("v_mad_u32_u24", 3, lambda a, b, c: (a & 0xFFFFFF) * (b & 0xFFFFFF) + c)
_u32_op("v_add3_u32", 3, lambda a, b, c: a + b + c)
_u32_op("v_or3_b32", 3, lambda a, b, c: a | b | c)
_u32_op("v_and_or_b32", 3, lambda a, b, c: (a & b) | c)
_u32_op("v_lshl_or_b32", 3, lambda a, b, c: ((a << (b & 31)) & 0xFFFFFFFF) | c)
_u32_op("v_lshl_add_u32", 3, lambda a, b, c: ((a << (b & 31)) & 0xFFFFFFFF) + c)
_u32_op("v_add_lshl_u32", 3, lambda a, b, c: ((a + b) & 0xFFFFFFFF) << (c & 31))
_u32_op("v_bfe_u32", 3, lambda a, b, c: (a >> (b & 31)) & ((1 << (c & 31)) - 1))
for _byte in range(4):
    _u32_op(f"v_cvt_f32_ubyte{_byte}", 1,
            lambda a, n=_byte: ((a >> (8 * n)) & 0xFF).astype(np.float32).view(np.uint32).astype(np.int64))


def _perm(s0: np.ndarray, s1: np.ndarray, selector: np.ndarray) -> np.ndarray:
    """v_perm_b32: each selector byte picks a byte of {S0, S1} (0-3: S1, 4-7: S0), or 8-11 a sign
    byte (S1 bit 15 / 31, S0 bit 15 / 31), 12 zero, 13-15 0xff."""
    combined = (s0.astype(np.uint64) << np.uint64(32)) | s1.astype(np.uint64)
    out = np.zeros(LANES, dtype=np.int64)
    for byte in range(4):
        sel = (selector >> (8 * byte)) & 0xFF
        picked = ((combined >> (8 * (sel & 7)).astype(np.uint64)) & np.uint64(0xFF)).astype(np.int64)
        sign_bits = np.select([sel == 8, sel == 9, sel == 10, sel == 11],
                              [(s1 >> 15) & 1, (s1 >> 31) & 1, (s0 >> 15) & 1, (s0 >> 31) & 1]) * 0xFF
        value = np.where(sel < 8, picked, np.where(sel < 12, sign_bits, np.where(sel == 12, 0, 0xFF)))
        out |= value << (8 * byte)
    return out


_u32_op("v_perm_b32", 3, _perm)


def _mbcnt_lo(w: Wave, ins: Instruction) -> None:
    d, s0, s1 = ins.operands
    below = (np.uint64(1) << _LANE_IDS.astype(np.uint64)) - np.uint64(1)
    masked = w.u32(s0).astype(np.uint64) & below
    counts = np.array([bin(int(x)).count("1") for x in masked], dtype=np.int64)
    w.write_vector(d, ((counts + w.u32(s1)) & 0xFFFFFFFF).astype(_U32))


_register("v_mbcnt_lo_u32_b32", _mbcnt_lo)


def _readfirstlane(w: Wave, ins: Instruction) -> None:
    d, s0 = ins.operands
    active = np.flatnonzero(w.exec_mask)
    w.write_scalar(d, int(w.u32(s0)[active[0] if len(active) else 0]))


_register("v_readfirstlane_b32", _readfirstlane)


# ---- 64-bit integer ----
def _lshlrev_b64(w: Wave, ins: Instruction) -> None:
    d, shift, value = ins.operands
    w.write_u64(d, w.u64(value) << (w.u32(shift).astype(np.uint64) & np.uint64(63)))


def _mad_64_32(signed: bool) -> Callable[[Wave, Instruction], None]:
    """v_mad_{u64_u32,i64_i32} D, SDST, S0, S1, S2: D = S0 * S1 + S2 (64-bit); SDST (carry) must be null."""
    def run(w: Wave, ins: Instruction) -> None:
        d, carry, s0, s1, s2 = ins.operands
        if carry != "null":
            raise NotModelled(f"{ins.text}: a carry-out destination is not modelled")
        if signed:
            product = _i32(w.u32(s0)) * _i32(w.u32(s1))
            addend = w.u64(s2).view(np.int64)
            w.write_u64(d, (product + addend).view(np.uint64))
        else:
            product = w.u32(s0).astype(np.uint64) * w.u32(s1).astype(np.uint64)
            w.write_u64(d, product + w.u64(s2))
    return run


_register("v_lshlrev_b64", _lshlrev_b64)
_register("v_mad_u64_u32", _mad_64_32(signed=False))
_register("v_mad_i64_i32", _mad_64_32(signed=True))


# ---- carries: D, SDST(carry out), S0, S1[, carry in] ----
def _carry_op(opcode: str, fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], carry_in: bool) -> None:
    def run(w: Wave, ins: Instruction) -> None:
        d, carry_out, s0, s1 = ins.operands[:4]
        c = w.lane_mask(ins.operands[4]).astype(np.int64) if carry_in else np.zeros(LANES, dtype=np.int64)
        full = fn(w.u32(s0).astype(np.int64), w.u32(s1).astype(np.int64), c)
        w.write_vector(d, (full & 0xFFFFFFFF).astype(_U32))
        w.write_lane_mask(carry_out, ((full >> 32) != 0) & w.exec_mask)
    _register(opcode, run)


_carry_op("v_add_co_u32", lambda a, b, c: a + b, False)
_carry_op("v_add_co_ci_u32", lambda a, b, c: a + b + c, True)
_carry_op("v_sub_co_u32", lambda a, b, c: a - b, False)  # borrow: negative -> bits above 32 set
_carry_op("v_sub_co_ci_u32", lambda a, b, c: a - b - c, True)
_carry_op("v_subrev_co_ci_u32", lambda a, b, c: b - a - c, True)


# ---- compares: D (lane mask), S0, S1; v_cmpx writes EXEC ----
_COMPARES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
}


def _compare_values(w: Wave, text: str, kind: str) -> np.ndarray:
    if kind == "f32":
        return w.f32(text)
    if kind == "u64":
        return w.u64(text)
    return _i32(w.u32(text)) if kind == "i32" else w.u32(text)


def _compare(relation: str, kind: str, writes_exec: bool) -> Callable[[Wave, Instruction], None]:
    def run(w: Wave, ins: Instruction) -> None:
        sources = ins.operands[-2:]
        with np.errstate(invalid="ignore"):
            result = _COMPARES[relation](_compare_values(w, sources[0], kind), _compare_values(w, sources[1], kind))
        result &= w.exec_mask
        if writes_exec:
            w.write_lane_mask("exec_lo", result)
        else:
            w.write_lane_mask(ins.operands[0], result)
    return run


for _relation in _COMPARES:
    for _kind in ("u32", "i32", "u64", "f32"):
        _register(f"v_cmp_{_relation}_{_kind}", _compare(_relation, _kind, writes_exec=False))
        _register(f"v_cmpx_{_relation}_{_kind}", _compare(_relation, _kind, writes_exec=True))


def _cndmask(w: Wave, ins: Instruction) -> None:
    """D = mask ? S1 : S0; the VOPD form reads VCC without naming it."""
    d, s0, s1, *mask = ins.operands
    lanes = w.lane_mask(mask[0] if mask else "vcc_lo")
    w.write_vector(d, np.where(lanes, w.u32(s1), w.u32(s0)).astype(_U32))


_register("v_cndmask_b32", _cndmask)


# ---- fp32 ----
def _f32_op(opcode: str, arity: int, fn: Callable[..., np.ndarray], accumulates: bool = False) -> None:
    """D = fn(S0, ...) in fp32; `accumulates`: D is also the last source."""
    def run(w: Wave, ins: Instruction) -> None:
        sources = [w.f32(text) for text in ins.operands[1:1 + arity]]
        if accumulates:
            sources.append(w.f32(ins.operands[0]))
        with np.errstate(all="ignore"):
            result = np.asarray(fn(*sources)).astype(np.float32)
        w.write_vector(ins.operands[0], result.view(_U32))
    _register(opcode, run)


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return fused_sum(a.astype(np.float64) * b.astype(np.float64), c)  # the product is exact in float64


_f32_op("v_add_f32", 2, lambda a, b: a + b)
_f32_op("v_sub_f32", 2, lambda a, b: a - b)
_f32_op("v_mul_f32", 2, lambda a, b: a * b)
def _signed_zero_extreme(fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
                         zero_sign: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    """fmax / fmin with two zeros ordered by sign: zero_sign(sign a, sign b) gives the result's sign."""
    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        both_zero = (a == 0) & (b == 0)
        signed_zero = np.where(zero_sign(np.signbit(a), np.signbit(b)), np.float32(-0.0), np.float32(0.0))
        return np.where(both_zero, signed_zero, fn(a, b))
    return run


_f32_op("v_max_f32", 2, _signed_zero_extreme(np.fmax, np.logical_and))  # -0 only if both are -0
_f32_op("v_min_f32", 2, _signed_zero_extreme(np.fmin, np.logical_or))  # -0 if either is
_f32_op("v_fma_f32", 3, _fma)
_f32_op("v_fmac_f32", 2, _fma, accumulates=True)
_f32_op("v_fmamk_f32", 3, lambda a, k, b: _fma(a, k, b))  # D = S0 * K + S1
_f32_op("v_fmaak_f32", 3, _fma)  # D = S0 * S1 + K
_f32_op("v_rcp_f32", 1, lambda a: np.float32(1.0) / a)
_f32_op("v_rcp_iflag_f32", 1, lambda a: np.float32(1.0) / a)
_f32_op("v_trunc_f32", 1, np.trunc)
_f32_op("v_mov_b32_f32", 1, lambda a: a)


def _cvt_u32_f32(w: Wave, ins: Instruction) -> None:
    x = w.f32(ins.operands[1]).astype(np.float64)
    x = np.where(np.isnan(x), 0.0, np.clip(np.trunc(x), 0.0, 4294967295.0))
    w.write_vector(ins.operands[0], x.astype(np.uint64).astype(_U32))


def _cvt_f32_u32(w: Wave, ins: Instruction) -> None:
    w.write_vector(ins.operands[0], w.u32(ins.operands[1]).astype(np.float32).view(_U32))


def _half_of(w: Wave, ins: Instruction, text: str, index: int) -> np.ndarray:
    """A 16-bit source: the low half, or the high one where op_sel selects it."""
    high = ins.modifiers.get("op_sel", (0, 0, 0, 0))[index]
    return ((w.u32(text) >> (16 if high else 0)) & 0xFFFF).astype(np.uint16)


def _cvt_f32_f16(w: Wave, ins: Instruction) -> None:
    value = _half_of(w, ins, ins.operands[1], 0).view(np.float16).astype(np.float32)
    w.write_vector(ins.operands[0], value.view(_U32))


def _cvt_f16_f32(w: Wave, ins: Instruction) -> None:
    if ins.modifiers.get("op_sel"):
        raise NotModelled(f"{ins.text}: op_sel on a 16-bit result is not modelled")
    with np.errstate(all="ignore"):
        half = w.f32(ins.operands[1]).astype(np.float16).view(np.uint16).astype(_U32)
    kept = w.u32(ins.operands[0]) & _U32(0xFFFF0000)
    w.write_vector(ins.operands[0], kept | half)


_register("v_cvt_u32_f32", _cvt_u32_f32)
_register("v_cvt_f32_u32", _cvt_f32_u32)
_register("v_cvt_f32_f16", _cvt_f32_f16)
_register("v_cvt_f16_f32", _cvt_f16_f32)
