"""The Triton fallback GEMM against the fp32 reference.

Without a GPU the kernels run in Triton's interpreter (TRITON_INTERPRET=1), which must be set
before the module's @triton.jit functions are created: this file sets it before importing the
module (tests/conftest.py setting it too would cover any import order).

bf16 and the interpreter (triton 3.9): the interpreter stores bf16 as raw uint16 bits and passes
them unchanged to `np.matmul` and to arithmetic (only casts to and from fp32 convert the bits;
triton-lang/triton#11584, "we just don't support it yet"), so a bf16 `tl.dot` computes on bit
patterns. The GEMV kernel casts every bf16 load to fp32 before any math, on the GPU as well, so
it runs right in the interpreter; the tiled kernel feeds bf16 to `tl.dot` (tensor cores) and is
tested in bf16 on a GPU only. The interpreter's fp32 -> bf16 cast also truncates instead of
rounding to nearest, so interpreted bf16 outputs carry up to one bf16 ulp more error than on a
GPU; the bound below is the same for both.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

triton = pytest.importorskip("triton", reason="Triton is not installed: the fallback kernel cannot run")
from conftest import rel_error, requires_cuda  # noqa: E402

from w4a16_rdna3 import triton_w4a16  # noqa: E402
from w4a16_rdna3.quantize import random_layer  # noqa: E402
from w4a16_rdna3.reference import gemm_reference  # noqa: E402
from w4a16_rdna3.triton_w4a16 import (  # noqa: E402
    TritonConfig,
    choose_config,
    gemm_triton,
    gemm_with_config,
    shared_memory_bytes,
)

BOUNDS = {torch.float16: 1e-3, torch.bfloat16: 8e-3}
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

if DEVICE == "cpu" and not triton_w4a16._INTERPRETED:
    pytest.skip("w4a16_rdna3.triton_w4a16 was imported before TRITON_INTERPRET=1 was set and there is no GPU "
                "(set TRITON_INTERPRET=1 in tests/conftest.py)", allow_module_level=True)

# Small blocks keep the interpreter fast; split-K configs split K into 3 and 2 parts. The GEMV
# kernel loads scales once per step where a step lies inside one group, else once per packed
# row: "gemv" and "gemv-splitk" steps (4 and 2 packed rows) fit in every group here but K=136's
# one group of 17 rows, "gemv-wide" steps (16 rows, 2 splits) fit in the G=128 groups only.
CONFIGS = {
    "gemv": TritonConfig("gemv", 1, 64, 32, 1, num_warps=1, num_stages=1),
    "gemv-splitk": TritonConfig("gemv", 1, 64, 16, 3, num_warps=1, num_stages=1),
    "gemv-wide": TritonConfig("gemv", 1, 32, 128, 2, num_warps=4, num_stages=3, evict="evict_first"),
    "tiled": TritonConfig("tiled", 16, 32, 32, 1, num_warps=4, num_stages=1),
    "tiled-splitk": TritonConfig("tiled", 16, 32, 16, 2, num_warps=4, num_stages=1),
}

# (m, k, n, group_size, symmetric, act_order, bias)
CASES = {
    "m1-g64-sym": (1, 256, 64, 64, True, False, False),
    "m3-g32-zeros-actorder-bias": (3, 256, 64, 32, False, True, True),
    "m17-n8-one-group-k136-zeros-bias": (17, 136, 8, 136, False, False, True),
    "m2-g128-n72-actorder": (2, 512, 72, 128, True, True, False),
    "m5-channelwise-zeros": (5, 128, 64, -1, False, False, False),
}


def _problem(case: str, dtype: torch.dtype, gen: torch.Generator):
    m, k, n, group_size, symmetric, act_order, with_bias = CASES[case]
    seed = int(torch.randint(0, 2**30, (1,), generator=gen))
    layer = random_layer(k, n, group_size, symmetric=symmetric, act_order=act_order, dtype=dtype, device=DEVICE,
                         seed=seed)
    a = torch.randn((m, k), generator=gen).to(dtype).to(DEVICE)
    bias = torch.randn((n,), generator=gen).to(dtype).to(DEVICE) if with_bias else None
    return a, layer, bias


def _poison_allocator(m: int, n: int, dtype: torch.dtype) -> None:
    """Leave a freed NaN block where the output will likely be allocated: unwritten elements show."""
    poison = torch.full((m, n), float("nan"), dtype=dtype, device=DEVICE)
    del poison


def _bf16_tiled_needs_gpu(kernel: str, dtype: torch.dtype) -> None:
    if DEVICE == "cpu" and dtype == torch.bfloat16 and kernel.startswith("tiled"):
        pytest.skip("bf16 tl.dot is computed on raw bits by the triton interpreter (triton-lang/triton#11584): "
                    "tested on GPU only")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("kernel", list(CONFIGS))
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(case: str, kernel: str, dtype: torch.dtype, gen: torch.Generator) -> None:
    _bf16_tiled_needs_gpu(kernel, dtype)
    a, layer, bias = _problem(case, dtype, gen)
    ref = gemm_reference(a, layer.b_q, layer.scales, layer.zeros, layer.perm, bias)
    _poison_allocator(a.shape[0], layer.n, dtype)
    out = gemm_with_config(a, layer.b_q, layer.scales, layer.zeros, layer.perm, bias, CONFIGS[kernel])
    assert out.dtype == dtype and out.shape == ref.shape
    err = rel_error(out, ref)
    assert err <= BOUNDS[dtype], f"relative error {err:.3g} > {BOUNDS[dtype]}"


@pytest.mark.parametrize("kernel", list(CONFIGS))
def test_perm_out_of_range_gives_nan_not_a_fault(kernel: str, gen: torch.Generator) -> None:
    """perm's values are not checked on the host (that would need a device sync): an entry outside
    [0, K) turns into NaN in every output instead of an out-of-bounds read."""
    a, layer, bias = _problem("m3-g32-zeros-actorder-bias", torch.float16, gen)
    perm = layer.perm.clone()
    perm[5] = a.shape[1] + 1000
    perm[9] = -3
    out = gemm_with_config(a, layer.b_q, layer.scales, layer.zeros, perm, bias, CONFIGS[kernel])
    assert bool(torch.isnan(out).all())


@pytest.mark.parametrize("m", [1, 40])
def test_op_chooses_a_config_by_m(m: int, gen: torch.Generator) -> None:
    layer = random_layer(256, 64, 128, symmetric=False, act_order=True, dtype=torch.float16, device=DEVICE, seed=m)
    a = torch.randn((m, 256), generator=gen).half().to(DEVICE)
    ref = gemm_reference(a, layer.b_q, layer.scales, layer.zeros, layer.perm)
    _poison_allocator(m, 64, torch.float16)
    out = torch.ops.w4a16_rdna3.gemm_triton(a, layer.b_q, layer.scales, layer.zeros, layer.perm, None)
    assert rel_error(out, ref) <= BOUNDS[torch.float16]


def test_choose_config_decode_and_prefill() -> None:
    device = torch.device(DEVICE)
    assert choose_config(1, 14336, 4096, device).kernel == "gemv"
    assert choose_config(4096, 14336, 4096, device).kernel == "tiled"
    # Few column blocks at decode: K is split so that enough programs run.
    assert choose_config(1, 64, 8192, device).split_k > 1


AMD_LDS_BYTES = 65536  # gfx90a, gfx942, gfx1100-1102, gfx1151: 64 KiB of LDS per workgroup
H100_SHARED_BYTES = 232448  # max_shared_mem (opt-in per block) of an H100 or H200
# Every branch of the table: GEMV at M = 1 and 2, split-K 16- to 64-row tiles, both 128-row tiles
# (N = 64 gives too few of 128 columns), 256-row tiles; on three of the benchmark's layer shapes.
TABLE_PROBLEMS = [(m, n, k) for m in (1, 2, 3, 16, 17, 33, 64, 65, 300, 1023, 1024, 4096)
                  for k, n in ((4096, 14336), (14336, 4096), (4096, 64))]


# Each tuned config of the table (split_k 1) -> (block_k, num_warps, num_stages) of its form on AMD GPUs, the spill-free
# forms documented at triton_w4a16._AMD_CHANGES.
AMD_FORMS = {
    TritonConfig("gemv", 1, 32, 512, 1, num_warps=4, num_stages=1, evict="evict_first"): (512, 8, 1),
    TritonConfig("gemv", 1, 32, 512, 1, num_warps=4, num_stages=3): (512, 8, 2),
    TritonConfig("tiled", 16, 128, 64, 1, num_warps=4, num_stages=3): (64, 8, 3),
    TritonConfig("tiled", 32, 128, 64, 1, num_warps=4, num_stages=3): (32, 4, 3),
    TritonConfig("tiled", 64, 128, 64, 1, num_warps=4, num_stages=3): (32, 8, 3),
    TritonConfig("tiled", 128, 128, 64, 1, num_warps=8, num_stages=3): (64, 16, 3),
    TritonConfig("tiled", 128, 64, 64, 1, num_warps=4, num_stages=4): (64, 16, 4),
    TritonConfig("tiled", 256, 128, 64, 1, num_warps=8, num_stages=3): (16, 16, 2),
}


def _chosen_configs(limit: int | None, amd: bool, monkeypatch: pytest.MonkeyPatch) -> list[TritonConfig]:
    """The config choose_config picks for each of TABLE_PROBLEMS on a device with `limit` bytes of shared memory."""
    monkeypatch.setattr(triton_w4a16, "_shared_memory_limit", lambda device: limit)
    monkeypatch.setattr(triton_w4a16, "_is_amd", lambda device: amd)
    return [choose_config(m, n, k, torch.device(DEVICE)) for m, n, k in TABLE_PROBLEMS]


@pytest.mark.parametrize("amd", [False, True], ids=["nvidia", "amd"])
def test_configs_fit_64_kib(amd: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 256-row tile at 3 stages needs 81,920 bytes; on a 64 KiB device (AMD, NVIDIA's sm_75) it must step down."""
    for config in _chosen_configs(AMD_LDS_BYTES, amd, monkeypatch):
        assert shared_memory_bytes(config) <= AMD_LDS_BYTES, config


def test_h100_runs_the_tuned_table(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _chosen_configs(H100_SHARED_BYTES, False, monkeypatch) == _chosen_configs(None, False, monkeypatch)


def test_amd_runs_the_documented_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    """On AMD every branch of the table changes BLOCK_K, warps or stages only (same tile, split-K and M branch), to
    its documented form."""
    tuned_configs = _chosen_configs(None, False, monkeypatch)
    forms: dict[TritonConfig, tuple[int, int, int]] = {}
    for tuned, on_amd in zip(tuned_configs, _chosen_configs(AMD_LDS_BYTES, True, monkeypatch), strict=True):
        assert dataclasses.replace(on_amd, block_k=tuned.block_k, num_warps=tuned.num_warps,
                                   num_stages=tuned.num_stages) == tuned
        forms[dataclasses.replace(tuned, split_k=1)] = (on_amd.block_k, on_amd.num_warps, on_amd.num_stages)
    assert forms == AMD_FORMS


def test_amd_configs_match_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every config an AMD GPU runs (the AMD forms, fitted to 64 KiB, with the table's K splits) gives the reference's
    answer on a problem one row and 8 columns past its tile, two BLOCK_K steps per split, zero points, act-order and
    bias, fp16. Run here by Triton's interpreter (warps and stages mean nothing there: BLOCK_K, the tile and the split
    do): these forms run on no NVIDIA GPU, and on AMD only in a user's hands."""
    failures = []
    for config in dict.fromkeys(_chosen_configs(AMD_LDS_BYTES, True, monkeypatch)):
        m = 1 if config.kernel == "gemv" else config.block_m + 1
        n, k = config.block_n + 8, 2 * config.block_k * config.split_k
        layer = random_layer(k, n, 128 if k % 128 == 0 else 32, symmetric=False, act_order=True, dtype=torch.float16,
                             device=DEVICE, seed=k + n)
        gen = torch.Generator().manual_seed(m)
        a = torch.randn((m, k), generator=gen).half().to(DEVICE)
        bias = torch.randn((n,), generator=gen).half().to(DEVICE)
        ref = gemm_reference(a, layer.b_q, layer.scales, layer.zeros, layer.perm, bias)
        _poison_allocator(m, n, torch.float16)
        out = gemm_with_config(a, layer.b_q, layer.scales, layer.zeros, layer.perm, bias, config)
        if not rel_error(out, ref) <= BOUNDS[torch.float16]:
            failures.append(f"{config}: rel err {rel_error(out, ref):.2e}")
    assert not failures, "; ".join(failures)


# Compiles each config for gfx1100 (no GPU needed) and prints metadata.shared and the VGPR spill count of each as
# JSON. A separate process: under TRITON_INTERPRET=1 the module's kernels are interpreter objects, not compilable.
# G = 128 (the GEMV's scale loads depend on it) and zero points, the largest variant; fp16 only, to keep it short (bf16
# spilled about as much in offline checks, and not at all in the AMD forms).
_COMPILE_FOR_GFX1100 = r"""
import json, multiprocessing, re, sys
from concurrent.futures import ProcessPoolExecutor
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from w4a16_rdna3 import triton_w4a16

def shared_bytes_and_spills(c):
    if c["kernel"] == "gemv":
        kernel = triton_w4a16._gemv_kernel
        constants = dict(BLOCK_KP=c["block_k"] // 8, GROUP_ROWS=16, NUM_STAGES=c["num_stages"], EVICT=c["evict"])
        options = dict(num_warps=c["num_warps"])
    else:
        kernel = triton_w4a16._tiled_kernel
        constants = dict(BLOCK_M=c["block_m"], BLOCK_K=c["block_k"], GROUP_M=c["group_m"])
        options = dict(num_warps=c["num_warps"], num_stages=c["num_stages"])
    constants |= dict(HAS_ZEROS=True, HAS_BIAS=True, IS_SPLIT=c["split_k"] > 1, BLOCK_N=c["block_n"])
    pointers = {"b_ptr": "*i32", "z_ptr": "*i32", "ws_ptr": "*fp32"}  # the other pointers: fp16 tensors
    signature = {name: "constexpr" if name in constants else pointers.get(name, "*fp16" if name.endswith("_ptr")
                 else "i32") for name in kernel.arg_names}
    compiled = triton.compile(ASTSource(kernel, signature, constants), target=GPUTarget("hip", "gfx1100", 32),
                              options=options)
    spills = re.search(r"\.vgpr_spill_count:\s+(\d+)", compiled.asm["amdgcn"])[1]
    return compiled.metadata.shared, int(spills)

with ProcessPoolExecutor(mp_context=multiprocessing.get_context("fork")) as pool:  # -c code: no spawn
    print(json.dumps(list(pool.map(shared_bytes_and_spills, json.load(sys.stdin)))))
"""


def test_configs_compiled_for_gfx1100_fit_lds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The configs chosen for an AMD GPU, compiled for gfx1100: Triton's own shared-memory count stays within
    shared_memory_bytes and 64 KiB, and no VGPR spills (the H100 table spills up to hundreds per thread)."""
    if "amd" not in triton.backends.backends:
        pytest.skip("this Triton has no AMD backend: cannot compile for gfx1100")
    # The kernels see split_k only as split or not.
    configs = list(dict.fromkeys(dataclasses.replace(c, split_k=min(c.split_k, 2))
                                 for c in _chosen_configs(AMD_LDS_BYTES, True, monkeypatch)))
    env = {name: value for name, value in os.environ.items() if name != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", _COMPILE_FOR_GFX1100], input=json.dumps(
        [dataclasses.asdict(c) for c in configs]), capture_output=True, text=True, env=env,
        cwd=Path(__file__).parents[1], timeout=600)
    if result.returncode != 0 and "ld.lld not found" in result.stderr:
        # Triton 3.3 and 3.4 link AMD code with ROCm's ld.lld; later releases carry their own.
        pytest.skip("this Triton needs ROCm's ld.lld to compile for gfx1100 (set TRITON_HIP_LLD_PATH)")
    assert result.returncode == 0, result.stderr[-4000:]
    for config, (shared, spills) in zip(configs, json.loads(result.stdout), strict=True):
        assert shared <= AMD_LDS_BYTES and spills == 0, (config, shared, spills)
        # The estimate fit_shared_memory steps tiled configs down by (GEMV configs are never stepped
        # down: Triton 3.3 and 3.5 give the GEMV 8 KiB where 3.9 gives it 1 KiB, far inside the limit).
        if config.kernel == "tiled":
            assert shared <= shared_memory_bytes(config), (config, shared)


@pytest.mark.parametrize("kernel", ["gemv-splitk", "tiled-splitk"])
def test_split_k_is_deterministic(kernel: str, gen: torch.Generator) -> None:
    a, layer, bias = _problem("m3-g32-zeros-actorder-bias", torch.float16, gen)
    first = gemm_with_config(a, layer.b_q, layer.scales, layer.zeros, layer.perm, bias, CONFIGS[kernel])
    second = gemm_with_config(a, layer.b_q, layer.scales, layer.zeros, layer.perm, bias, CONFIGS[kernel])
    assert torch.equal(first, second)


def test_fake_impl_gives_shape_and_dtype() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        a = torch.empty((5, 256), dtype=torch.bfloat16)
        b_q = torch.empty((32, 64), dtype=torch.int32)
        scales = torch.empty((2, 64), dtype=torch.bfloat16)
        out = torch.ops.w4a16_rdna3.gemm_triton(a, b_q, scales, None, None, None)
        assert out.shape == (5, 64) and out.dtype == torch.bfloat16
        with pytest.raises(ValueError, match="scales"):
            torch.ops.w4a16_rdna3.gemm_triton(a, b_q, torch.empty((3, 64), dtype=torch.bfloat16), None, None, None)


def test_torch_compile_fullgraph(gen: torch.Generator) -> None:
    layer = random_layer(128, 64, 64, symmetric=True, act_order=False, dtype=torch.float16, device=DEVICE, seed=7)

    def linear(x: torch.Tensor) -> torch.Tensor:
        return gemm_triton(x, layer.b_q, layer.scales, None, None, None) * 2.0

    compiled = torch.compile(linear, fullgraph=True, backend="eager")
    a = torch.randn((2, 128), generator=gen).half().to(DEVICE)
    ref = gemm_reference(a, layer.b_q, layer.scales) * 2.0
    assert rel_error(compiled(a), ref) <= BOUNDS[torch.float16]


def _good_args():
    layer = random_layer(64, 16, 32, symmetric=False, act_order=True, dtype=torch.float16, device=DEVICE, seed=3)
    a = torch.randn((2, 64)).half().to(DEVICE)
    return dict(a=a, b_q=layer.b_q, scales=layer.scales, zeros=layer.zeros, perm=layer.perm,
                bias=torch.zeros(16, dtype=torch.float16, device=DEVICE))


@pytest.mark.parametrize(
    ("name", "bad", "error"),
    [
        ("a", lambda t: t.unsqueeze(0), ValueError),
        ("a", lambda t: t.float(), TypeError),
        ("b_q", lambda t: t.to(torch.int64), TypeError),
        ("b_q", lambda t: t[:4].contiguous(), ValueError),
        ("scales", lambda t: t.to(torch.bfloat16), TypeError),
        ("zeros", lambda t: t[:1].contiguous(), ValueError),
        ("perm", lambda t: t[:32].contiguous(), ValueError),
        ("perm", lambda t: t.long(), TypeError),
        ("bias", lambda t: t[:8].contiguous(), ValueError),
    ],
)
def test_bad_inputs_name_the_argument(name: str, bad, error: type[Exception]) -> None:
    args = _good_args()
    args[name] = bad(args[name])
    with pytest.raises(error, match=name):
        gemm_triton(**args)


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("m", [1, 2, 5, 16, 33, 300])
def test_gpu_layer_sizes(m: int, dtype: torch.dtype, gen: torch.Generator) -> None:
    """Realistic K and N through the op's own config choice (split-K at decode, big tiles at prefill)."""
    layer = random_layer(2048, 1536, 128, symmetric=False, act_order=True, dtype=dtype, device="cuda", seed=m)
    a = torch.randn((m, 2048), generator=gen).to(dtype).cuda()
    ref = gemm_reference(a, layer.b_q, layer.scales, layer.zeros, layer.perm)
    _poison_allocator(m, 1536, dtype)
    out = gemm_triton(a, layer.b_q, layer.scales, layer.zeros, layer.perm)
    assert rel_error(out, ref) <= BOUNDS[dtype]
    assert torch.equal(out, gemm_triton(a, layer.b_q, layer.scales, layer.zeros, layer.perm))


@requires_cuda
def test_gpu_output_of_2_31_elements(gen: torch.Generator) -> None:
    """M x N past 2^31 (M = 32776 on N = 65536): the output's row offsets need 64 bits; in 32 bits
    they wrap at row 2^31 / N = 32768, and the stores of the rows from there on land before the
    output. The rows on either side of that boundary, and the first and last, match the reference."""
    m, k, n = 2**31 // 65536 + 8, 64, 65536
    if torch.cuda.get_device_properties(0).total_memory < 16 * 2**30:
        pytest.skip("needs 16 GiB of GPU memory: the output alone takes 4 GiB")
    layer = random_layer(k, n, 64, symmetric=True, act_order=False, dtype=torch.float16, device="cuda", seed=9)
    a = torch.randn((m, k), generator=gen).to(torch.float16).cuda()
    _poison_allocator(m, n, torch.float16)
    out = gemm_triton(a, layer.b_q, layer.scales)
    rows = torch.tensor([0, 1, 2**31 // n - 1, 2**31 // n, m - 1], device="cuda")
    ref = gemm_reference(a[rows], layer.b_q, layer.scales)
    assert rel_error(out[rows], ref) <= BOUNDS[torch.float16]
