"""VALU issues per KiB of int4 weights in the gfx1100 decode code, counted by running it in the
RDNA3 ISA interpreter (tests/rdna3_isa) on the CPU, against the issue slots an RX 7900 XTX leaves
per KiB it streams; then the decode kernel against the WMMA kernel around `gemm`'s switch between
them on gfx11 (kGemmDot2MaxM = 16). An instruction count of the code clang emits, not a timing:
nothing here ran on gfx1100.

    python3 benchmarks/gfx1100_decode_issues.py      # needs the ISA check's clang (README)
"""

from __future__ import annotations

import functools
import sys
import tempfile
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the package from this checkout; the interpreter lives with the tests

from rdna3_isa.gfx1100_gemm import Gfx1100Kernels, run_gemm  # noqa: E402
from rdna3_isa.launches import build_launch_shim  # noqa: E402
from w4a16_rdna3 import isa  # noqa: E402
from w4a16_rdna3.quantize import random_layer  # noqa: E402

K, N, GROUP = 4096, 128, 128  # one column tile of 128, one K split: the main loop dominates
# RX 7900 XTX: 96 CUs of 2 SIMDs at 2.5 GHz (boost) issue one VALU instruction (or VOPD pair) a
# cycle each, against 960 GB/s of memory.
ISSUES_PER_SECOND = 96 * 2 * 2.5e9
KIB_PER_SECOND = 960e9 / 1024
# A v_wmma_f32_16x16x16 (8192 FLOPs) holds its SIMD 32 cycles: AMD gives RDNA3 512 fp16/bf16 FLOPs
# per clock per CU (GPUOpen, "How to accelerate AI applications on RDNA 3 using WMMA").
WMMA_CYCLES = 32


def is_wmma(opcode: str) -> bool:
    return opcode.startswith("v_wmma_")


def valu_issues(tally: Counter[str]) -> float:
    """VALU issue slots but WMMA's: each VALU instruction, a VOPD pair's two halves counted as one."""
    valu = sum(n for opcode, n in tally.items() if opcode.startswith("v_") and not is_wmma(opcode))
    pairs = sum(n for opcode, n in tally.items() if opcode.startswith("v_dual_")) / 2
    return valu - pairs


def wmma_cycles(tally: Counter[str]) -> float:
    return WMMA_CYCLES * sum(n for opcode, n in tally.items() if is_wmma(opcode))


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
    kib = K * N / 2 / 1024
    dtypes = ((torch.float16, "fp16"), (torch.bfloat16, "bf16"))
    weights = {dtype: random_layer(K, N, GROUP, dtype=dtype, seed=1) for dtype, _ in dtypes}

    @functools.cache
    def tally(op: str, dtype: torch.dtype, m: int) -> Counter[str]:
        """Opcodes run by the whole call (the WMMA kernel with its plan's K splits and their reduction)."""
        a = torch.randn((m, K), generator=torch.Generator().manual_seed(m)).to(dtype)
        ran: Counter[str] = Counter()
        run_gemm(kernels, shim, a, weights[dtype], op=op, decode_splits=1 if op == "gemm_dot2" else None, tally=ran)
        return ran

    for dtype, name in dtypes:
        for m in (1, 2, 4, 8, 16):
            per_kib = valu_issues(tally("gemm_dot2", dtype, m)) / kib
            print(f"| {name} | {m} | {per_kib:.0f} | {per_kib / slots_per_kib:.0%} |")
    # Whether a SIMD issues other waves' VALU work while a v_wmma runs is not modelled here: both bounds.
    print(f"\nAround the switch: VALU issues and WMMA cycles ({WMMA_CYCLES} a v_wmma) per KiB, and the share of the"
          " slots if they do not overlap (sum) or if they fully do (max)\n\n| dtype | M | op | VALU issues / KiB |"
          " WMMA cycles / KiB | share: sum | share: max |\n|---|---|---|---|---|---|---|")
    for dtype, name in dtypes:
        for m in (8, 16, 32):
            for op in ("gemm_dot2", "gemm_wmma"):
                ran = tally(op, dtype, m)
                valu, wmma = valu_issues(ran) / kib, wmma_cycles(ran) / kib
                print(f"| {name} | {m} | {op} | {valu:.0f} | {wmma:.0f} | {(valu + wmma) / slots_per_kib:.0%} "
                      f"| {max(valu, wmma) / slots_per_kib:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
