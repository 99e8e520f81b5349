"""The prefill WMMA GEMM op (`gemm_wmma`) of each native build against the fp32 reference.

Builds: `w4a16_rdna3` (native: gfx11 WMMA on ROCm; on CUDA wgmma when built for sm_90a alone,
mma.sync otherwise) and, on CUDA,
`w4a16_rdna3_emu` (the gfx11 lane layouts with v_wmma emulated). Bounds: relative error
||out - ref|| / ||ref|| <= 1e-3 for fp16 and <= 8e-3 for bf16 (weights are rounded to the
activation dtype once, in LDS); NaN never passes; outputs are poisoned before every call.

Layout tests come first: with identity matrices on one side the output must equal the other
operand exactly, so a wrong A, B or accumulator lane map shows as a permuted matrix.
"""

import importlib
import itertools

import pytest
import torch

from conftest import rel_error, requires_cuda
from w4a16_rdna3.formats import pack_cols, pack_rows
from w4a16_rdna3.reference import gemm_reference

pytestmark = requires_cuda

BOUND = {torch.float16: 1e-3, torch.bfloat16: 8e-3}
BUILDS = {"native": ("w4a16_rdna3", "w4a16_rdna3._C"), "rdna3_emu": ("w4a16_rdna3_emu", "w4a16_rdna3._C_rdna3_emu")}
# The builds a loop inside one test goes over: the emulation build exists only on CUDA.
BUILDS_HERE = ("native",) if torch.version.hip is not None else tuple(BUILDS)


def _op(build: str):
    """torch.ops.<namespace>.gemm_wmma of a build; skips (with the reason) where it cannot exist."""
    namespace, module = BUILDS[build]
    if build == "rdna3_emu" and torch.version.hip is not None:
        pytest.skip("the RDNA3 emulation build exists only on CUDA")
    importlib.import_module(module)  # a missing native build on a GPU machine is a failure
    return getattr(torch.ops, namespace).gemm_wmma


def _poison_allocator(shape: tuple[int, int], dtype: torch.dtype) -> None:
    """Fill and free a block of the output's size: the caching allocator hands it to the op next,
    so rows or columns the kernel fails to write stay NaN."""
    torch.empty(shape, dtype=dtype, device="cuda").fill_(float("nan"))


def _call(op, a, layer, bias) -> torch.Tensor:
    b_q, scales, zeros, perm = layer
    _poison_allocator((a.shape[0], b_q.shape[1]), a.dtype)
    return op(a, b_q, scales, zeros, perm, bias)


def _cuda_gen(gen: torch.Generator) -> torch.Generator:
    """A CUDA generator seeded from the test's CPU generator: model-sized data drawn on the GPU."""
    return torch.Generator(device="cuda").manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))


def _layer(k: int, n: int, group: int, *, zeros: bool, perm: bool, dtype: torch.dtype, gen: torch.Generator):
    """Random kernel-layout weights: every nibble and zero point in 0..15, scales around
    1 / (5 sqrt(K)) so outputs stay O(1)."""
    cg, groups = _cuda_gen(gen), k // group
    q = torch.randint(0, 16, (k, n), generator=cg, dtype=torch.int32, device="cuda")
    scales = (torch.rand((groups, n), generator=cg, device="cuda") + 0.5) / (5 * k**0.5)
    z = torch.randint(0, 16, (groups, n), generator=cg, dtype=torch.int32, device="cuda") if zeros else None
    p = torch.randperm(k, generator=cg, device="cuda").to(torch.int32) if perm else None
    return pack_rows(q), scales.to(dtype), pack_cols(z) if z is not None else None, p


def _inputs(m: int, k: int, n: int, dtype: torch.dtype, gen: torch.Generator, *, bias: bool):
    cg = _cuda_gen(gen)
    a = torch.randn((m, k), generator=cg, device="cuda").to(dtype)
    b = torch.randn((n,), generator=cg, device="cuda").to(dtype) if bias else None
    return a, b


def _check(build: str, m: int, k: int, n: int, group: int, dtype, zeros: bool, perm: bool, bias: bool, gen):
    layer = _layer(k, n, group, zeros=zeros, perm=perm, dtype=dtype, gen=gen)
    a, b = _inputs(m, k, n, dtype, gen, bias=bias)
    out = _call(_op(build), a, layer, b)
    ref = gemm_reference(a, *layer, bias=b)
    err = rel_error(out, ref)
    assert err <= BOUND[dtype], f"{build}: rel err {err:.2e} > {BOUND[dtype]:.0e}"
    return a, layer, b, out


@pytest.fixture(autouse=True)
def _exact_fp32_reference():
    """The reference's fp32 matmul must not drop to TF32 on the GPU."""
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = old


# ---- fragment layouts: one 16x16x16 tile, exact answers ----

def _identity_layer(k: int, n: int, dtype: torch.dtype):
    """W = I (q = 9 on the diagonal, 8 elsewhere, symmetric zero 8, scale 1)."""
    q = torch.full((k, n), 8, dtype=torch.int32)
    q[torch.arange(min(k, n)), torch.arange(min(k, n))] = 9
    return pack_rows(q).cuda(), torch.ones((1, n), dtype=dtype).cuda(), None, None


def _arange_layer(k: int, n: int, dtype: torch.dtype):
    """W[k][n] = (k + 3 n) % 16 - 8: every element of a 16x16 tile distinguishable by position."""
    kk, nn = torch.meshgrid(torch.arange(k), torch.arange(n), indexing="ij")
    q = ((kk + 3 * nn) % 16).to(torch.int32)
    return pack_rows(q).cuda(), torch.ones((1, n), dtype=dtype).cuda(), None, None


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("m,k,n", [(16, 16, 16), (32, 32, 32), (128, 64, 128)])
def test_a_layout_identity_weights(build, dtype, m, k, n):
    """a @ I == a: checks the A fragment load and the accumulator map."""
    a = (torch.arange(m * k, dtype=torch.float32).reshape(m, k) % 251 - 125).to(dtype).cuda()
    a_padded = torch.zeros((m, n), dtype=dtype, device="cuda")
    a_padded[:, : min(k, n)] = a[:, : min(k, n)]
    out = _call(_op(build), a, _identity_layer(k, n, dtype), None)
    assert torch.equal(out, a_padded)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("m,k,n", [(16, 16, 16), (32, 32, 32), (128, 64, 128)])
def test_b_layout_identity_activations(build, dtype, m, k, n):
    """I @ W == W (first rows): checks the B fragment load and the accumulator map."""
    layer = _arange_layer(k, n, dtype)
    a = torch.eye(m, k, dtype=dtype, device="cuda")
    out = _call(_op(build), a, layer, None)
    assert torch.equal(out, gemm_reference(a, *layer))


# ---- every variant on small shapes (full cross product) ----

SMALL_M = [1, 15, 16, 17, 31, 64, 100, 128, 512, 2048]
SMALL_KN = [(128, 8), (256, 72)]
GROUPS = [32, 64, 128, -1]  # -1: channelwise (G = K)
DTYPES = [torch.float16, torch.bfloat16]


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("k,n", SMALL_KN)
@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("dtype,zeros,perm,bias", list(itertools.product(DTYPES, [False, True], [False, True], [False, True])))
@pytest.mark.parametrize("m", SMALL_M)
def test_small_shapes_all_variants(build, k, n, group, dtype, zeros, perm, bias, m, gen):
    g = k if group == -1 else group
    _check(build, m, k, n, g, dtype, zeros, perm, bias, gen)


# ---- model-sized shapes: a representative subset ----

LARGE_KN = [(4096, 256), (5120, 128), (11008, 128), (4096, 14336), (14336, 4096)]
LARGE_CASES = [  # (dtype, zeros, perm, bias, group, m)
    (torch.float16, False, False, False, 128, 2048),
    (torch.bfloat16, True, True, True, 32, 100),
    (torch.float16, True, True, True, -1, 17),
    (torch.bfloat16, False, False, True, 64, 512),
    (torch.float16, True, False, False, 32, 1),
    (torch.float16, True, True, True, 32, 1024),  # the 128x128 tile with zeros and act-order
]


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("k,n", LARGE_KN)
@pytest.mark.parametrize("dtype,zeros,perm,bias,group,m", LARGE_CASES)
def test_large_shapes(build, k, n, dtype, zeros, perm, bias, group, m, gen):
    g = k if group == -1 else group
    _check(build, m, k, n, g, dtype, zeros, perm, bias, gen)


def test_k_not_a_multiple_of_the_k_step(gen):
    """K = 136 (17 int4 words, not a multiple of 32 or 64) with one group of 136 and G = 8."""
    for build in BUILDS_HERE:
        for group in (136, 8):
            _check(build, 100, 136, 72, group, torch.float16, True, True, True, gen)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("k", [32, 64, 96, 160, 168])
def test_each_count_of_whole_k_tiles(build, k, gen):
    """1, 2, 3 and 5 whole K tiles of 32, and 5 with a partial sixth (K = 168): gfx11's one-stage
    loop, which the emulation runs, takes two K steps a turn (arch::kWmmaStepsPerTurn), so an odd
    or even count leaves one step or none after the turns. M = 100 with G = 8, zero points and
    bias."""
    for dtype in DTYPES:
        _check(build, 100, k, 72, 8, dtype, True, False, True, gen)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("m", [1, 40, 130])
def test_k_split_ending_in_a_partial_k_tile(build, m, gen):
    """K = 4136 (517 int4 words) on N = 264: a grid of a few output tiles, so the launcher splits K
    (8 to 15 splits of whole K tiles), and the last split ends in a partial K tile. G = 8, zeros,
    act-order and bias: the reduction adds the bias once, after the splits."""
    for dtype in DTYPES:
        _check(build, m, 4136, 264, 8, dtype, True, True, True, gen)


# ---- the two builds agree, and a call repeats bit for bit ----

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(17, 256, 72), (512, 4096, 256), (2048, 4096, 2048)])
def test_native_and_emulation_agree(dtype, m, k, n, gen):
    """Same weights in LDS, only the accumulation order differs: agree to far below the bounds."""
    layer = _layer(k, n, 128, zeros=True, perm=True, dtype=dtype, gen=gen)
    a, b = _inputs(m, k, n, dtype, gen, bias=True)
    native = _call(_op("native"), a, layer, b)
    emulated = _call(_op("rdna3_emu"), a, layer, b)
    assert rel_error(emulated, native) <= 1e-3


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("m", [16, 100, 2048])
def test_repeat_calls_bitwise_equal(build, m, gen):
    layer = _layer(4096, 512, 128, zeros=True, perm=False, dtype=torch.bfloat16, gen=gen)
    a, b = _inputs(m, 4096, 512, torch.bfloat16, gen, bias=True)
    op = _op(build)
    first = _call(op, a, layer, b)
    second = _call(op, a, layer, b)
    assert torch.equal(first, second)
