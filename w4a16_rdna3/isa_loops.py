"""The innermost loops of one kernel in gfx11 assembly: what an iteration issues and keeps in flight.

clang marks loops in comments of the AMDGPU assembly: the header block of an innermost loop says
"=>This Inner Loop Header: Depth=N" (on its label line or on the comment line after it); every
other block of a loop says "in Loop: Header=BBf_b Depth=N", naming the header of the innermost loop
that holds it. A loop here is its header's block and the blocks naming it, in layout order.

Vector-memory loads (global_, buffer_ and flat_ loads) count as outstanding from issue until an
`s_waitcnt vmcnt(n)` leaves at most n of them: gfx11 returns them in order, and stores count in
another counter (vscnt). The instructions are walked straight down the layout twice, every branch
taken as falling through (every step of a batch valid), and the second walk is reported, so loads
issued late in one iteration and still in flight at the top of the next are counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOAD_PREFIXES = ("global_load", "buffer_load", "flat_load")
# Instructions that mask lanes off for a branch: the compiler's form of a divergent `if`.
EXEC_BRANCH = re.compile(r"^(s_and_saveexec|s_or_saveexec|s_and_not1_saveexec|s_andn2_saveexec|v_cmpx_)")


def is_matrix(opcode: str) -> bool:
    """v_wmma_* and the dot2 instructions, alone or as one half of a VOPD pair (v_dual_dot2acc_*)."""
    return opcode.startswith("v_wmma_") or "dot2" in opcode


_BLOCK_LABEL = re.compile(r"^(\.LBB\d+_\d+):|^; %bb\.\d+:")
_HEADER_OF = re.compile(r"Header=(BB\d+_\d+)")
_VMCNT = re.compile(r"vmcnt\((\d+)\)")


def _is_instruction(stripped: str) -> bool:
    """Whether a stripped line of assembly is an instruction (not blank, a comment, a label or a
    directive)."""
    return bool(stripped) and not stripped.startswith((";", "."))


def _vmcnt(instruction: str) -> int | None:
    """The count an `s_waitcnt` waits vector-memory loads down to, or None (another instruction,
    or a wait on other counters only)."""
    wait = _VMCNT.search(instruction) if instruction.split()[0] == "s_waitcnt" else None
    return int(wait[1]) if wait else None


@dataclass(frozen=True)
class LoopProfile:
    header: str  # the header block, "BBf_b"
    instructions: int  # laid out in one iteration
    valu: int  # v_ instructions (a VOPD pair issues as one)
    matrix: int  # v_wmma_* and dot2 instructions among them (is_matrix)
    exec_branches: int  # lane-masking branch instructions
    loads: int  # vector-memory loads
    loads_16b: int  # of them 16-byte (b128)
    max_in_flight: int  # most vector-memory loads outstanding at once
    max_16b_in_flight: int  # most 16-byte loads outstanding at once
    matrix_under_loads: int  # matrix instructions issued while a load is outstanding
    vector_addressed_loads: int  # loads addressed by a 64-bit VGPR pair (flat_, or global_ with "off")

    @property
    def loads_leave_together(self) -> bool:
        """At least half of an iteration's loads are in flight at some point (always, for one load)."""
        return 2 * self.max_in_flight >= self.loads


def is_vector_addressed(load: str) -> bool:
    """Whether a load instruction takes its address from a 64-bit VGPR pair: every flat_ load, and a
    global_ load whose scalar-base operand is `off` (`global_load_b32 v1, v[2:3], off`), where
    `global_load_b32 v1, v2, s[4:5]` adds a 32-bit VGPR offset to a scalar base (saddr). The pair
    costs 64-bit VALU arithmetic wherever the address moves."""
    opcode, _, operands = load.strip().partition(" ")
    if opcode.startswith("flat_load"):
        return True
    fields = [field.strip() for field in operands.split(",")]
    return opcode.startswith("global_load") and len(fields) >= 3 and fields[2].split()[0] == "off"


def _blocks(body: str) -> list[tuple[str | None, bool, list[str]]]:
    """(header of the innermost loop holding the block or None, is that header, instructions)."""
    blocks: list[tuple[str | None, bool, list[str]]] = []
    label: str | None = None
    for line in body.splitlines():
        stripped = line.strip()
        match = _BLOCK_LABEL.match(stripped)
        if match:
            label = match[1][2:] if match[1] else None  # ".LBB0_22" -> "BB0_22"
            blocks.append((None, False, []))
            stripped = stripped[match.end():].strip()
        if not blocks:
            blocks.append((None, False, []))
        header, is_header, instructions = blocks[-1]
        if stripped.startswith(";"):
            if "This Inner Loop Header" in stripped and not instructions and label:
                blocks[-1] = (label, True, instructions)
            elif header is None and (found := _HEADER_OF.search(stripped)):
                blocks[-1] = (found[1], False, instructions)
        elif _is_instruction(stripped):
            instructions.append(stripped)
    return blocks


def _profile(header: str, instructions: list[str]) -> LoopProfile:
    opcodes = [line.split()[0] for line in instructions]
    outstanding: list[bool] = []  # per load in flight, oldest first: is it 16-byte
    max_in_flight = max_16b = under = 0
    for walk in range(2):
        for opcode, line in zip(opcodes, instructions):
            if opcode.startswith(LOAD_PREFIXES):
                outstanding.append(opcode.endswith("b128"))
            wait = _vmcnt(line)
            if wait is not None:
                del outstanding[: max(0, len(outstanding) - wait)]
            if walk == 1:
                max_in_flight = max(max_in_flight, len(outstanding))
                max_16b = max(max_16b, sum(outstanding))
                under += bool(outstanding) and is_matrix(opcode)
    loads = [line for op, line in zip(opcodes, instructions) if op.startswith(LOAD_PREFIXES)]
    return LoopProfile(
        header=header,
        instructions=len(opcodes),
        valu=sum(op.startswith("v_") for op in opcodes),
        matrix=sum(is_matrix(op) for op in opcodes),
        exec_branches=sum(bool(EXEC_BRANCH.match(op)) for op in opcodes),
        loads=len(loads),
        loads_16b=sum(line.split()[0].endswith("b128") for line in loads),
        max_in_flight=max_in_flight,
        max_16b_in_flight=max_16b,
        matrix_under_loads=under,
        vector_addressed_loads=sum(is_vector_addressed(line) for line in loads),
    )


def innermost_loops(body: str) -> list[LoopProfile]:
    """Every innermost loop of one function's assembly (isa.function_body), in layout order."""
    blocks = _blocks(body)
    headers = [header for header, is_header, _ in blocks if is_header and header is not None]
    return [
        _profile(h, [line for header, _, instructions in blocks if header == h for line in instructions])
        for h in headers
    ]


def loads_waited_alone(body: str) -> int:
    """Loads anywhere in the function (layout order) issued with no other load in flight and waited
    for, vmcnt(0), before another leaves: each costs a full memory latency by itself."""
    alone = outstanding = 0
    first_in_flight_alone = False
    for line in body.splitlines():
        stripped = line.strip()
        if not _is_instruction(stripped):
            continue
        if stripped.startswith(LOAD_PREFIXES):
            first_in_flight_alone = outstanding == 0
            outstanding += 1
        if _vmcnt(stripped) == 0:
            alone += outstanding == 1 and first_in_flight_alone
            outstanding = 0
    return alone


def hot_loop(loops: list[LoopProfile]) -> LoopProfile | None:
    """The loop with the most matrix instructions (the kernel's main loop), if any has one."""
    with_matrix = [loop for loop in loops if loop.matrix]
    return max(with_matrix, key=lambda loop: loop.matrix) if with_matrix else None
