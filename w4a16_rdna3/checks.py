"""Argument checks for the W4A16 GEMM, shared by every backend.

A bad shape that reaches a kernel reads or writes out of bounds, so every
backend calls `check_gemm_args` before launching anything. Errors name the
argument, what was expected and what was received.
"""

from typing import NamedTuple

import torch

ACTIVATION_DTYPES = (torch.float16, torch.bfloat16)
PACK_FACTOR = 8  # 4-bit values per int32
# b_q holds fewer words (K/8 x N) than this, an 8 GiB layer: the Triton kernels' row offsets
# (row x N) and the native decode kernel's b_q pitch (4 N bytes) are 32-bit.
MAX_B_Q_WORDS = 2**31


class GemmShape(NamedTuple):
    m: int
    k: int
    n: int
    group_size: int


def _fail_type(name: str, expected: str, got: object) -> TypeError:
    return TypeError(f"{name}: expected {expected}, got {got}")


def _fail_value(name: str, expected: str, got: object) -> ValueError:
    return ValueError(f"{name}: expected {expected}, got {got}")


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


def _require_tensor(name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise _fail_type(name, "a torch.Tensor", type(t).__name__)
    return t


def _require_dtype(name: str, t: torch.Tensor, dtype: torch.dtype, why: str = "") -> None:
    if t.dtype != dtype:
        raise _fail_type(name, f"dtype {dtype}{why}", t.dtype)


def _require_shape(name: str, t: torch.Tensor, shape: list[int], how: str) -> None:
    if _shape(t) != shape:
        raise _fail_value(name, f"shape {how} = {shape}", _shape(t))


def _require_placement(name: str, t: torch.Tensor, device: torch.device) -> None:
    if t.device != device:
        raise _fail_value(name, f"device {device} (same as a)", t.device)
    if not t.is_contiguous():
        raise _fail_value(name, "a contiguous tensor", f"strides {list(t.stride())} for shape {_shape(t)}")


def check_gemm_args(
    a: torch.Tensor,
    b_q: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None = None,
    perm: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> GemmShape:
    """Validate the arguments of `gemm` (kernel layout, see DESIGN.md) and return its shape.

    `a` must be 2-D here; callers flatten leading dimensions first. `perm` is checked for
    dtype and length only: `check_perm_values` reads its values (a device sync on a GPU).
    """
    a = _require_tensor("a", a)
    if a.dtype not in ACTIVATION_DTYPES:
        raise _fail_type("a", "dtype torch.float16 or torch.bfloat16", a.dtype)
    if a.dim() != 2:
        raise _fail_value("a", "a 2-D tensor [M, K] (flatten leading dimensions first)", f"shape {_shape(a)}")
    m, k = _shape(a)
    if k == 0 or k % PACK_FACTOR != 0:
        raise _fail_value("a", f"K = a.shape[1] a positive multiple of {PACK_FACTOR}", f"K = {k}")

    b_q = _require_tensor("b_q", b_q)
    _require_dtype("b_q", b_q, torch.int32)
    if b_q.dim() != 2:
        raise _fail_value("b_q", "a 2-D tensor [K/8, N]", f"shape {_shape(b_q)}")
    n = b_q.shape[1]
    if b_q.shape[0] != k // PACK_FACTOR:
        raise _fail_value("b_q", f"shape [K/8, N] = [{k // PACK_FACTOR}, N] (K = {k} from a)", f"shape {_shape(b_q)}")
    if n == 0 or n % PACK_FACTOR != 0:
        raise _fail_value("b_q", f"N = b_q.shape[1] a positive multiple of {PACK_FACTOR}", f"N = {n}")
    if (k // PACK_FACTOR) * n >= MAX_B_Q_WORDS:
        raise _fail_value("b_q", "fewer than 2^31 words K/8 x N (32-bit row offsets)",
                          f"{k // PACK_FACTOR} x {n} = {(k // PACK_FACTOR) * n}")

    scales = _require_tensor("scales", scales)
    _require_dtype("scales", scales, a.dtype, " (same as a)")
    if scales.dim() != 2 or scales.shape[1] != n:
        raise _fail_value("scales", f"a 2-D tensor [K/G, N] with N = {n}", f"shape {_shape(scales)}")
    groups = scales.shape[0]
    if groups == 0 or k % groups != 0:
        raise _fail_value("scales", f"a number of rows K/G that divides K = {k}", f"{groups} rows")
    group_size = k // groups
    if group_size % PACK_FACTOR != 0:
        raise _fail_value(
            "scales",
            f"group size G = K / scales.shape[0] a multiple of {PACK_FACTOR}",
            f"G = {k} / {groups} = {group_size}",
        )

    if zeros is not None:
        zeros = _require_tensor("zeros", zeros)
        _require_dtype("zeros", zeros, torch.int32)
        _require_shape("zeros", zeros, [groups, n // PACK_FACTOR], "[K/G, N/8]")
    if perm is not None:
        perm = _require_tensor("perm", perm)
        _require_dtype("perm", perm, torch.int32)
        _require_shape("perm", perm, [k], "[K]")
    if bias is not None:
        bias = _require_tensor("bias", bias)
        _require_dtype("bias", bias, a.dtype, " (same as a)")
        _require_shape("bias", bias, [n], "[N]")

    if not a.is_contiguous():
        raise _fail_value("a", "a contiguous tensor", f"strides {list(a.stride())} for shape {_shape(a)}")
    for name, t in (("b_q", b_q), ("scales", scales), ("zeros", zeros), ("perm", perm), ("bias", bias)):
        if t is not None:
            _require_placement(name, t, a.device)
    return GemmShape(m=m, k=k, n=n, group_size=group_size)


def check_perm_values(perm: torch.Tensor, k: int) -> None:
    """Check that `perm` (int32 [K], past `check_gemm_args`) holds each of 0..K-1 exactly once.

    This reads perm's values, a device sync on a GPU, so the GPU kernels go without it: their
    act-order gather turns an entry outside [0, K) into NaN (never an out-of-bounds read) and a
    repeated entry goes unnoticed there. Skipped where there are no values to read: meta tensors,
    and torch.compile's tracing (a branch on the values would break a fullgraph capture).
    """
    if perm.device.type == "meta" or torch.compiler.is_compiling():
        return
    expected = f"a permutation of 0..{k - 1} (K = {k})"
    outside = ((perm < 0) | (perm >= k)).nonzero()
    if len(outside):
        index = int(outside[0])
        raise _fail_value("perm", expected, f"perm[{index}] = {int(perm[index])}")
    counts = torch.bincount(perm, minlength=k)
    repeated = (counts > 1).nonzero()
    if len(repeated):
        value = int(repeated[0])
        raise _fail_value("perm", expected, f"{value} at {int(counts[value])} positions")
