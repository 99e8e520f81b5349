"""Round-to-nearest GPTQ-style quantiser, for tests, demos and benchmarks.

It produces the same tensors a GPTQ checkpoint holds (without GPTQ's error feedback, which
changes which values are chosen but not the layout): per-group min/max scales as GPTQ's
`Quantizer.find_params` computes them, zero (maxq + 1) / 2 = 8 when symmetric, and with
act-order a random permutation standing in for GPTQ's descending-Hessian order.
"""

import math

import torch

from w4a16_rdna3.formats import (
    SYMMETRIC_ZERO,
    CheckpointFormat,
    GPTQTensors,
    KernelWeights,
    from_gptq,
    pack_cols,
    pack_rows,
)

MAXQ = 15

__all__ = ["GPTQTensors", "quantize", "quantize_gptq", "random_layer"]


def _group_size(k: int, n: int, group_size: int) -> int:
    if k <= 0 or k % 8 or n <= 0 or n % 8:
        raise ValueError(f"w: expected shape [K, N] with K and N positive multiples of 8, got [{k}, {n}]")
    g = k if group_size == -1 else group_size
    if g <= 0 or k % g or g % 8:
        raise ValueError(f"group_size: expected -1 or a multiple of 8 that divides K = {k}, got {group_size}")
    return g


def quantize_gptq(
    w: torch.Tensor,
    group_size: int,
    *,
    symmetric: bool = True,
    act_order: bool = False,
    dtype: torch.dtype = torch.float16,
    checkpoint_format: CheckpointFormat = "gptq",
    seed: int = 0,
) -> GPTQTensors:
    """Quantise w [K, N] (y = x @ w) to 4 bits the way a GPTQ checkpoint stores it.

    group_size -1 means channelwise (one group of K rows). With act_order, rows are visited in a
    random order drawn from `seed` and groups are formed along that order: g_idx[perm[i]] = i // G.
    """
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"w: expected a torch.Tensor, got {type(w).__name__}")
    if w.dim() != 2 or not w.dtype.is_floating_point:
        raise ValueError(f"w: expected a 2-D floating-point tensor [K, N], got {w.dtype} {list(w.shape)}")
    if not bool(torch.isfinite(w).all()):
        raise ValueError("w: expected finite values, got NaN or infinity")
    if checkpoint_format not in ("gptq", "gptq_v2"):
        raise ValueError(f"checkpoint_format: expected 'gptq' or 'gptq_v2', got {checkpoint_format!r}")
    k, n = w.shape
    g = _group_size(k, n, group_size)
    w = w.float()

    order = None
    if act_order:
        order = torch.randperm(k, generator=torch.Generator().manual_seed(seed)).to(w.device)
        w = w.index_select(0, order)
    grouped = w.view(k // g, g, n)

    # GPTQ Quantizer.find_params: the range always includes 0; symmetric uses +-max|w|.
    wmin = grouped.amin(dim=1).clamp(max=0)
    wmax = grouped.amax(dim=1).clamp(min=0)
    if symmetric:
        wmax = torch.maximum(-wmin, wmax)
        wmin = -wmax
    empty = (wmin == 0) & (wmax == 0)
    wmin = torch.where(empty, -1.0, wmin)
    wmax = torch.where(empty, 1.0, wmax)
    # Quantise against the scale as stored (rounded to dtype) so stored values dequantise best.
    scales = ((wmax - wmin) / MAXQ).to(dtype)
    scale32 = scales.float()
    if symmetric:
        zero = torch.full_like(scale32, SYMMETRIC_ZERO)
    else:
        zero = torch.round(-wmin / scale32).clamp(0, MAXQ)
    q_grouped = (grouped / scale32[:, None, :]).round_().add_(zero[:, None, :]).clamp_(0, MAXQ)
    q = q_grouped.view(k, n).to(torch.int32)

    g_idx = None
    if order is not None:
        q = torch.empty_like(q).index_copy_(0, order, q)
        g_idx = torch.empty(k, dtype=torch.int32, device=w.device)
        g_idx[order] = (torch.arange(k, device=w.device) // g).to(torch.int32)
    offset = 1 if checkpoint_format == "gptq" else 0
    return GPTQTensors(
        qweight=pack_rows(q),
        qzeros=pack_cols((zero.to(torch.int32) - offset) & 0xF),
        scales=scales.contiguous(),
        g_idx=g_idx,
    )


def quantize(
    w: torch.Tensor,
    group_size: int,
    *,
    symmetric: bool = True,
    act_order: bool = False,
    dtype: torch.dtype = torch.float16,
    seed: int = 0,
) -> KernelWeights:
    """Quantise w [K, N] and convert to the kernel layout (through a GPTQ v1 checkpoint)."""
    t = quantize_gptq(w, group_size, symmetric=symmetric, act_order=act_order, dtype=dtype, seed=seed)
    return from_gptq(t.qweight, t.qzeros, t.scales, t.g_idx, symmetric=symmetric, checkpoint_format="gptq")


def random_layer(
    k: int,
    n: int,
    group_size: int,
    *,
    symmetric: bool = True,
    act_order: bool = False,
    dtype: torch.dtype = torch.float16,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> KernelWeights:
    """A quantised layer from normal weights with std 1/sqrt(K), so outputs stay O(|a|).

    Weights are drawn on the CPU so a seed gives the same layer on every device; quantising on
    `device` is exact there too (min/max, IEEE division and rounding), and much faster on a GPU.
    """
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn((k, n), generator=gen).mul_(1 / math.sqrt(k)).to(device)
    return quantize(w, group_size, symmetric=symmetric, act_order=act_order, dtype=dtype, seed=seed + 1)
