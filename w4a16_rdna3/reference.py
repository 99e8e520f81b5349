"""The fp32 reference that every GEMM path is checked against.

Plain torch, no tricks: unpack the int4 weights, w = (q - zero) * scale in fp32, matmul in fp32,
add the bias, cast once to the activation dtype.
"""

import torch

from w4a16_rdna3.checks import check_gemm_args, check_perm_values
from w4a16_rdna3.formats import SYMMETRIC_ZERO, unpack_cols, unpack_rows


def dequantize(b_q: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None = None) -> torch.Tensor:
    """Kernel-layout weights -> float32 [K, N] in kernel row order (the order of a[:, perm])."""
    q = unpack_rows(b_q)
    k, n = q.shape
    if scales.dim() != 2 or scales.shape[1] != n or scales.shape[0] == 0 or k % scales.shape[0]:
        raise ValueError(f"scales: expected shape [K/G, N] with K = {k}, N = {n}, got {list(scales.shape)}")
    group_size = k // scales.shape[0]
    if zeros is None:
        zero = torch.full((1, n), SYMMETRIC_ZERO, dtype=torch.int32, device=q.device)
    else:
        if list(zeros.shape) != [scales.shape[0], n // 8]:
            raise ValueError(f"zeros: expected shape [K/G, N/8] = {[scales.shape[0], n // 8]}, got {list(zeros.shape)}")
        zero = unpack_cols(zeros).repeat_interleave(group_size, dim=0)
    return (q - zero).float() * scales.float().repeat_interleave(group_size, dim=0)


def gemm_reference(
    a: torch.Tensor,
    b_q: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None = None,
    perm: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """out = a[..., perm] @ dequantize(b_q, scales, zeros) (+ bias), computed in fp32, cast to a.dtype.

    perm must be a permutation of 0..K-1 (checked): indexing would wrap a negative entry around.
    """
    a2d = a.reshape(a.shape[:-1].numel(), a.shape[-1]) if isinstance(a, torch.Tensor) and a.dim() >= 1 else a
    shape = check_gemm_args(a2d, b_q, scales, zeros, perm, bias)
    x = a2d.float()
    if perm is not None:
        check_perm_values(perm, shape.k)
        x = x[:, perm.long()]
    out = x @ dequantize(b_q, scales, zeros)
    if bias is not None:
        out = out + bias.float()
    return out.to(a.dtype).reshape(*a.shape[:-1], shape.n)
