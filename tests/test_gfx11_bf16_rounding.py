"""gfx11's fp32 -> bf16 roundings (csrc/arch/gfx11_bf16_math.cuh), run on the CPU against torch's.

gfx11 has no bf16 convert, so its kernels round on the bits: `bf16_in_high_half` for outputs, and
`bf16_in_high_half_of_non_nan`, without the NaN select, where NaN is ruled out by construction
(the bf16 WMMA staging's dequantisation). The emulation build runs them in its kernels, on the
values the GPU tests happen to produce; this test compiles them for the host with the ISA check's
clang and gives them every class of input. It skips, saying why, where that clang is missing.
"""

from __future__ import annotations

import ctypes
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from w4a16_rdna3 import hip_host, isa

REPO = Path(__file__).resolve().parents[1]
SHIM = Path(__file__).resolve().parent / "gfx11_host" / "bf16_rounding_shim.hip"

TOOLCHAIN, NO_TOOLCHAIN_REASON = isa.find_toolchain()
pytestmark = pytest.mark.skipif(TOOLCHAIN is None, reason=f"gfx11 host rounding test skipped: {NO_TOOLCHAIN_REASON}")

# (fp32 values, without the NaN select?) -> their bf16 bits, as gfx11 rounds them.
Rounding = Callable[[np.ndarray, bool], np.ndarray]


@pytest.fixture(scope="module")
def round_to_bf16(tmp_path_factory: pytest.TempPathFactory) -> Rounding:
    assert TOOLCHAIN is not None
    library = tmp_path_factory.mktemp("gfx11_host") / "bf16_rounding.so"
    cmd = hip_host.host_compile_command(TOOLCHAIN.clang, "gfx1100", REPO / "csrc")
    cmd += ["-fPIC", "-shared", "-o", str(library), str(SHIM)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stderr}"
    function = ctypes.CDLL(str(library)).round_to_bf16
    function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

    def run(x: np.ndarray, of_non_nan: bool) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
        out = np.empty(x.shape, dtype=np.uint16)
        function(x.ctypes.data, out.ctypes.data, x.size, int(of_non_nan))
        return out

    return run


def _inputs() -> np.ndarray:
    """Every high half (all exponents, signs, infinities, NaNs) with the low halves where rounding
    turns (ties, either side of them, the extremes), and random bit patterns."""
    high = np.arange(1 << 16, dtype=np.uint32) << 16
    lows = np.array([0, 1, 0x3FFF, 0x7FFE, 0x7FFF, 0x8000, 0x8001, 0xBFFF, 0xFFFE, 0xFFFF], dtype=np.uint32)
    structured = (high[:, None] | lows[None, :]).ravel()
    rng = np.random.default_rng(0)
    random = rng.integers(0, 1 << 32, size=1 << 22, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([structured, random]).view(np.float32)


def _torch_bf16_bits(x: np.ndarray) -> np.ndarray:
    return torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


def _is_nan(bits: np.ndarray) -> np.ndarray:
    return (bits & 0x7FFF) > 0x7F80


def test_rounding_matches_torch_and_keeps_nans(round_to_bf16: Rounding) -> None:
    x = _inputs()
    ours, theirs = round_to_bf16(x, False), _torch_bf16_bits(x)
    nan = np.isnan(x)
    assert np.array_equal(ours[~nan], theirs[~nan]), "bf16_in_high_half differs from torch off NaN"
    assert _is_nan(ours[nan]).all(), "a NaN input did not round to a bf16 NaN"


def test_rounding_without_nan_select_is_the_same_off_nan(round_to_bf16: Rounding) -> None:
    x = _inputs()
    full, short = round_to_bf16(x, False), round_to_bf16(x, True)
    nan = np.isnan(x)
    assert np.isinf(x).sum() >= 2, "both infinities are among the inputs"
    assert np.array_equal(short[~nan], full[~nan]), "the two roundings differ off NaN (infinities included)"
    # Why NaN must be ruled out: a NaN whose rounding carries past its high half becomes another
    # value (NVIDIA's canonical NaN 0x7fffffff becomes -0).
    canonical = np.array([0x7FFFFFFF], dtype=np.uint32).view(np.float32)
    assert round_to_bf16(canonical, True)[0] == 0x8000
