"""One kernel of a gfx11 `.s` file as the interpreter runs it: its instructions (with each VOPD
pair as two), branch labels, kernel descriptor fields and kernel-argument size."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rdna3_isa.wave import NotModelled

# Instructions that only schedule or wait: in-order execution needs nothing from them.
NO_EFFECT = frozenset({
    "s_waitcnt", "s_waitcnt_vscnt", "s_waitcnt_vmcnt", "s_waitcnt_lgkmcnt", "s_waitcnt_expcnt",
    "s_waitcnt_depctr", "s_delay_alu", "s_clause", "s_nop", "s_set_inst_prefetch_distance",
    "s_sendmsg", "buffer_gl0_inv", "buffer_gl1_inv",
})
# Modifiers written as name:[bits] (VOP3P lane selects and negations).
_LIST_MODIFIER = re.compile(r"\s(op_sel|op_sel_hi|neg_lo|neg_hi):\[([01,]+)\]")
# Modifiers written as name:value or a bare flag, after the operands.
_WORD_MODIFIER = re.compile(r"^(offset|offset0|offset1):(-?(?:0x)?[0-9a-f]+)$|^(glc|slc|dlc|clamp|off)$")


@dataclass(frozen=True)
class Instruction:
    opcode: str
    operands: tuple[str, ...]
    modifiers: dict[str, object] = field(default_factory=dict)
    text: str = ""  # the source line, for error messages


@dataclass(frozen=True)
class Step:
    """What runs at one program position: one instruction, or a VOPD pair (both read, then both write)."""

    instructions: tuple[Instruction, ...]


@dataclass(frozen=True)
class Kernel:
    symbol: str
    steps: tuple[Step, ...]
    labels: dict[str, int]  # label -> index into steps
    descriptor: dict[str, int]  # .amdhsa_* fields without the prefix
    kernarg_size: int
    lds_bytes: int


def _parse_one(text: str) -> Instruction:
    modifiers: dict[str, object] = {}
    for name, bits in _LIST_MODIFIER.findall(" " + text):
        modifiers[name] = tuple(int(b) for b in bits.split(","))
    text = _LIST_MODIFIER.sub("", " " + text).strip()
    opcode, _, rest = text.partition(" ")
    parts = [p.strip() for p in rest.split(",")] if rest.strip() else []
    if parts:
        # The last operand may carry space-separated modifiers: "v2 offset:16", "off slc dlc".
        words = parts[-1].split()
        parts[-1] = words[0]
        for word in words[1:]:
            match = _WORD_MODIFIER.match(word)
            if not match:
                raise NotModelled(f"unknown modifier {word!r} in {text!r}")
            if match[1]:
                modifiers[match[1]] = int(match[2], 0)
            else:
                modifiers[match[3]] = True
    return Instruction(opcode, tuple(parts), modifiers, text)


def _descriptor(asm: str, symbol: str) -> dict[str, int]:
    match = re.search(rf"\.amdhsa_kernel {re.escape(symbol)}\n(.*?)\.end_amdhsa_kernel", asm, re.S)
    if not match:
        raise ValueError(f"no kernel descriptor for {symbol}")
    return {key: int(value, 0) for key, value in re.findall(r"\.amdhsa_(\w+)\s+(\S+)", match[1])}


def kernel_symbols(asm: str) -> list[str]:
    """The symbols of the kernels of `asm` (one compiled .s file), in order."""
    return re.findall(r"^\s*\.amdhsa_kernel (\S+)", asm, re.M)


def parse_kernel(asm: str, symbol: str) -> Kernel:
    """The kernel `symbol` of `asm` (one compiled .s file)."""
    body = re.search(rf"^{re.escape(symbol)}:.*?\n(.*?)^\.Lfunc_end\d+:", asm, re.S | re.M)
    if not body:
        raise ValueError(f"no function body for {symbol}")
    steps: list[Step] = []
    labels: dict[str, int] = {}
    for raw in body[1].splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.endswith(":"):
            labels[line[:-1]] = len(steps)
            continue
        if line.startswith("."):
            continue  # assembler directives (.p2align, ...)
        if line.split()[0] in NO_EFFECT:
            continue
        steps.append(Step(tuple(_parse_one(part.strip()) for part in line.split("::"))))
    descriptor = _descriptor(asm, symbol)
    return Kernel(symbol, tuple(steps), labels, descriptor, descriptor["kernarg_size"],
                  descriptor["group_segment_fixed_size"])
