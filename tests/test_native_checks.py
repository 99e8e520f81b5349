"""Bad calls to the native ops raise (every TORCH_CHECK in csrc/ops.cpp), and the Python routing.

GPU tests call torch.ops.<namespace>.<op> directly, past the Python checks, so each C++ check is
the only guard: the error must name the argument. CPU tests cover `_ops` routing and the fake
impl, which need no extension.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pytest
import torch

from conftest import rel_error, requires_cuda
from w4a16_rdna3 import _ops

BUILDS = {"native": ("w4a16_rdna3", "w4a16_rdna3._C"), "rdna3_emu": ("w4a16_rdna3_emu", "w4a16_rdna3._C_rdna3_emu")}
OPS = ("gemm", "gemm_dot2", "gemm_wmma")
K, N, G = 256, 72, 64


def good_args(device: str = "cuda") -> dict[str, torch.Tensor | None]:
    g = torch.Generator().manual_seed(0)
    return {
        "a": torch.randn((4, K), generator=g).to(torch.float16).to(device),
        "b_q": torch.randint(-(2**31), 2**31 - 1, (K // 8, N), generator=g, dtype=torch.int32).to(device),
        "scales": (torch.rand((K // G, N), generator=g) / 100).to(torch.float16).to(device),
        "zeros": torch.randint(-(2**31), 2**31 - 1, (K // G, N // 8), generator=g, dtype=torch.int32).to(device),
        "perm": torch.randperm(K, generator=g).to(torch.int32).to(device),
        "bias": torch.randn((N,), generator=g).to(torch.float16).to(device),
    }


def _t(x: torch.Tensor) -> torch.Tensor:
    """A non-contiguous tensor with x's values and shape."""
    return x.t().contiguous().t() if x.dim() == 2 else x.repeat_interleave(2)[::2]


def _k_past_the_prefill_limit(d: dict) -> None:
    """Consistent arguments with K = 2^24 + 64, one group past the largest K the prefill kernel
    addresses (its 128-row tiles of a by 32-bit byte offsets: gemm_wmma_max_k in csrc/gemm_wmma.cu),
    N = 8 to keep the buffers small (about 170 MB in all)."""
    k, n, device = 2**24 + G, 8, d["a"].device
    d.update(
        a=torch.zeros((1, k), dtype=torch.float16, device=device),
        b_q=torch.zeros((k // 8, n), dtype=torch.int32, device=device),
        scales=torch.ones((k // G, n), dtype=torch.float16, device=device),
        zeros=torch.zeros((k // G, n // 8), dtype=torch.int32, device=device),
        perm=torch.arange(k, dtype=torch.int32, device=device),
        bias=torch.zeros((n,), dtype=torch.float16, device=device),
    )


def _b_q_of_2_31_words(d: dict) -> None:
    """b_q of K/8 x N = 2 x 2^30 words, one past the 32-bit row offsets (an 8 GiB buffer, and 2 GiB
    of scales; left unwritten: the check refuses it before any kernel)."""
    k, n, device = 16, 2**30, d["a"].device
    d.update(
        a=torch.zeros((1, k), dtype=torch.float16, device=device),
        b_q=torch.empty((k // 8, n), dtype=torch.int32, device=device),
        scales=torch.empty((1, n), dtype=torch.float16, device=device),
        zeros=None,
        perm=None,
        bias=None,
    )


# (name, change to the good arguments, the argument the error must name)
BAD_CASES: list[tuple[str, Callable[[dict], None], str]] = [
    ("a on the CPU", lambda d: d.update(a=d["a"].cpu()), "a:"),
    ("a float32", lambda d: d.update(a=d["a"].float()), "a:"),
    ("a 3-D", lambda d: d.update(a=d["a"].reshape(2, 2, K)), "a:"),
    ("a 1-D", lambda d: d.update(a=d["a"][0]), "a:"),
    ("K not a multiple of 8", lambda d: d.update(a=d["a"][:, : K - 4].contiguous()), "a:"),
    ("K past the prefill limit", _k_past_the_prefill_limit, "a: expected K = a.shape.1. at most 16777216"),
    ("a not contiguous", lambda d: d.update(a=_t(d["a"])), "a:"),
    ("b_q float", lambda d: d.update(b_q=d["b_q"].float()), "b_q:"),
    ("b_q 1-D", lambda d: d.update(b_q=d["b_q"].flatten()), "b_q:"),
    ("b_q rows != K/8", lambda d: d.update(b_q=d["b_q"][:-1].contiguous()), "b_q:"),
    ("N not a multiple of 8", lambda d: d.update(b_q=d["b_q"][:, :-4].contiguous()), "b_q:"),
    ("b_q of 2^31 words", _b_q_of_2_31_words, r"b_q: expected fewer than 2\^31 words"),
    ("b_q on the CPU", lambda d: d.update(b_q=d["b_q"].cpu()), "b_q:"),
    ("b_q not contiguous", lambda d: d.update(b_q=_t(d["b_q"])), "b_q:"),
    ("scales dtype != a", lambda d: d.update(scales=d["scales"].to(torch.bfloat16)), "scales:"),
    ("scales 1-D", lambda d: d.update(scales=d["scales"][0]), "scales:"),
    ("scales N mismatch", lambda d: d.update(scales=d["scales"][:, :-8].contiguous()), "scales:"),
    ("scales rows do not divide K", lambda d: d.update(scales=torch.ones((3, N), dtype=torch.float16, device="cuda")), "scales:"),
    ("group size not a multiple of 8", lambda d: d.update(scales=torch.ones((64, N), dtype=torch.float16, device="cuda")), "scales:"),
    ("scales not contiguous", lambda d: d.update(scales=_t(d["scales"])), "scales:"),
    ("scales on the CPU", lambda d: d.update(scales=d["scales"].cpu()), "scales:"),
    ("zeros float", lambda d: d.update(zeros=d["zeros"].float()), "zeros:"),
    ("zeros shape", lambda d: d.update(zeros=d["zeros"][:, :-1].contiguous()), "zeros:"),
    ("zeros not contiguous", lambda d: d.update(zeros=_t(d["zeros"])), "zeros:"),
    ("zeros on the CPU", lambda d: d.update(zeros=d["zeros"].cpu()), "zeros:"),
    ("perm int64", lambda d: d.update(perm=d["perm"].long()), "perm:"),
    ("perm length", lambda d: d.update(perm=d["perm"][:-8].contiguous()), "perm:"),
    ("perm 2-D", lambda d: d.update(perm=d["perm"].reshape(2, K // 2)), "perm:"),
    ("perm not contiguous", lambda d: d.update(perm=_t(d["perm"])), "perm:"),
    ("perm on the CPU", lambda d: d.update(perm=d["perm"].cpu()), "perm:"),
    ("bias dtype", lambda d: d.update(bias=d["bias"].float()), "bias:"),
    ("bias shape", lambda d: d.update(bias=d["bias"][:-8].contiguous()), "bias:"),
    ("bias 2-D", lambda d: d.update(bias=d["bias"].reshape(1, N)), "bias:"),
    ("bias not contiguous", lambda d: d.update(bias=_t(d["bias"])), "bias:"),
    ("bias on the CPU", lambda d: d.update(bias=d["bias"].cpu()), "bias:"),
]


def build_ops(build: str):
    namespace, module = BUILDS[build]
    if build == "rdna3_emu" and torch.version.hip is not None:
        pytest.skip("the RDNA3 emulation build exists only on CUDA")
    importlib.import_module(module)
    return getattr(torch.ops, namespace)


@requires_cuda
@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_argument_raises_naming_it(build, op, case):
    _, change, names = case
    args = good_args()
    getattr(build_ops(build), op)(*args.values())  # the good call works
    change(args)
    with pytest.raises(RuntimeError, match=names):
        getattr(build_ops(build), op)(*args.values())
    torch.cuda.synchronize()  # and nothing was launched that faults


@requires_cuda
@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("op", OPS)
def test_perm_out_of_range_gives_nan_not_a_fault(build, op):
    """perm values are not checked on the host (that would need a device sync); the act-order
    gather that runs before every kernel turns an index outside [0, K) into NaN instead of reading
    out of bounds."""
    args = good_args()
    args["perm"][5] = K + 1000
    args["perm"][9] = -3
    out = getattr(build_ops(build), op)(*args.values())
    torch.cuda.synchronize()
    assert bool(torch.isnan(out).all())


def _at_odd_offset(x: torch.Tensor) -> torch.Tensor:
    """x's values in a contiguous view that starts one element into its buffer (not 16-byte
    aligned)."""
    buffer = torch.empty(x.numel() + 1, dtype=x.dtype, device=x.device)
    view = buffer[1:].view(x.shape)
    view.copy_(x)
    return view


@requires_cuda
@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("act_order", [False, True], ids=["sym", "perm"])
def test_views_at_an_odd_offset_give_the_aligned_result(build, op, act_order):
    """Every input a view that is not 16-byte aligned: the op copies what its kernels read in
    16-byte pieces (or gathers `a` straight from the view) and returns the aligned inputs' result."""
    args = good_args()
    if not act_order:
        args["perm"] = None
    ops = build_ops(build)
    expected = getattr(ops, op)(*args.values())
    shifted = {name: None if t is None else _at_odd_offset(t) for name, t in args.items()}
    assert all(t is None or t.data_ptr() % 16 != 0 for t in shifted.values())
    out = getattr(ops, op)(*shifted.values())
    assert torch.equal(out, expected)


@requires_cuda
@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("op,m", [("gemm_dot2", 4), ("gemm_wmma", 64)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_non_finite_scale_gives_a_non_finite_column_not_a_finite_one(build, op, m, dtype):
    """A NaN or infinite scale reaches every output of its column, and the other columns stay
    right. The bf16 WMMA staging rounds without a NaN select (gfx11's code, which the emulation
    build runs): there such a scale dequantises its group to infinity."""
    from w4a16_rdna3.reference import gemm_reference

    args = good_args()
    args["a"] = torch.randn((m, K), generator=torch.Generator().manual_seed(1)).to(dtype).cuda()
    for name in ("scales", "bias"):
        args[name] = args[name].to(dtype)
    args["scales"][0, 3] = float("nan")
    args["scales"][1, 10] = float("inf")
    out = getattr(build_ops(build), op)(*args.values())
    ref = gemm_reference(*args.values())
    bad = torch.zeros(N, dtype=torch.bool)
    bad[[3, 10]] = True
    assert not bool(torch.isfinite(out[:, bad]).any())
    assert rel_error(out[:, ~bad], ref[:, ~bad]) <= (1e-3 if dtype == torch.float16 else 8e-3)


# ---- CPU: routing and the fake impl (no extension needed) ----


def test_resolve_backend_on_cpu():
    cpu = torch.device("cpu")
    assert _ops.resolve_backend("auto", cpu) == "reference"
    assert _ops.resolve_backend("reference", cpu) == "reference"
    with pytest.raises(ValueError, match="backend"):
        _ops.resolve_backend("fastest", cpu)
    for backend in ("native", "rdna3_emu"):
        with pytest.raises((RuntimeError, ValueError), match=backend):
            _ops.resolve_backend(backend, cpu)


def test_resolve_backend_auto_on_gpu_without_native(monkeypatch):
    monkeypatch.setattr(_ops, "_native", None)
    assert _ops.resolve_backend("auto", torch.device("cuda")) == "triton"


def test_unavailable_reasons_are_consistent():
    assert (_ops.native_build_info() is None) == bool(_ops.native_unavailable_reason())
    assert (_ops.emulation_build_info() is None) == bool(_ops.emulation_unavailable_reason())


def test_gemm_reference_route_keeps_leading_dims():
    from w4a16_rdna3.reference import gemm_reference

    args = good_args("cpu")
    a = args["a"].reshape(2, 2, K)
    out = _ops.gemm(a, args["b_q"], args["scales"], args["zeros"], args["perm"], args["bias"], backend="reference")
    assert out.shape == (2, 2, N) and out.dtype == torch.float16
    ref = gemm_reference(args["a"], args["b_q"], args["scales"], args["zeros"], args["perm"], args["bias"])
    assert torch.equal(out.reshape(4, N), ref)


def test_gemm_validates_before_routing():
    args = good_args("cpu")
    args["b_q"] = args["b_q"][:-1].contiguous()
    with pytest.raises(ValueError, match="b_q"):
        _ops.gemm(*args.values(), backend="reference")


def test_fake_impl_shape_dtype_and_checks():
    args = {k: v.to("meta") for k, v in good_args("cpu").items()}
    out = _ops.gemm_fake(*args.values())
    assert out.shape == (4, N) and out.dtype == torch.float16 and out.device.type == "meta"
    args["a"] = args["a"][:, :16]
    with pytest.raises(ValueError, match="b_q"):
        _ops.gemm_fake(*args.values())


@requires_cuda
@pytest.mark.parametrize("build", BUILDS)
def test_registered_fake_impls(build):
    """Under FakeTensorMode every op of a build returns [M, N] of a's dtype without running."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    ops = build_ops(build)
    with FakeTensorMode() as mode:
        args = [mode.from_tensor(t) for t in good_args().values()]
        for op in OPS:
            out = getattr(ops, op)(*args)
            assert out.shape == (4, N) and out.dtype == torch.float16
