"""VALU issues per KiB of int4 weights in the gfx1100 decode code, counted by running it in the
RDNA3 ISA interpreter (tests/rdna3_isa) on the CPU, against the issue slots an RX 7900 XTX leaves
per KiB it streams. An instruction count of the code clang emits, not a timing: nothing here ran on
gfx1100.

    python3 benchmarks/gfx1100_decode_issues.py      # needs the ISA check's clang (README)
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the interpreter lives with the tests

from rdna3_isa.gfx1100_gemm import Gfx1100Kernels, run_gemm  # noqa: E402
from rdna3_isa.launches import build_launch_shim  # noqa: E402
from w4a16_rdna3 import isa  # noqa: E402
from w4a16_rdna3.quantize import random_layer  # noqa: E402

K, N, GROUP = 4096, 128, 128  # one column tile of 128, one K split: the main loop dominates
# RX 7900 XTX: 96 CUs of 2 SIMDs at 2.5 GHz (boost) issue one VALU instruction (or VOPD pair) a
# cycle each, against 960 GB/s of memory.
ISSUES_PER_SECOND = 96 * 2 * 2.5e9
KIB_PER_SECOND = 960e9 / 1024


def valu_issues(tally: Counter[str]) -> float:
    """VALU issue slots: each VALU instruction, a VOPD pair's two halves counted as one."""
    valu = sum(n for opcode, n in tally.items() if opcode.startswith("v_"))
    pairs = sum(n for opcode, n in tally.items() if opcode.startswith("v_dual_")) / 2
    return valu - pairs


def main() -> int:
    toolchain, reason = isa.find_toolchain()
    if toolchain is None:
        print(f"no gfx1100 compiler: {reason}")
        return 1
    slots_per_kib = ISSUES_PER_SECOND / KIB_PER_SECOND
    work = Path(tempfile.mkdtemp(prefix="gfx1100_issues_"))
    shim, kernels = build_launch_shim(work), Gfx1100Kernels(toolchain, work)
    print(f"(K, N) = ({K}, {N}), G = {GROUP}, symmetric, one K split; {slots_per_kib:.0f} VALU issue slots per KiB "
          "at 960 GB/s\n\n| dtype | M | VALU issues / KiB | share of the slots |\n|---|---|---|---|")
    for dtype, name in ((torch.float16, "fp16"), (torch.bfloat16, "bf16")):
        weights = random_layer(K, N, GROUP, dtype=dtype, seed=1)
        for m in (1, 2, 4, 8, 16):
            a = torch.randn((m, K), generator=torch.Generator().manual_seed(m)).to(dtype)
            tally: Counter[str] = Counter()
            run_gemm(kernels, shim, a, weights, op="gemm_dot2", decode_splits=1, tally=tally)
            per_kib = valu_issues(tally) / (K * N / 2 / 1024)
            print(f"| {name} | {m} | {per_kib:.0f} | {per_kib / slots_per_kib:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
