"""`w4a16-rdna3 check`: every path this machine can run, against the fp32 reference.

On a GPU that is the native extension (and its RDNA3-emulation twin on NVIDIA) and the
Triton fallback, at real layer shapes. On a CPU it is the Triton kernel under Triton's
interpreter, with N cut down because the interpreter is slow.
"""

from __future__ import annotations

import os
import sys
from typing import NamedTuple

import torch

from w4a16_rdna3 import _ops
from w4a16_rdna3.quantize import random_layer
from w4a16_rdna3.reference import gemm_reference

# Relative-error bounds, the same as the test suite's (fp32 accumulation in every path).
ERROR_BOUNDS = {torch.float16: 1e-3, torch.bfloat16: 8e-3}

# (K, N) of Llama-3-8B's q_proj, gate/up_proj and down_proj.
REAL_LAYERS = ((4096, 4096), (4096, 14336), (14336, 4096))
CPU_N = 256


class Case(NamedTuple):
    backend: str
    dtype: torch.dtype
    m: int
    k: int
    n: int
    group_size: int
    symmetric: bool
    act_order: bool


class Outcome(NamedTuple):
    case: Case
    rel_error: float
    bound: float

    @property
    def passed(self) -> bool:
        return self.rel_error <= self.bound


def available_backends(device: torch.device) -> list[str]:
    """The backends `gemm` can run on `device` here, the reference excluded."""
    if device.type == "cpu":
        return ["triton"] if _triton_interpreter_ready() else []
    backends = []
    if _ops.native_build_info() is not None:
        backends.append("native")
    if _ops.emulation_build_info() is not None:
        backends.append("rdna3_emu")
    backends.append("triton")
    return backends


def _triton_interpreter_ready() -> bool:
    # The interpreter must be chosen before the first Triton kernel is defined.
    if "w4a16_rdna3.triton_w4a16" not in sys.modules:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    try:
        import w4a16_rdna3.triton_w4a16  # noqa: F401
    except ImportError:
        return False
    return os.environ.get("TRITON_INTERPRET") == "1"


def interpreter_can_run(case: Case) -> bool:
    """False for bf16 on the tiled Triton kernel: the interpreter feeds raw bf16 bits to its
    matmul (see tests/test_triton.py), so that combination is checked on GPUs only."""
    from w4a16_rdna3.triton_w4a16 import choose_config

    tiled = choose_config(case.m, case.n, case.k, torch.device("cpu")).kernel == "tiled"
    return not (case.dtype == torch.bfloat16 and tiled)


def cases(device: torch.device, quick: bool) -> list[Case]:
    on_cpu = device.type == "cpu"
    layers = REAL_LAYERS[:1] if quick or on_cpu else REAL_LAYERS
    ms = (1, 5, 33) if on_cpu else (1, 7, 16, 100, 512)
    variants = ((128, True, False), (128, False, True)) if on_cpu else (
        (128, True, False), (128, False, False), (32, True, True), (-1, False, False))
    out = []
    for backend in available_backends(device):
        for dtype in (torch.float16, torch.bfloat16):
            for k, n in layers:
                for m in ms:
                    for group_size, symmetric, act_order in variants:
                        out.append(Case(backend, dtype, m, k, CPU_N if on_cpu else n,
                                        group_size, symmetric, act_order))
    if on_cpu:
        out = [case for case in out if interpreter_can_run(case)]
    if quick:
        out = out[:: max(1, len(out) // 12)]
    return out


def run_case(case: Case, device: torch.device, seed: int) -> Outcome:
    layer = random_layer(case.k, case.n, case.group_size, symmetric=case.symmetric,
                         act_order=case.act_order, dtype=case.dtype, device=device, seed=seed)
    generator = torch.Generator(device="cpu").manual_seed(seed + 1)
    a = torch.randn(case.m, case.k, generator=generator).to(device=device, dtype=case.dtype)
    bias = (torch.randn(case.n, generator=generator) * 0.1).to(device=device, dtype=case.dtype)
    args = (a, layer.b_q, layer.scales, layer.zeros, layer.perm, bias)
    out = _ops.gemm(*args, backend=case.backend).float()
    ref = gemm_reference(*args).float()
    rel = (out - ref).norm() / ref.norm()
    rel_error = float(rel) if torch.isfinite(rel) else float("inf")
    return Outcome(case, rel_error, ERROR_BOUNDS[case.dtype])


def _progress(done: int, total: int) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\r" + " " * (width + 20) + "\r")
    sys.stderr.flush()


def _group_name(group_size: int) -> str:
    return "channel" if group_size == -1 else str(group_size)


def format_table(outcomes: list[Outcome]) -> str:
    header = ("backend", "dtype", "M", "K", "N", "group", "zeros", "act-order", "rel. error", "bound", "")
    rows = [header]
    for o in outcomes:
        c = o.case
        rows.append((c.backend, str(c.dtype).removeprefix("torch."), str(c.m), str(c.k), str(c.n),
                     _group_name(c.group_size), "no" if c.symmetric else "yes",
                     "yes" if c.act_order else "no", f"{o.rel_error:.2e}", f"{o.bound:.0e}",
                     "ok" if o.passed else "FAIL"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def run_check(quick: bool = False) -> int:
    device = default_device()
    todo = cases(device, quick)
    print(f"check on {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}")
    if not todo:
        print("  no kernel path can run here (Triton missing): nothing was checked")
        return 1
    if device.type == "cpu":
        print(f"  CPU: the Triton kernel under TRITON_INTERPRET=1, N cut to {CPU_N}; bf16 only where the"
              " GEMV kernel runs (the interpreter's bf16 matmul is wrong; the tiled kernel's bf16 is checked on GPUs)")
    outcomes = []
    for i, case in enumerate(todo):
        _progress(i, len(todo))
        outcomes.append(run_case(case, device, seed=i))
    _progress(len(todo), len(todo))
    print(format_table(outcomes))
    failed = sum(not o.passed for o in outcomes)
    print(f"{len(outcomes) - failed} passed, {failed} failed")
    return 1 if failed else 0
