"""Loads the native extensions, gives their ops fake (meta) impls, and routes `gemm` to a backend.

Two extension modules may exist: `w4a16_rdna3._C` (the native build: HIP for gfx11, or CUDA),
ops in `torch.ops.w4a16_rdna3`, and `w4a16_rdna3._C_rdna3_emu` (CUDA build that emulates the RDNA3
instructions and lane layouts), ops in `torch.ops.w4a16_rdna3_emu`. Each defines `gemm` (picks the
decode or the WMMA kernel from M inside the op), `gemm_dot2` and `gemm_wmma`. A module that fails
to import is skipped and the reason kept for `w4a16-rdna3 info`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import torch

from w4a16_rdna3.checks import check_gemm_args, check_perm_values
from w4a16_rdna3.reference import gemm_reference

BACKENDS = ("auto", "native", "rdna3_emu", "triton", "reference")
NATIVE_NAMESPACE = "w4a16_rdna3"
EMULATION_NAMESPACE = "w4a16_rdna3_emu"
OP_NAMES = ("gemm", "gemm_dot2", "gemm_wmma")


def _import_extension(name: str) -> tuple[ModuleType | None, str]:
    """Import w4a16_rdna3.<name>; on failure return None and why (never raises)."""
    try:
        return importlib.import_module(f"w4a16_rdna3.{name}"), ""
    except ModuleNotFoundError as e:
        if e.name == f"w4a16_rdna3.{name}":
            how = ("`W4A16_RDNA3_BUILD=1 pip install --no-build-isolation .` builds it or says why it cannot"
                   if name == "_C" else "CUDA builds make it beside _C")
            return None, (
                f"module w4a16_rdna3.{name} is not installed (the package was installed without building it; {how})"
            )
        return None, f"importing w4a16_rdna3.{name} failed: {type(e).__name__}: {e}"
    except (ImportError, OSError, RuntimeError) as e:
        # An undefined symbol or a torch built differently from the one the module was built against.
        return None, f"importing w4a16_rdna3.{name} failed: {type(e).__name__}: {e}"


_native, _native_reason = _import_extension("_C")
_emulation, _emulation_reason = _import_extension("_C_rdna3_emu")


def gemm_fake(
    a: torch.Tensor,
    b_q: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None = None,
    perm: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fake (meta) impl shared by every native op: checks the arguments, returns [M, N] of a's dtype."""
    shape = check_gemm_args(a, b_q, scales, zeros, perm, bias)
    return a.new_empty((shape.m, shape.n))


def _register_fakes(namespace: str) -> None:
    for op in OP_NAMES:
        torch.library.register_fake(f"{namespace}::{op}")(gemm_fake)


if _native is not None:
    _register_fakes(NATIVE_NAMESPACE)
if _emulation is not None:
    _register_fakes(EMULATION_NAMESPACE)


def native_build_info() -> dict[str, Any] | None:
    """backend / arches / emulation of w4a16_rdna3._C, or None when it is not importable."""
    return None if _native is None else dict(_native.build_info())


def emulation_build_info() -> dict[str, Any] | None:
    """backend / arches / emulation of w4a16_rdna3._C_rdna3_emu, or None when it is not importable."""
    return None if _emulation is None else dict(_emulation.build_info())


def native_unavailable_reason() -> str:
    """Why w4a16_rdna3._C is not available ("" when it is)."""
    return _native_reason


def emulation_unavailable_reason() -> str:
    """Why w4a16_rdna3._C_rdna3_emu is not available ("" when it is)."""
    return _emulation_reason


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend `gemm` uses for tensors on `device` ("auto" resolved; others checked).

    auto: the native extension when it is built and the tensors are on a GPU, else Triton on a GPU,
    else the fp32 reference.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    on_gpu = device.type == "cuda"
    if backend == "auto":
        if on_gpu:
            return "native" if _native is not None else "triton"
        return "reference"
    if backend == "native" and _native is None:
        raise RuntimeError(f"backend 'native' is not available: {_native_reason}")
    if backend == "rdna3_emu" and _emulation is None:
        raise RuntimeError(f"backend 'rdna3_emu' is not available: {_emulation_reason}")
    if backend in ("native", "rdna3_emu") and not on_gpu:
        raise ValueError(f"a: backend {backend!r} needs tensors on a GPU device, got device {device}")
    return backend


def gemm(
    a: torch.Tensor,
    b_q: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None = None,
    perm: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """out[..., N] = a[..., K] @ dequant(b_q, scales, zeros)[K, N] (+ bias), in a's dtype.

    Weights in the kernel layout (DESIGN.md); `perm` is the act-order permutation (the kernels read
    a[:, perm]). Leading dimensions of `a` are flattened for the 2-D ops and restored on the result.
    perm's values are checked where that needs no device sync (CPU tensors) and by the reference;
    on a GPU an entry outside [0, K) gives NaN and a repeated one goes unnoticed (`check_perm_values`).
    """
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"a: expected a torch.Tensor, got {type(a).__name__}")
    if a.dim() < 1:
        raise ValueError(f"a: expected a tensor [..., K], got shape {list(a.shape)}")
    lead = a.shape[:-1]
    # The row count spelled out: reshape(-1, 0) of an empty `a` is ambiguous, and K = 0 must reach the check.
    a2 = a.reshape(lead.numel(), a.shape[-1])
    if not a2.is_contiguous():
        a2 = a2.contiguous()
    shape = check_gemm_args(a2, b_q, scales, zeros, perm, bias)
    if perm is not None and perm.device.type == "cpu":
        check_perm_values(perm, shape.k)
    chosen = resolve_backend(backend, a2.device)
    if chosen == "native":
        out = torch.ops.w4a16_rdna3.gemm(a2, b_q, scales, zeros, perm, bias)
    elif chosen == "rdna3_emu":
        out = torch.ops.w4a16_rdna3_emu.gemm(a2, b_q, scales, zeros, perm, bias)
    elif chosen == "triton":
        from w4a16_rdna3.triton_w4a16 import gemm_triton

        out = gemm_triton(a2, b_q, scales, zeros, perm, bias)
    else:
        out = gemm_reference(a2, b_q, scales, zeros, perm, bias)
    return out.reshape(*lead, shape.n)
