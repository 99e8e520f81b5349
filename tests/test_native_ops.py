"""The native ops (`gemm`, `gemm_dot2`, `gemm_wmma`) of each build against the fp32 reference.

Builds: `w4a16_rdna3` (native: gfx11 on ROCm, CUDA on NVIDIA) and, on CUDA, `w4a16_rdna3_emu`
(the RDNA3 instructions and lane layouts emulated). Bounds: relative error ||out - ref|| / ||ref||
<= 1e-3 for fp16 and <= 8e-3 for bf16 (the output's own rounding is about 3e-4 / 2e-3); NaN never
passes; the output's memory is poisoned with NaN before every call; fresh seeded data per test.

Small layers get the full cross product (dtype x zeros x act-order x bias x group size, every M
of the issue, every op); model-sized layers a representative subset.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from conftest import rel_error, requires_cuda
from w4a16_rdna3.reference import gemm_reference

pytestmark = requires_cuda

BOUND = {torch.float16: 1e-3, torch.bfloat16: 8e-3}
BUILDS = {"native": ("w4a16_rdna3", "w4a16_rdna3._C"), "rdna3_emu": ("w4a16_rdna3_emu", "w4a16_rdna3._C_rdna3_emu")}
# The builds a loop inside one test goes over: the emulation build exists only on CUDA.
BUILDS_HERE = ("native",) if torch.version.hip is not None else tuple(BUILDS)
OPS = ("gemm", "gemm_dot2", "gemm_wmma")
ALL_M = (1, 2, 3, 7, 8, 15, 16, 17, 31, 64, 100, 128, 512, 2048)
SMALL_KN = ((128, 8), (256, 72))
# (1536, 17920): on GPUs of 132 SMs (H100, H200) its decode at M <= 4 runs in 4-warp blocks, K split
# in 3 (gemm_dot2_plan.h).
LARGE_KN = ((4096, 256), (5120, 128), (11008, 128), (4096, 14336), (14336, 4096), (1536, 17920))
GROUPS = (32, 64, 128, -1)  # -1: channelwise (one scale row)


def build_ops(build: str):
    """torch.ops.<namespace> of a build; skips (with the reason) where the build cannot exist."""
    namespace, module = BUILDS[build]
    if build == "rdna3_emu" and torch.version.hip is not None:
        pytest.skip("the RDNA3 emulation build exists only on CUDA")
    importlib.import_module(module)  # on a GPU machine a missing build is a failure, not a skip
    return getattr(torch.ops, namespace)


def poison_allocator(shape: tuple[int, int], dtype: torch.dtype) -> None:
    """Fill and free a block of the output's size: the caching allocator hands it to the op next,
    so elements the kernel fails to write stay NaN."""
    torch.empty(shape, dtype=dtype, device="cuda").fill_(float("nan"))


def cuda_gen(gen: torch.Generator) -> torch.Generator:
    return torch.Generator(device="cuda").manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))


def make_layer(k: int, n: int, group: int, *, zeros: bool, act_order: bool, dtype: torch.dtype, gen: torch.Generator):
    """Random kernel-layout weights (b_q, scales, zeros, perm): every nibble and zero point in
    0..15, scales around 1 / (5 sqrt(K)) so outputs stay O(1), perm a random permutation."""
    from w4a16_rdna3.formats import pack_cols, pack_rows

    cg = cuda_gen(gen)
    groups = 1 if group == -1 else k // group
    q = torch.randint(0, 16, (k, n), generator=cg, dtype=torch.int32, device="cuda")
    scales = ((torch.rand((groups, n), generator=cg, device="cuda") + 0.5) / (5 * k**0.5)).to(dtype)
    z = pack_cols(torch.randint(0, 16, (groups, n), generator=cg, dtype=torch.int32, device="cuda")) if zeros else None
    perm = torch.randperm(k, generator=cg, device="cuda").to(torch.int32) if act_order else None
    return pack_rows(q), scales, z, perm


def make_inputs(m: int, k: int, n: int, dtype: torch.dtype, gen: torch.Generator, *, bias: bool):
    cg = cuda_gen(gen)
    a = torch.randn((m, k), generator=cg, device="cuda").to(dtype)
    b = torch.randn((n,), generator=cg, device="cuda").to(dtype) if bias else None
    return a, b


def run_op(op, a: torch.Tensor, layer, bias: torch.Tensor | None) -> torch.Tensor:
    b_q, scales, zeros, perm = layer
    poison_allocator((a.shape[0], b_q.shape[1]), a.dtype)
    return op(a, b_q, scales, zeros, perm, bias)


def check_all_ops(ops, ms, k, n, group, dtype, zeros, act_order, bias, gen, op_names=OPS):
    layer = make_layer(k, n, group, zeros=zeros, act_order=act_order, dtype=dtype, gen=gen)
    failures = []
    for m in ms:
        a, b = make_inputs(m, k, n, dtype, gen, bias=bias)
        ref = gemm_reference(a, *layer, bias=b)
        for name in op_names:
            out = run_op(getattr(ops, name), a, layer, b)
            err = rel_error(out, ref)
            if not (out.dtype == dtype and err <= BOUND[dtype]):
                failures.append(f"{name} M={m}: dtype {out.dtype}, rel err {err:.2e} > {BOUND[dtype]:.0e}")
    assert not failures, f"K={k} N={n} G={group} {dtype} zeros={zeros} act_order={act_order} bias={bias}: " + "; ".join(failures)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("kn", SMALL_KN, ids=lambda kn: f"K{kn[0]}N{kn[1]}")
@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16), ids=("fp16", "bf16"))
@pytest.mark.parametrize("zeros", (False, True), ids=("sym", "zeros"))
@pytest.mark.parametrize("act_order", (False, True), ids=("noperm", "perm"))
@pytest.mark.parametrize("bias", (False, True), ids=("nobias", "bias"))
@pytest.mark.parametrize("group", GROUPS, ids=lambda g: f"G{g}")
def test_small_layers_every_op_every_m(build, kn, dtype, zeros, act_order, bias, group, gen):
    check_all_ops(build_ops(build), ALL_M, *kn, group, dtype, zeros, act_order, bias, gen)


# (dtype, zeros, act_order, bias, group): each flag on and off somewhere, every group size.
LARGE_CONFIGS = (
    (torch.float16, True, False, True, 128),
    (torch.bfloat16, False, True, False, 32),
    (torch.float16, False, True, True, -1),
    (torch.bfloat16, True, False, True, 64),
)
LARGE_M = (1, 3, 8, 16, 17, 100, 512)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("kn", LARGE_KN, ids=lambda kn: f"K{kn[0]}N{kn[1]}")
@pytest.mark.parametrize("config", LARGE_CONFIGS, ids=lambda c: f"{str(c[0])[6:]}-z{int(c[1])}-p{int(c[2])}-b{int(c[3])}-G{c[4]}")
def test_large_layers(build, kn, config, gen):
    dtype, zeros, act_order, bias, group = config
    check_all_ops(build_ops(build), LARGE_M, *kn, group, dtype, zeros, act_order, bias, gen)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16), ids=("fp16", "bf16"))
def test_large_m_2048(build, dtype, gen):
    """M = 2048 on a model-sized layer: gemm (WMMA there) and the decode kernel's row tiling."""
    check_all_ops(build_ops(build), (2048,), 4096, 256, 128, dtype, True, True, True, gen)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("zeros, act_order", ((False, False), (True, True)), ids=("sym", "zeros-perm"))
def test_bf16_past_fp16_range(build, zeros, act_order, gen):
    """bf16 activations and outputs beyond fp16's 65504, which a bf16 model cast to fp16 would turn
    into inf: every op keeps them finite and within the bf16 bound."""
    ops = build_ops(build)
    layer = make_layer(512, 72, 128, zeros=zeros, act_order=act_order, dtype=torch.bfloat16, gen=gen)
    failures = []
    for m in (1, 4, 16, 100):
        a, b = make_inputs(m, 512, 72, torch.bfloat16, gen, bias=True)
        a = (a.float() * 2.0**21).to(torch.bfloat16)
        ref = gemm_reference(a, *layer, bias=b)
        assert ref.float().abs().max() > torch.finfo(torch.float16).max, "the case should reach past fp16's range"
        for name in OPS:
            out = run_op(getattr(ops, name), a, layer, b)
            err = rel_error(out, ref)
            if not (torch.isfinite(out).all() and err <= BOUND[torch.bfloat16]):
                failures.append(f"{name} M={m}: finite {bool(torch.isfinite(out).all())}, rel err {err:.2e}")
    assert not failures, "; ".join(failures)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16), ids=("fp16", "bf16"))
@pytest.mark.parametrize("zeros, act_order", ((False, False), (True, True)), ids=("sym", "zeros-perm"))
@pytest.mark.parametrize("group", (8, 16), ids=lambda g: f"G{g}")
def test_groups_below_32(build, dtype, zeros, act_order, group, gen):
    """G = 8 and 16 (K / G scale rows, multiples of 8): gemm and gemm_wmma match the reference at
    every M; gemm_dot2 too where the build's decode layout takes the group, and elsewhere refuses it
    naming scales (NVIDIA's mma layout puts 4 b_q rows, 32 K values, under one scale)."""
    ops = build_ops(build)
    multiple = importlib.import_module(BUILDS[build][1]).build_info()["decode_group_multiple"]
    k, n = 256, 72
    takes = group % multiple == 0
    check_all_ops(ops, ALL_M, k, n, group, dtype, zeros, act_order, True, gen,
                  op_names=OPS if takes else ("gemm", "gemm_wmma"))
    if not takes:
        layer = make_layer(k, n, group, zeros=zeros, act_order=act_order, dtype=dtype, gen=gen)
        a, _ = make_inputs(1, k, n, dtype, gen, bias=False)
        with pytest.raises(RuntimeError, match=f"scales: gemm_dot2 of this build expects .* got G = {group} "):
            run_op(ops.gemm_dot2, a, layer, None)


@pytest.mark.parametrize("build", BUILDS)
def test_empty_m(build):
    ops = build_ops(build)
    b_q, scales, zeros, perm = make_layer(128, 8, 32, zeros=True, act_order=False, dtype=torch.float16,
                                          gen=torch.Generator().manual_seed(0))
    a = torch.empty((0, 128), dtype=torch.float16, device="cuda")
    for name in OPS:
        out = getattr(ops, name)(a, b_q, scales, zeros, perm, None)
        assert out.shape == (0, 8) and out.dtype == torch.float16


@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16), ids=("fp16", "bf16"))
@pytest.mark.parametrize("m", (1, 4, 16, 100))
def test_builds_agree(dtype, m, gen):
    """Native and emulation builds give the same answers within the bound: their arithmetic
    differs on purpose (NVIDIA decode multiplies (q - z) * s rounded to 16 bits on tensor cores, the
    gfx11 model exact integers with dot2; the WMMA kernels accumulate inside an MMA differently)."""
    native, emu = build_ops("native"), build_ops("rdna3_emu")
    k, n = 4096, 256
    layer = make_layer(k, n, 128, zeros=True, act_order=True, dtype=dtype, gen=gen)
    a, b = make_inputs(m, k, n, dtype, gen, bias=True)
    for name in OPS:
        out_native, out_emu = run_op(getattr(native, name), a, layer, b), run_op(getattr(emu, name), a, layer, b)
        err = rel_error(out_native, out_emu)
        assert err <= BOUND[dtype], f"{name}: builds differ by rel {err:.2e}"


def test_python_gemm_routes_to_native(gen):
    """w4a16_rdna3.gemm with leading dims and backend="native" / "rdna3_emu" equals the op on 2-D a."""
    from w4a16_rdna3 import _ops

    k, n = 256, 72
    layer = make_layer(k, n, 64, zeros=True, act_order=False, dtype=torch.float16, gen=gen)
    a = torch.randn((2, 3, k), device="cuda", dtype=torch.float16)
    for build in BUILDS_HERE:
        ops = build_ops(build)
        out = _ops.gemm(a, *layer, backend=build)
        assert out.shape == (2, 3, n)
        assert torch.equal(out.reshape(6, n), ops.gemm(a.reshape(6, k), *layer, None))
    assert _ops.resolve_backend("auto", a.device) == "native"
