"""The RDNA3 ISA interpreter itself (tests/rdna3_isa), on small kernels compiled for gfx1100 whose
answers numpy (or exact fractions) knows: integer and 64-bit arithmetic, the compiler's division
sequence, conversions, byte permutes, fp32 FMAs rounded once, LDS across waves and the barrier, and
the faults it must raise (an LDS race, an out-of-bounds access). Skips, saying why, where the ISA
check's clang is missing.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from rdna3_isa import dispatch
from rdna3_isa.memory import GlobalMemory
from rdna3_isa.program import Kernel
from rdna3_isa.toolchain import compile_source, modelled_or_skip
from rdna3_isa.wave import IsaFault, NotModelled
from w4a16_rdna3 import isa

TOOLCHAIN, NO_TOOLCHAIN_REASON = isa.find_toolchain()
pytestmark = pytest.mark.skipif(TOOLCHAIN is None, reason=f"RDNA3 interpreter tests skipped: {NO_TOOLCHAIN_REASON}")

SOURCE = r"""
#include <hip/hip_runtime.h>
#include <stdint.h>

// Per thread: quotient, remainder, high word of the 64-bit product, arithmetic shift, u32 -> f32,
// f32 -> u32 of half of it, fp32 -> fp16 bits of c, a byte permute, a 64-bit shift-add, and the
// larger and smaller of c and d (IEEE maxNum / minNum: +0 above -0, a quiet NaN loses).
extern "C" __global__ void __launch_bounds__(64) arith(const uint32_t* a, const uint32_t* b, const float* c,
                                                        const float* d, uint32_t* out) {
  const int t = __builtin_amdgcn_workitem_id_x() + 64 * __builtin_amdgcn_workgroup_id_x();
  const uint32_t x = a[t], y = b[t];
  uint32_t* o = out + 12 * t;
  o[0] = x / y;
  o[1] = x % y;
  o[2] = static_cast<uint32_t>((static_cast<uint64_t>(x) * y) >> 32);
  o[3] = static_cast<uint32_t>(static_cast<int32_t>(x) >> (y & 31));
  const float f = static_cast<float>(x);
  o[4] = __builtin_bit_cast(uint32_t, f);
  o[5] = static_cast<uint32_t>(f * 0.5f);
  o[6] = __builtin_bit_cast(uint16_t, static_cast<_Float16>(c[t]));
  o[7] = __builtin_amdgcn_perm(x, y, 0x07060100u);
  const uint64_t wide = (static_cast<uint64_t>(x) << (y & 31)) + y;
  o[8] = static_cast<uint32_t>(wide);
  o[9] = static_cast<uint32_t>(wide >> 32);
  o[10] = __builtin_bit_cast(uint32_t, __builtin_fmaxf(c[t], d[t]));
  o[11] = __builtin_bit_cast(uint32_t, __builtin_fminf(c[t], d[t]));
}

// c * d + e rounded once (v_fma_f32 or v_fmac_f32, as the compiler picks).
extern "C" __global__ void __launch_bounds__(64) fused_multiply_add(const float* c, const float* d, const float* e,
                                                                     float* out) {
  const int t = __builtin_amdgcn_workitem_id_x() + 64 * __builtin_amdgcn_workgroup_id_x();
  out[t] = __builtin_fmaf(c[t], d[t], e[t]);
}

__device__ inline void workgroup_barrier() {
  __builtin_amdgcn_fence(__ATOMIC_RELEASE, "workgroup");
  __builtin_amdgcn_s_barrier();
  __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "workgroup");
}

// out[t] = in[63 - t] through LDS: thread t's value is read by another wave.
extern "C" __global__ void __launch_bounds__(64) lds_reverse(const uint32_t* in, uint32_t* out) {
  __shared__ uint32_t buffer[64];
  const int t = __builtin_amdgcn_workitem_id_x();
  buffer[t] = in[t];
  workgroup_barrier();
  out[t] = buffer[63 - t];
}

// The same without the barrier: a race.
extern "C" __global__ void __launch_bounds__(64) lds_reverse_racing(const uint32_t* in, uint32_t* out) {
  __shared__ uint32_t buffer[64];
  const int t = __builtin_amdgcn_workitem_id_x();
  buffer[t] = in[t];
  __builtin_amdgcn_fence(__ATOMIC_SEQ_CST, "workgroup");
  out[t] = buffer[63 - t];
}
"""


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kernel]:
    assert TOOLCHAIN is not None
    return compile_source(TOOLCHAIN, SOURCE, Path(tmp_path_factory.mktemp("rdna3_isa")) / "small_kernels")


def _ieee_extreme(c: np.ndarray, d: np.ndarray, larger: bool) -> np.ndarray:
    """maxNum / minNum with +0 above -0 (numpy's fmax and fmin leave the zeros' order open)."""
    picked = np.fmax(c, d) if larger else np.fmin(c, d)
    zeros = (c == 0) & (d == 0)
    negative = (np.signbit(c) & np.signbit(d)) if larger else (np.signbit(c) | np.signbit(d))
    return np.where(zeros, np.where(negative, np.float32(-0.0), np.float32(0.0)), picked).view(np.uint32)


def _arith_expected(x: np.ndarray, y: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    x64, y64 = x.astype(np.uint64), y.astype(np.uint64)
    f = x.astype(np.float32)
    wide = (x64 << (y64 & np.uint64(31))) + y64
    columns = [
        x // y,
        x % y,
        (x64 * y64) >> np.uint64(32),
        (x.view(np.int32) >> (y & 31).astype(np.int32)).view(np.uint32),
        f.view(np.uint32),
        (f * np.float32(0.5)).astype(np.uint32),
        c.astype(np.float16).view(np.uint16),
        (x & 0xFFFF0000) | (y & 0xFFFF),  # selector bytes 0, 1 from y (the second operand), 6, 7 from x
        wide & np.uint64(0xFFFFFFFF),
        wide >> np.uint64(32),
        _ieee_extreme(c, d, larger=True),
        _ieee_extreme(c, d, larger=False),
    ]
    return np.stack([np.asarray(c).astype(np.uint64) for c in columns], axis=1).astype(np.uint32)


def test_integer_float_and_64_bit_arithmetic_match_numpy(kernels: dict[str, Kernel]) -> None:
    rng = np.random.default_rng(0)
    threads = 256
    x = rng.integers(0, 2**32, threads, dtype=np.uint64).astype(np.uint32)
    y = rng.integers(1, 2**32, threads, dtype=np.uint64).astype(np.uint32)
    y[::4] = rng.integers(1, 2**12, threads // 4).astype(np.uint32)  # small divisors too
    x[:8] = [0, 1, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 65535, 65536, 12345]
    # fp16's whole range and past it: subnormals, ties, overflow to infinity.
    c = (rng.standard_normal(threads) * 2.0 ** rng.integers(-26, 18, threads)).astype(np.float32)
    d = rng.standard_normal(threads).astype(np.float32)
    c[:6], d[:6] = [0.0, -0.0, 0.0, -0.0, np.nan, 1.0], [-0.0, 0.0, 0.0, -0.0, 2.0, np.nan]  # signed zeros, NaN
    memory = GlobalMemory()
    pa, pb, pc, pd = (memory.allocate(name, v) for name, v in (("a", x), ("b", y), ("c", c), ("d", d)))
    po = memory.allocate("out", 48 * threads)
    with modelled_or_skip(TOOLCHAIN):
        dispatch.run(kernels["arith"], memory, (threads // 64, 1, 1), 64, struct.pack("<QQQQQ", pa, pb, pc, pd, po))
    got = memory.contents(po).view(np.uint32).reshape(threads, 12)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = _arith_expected(x, y, c, d)
    wrong = np.argwhere(got != expected)
    assert not len(wrong), f"{len(wrong)} wrong results, first (thread, column): {wrong[:5].tolist()}"


def _nearest_fp32(value: Fraction) -> float:
    """`value` rounded to fp32, nearest even, from its exact value (no float64 step between)."""
    if value == 0:
        return 0.0
    magnitude = abs(value)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** exponent > magnitude:
        exponent -= 1
    unit = max(exponent - 23, -149)  # the last significand bit's weight (subnormals: 2^-149)
    rounded = math.ldexp(round(magnitude / Fraction(2) ** unit), unit)  # round(): half to even
    return math.copysign(rounded, value)


def test_fp32_fma_rounds_once(kernels: dict[str, Kernel]) -> None:
    """c * d + e against its exact value rounded to fp32. The first rows are built so that float64
    lands on an fp32 tie the exact value is not on: (1 + 2^-23)(1 - 2^-23) + 2^24 + 2 is
    2^24 + 3 - 2^-46, fp32 2^24 + 2, where float64 gives the tie 2^24 + 3 and then 2^24 + 4."""
    rng = np.random.default_rng(1)
    threads = 128
    c = (rng.standard_normal(threads) * 2.0 ** rng.integers(-30, 30, threads)).astype(np.float32)
    d = (rng.standard_normal(threads) * 2.0 ** rng.integers(-30, 30, threads)).astype(np.float32)
    e = (rng.standard_normal(threads) * 2.0 ** rng.integers(-60, 60, threads)).astype(np.float32)
    for row, scale in enumerate((0, 5, -7, 20, -40, 30)):
        sign = -1.0 if row % 2 else 1.0
        c[row] = sign * math.ldexp(1 + 2.0**-23, scale)
        d[row] = 1 - 2.0**-23
        e[row] = sign * math.ldexp(2.0**24 + 2, scale)
    memory = GlobalMemory()
    pc, pd, pe = (memory.allocate(name, v) for name, v in (("c", c), ("d", d), ("e", e)))
    po = memory.allocate("out", 4 * threads)
    with modelled_or_skip(TOOLCHAIN):
        dispatch.run(kernels["fused_multiply_add"], memory, (threads // 64, 1, 1), 64,
                     struct.pack("<QQQQ", pc, pd, pe, po))
    got = memory.contents(po).view(np.float32)
    expected = np.array([_nearest_fp32(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z)))
                         for x, y, z in zip(c, d, e)], dtype=np.float32)
    wrong = np.flatnonzero(got.view(np.uint32) != expected.view(np.uint32))
    assert not len(wrong), f"{len(wrong)} wrong results, first threads: {wrong[:8].tolist()}"


def test_lds_carries_values_between_waves_across_a_barrier(kernels: dict[str, Kernel]) -> None:
    values = np.arange(100, 164, dtype=np.uint32)
    memory = GlobalMemory()
    pin, pout = memory.allocate("in", values), memory.allocate("out", 4 * 64)
    with modelled_or_skip(TOOLCHAIN):
        dispatch.run(kernels["lds_reverse"], memory, (1, 1, 1), 64, struct.pack("<QQ", pin, pout))
    assert np.array_equal(memory.contents(pout).view(np.uint32), values[::-1])


def test_an_lds_read_of_another_waves_write_without_a_barrier_is_a_race(kernels: dict[str, Kernel]) -> None:
    memory = GlobalMemory()
    pin, pout = memory.allocate("in", np.arange(64, dtype=np.uint32)), memory.allocate("out", 4 * 64)
    with modelled_or_skip(TOOLCHAIN), pytest.raises(IsaFault, match="LDS race"):
        dispatch.run(kernels["lds_reverse_racing"], memory, (1, 1, 1), 64, struct.pack("<QQ", pin, pout))


def test_a_store_past_an_allocation_is_a_fault(kernels: dict[str, Kernel]) -> None:
    memory = GlobalMemory()
    pin, pout = memory.allocate("in", np.arange(64, dtype=np.uint32)), memory.allocate("out", 4 * 63)
    with modelled_or_skip(TOOLCHAIN), pytest.raises(IsaFault, match="outside 'out'"):
        dispatch.run(kernels["lds_reverse"], memory, (1, 1, 1), 64, struct.pack("<QQ", pin, pout))


@pytest.mark.parametrize("banner, fitted", [("Debian clang version 19.1.7 (3)", True),
                                            ("AMD clang version 19.0.0git (roc-6.4.1)", False)])
def test_unmodelled_code_fails_with_the_fitted_compiler_and_skips_with_another(
        tmp_path: Path, banner: str, fitted: bool) -> None:
    clang = tmp_path / "clang++"
    clang.write_text(f"#!/bin/sh\necho '{banner}'\n")
    clang.chmod(0o755)
    toolchain = isa.Toolchain(str(clang), None)
    expected = pytest.raises(NotModelled) if fitted else pytest.raises(pytest.skip.Exception, match="does not model")
    with expected, modelled_or_skip(toolchain):
        raise NotModelled("instruction not modelled: v_new_instruction v0, v1")
