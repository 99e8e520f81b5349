"""Checkpoint layouts -> the kernel layout (DESIGN.md "The kernel layout of the weights").

Runs once at load time, so clarity wins over speed here (all ops are vectorised).

Kernel layout: `b_q` int32 [K/8, N] (nibble i of b_q[r, c] is q[8r + i, c]); `scales` [K/G, N];
`zeros` int32 [K/G, N/8] packed along N (nibble j of zeros[g, c] is the zero of column 8c + j),
holding the TRUE zero point, or None for the symmetric zero 8; `perm` int32 [K] or None, the
kernel reads a[:, perm]. Weight = (q - zero) * scale.

Zero-point conventions of the checkpoint formats (from the sources named here):

* GPTQ "v1" (AutoGPTQ, HF transformers/optimum, GPTQModel's default export): the packer stores
  `zero - 1` (AutoGPTQ `qlinear_cuda_old.py` pack: `zeros -= 1`, then cast to uint32), and its
  torch forward unpacks with `zeros = zeros + 1` followed by `& 0xF`. A true zero of 0 is therefore
  stored as nibble 15 and wraps back to 0 here. (ExLlama-style kernels add 1 without the mask and
  read such a nibble as 16: that is the known v1 defect, and why GPTQModel made v2.)
  Symmetric quantisers set zero = (maxq + 1) / 2 = 8 (GPTQ `Quantizer.find_params`), so symmetric
  v1 checkpoints store nibble 7 everywhere (qzeros words 0x77777777).
* GPTQ "v2" (GPTQModel internal format): qzeros holds the true zero; symmetric stores 8.
* compressed-tensors "pack_quantized" (compressors/quantized_compressors/pack_quantized.py,
  `pack_to_int32`, read in both vllm-project/compressed-tensors (torch packer) and the older
  neuralmagic/compressed-tensors (numpy packer); same layout in both): values are signed int8 in
  [-8, 7]; packing adds the offset 1 << (num_bits - 1) = 8, so every stored nibble is
  `value + 8`. weight [N, K] is packed along dim 1 into weight_packed [N, K/8] (nibble i of word c
  is K index 8c + i). Asymmetric zero points [N, K/G] are packed with `packed_dim=0` into
  [N/8, K/G] (nibble i of word r is output row 8r + i), with the same +8 offset. Dequantisation is
  (x_q - zero_point) * scale (quantization/lifecycle/forward.py `_dequantize`), so in stored
  (unsigned) nibbles it is (u - u_zero) * scale: the stored nibbles are exactly our q and our true
  zero, and a symmetric layer (zero point 0, not stored) has unsigned zero 8 = our None.
  `weight_g_idx` containing -1 means "not initialised" there, i.e. column order. The newer
  "int4_quantized" format (int8 words) is a different layout and is not read here.
"""

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

PACK_FACTOR = 8  # 4-bit values per int32
SYMMETRIC_ZERO = 8
# Columns repacked at once where act-order reorders K at load: 8 MiB of unpacked weights per 1024 K rows.
_REPACK_COLUMNS = 2048

CheckpointFormat = Literal["gptq", "gptq_v2"]


def _check_int_matrix(name: str, t: torch.Tensor, dtype: torch.dtype | None = None) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if dtype is not None and t.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {t.dtype}")
    if dtype is None and (t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool):
        raise TypeError(f"{name}: expected an integer dtype, got {t.dtype}")
    if t.dim() != 2:
        raise ValueError(f"{name}: expected a 2-D tensor, got shape {list(t.shape)}")


def _check_nibbles(name: str, q: torch.Tensor) -> None:
    if q.numel() and (int(q.min()) < 0 or int(q.max()) > 15):
        raise ValueError(f"{name}: expected values in 0..15, got range {int(q.min())}..{int(q.max())}")


def _pack_nibbles(parts: list[torch.Tensor]) -> torch.Tensor:
    """8 int32 tensors of values 0..15 -> int32 words with parts[i] at bits 4i.

    Stays in int32 without overflow: the top nibble is taken as a signed 4-bit value and
    multiplied by 2^28, which lands exactly on the int32 bit pattern (-8 * 2^28 = -2^31).
    The result is contiguous whatever the parts' strides (they may be views of a transpose):
    the kernels take contiguous tensors only.
    """
    top = parts[PACK_FACTOR - 1]
    word = (torch.where(top < 8, top, top - 16) * (1 << 28)).contiguous()
    for i in range(PACK_FACTOR - 1):
        word |= parts[i] << (4 * i)
    return word


def _unpack_nibbles(packed: torch.Tensor, dim: int) -> torch.Tensor:
    """int32 words -> their 8 nibbles (0..15), stacked along a new dimension `dim`."""
    return torch.stack([(packed >> (4 * i)) & 0xF for i in range(PACK_FACTOR)], dim=dim)


def pack_rows(q: torch.Tensor) -> torch.Tensor:
    """q [K, N] with values 0..15 -> int32 [K/8, N]; nibble i of word [r, c] is q[8r + i, c]."""
    _check_int_matrix("q", q)
    if q.shape[0] % PACK_FACTOR:
        raise ValueError(f"q: expected a number of rows divisible by {PACK_FACTOR}, got {q.shape[0]}")
    _check_nibbles("q", q)
    rows = q.to(torch.int32).reshape(q.shape[0] // PACK_FACTOR, PACK_FACTOR, q.shape[1])
    return _pack_nibbles([rows[:, i, :] for i in range(PACK_FACTOR)])


def unpack_rows(b_q: torch.Tensor) -> torch.Tensor:
    """int32 [K/8, N] -> int32 [K, N] with values 0..15; inverse of `pack_rows`."""
    _check_int_matrix("b_q", b_q, torch.int32)
    return _unpack_nibbles(b_q, dim=1).view(b_q.shape[0] * PACK_FACTOR, b_q.shape[1])


def pack_cols(q: torch.Tensor) -> torch.Tensor:
    """q [R, N] with values 0..15 -> int32 [R, N/8]; nibble j of word [r, c] is q[r, 8c + j]."""
    _check_int_matrix("q", q)
    if q.shape[1] % PACK_FACTOR:
        raise ValueError(f"q: expected a number of columns divisible by {PACK_FACTOR}, got {q.shape[1]}")
    _check_nibbles("q", q)
    cols = q.to(torch.int32).reshape(q.shape[0], q.shape[1] // PACK_FACTOR, PACK_FACTOR)
    return _pack_nibbles([cols[:, :, i] for i in range(PACK_FACTOR)])


def unpack_cols(packed: torch.Tensor) -> torch.Tensor:
    """int32 [R, N/8] -> int32 [R, N] with values 0..15; inverse of `pack_cols`."""
    _check_int_matrix("packed", packed, torch.int32)
    return _unpack_nibbles(packed, dim=2).view(packed.shape[0], packed.shape[1] * PACK_FACTOR)


@dataclass
class KernelWeights:
    """One linear layer's weights in the kernel layout (see the module docstring)."""

    b_q: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None
    perm: torch.Tensor | None

    @property
    def k(self) -> int:
        return self.b_q.shape[0] * PACK_FACTOR

    @property
    def n(self) -> int:
        return self.b_q.shape[1]

    @property
    def group_size(self) -> int:
        return self.k // self.scales.shape[0]

    def to(self, device: torch.device | str) -> "KernelWeights":
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return KernelWeights(self.b_q.to(device), self.scales.to(device), move(self.zeros), move(self.perm))


class GPTQTensors(NamedTuple):
    """A GPTQ layer as HF/AutoGPTQ/GPTQModel checkpoints store it (g_idx None: no act-order)."""

    qweight: torch.Tensor  # int32 [K/8, N]
    qzeros: torch.Tensor  # int32 [K/G, N/8]
    scales: torch.Tensor  # [K/G, N]
    g_idx: torch.Tensor | None  # int32 [K]


class CompressedTensors(NamedTuple):
    """A compressed-tensors pack_quantized 4-bit layer (weight_zero_point None: symmetric)."""

    weight_packed: torch.Tensor  # int32 [N, K/8]
    weight_scale: torch.Tensor  # [N, K/G]
    weight_zero_point: torch.Tensor | None  # int32 [N/8, K/G]
    weight_g_idx: torch.Tensor | None  # int32 [K]


def _check_scales(name: str, scales: torch.Tensor, k: int, n: int, n_dim: int) -> int:
    """Return the group size for scales with N along `n_dim` and K/G along the other dim."""
    if not isinstance(scales, torch.Tensor) or not scales.dtype.is_floating_point or scales.dim() != 2:
        got = f"{scales.dtype} {list(scales.shape)}" if isinstance(scales, torch.Tensor) else type(scales).__name__
        raise ValueError(f"{name}: expected a 2-D floating-point tensor, got {got}")
    groups = scales.shape[1 - n_dim]
    if scales.shape[n_dim] != n or groups == 0 or k % groups:
        want = "[K/G, N]" if n_dim == 1 else "[N, K/G]"
        raise ValueError(f"{name}: expected shape {want} with K = {k}, N = {n}, G dividing K, got {list(scales.shape)}")
    group_size = k // groups
    if group_size % PACK_FACTOR:
        raise ValueError(f"{name}: expected a group size K/G divisible by {PACK_FACTOR}, got G = {group_size}")
    return group_size


def _act_order_perm(g_idx: torch.Tensor | None, k: int, group_size: int, name: str) -> torch.Tensor | None:
    """Return perm (int64) that makes groups contiguous, or None when g_idx is already in order."""
    if g_idx is None:
        return None
    if not isinstance(g_idx, torch.Tensor) or g_idx.dim() != 1 or g_idx.shape[0] != k:
        shape = list(g_idx.shape) if isinstance(g_idx, torch.Tensor) else type(g_idx).__name__
        raise ValueError(f"{name}: expected a 1-D tensor of length K = {k}, got {shape}")
    if g_idx.dtype.is_floating_point or g_idx.dtype.is_complex or g_idx.dtype == torch.bool:
        raise TypeError(f"{name}: expected an integer dtype, got {g_idx.dtype}")
    g_idx = g_idx.to(torch.int64)
    trivial = torch.arange(k, device=g_idx.device) // group_size
    if torch.equal(g_idx, trivial):
        return None
    groups = k // group_size
    if int(g_idx.min()) < 0 or int(g_idx.max()) >= groups:
        got = f"{int(g_idx.min())}..{int(g_idx.max())}"
        raise ValueError(f"{name}: expected group indices in 0..{groups - 1}, got {got}")
    counts = torch.bincount(g_idx, minlength=groups)
    if not bool((counts == group_size).all()):
        # The kernel finds a row's group as row // G, so every group must hold exactly G rows.
        raise ValueError(
            f"{name}: expected every group to hold exactly G = {group_size} rows, got counts {counts.tolist()}"
        )
    return torch.argsort(g_idx, stable=True)


def _permute_packed_rows(b_q: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """b_q [K/8, N] -> the same weights with K in the order q[perm], packed again; a slab of columns at
    a time, so that the unpacked copies (8 bytes a weight, two of them) stay small beside a large layer."""
    out = torch.empty(b_q.shape, dtype=b_q.dtype, device=b_q.device)  # contiguous, whatever b_q's strides
    for start in range(0, b_q.shape[1], _REPACK_COLUMNS):
        columns = slice(start, start + _REPACK_COLUMNS)
        out[:, columns] = pack_rows(unpack_rows(b_q[:, columns])[perm])
    return out


def _kernel_weights(
    b_q: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None, perm: torch.Tensor | None
) -> KernelWeights:
    """b_q [K/8, N] packed as the kernel packs it and zeros [K/G, N] (or None), both in checkpoint row
    order -> KernelWeights. Without act-order b_q is taken as it is: no copy."""
    return KernelWeights(
        b_q=b_q.contiguous() if perm is None else _permute_packed_rows(b_q, perm),
        scales=scales.contiguous(),
        zeros=None if zeros is None else pack_cols(zeros),
        perm=None if perm is None else perm.to(torch.int32),
    )


def from_gptq(
    qweight: torch.Tensor,
    qzeros: torch.Tensor | None,
    scales: torch.Tensor,
    g_idx: torch.Tensor | None = None,
    *,
    symmetric: bool,
    checkpoint_format: CheckpointFormat = "gptq",
) -> KernelWeights:
    """GPTQ checkpoint tensors (qweight [K/8, N], qzeros [K/G, N/8], scales [K/G, N], g_idx [K]).

    `checkpoint_format`: "gptq" (v1, qzeros hold zero - 1) or "gptq_v2" (true zero).
    `symmetric=True` gives zeros=None (zero 8); qzeros may then be None, and if given must hold the
    symmetric zero (7 in v1, 8 in v2), since anything else means the checkpoint is not symmetric.
    Act-order g_idx is turned into `perm` with the rows reordered so that groups are contiguous.
    """
    if checkpoint_format not in ("gptq", "gptq_v2"):
        raise ValueError(f"checkpoint_format: expected 'gptq' or 'gptq_v2', got {checkpoint_format!r}")
    _check_int_matrix("qweight", qweight, torch.int32)
    k, n = qweight.shape[0] * PACK_FACTOR, qweight.shape[1]
    if k == 0:
        raise ValueError("qweight: expected at least one row [K/8, N], got shape [0, N]")
    if n % PACK_FACTOR:
        raise ValueError(f"qweight: expected N = qweight.shape[1] divisible by {PACK_FACTOR}, got {n}")
    group_size = _check_scales("scales", scales, k, n, n_dim=1)
    groups = k // group_size
    offset = 1 if checkpoint_format == "gptq" else 0

    zeros = None
    if qzeros is not None:
        _check_int_matrix("qzeros", qzeros, torch.int32)
        if list(qzeros.shape) != [groups, n // PACK_FACTOR]:
            raise ValueError(
                f"qzeros: expected shape [K/G, N/8] = {[groups, n // PACK_FACTOR]}, got {list(qzeros.shape)}"
            )
        zeros = (unpack_cols(qzeros) + offset) & 0xF
        if symmetric and not bool((zeros == SYMMETRIC_ZERO).all()):
            stored = SYMMETRIC_ZERO - offset
            raise ValueError(
                f"qzeros: expected every nibble to be {stored} for a symmetric {checkpoint_format} checkpoint, "
                f"got values {unpack_cols(qzeros).unique().tolist()}"
            )
    elif not symmetric:
        raise ValueError("qzeros: expected a tensor for an asymmetric (symmetric=False) checkpoint, got None")
    if symmetric:
        zeros = None

    perm = _act_order_perm(g_idx, k, group_size, "g_idx")
    return _kernel_weights(qweight, scales, zeros, perm)  # qweight is packed as b_q is


def from_compressed_tensors(
    weight_packed: torch.Tensor,
    weight_scale: torch.Tensor,
    weight_zero_point: torch.Tensor | None = None,
    weight_g_idx: torch.Tensor | None = None,
) -> KernelWeights:
    """compressed-tensors pack_quantized 4-bit tensors -> KernelWeights.

    weight_packed int32 [N, K/8]; weight_scale [N, K/G]; weight_zero_point int32 [N/8, K/G]
    (packed along N) or None for symmetric; weight_g_idx [K] or None (-1 entries: column order).
    Stored nibbles are signed values + 8, which is exactly the kernel's unsigned q and zero.
    """
    _check_int_matrix("weight_packed", weight_packed, torch.int32)
    n, k = weight_packed.shape[0], weight_packed.shape[1] * PACK_FACTOR
    if k == 0:
        raise ValueError("weight_packed: expected at least one column [N, K/8], got shape [N, 0]")
    if n % PACK_FACTOR:
        raise ValueError(f"weight_packed: expected N = weight_packed.shape[0] divisible by {PACK_FACTOR}, got {n}")
    group_size = _check_scales("weight_scale", weight_scale, k, n, n_dim=0)
    groups = k // group_size

    zeros = None
    if weight_zero_point is not None:
        _check_int_matrix("weight_zero_point", weight_zero_point, torch.int32)
        if list(weight_zero_point.shape) != [n // PACK_FACTOR, groups]:
            raise ValueError(
                f"weight_zero_point: expected shape [N/8, K/G] = {[n // PACK_FACTOR, groups]}, "
                f"got {list(weight_zero_point.shape)}"
            )
        zeros = unpack_cols(weight_zero_point.t())

    if isinstance(weight_g_idx, torch.Tensor) and bool((weight_g_idx == -1).any()):
        # All -1: never initialised, column order. Some -1 only: no order at all.
        if not bool((weight_g_idx == -1).all()):
            raise ValueError("weight_g_idx: expected group indices, or -1 everywhere (not initialised), got some -1")
        weight_g_idx = None
    perm = _act_order_perm(weight_g_idx, k, group_size, "weight_g_idx")
    # Nibble i of weight_packed[n, c] is K index 8c + i, as nibble i of b_q[c, n]: b_q is its transpose.
    return _kernel_weights(weight_packed.t(), weight_scale.t(), zeros, perm)


def _checkpoint_order(kw: KernelWeights) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return q [K, N] in the checkpoint's row order and g_idx (int32, None without act-order)."""
    q = unpack_rows(kw.b_q)
    if kw.perm is None:
        return q, None
    perm = kw.perm.to(torch.int64)
    original = torch.empty_like(q)
    original[perm] = q
    g_idx = torch.empty(kw.k, dtype=torch.int32, device=q.device)
    g_idx[perm] = (torch.arange(kw.k, device=q.device) // kw.group_size).to(torch.int32)
    return original, g_idx


def to_gptq(kw: KernelWeights, *, checkpoint_format: CheckpointFormat = "gptq") -> GPTQTensors:
    """Inverse of `from_gptq`: symmetric layers store the symmetric zero (7 in v1, 8 in v2)."""
    if checkpoint_format not in ("gptq", "gptq_v2"):
        raise ValueError(f"checkpoint_format: expected 'gptq' or 'gptq_v2', got {checkpoint_format!r}")
    q, g_idx = _checkpoint_order(kw)
    if kw.zeros is None:
        zeros = torch.full(tuple(kw.scales.shape), SYMMETRIC_ZERO, dtype=torch.int32, device=q.device)
    else:
        zeros = unpack_cols(kw.zeros)
    offset = 1 if checkpoint_format == "gptq" else 0
    return GPTQTensors(
        qweight=pack_rows(q),
        qzeros=pack_cols((zeros - offset) & 0xF),
        scales=kw.scales.contiguous(),
        g_idx=g_idx,
    )


def to_compressed_tensors(kw: KernelWeights) -> CompressedTensors:
    """Inverse of `from_compressed_tensors` (symmetric layers get weight_zero_point None)."""
    q, g_idx = _checkpoint_order(kw)
    zero_point = None if kw.zeros is None else kw.zeros.t().contiguous()
    return CompressedTensors(
        weight_packed=pack_cols(q.t().contiguous()),
        weight_scale=kw.scales.t().contiguous(),
        weight_zero_point=zero_point,
        weight_g_idx=g_idx,
    )
