"""SALU instructions and branches (wave32: EXEC and VCC are their low 32 bits)."""

from __future__ import annotations

from collections.abc import Callable

from rdna3_isa.program import Instruction
from rdna3_isa.wave import EXEC_LO, VCC_LO, Wave

MASK32 = 0xFFFFFFFF
HANDLERS: dict[str, Callable[[Wave, Instruction], None]] = {}


def _signed(x: int, bits: int = 32) -> int:
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


def _handler(*opcodes: str):
    def register(fn):
        for opcode in opcodes:
            HANDLERS[opcode] = fn
        return fn
    return register


def _binary(opcode: str, fn: Callable[[int, int, int], tuple[int, int | None]]) -> None:
    """D = fn(S0, S1, SCC) -> (result, new SCC or None to keep it)."""
    def run(w: Wave, ins: Instruction) -> None:
        d, s0, s1 = ins.operands
        result, scc = fn(w.scalar(s0), w.scalar(s1), w.scc)
        w.write_scalar(d, result & MASK32)
        if scc is not None:
            w.scc = int(scc)
    HANDLERS[opcode] = run


def _add_overflow(a: int, b: int, result: int) -> bool:
    return _signed(a) >= 0 and _signed(b) >= 0 and _signed(result) < 0 or \
        _signed(a) < 0 and _signed(b) < 0 and _signed(result) >= 0


_binary("s_add_u32", lambda a, b, c: (a + b, (a + b) >> 32))
_binary("s_addc_u32", lambda a, b, c: (a + b + c, (a + b + c) >> 32))
_binary("s_sub_u32", lambda a, b, c: (a - b, b > a))
_binary("s_subb_u32", lambda a, b, c: (a - b - c, b + c > a))
_binary("s_add_i32", lambda a, b, c: (a + b, _add_overflow(a, b, (a + b) & MASK32)))
_binary("s_sub_i32", lambda a, b, c: (a - b, _add_overflow(a, (-b) & MASK32, (a - b) & MASK32) if b != 0x80000000
                                      else _signed(a) >= 0))
_binary("s_mul_i32", lambda a, b, c: (_signed(a) * _signed(b), None))
_binary("s_mul_hi_u32", lambda a, b, c: ((a * b) >> 32, None))
_binary("s_mul_hi_i32", lambda a, b, c: ((_signed(a) * _signed(b)) >> 32, None))
_binary("s_and_b32", lambda a, b, c: (a & b, (a & b) != 0))
_binary("s_or_b32", lambda a, b, c: (a | b, (a | b) != 0))
_binary("s_xor_b32", lambda a, b, c: (a ^ b, (a ^ b) != 0))
_binary("s_and_not1_b32", lambda a, b, c: (a & ~b & MASK32, (a & ~b & MASK32) != 0))
_binary("s_lshl_b32", lambda a, b, c: ((a << (b & 31)) & MASK32, ((a << (b & 31)) & MASK32) != 0))
_binary("s_lshr_b32", lambda a, b, c: (a >> (b & 31), (a >> (b & 31)) != 0))
_binary("s_ashr_i32", lambda a, b, c: (_signed(a) >> (b & 31), (_signed(a) >> (b & 31)) != 0))
_binary("s_min_i32", lambda a, b, c: (a if _signed(a) < _signed(b) else b, _signed(a) < _signed(b)))
_binary("s_cselect_b32", lambda a, b, c: (a if c else b, None))


@_handler("s_lshl_b64")
def _lshl_b64(w: Wave, ins: Instruction) -> None:
    d, s0, s1 = ins.operands
    result = (w.scalar(s0, 2) << (w.scalar(s1) & 63)) & (2**64 - 1)
    w.write_scalar(d, result, 2)
    w.scc = int(result != 0)


@_handler("s_mov_b32")
def _mov(w: Wave, ins: Instruction) -> None:
    w.write_scalar(ins.operands[0], w.scalar(ins.operands[1]))


@_handler("s_movk_i32")
def _movk(w: Wave, ins: Instruction) -> None:
    w.write_scalar(ins.operands[0], _signed(w.scalar(ins.operands[1]), 16) & MASK32)


@_handler("s_addk_i32")
def _addk(w: Wave, ins: Instruction) -> None:
    d, k = ins.operands
    a, b = w.scalar(d), _signed(w.scalar(k), 16) & MASK32
    w.write_scalar(d, (a + b) & MASK32)
    w.scc = int(_add_overflow(a, b, (a + b) & MASK32))


def _compare(opcode: str, fn: Callable[[int, int], bool], dwords: int = 1, k16: bool = False) -> None:
    def run(w: Wave, ins: Instruction) -> None:
        s0, s1 = ins.operands
        b = _signed(w.scalar(s1), 16) & MASK32 if k16 else w.scalar(s1, dwords)
        w.scc = int(fn(w.scalar(s0, dwords), b))
    HANDLERS[opcode] = run


_compare("s_cmp_eq_u32", lambda a, b: a == b)
_compare("s_cmp_lg_u32", lambda a, b: a != b)
_compare("s_cmp_lt_u32", lambda a, b: a < b)
_compare("s_cmp_ge_u32", lambda a, b: a >= b)
_compare("s_cmp_lt_i32", lambda a, b: _signed(a) < _signed(b))
_compare("s_cmp_gt_i32", lambda a, b: _signed(a) > _signed(b))
_compare("s_cmp_ge_i32", lambda a, b: _signed(a) >= _signed(b))
_compare("s_cmp_le_i32", lambda a, b: _signed(a) <= _signed(b))
_compare("s_cmp_eq_u64", lambda a, b: a == b, dwords=2)
_compare("s_cmp_lg_u64", lambda a, b: a != b, dwords=2)
_compare("s_cmpk_lt_i32", lambda a, b: _signed(a) < _signed(b), k16=True)


def _saveexec(opcode: str, fn: Callable[[int, int], int]) -> None:
    """D = EXEC; EXEC = fn(S0, EXEC); SCC = EXEC != 0."""
    def run(w: Wave, ins: Instruction) -> None:
        d, s0 = ins.operands
        old = int(w.s[EXEC_LO])
        new = fn(w.scalar(s0), old) & MASK32
        w.write_scalar(d, old)
        w.s[EXEC_LO] = new
        w.scc = int(new != 0)
    HANDLERS[opcode] = run


_saveexec("s_and_saveexec_b32", lambda s, e: s & e)
_saveexec("s_or_saveexec_b32", lambda s, e: s | e)
_saveexec("s_and_not1_saveexec_b32", lambda s, e: s & ~e)


def _branch(opcode: str, taken: Callable[[Wave], bool]) -> None:
    def run(w: Wave, ins: Instruction) -> None:
        if taken(w):
            w.pc = w.label(ins.operands[0])
    HANDLERS[opcode] = run


_branch("s_branch", lambda w: True)
_branch("s_cbranch_scc0", lambda w: w.scc == 0)
_branch("s_cbranch_scc1", lambda w: w.scc == 1)
_branch("s_cbranch_vccz", lambda w: int(w.s[VCC_LO]) == 0)
_branch("s_cbranch_vccnz", lambda w: int(w.s[VCC_LO]) != 0)
_branch("s_cbranch_execz", lambda w: int(w.s[EXEC_LO]) == 0)
_branch("s_cbranch_execnz", lambda w: int(w.s[EXEC_LO]) != 0)


@_handler("s_endpgm")
def _end(w: Wave, ins: Instruction) -> None:
    w.ended = True


@_handler("s_barrier")
def _barrier(w: Wave, ins: Instruction) -> None:
    w.at_barrier = True
