"""The gfx1100 machine code of every kernel, run on the CPU by an RDNA3 ISA interpreter
(tests/rdna3_isa), against the fp32 reference.

Each case is one `gemm` call (or `gemm_dot2` / `gemm_wmma`) as a gfx1100 would make it: the
launches the product's host code plans for an RX 7900 XTX (48 WGPs), the kernels compiled for
gfx1100 by the ISA check's clang, every instruction run lane by lane, every memory access bounds-
and alignment-checked, the output poisoned with NaN first. Not a gfx1100 result: the interpreter's
instruction semantics are this project's reading of the ISA guide (see tests/rdna3_isa/__init__.py).
Skips, saying why, where that clang is missing.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from conftest import rel_error
from rdna3_isa.gfx1100_gemm import Gfx1100Kernels, run_gemm
from rdna3_isa.launches import LaunchShim, build_launch_shim
from rdna3_isa.toolchain import modelled_or_skip
from rdna3_isa.wave import IsaFault
from w4a16_rdna3 import isa
from w4a16_rdna3.quantize import random_layer
from w4a16_rdna3.reference import gemm_reference

TOOLCHAIN, NO_TOOLCHAIN_REASON = isa.find_toolchain()
pytestmark = pytest.mark.skipif(TOOLCHAIN is None, reason=f"gfx1100 execution tests skipped: {NO_TOOLCHAIN_REASON}")

BOUNDS = {torch.float16: 1e-3, torch.bfloat16: 8e-3}


@dataclass(frozen=True)
class Case:
    m: int
    k: int
    n: int
    group: int  # 0: channelwise (G = K)
    dtype: torch.dtype
    zeros: bool
    act_order: bool = False
    bias: bool = False
    op: str = "gemm"
    activation_scale: float = 1.0

    def __str__(self) -> str:
        flags = [name for name, on in (("zeros", self.zeros), ("act-order", self.act_order), ("bias", self.bias)) if on]
        flags += [f"a*{self.activation_scale:g}"] if self.activation_scale != 1.0 else []
        dtype = "bf16" if self.dtype == torch.bfloat16 else "fp16"
        return f"{self.op}-M{self.m}-K{self.k}-N{self.n}-G{self.group or 'K'}-{dtype}-{'+'.join(flags) or 'plain'}"


FP16, BF16 = torch.float16, torch.bfloat16
# Every row tile of the decode kernel (M = 1, 2, 3, 7, 8, 15, 16 and, through gemm_dot2, 33 in three
# row tiles), each WMMA tile (small to M = 32, medium, large where it gives all 48 WGPs a block),
# both dtypes x zeros x act-order x bias x G = 8 / 32 / 40 / 64 / 128 / K, N = 8 and other odd N,
# K not a multiple of the WMMA K tile, and K splits with the reduction kernel in both: the plans
# split (4096, 256) 16 ways at M = 1 and (1024, 72) 4 ways at M = 64.
CASES = [
    Case(1, 4096, 256, 128, FP16, zeros=False),
    Case(1, 256, 72, 32, BF16, zeros=True, bias=True),
    Case(2, 128, 8, 0, FP16, zeros=True, bias=True),
    Case(3, 512, 72, 64, BF16, zeros=False, act_order=True),
    Case(7, 256, 72, 128, FP16, zeros=True, act_order=True, bias=True),
    Case(8, 1024, 136, 32, BF16, zeros=True),
    Case(15, 512, 72, 64, FP16, zeros=False, bias=True),
    Case(16, 256, 72, 32, BF16, zeros=True, act_order=True),
    Case(33, 256, 72, 64, FP16, zeros=True, bias=True, op="gemm_dot2"),
    Case(4, 264, 24, 8, BF16, zeros=True),  # G = 8: the decode kernel refuses it, the WMMA kernel takes it
    Case(1, 256, 72, 64, FP16, zeros=False, op="gemm_wmma"),
    Case(17, 256, 72, 64, FP16, zeros=True, bias=True),
    Case(31, 128, 8, 32, BF16, zeros=False),
    Case(64, 1024, 72, 128, FP16, zeros=False, act_order=True, bias=True),
    Case(100, 200, 136, 40, BF16, zeros=True),
    Case(128, 256, 72, 0, FP16, zeros=False),
    Case(500, 64, 1536, 32, BF16, zeros=True, bias=True),  # 48 blocks of 128 x 128: the large tile
    # bf16 activations and outputs past fp16's range (65504), which a bf16 model cast to fp16 would
    # turn into inf: the bf16 paths keep them.
    Case(4, 512, 72, 128, BF16, zeros=True, activation_scale=2.0**16),
    Case(40, 512, 72, 128, BF16, zeros=False, bias=True, activation_scale=2.0**16),
]

# W4A16_RDNA3_ISA_MATRIX=1 adds the GPU suite's small-layer matrix (test_native_ops.py: (K, N) =
# (128, 8), (256, 72) x fp16/bf16 x zeros x act-order x bias x G = 32 / 64 / 128 / K x every M of
# the kernels issue up to 512 x gemm / gemm_dot2 (to M = 128) / gemm_wmma): 2 x 2432 cases, about
# 35 minutes per dtype on one core. M = 2048 is left out (hours here).
MATRIX_M = (1, 2, 3, 7, 8, 15, 16, 17, 31, 64, 100, 128, 512)
if os.environ.get("W4A16_RDNA3_ISA_MATRIX") == "1":
    CASES += [
        Case(m, k, n, group, dtype, zeros, act_order, bias, op)
        for (k, n), dtype, zeros, act_order, bias, group, m, op in itertools.product(
            ((128, 8), (256, 72)), (FP16, BF16), (False, True), (False, True), (False, True), (32, 64, 128, 0),
            MATRIX_M, ("gemm", "gemm_dot2", "gemm_wmma"))
        if op != "gemm_dot2" or m <= 128
    ]


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> LaunchShim:
    return build_launch_shim(tmp_path_factory.mktemp("launch_shim"))


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> Gfx1100Kernels:
    assert TOOLCHAIN is not None
    return Gfx1100Kernels(TOOLCHAIN, Path(tmp_path_factory.mktemp("gfx1100_kernels")))


def _inputs(case: Case, seed: int) -> tuple[torch.Tensor, object, torch.Tensor | None]:
    weights = random_layer(case.k, case.n, case.group or case.k, symmetric=not case.zeros,
                           act_order=case.act_order, dtype=case.dtype, seed=seed)
    gen = torch.Generator().manual_seed(seed + 7)
    a = (torch.randn((case.m, case.k), generator=gen) * case.activation_scale).to(case.dtype)
    bias = torch.randn((case.n,), generator=gen).to(case.dtype) if case.bias else None
    return a, weights, bias


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gfx1100_code_matches_reference(case: Case, shim: LaunchShim, kernels: Gfx1100Kernels) -> None:
    a, weights, bias = _inputs(case, seed=case.m * 1000 + case.k)
    assert TOOLCHAIN is not None
    with modelled_or_skip(TOOLCHAIN):
        out = run_gemm(kernels, shim, a, weights, bias, op=case.op)
    ref = gemm_reference(a, weights.b_q, weights.scales, weights.zeros, weights.perm, bias).float()
    if case.activation_scale != 1.0:
        assert ref.abs().max() > torch.finfo(torch.float16).max, "the case should reach past fp16's range"
        assert torch.isfinite(out).all(), "bf16 outputs past fp16's range became inf"
    assert not torch.isnan(out).any(), "NaN in the output (an element left unwritten is NaN: the poison)"
    err = rel_error(out, ref)
    assert err <= BOUNDS[case.dtype], f"relative error {err:.2e} > {BOUNDS[case.dtype]:.0e}"


def test_an_out_of_bounds_read_is_a_fault(shim: LaunchShim, kernels: Gfx1100Kernels) -> None:
    """The checks every case relies on: a b_q one row short of what K asks is read past its end."""
    case = Case(1, 256, 72, 32, FP16, zeros=False)
    a, weights, _ = _inputs(case, seed=1)
    weights.b_q = weights.b_q[:-1].contiguous()
    assert TOOLCHAIN is not None
    with modelled_or_skip(TOOLCHAIN), pytest.raises(IsaFault, match="outside 'b_q'"):
        run_gemm(kernels, shim, a, weights)
