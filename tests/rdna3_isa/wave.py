"""One wave32's state and operand access.

VGPRs are a [count, 32] uint32 array (row = register, column = lane); SGPRs 128 uint32 words with
gfx11's special registers at their encodings (vcc_lo 106, vcc_hi 107, m0 125, null 124, exec_lo
126, exec_hi 127); SCC a bit. VALU writes land in the lanes EXEC enables. Inside a VOPD pair the
writes wait until both halves have read their sources (`defer_writes`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

LANES = 32
VCC_LO, M0, NULL, EXEC_LO = 106, 125, 124, 126
_SPECIAL = {"vcc_lo": (VCC_LO, 1), "vcc_hi": (VCC_LO + 1, 1), "vcc": (VCC_LO, 2), "m0": (M0, 1),
            "null": (NULL, 1), "exec_lo": (EXEC_LO, 1), "exec_hi": (EXEC_LO + 1, 1), "exec": (EXEC_LO, 2)}
_REGISTER = re.compile(r"([vs])(\d+)$|([vs])\[(\d+):(\d+)\]$")
_LANE_IDS = np.arange(LANES)
_INLINE_FLOATS = frozenset({"0.5", "1.0", "2.0", "4.0", "0.15915494"})  # and their negations


class IsaFault(RuntimeError):
    """The kernel did something the interpreter refuses: an out-of-bounds or misaligned access, an
    LDS race, a WMMA without its lanes repeated; or (NotModelled) something it does not know."""


class NotModelled(IsaFault):
    """An instruction, operand, modifier or entry state the interpreter does not model: the compiler
    emitted what the interpreter was not fitted to (Debian's clang 19), not a fault of the kernel."""


@dataclass(frozen=True)
class Operand:
    kind: str  # "v", "s" or "const"
    index: int = 0
    count: int = 1
    value: int = 0  # const: the 64-bit pattern (inline integers sign-extended)
    inline_float: float | None = None  # const: an inline float (0.5, 1.0, ...), encoded as its reader's width
    inline: bool = False  # const: an inline constant (an integer -16..64 or a float), not a literal
    neg: bool = False
    abs: bool = False


@functools.lru_cache(maxsize=None)
def parse_operand(text: str) -> Operand:
    neg = text.startswith("-") and not re.fullmatch(r"-\d+", text)
    body = text[1:] if neg else text
    absolute = body.startswith("|") and body.endswith("|")
    body = body[1:-1] if absolute else body
    if body in _SPECIAL:
        index, count = _SPECIAL[body]
        return Operand("s", index, count, neg=neg, abs=absolute)
    match = _REGISTER.match(body)
    if match:
        if match[1]:
            return Operand(match[1], int(match[2]), 1, neg=neg, abs=absolute)
        first, last = int(match[4]), int(match[5])
        return Operand(match[3], first, last - first + 1, neg=neg, abs=absolute)
    if re.fullmatch(r"-?\d+", body):
        value = int(body)
        if not -16 <= value <= 64:
            raise NotModelled(f"integer operand {text} outside the inline constants -16..64")
        return Operand("const", value=value & (2**64 - 1), inline=True)
    if re.fullmatch(r"0x[0-9a-f]+", body):
        return Operand("const", value=int(body, 16))
    if body in _INLINE_FLOATS:
        return Operand("const", inline_float=float(body) * (-1 if neg else 1), inline=True)
    raise NotModelled(f"operand {text!r} not understood")


class Wave:
    """Registers the dispatch does not set at entry hold POISON, as the hardware leaves them undefined."""

    POISON = 0xDEADBEEF

    def __init__(self, vgprs: int, index: int = 0) -> None:
        self.index = index  # the wave's place in its workgroup
        self.v = np.full((vgprs, LANES), self.POISON, dtype=np.uint32)
        self.s = np.full(128, self.POISON, dtype=np.uint32)
        self.s[EXEC_LO + 1] = 0  # exec_hi: wave32
        self.scc = 0
        self.pc = 0
        self.ended = False
        self.at_barrier = False
        self.executed = 0
        self.labels: dict[str, int] = {}
        self._deferred: list[tuple[Operand, np.ndarray, np.ndarray]] | None = None

    def label(self, name: str) -> int:
        if name not in self.labels:
            raise IsaFault(f"branch to unknown label {name}")
        return self.labels[name]

    # ---- masks ----
    @property
    def exec_mask(self) -> np.ndarray:
        return ((int(self.s[EXEC_LO]) >> _LANE_IDS) & 1).astype(bool)

    def lane_mask(self, text: str) -> np.ndarray:
        """A 32-bit lane mask operand (vcc_lo, an SGPR, an inline constant) as 32 booleans."""
        return ((self.scalar(text) >> _LANE_IDS) & 1).astype(bool)

    def write_lane_mask(self, text: str, bits: np.ndarray) -> None:
        self.write_scalar(text, int(np.packbits(bits.astype(np.uint8), bitorder="little").view(np.uint32)[0]))

    # ---- scalar operands (Python ints) ----
    def scalar(self, text: str, dwords: int = 1) -> int:
        op = parse_operand(text)
        if op.kind == "const":
            if op.inline_float is not None:  # an fp32 pattern, or fp64 where 64 bits are read
                dtype = np.float64 if dwords == 2 else np.float32
                return int(np.array(op.inline_float, dtype=dtype).view(np.uint64 if dwords == 2 else np.uint32))
            return op.value & ((1 << (32 * dwords)) - 1)
        if op.kind != "s":
            raise IsaFault(f"{text}: a scalar operand was expected")
        if op.index == NULL:
            return 0
        words = [int(self.s[op.index + i]) for i in range(dwords)]
        return sum(word << (32 * i) for i, word in enumerate(words))

    def write_scalar(self, text: str, value: int, dwords: int = 1) -> None:
        op = parse_operand(text)
        if op.kind != "s":
            raise IsaFault(f"{text}: a scalar destination was expected")
        if op.index == NULL:
            return
        for i in range(dwords):
            self.s[op.index + i] = (value >> (32 * i)) & 0xFFFFFFFF

    # ---- vector operands ([dwords, 32] uint32) ----
    def vector(self, text: str, dwords: int = 1) -> np.ndarray:
        """The raw bits; an operand with a float modifier (-x, |x|) is read by f32() alone."""
        op = parse_operand(text)
        if op.neg or op.abs:
            raise NotModelled(f"{text}: a float modifier on an operand read as bits")
        return self._bits(text, dwords)

    def _bits(self, text: str, dwords: int) -> np.ndarray:
        op = parse_operand(text)
        if op.kind == "v":
            self._check_vgprs(op, dwords)
            return self.v[op.index:op.index + dwords].copy()
        value = self.scalar(text, dwords)
        words = np.array([(value >> (32 * i)) & 0xFFFFFFFF for i in range(dwords)], dtype=np.uint32)
        return np.repeat(words[:, None], LANES, axis=1)

    def u32(self, text: str) -> np.ndarray:
        return self.vector(text)[0]

    def u64(self, text: str) -> np.ndarray:
        pair = self.vector(text, 2).astype(np.uint64)
        return pair[0] | (pair[1] << np.uint64(32))

    def f32(self, text: str) -> np.ndarray:
        """An fp32 source with its |x| and -x modifiers applied."""
        op = parse_operand(text)
        value = self._bits(text, 1)[0].view(np.float32)
        if op.abs:
            value = np.abs(value)
        return -value if op.neg else value

    def write_vector(self, text: str, values: np.ndarray, lanes: np.ndarray | None = None) -> None:
        """values: [dwords, 32] or [32] uint32 (or a same-size view); written in the EXEC lanes (or `lanes`)."""
        op = parse_operand(text)
        if op.kind != "v":
            raise IsaFault(f"{text}: a VGPR destination was expected")
        values = np.asarray(values).view(np.uint32).reshape(-1, LANES)
        if values.shape[0] != op.count and op.count != 1:
            raise IsaFault(f"{text}: {values.shape[0]} dwords for a {op.count}-register destination")
        mask = self.exec_mask if lanes is None else lanes
        if self._deferred is not None:
            self._deferred.append((op, values, mask))
        else:
            self._store(op, values, mask)

    def write_u64(self, text: str, values: np.ndarray) -> None:
        values = values.astype(np.uint64)
        low = (values & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        high = (values >> np.uint64(32)).astype(np.uint32)
        self.write_vector(text, np.stack([low, high]))

    def _check_vgprs(self, op: Operand, dwords: int) -> None:
        if op.index + dwords > self.v.shape[0]:
            raise IsaFault(f"v[{op.index}:{op.index + dwords - 1}] past the kernel's {self.v.shape[0]} VGPRs")

    def _store(self, op: Operand, values: np.ndarray, mask: np.ndarray) -> None:
        self._check_vgprs(op, values.shape[0])
        rows = self.v[op.index:op.index + values.shape[0]]
        rows[:, mask] = values[:, mask]

    def defer_writes(self) -> None:
        self._deferred = []

    def flush_writes(self) -> None:
        deferred, self._deferred = self._deferred or [], None
        for op, values, mask in deferred:
            self._store(op, values, mask)
