"""Checkpoint layouts -> kernel layout: bit layouts, zero conventions, act-order, inverses."""

import pytest
import torch

from w4a16_rdna3.formats import (
    KernelWeights,
    from_compressed_tensors,
    from_gptq,
    pack_cols,
    pack_rows,
    to_compressed_tensors,
    to_gptq,
    unpack_cols,
    unpack_rows,
)
from w4a16_rdna3.quantize import quantize, quantize_gptq
from w4a16_rdna3.reference import dequantize, gemm_reference


def word_bits(word: int) -> list[int]:
    """The 8 nibbles of an int32 (as Python int), nibble i at bits 4i."""
    return [((word & 0xFFFFFFFF) >> (4 * i)) & 0xF for i in range(8)]


def nibbles(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randint(0, 16, shape, generator=gen, dtype=torch.int32)


# --- pack / unpack ------------------------------------------------------------------------


@pytest.mark.parametrize("k, n", [(8, 8), (64, 24), (256, 136)])
def test_pack_rows_round_trip_and_bit_layout(gen, k, n):
    q = nibbles(gen, k, n)
    b_q = pack_rows(q)
    assert b_q.dtype == torch.int32 and list(b_q.shape) == [k // 8, n]
    assert torch.equal(unpack_rows(b_q), q)
    for r, c in [(0, 0), (k // 8 - 1, n - 1), (k // 16, n // 2)]:
        assert word_bits(int(b_q[r, c])) == q[8 * r : 8 * r + 8, c].tolist()


@pytest.mark.parametrize("r, n", [(1, 8), (3, 64), (17, 200)])
def test_pack_cols_round_trip_and_bit_layout(gen, r, n):
    q = nibbles(gen, r, n)
    packed = pack_cols(q)
    assert packed.dtype == torch.int32 and list(packed.shape) == [r, n // 8]
    assert torch.equal(unpack_cols(packed), q)
    for row, c in [(0, 0), (r - 1, n // 8 - 1)]:
        assert word_bits(int(packed[row, c])) == q[row, 8 * c : 8 * c + 8].tolist()


def test_pack_known_words():
    ramp = torch.arange(8, dtype=torch.int32)
    assert int(pack_rows(ramp[:, None].expand(8, 8))[0, 0]) == 0x76543210
    assert int(pack_cols(ramp[None, :])[0, 0]) == 0x76543210
    # Nibble 15 in the top position sets the sign bit: the word must be the int32 bit pattern.
    assert int(pack_cols(torch.full((1, 8), 15))[0, 0]) == -1
    assert int(pack_cols(torch.tensor([[0] * 7 + [8]]))[0, 0]) == -(2**31)


@pytest.mark.parametrize("bad", [16, -1])
def test_pack_rejects_values_outside_0_15(bad):
    q = torch.zeros(8, 8, dtype=torch.int32)
    q[3, 4] = bad
    with pytest.raises(ValueError, match="q: expected values in 0..15"):
        pack_rows(q)
    with pytest.raises(ValueError, match="q: expected values in 0..15"):
        pack_cols(q)


def test_pack_rejects_bad_shapes_and_dtypes():
    with pytest.raises(ValueError, match="divisible by 8"):
        pack_rows(torch.zeros(12, 8, dtype=torch.int32))
    with pytest.raises(ValueError, match="divisible by 8"):
        pack_cols(torch.zeros(8, 12, dtype=torch.int32))
    with pytest.raises(TypeError, match="integer dtype"):
        pack_rows(torch.zeros(8, 8))
    with pytest.raises(TypeError, match="b_q: expected dtype torch.int32"):
        unpack_rows(torch.zeros(1, 8, dtype=torch.int64))


# --- GPTQ zero-point conventions ------------------------------------------------------------


def _gptq_with_zero_nibbles(stored: int, *, k: int = 64, n: int = 16, group_size: int = 32):
    qweight = pack_rows(torch.full((k, n), 5, dtype=torch.int32))
    qzeros = pack_cols(torch.full((k // group_size, n), stored, dtype=torch.int32))
    scales = torch.ones(k // group_size, n, dtype=torch.float16)
    return qweight, qzeros, scales


@pytest.mark.parametrize(
    "fmt, stored, true_zero",
    [
        ("gptq", 0, 1),
        ("gptq", 7, 8),
        ("gptq", 14, 15),
        ("gptq", 15, 0),  # v1 stores zero - 1: a true zero of 0 is stored as 15 and wraps back
        ("gptq_v2", 0, 0),
        ("gptq_v2", 15, 15),
    ],
)
def test_from_gptq_zero_convention(fmt, stored, true_zero):
    qweight, qzeros, scales = _gptq_with_zero_nibbles(stored)
    kw = from_gptq(qweight, qzeros, scales, symmetric=False, checkpoint_format=fmt)
    assert kw.zeros is not None and kw.perm is None
    assert bool((unpack_cols(kw.zeros) == true_zero).all())
    # q = 5 everywhere, scale 1: every weight is 5 - true_zero.
    assert bool((dequantize(kw.b_q, kw.scales, kw.zeros) == 5 - true_zero).all())


@pytest.mark.parametrize("fmt, stored", [("gptq", 7), ("gptq_v2", 8)])
def test_from_gptq_symmetric_uses_zero_8(fmt, stored):
    qweight, qzeros, scales = _gptq_with_zero_nibbles(stored)
    kw = from_gptq(qweight, qzeros, scales, symmetric=True, checkpoint_format=fmt)
    assert kw.zeros is None
    assert bool((dequantize(kw.b_q, kw.scales, kw.zeros) == 5 - 8).all())
    assert from_gptq(qweight, None, scales, symmetric=True, checkpoint_format=fmt).zeros is None


@pytest.mark.parametrize("fmt, stored", [("gptq", 8), ("gptq_v2", 7)])
def test_from_gptq_symmetric_rejects_non_symmetric_qzeros(fmt, stored):
    qweight, qzeros, scales = _gptq_with_zero_nibbles(stored)
    with pytest.raises(ValueError, match="qzeros: expected every nibble to be"):
        from_gptq(qweight, qzeros, scales, symmetric=True, checkpoint_format=fmt)


def test_from_gptq_argument_errors():
    qweight, qzeros, scales = _gptq_with_zero_nibbles(7)
    with pytest.raises(ValueError, match="qzeros: expected a tensor"):
        from_gptq(qweight, None, scales, symmetric=False)
    with pytest.raises(ValueError, match="checkpoint_format"):
        from_gptq(qweight, qzeros, scales, symmetric=False, checkpoint_format="awq")
    with pytest.raises(ValueError, match=r"qzeros: expected shape \[K/G, N/8\]"):
        from_gptq(qweight, qzeros[:1], scales, symmetric=False)
    with pytest.raises(ValueError, match="scales: expected shape"):
        from_gptq(qweight, qzeros, scales[:, :8], symmetric=False)
    with pytest.raises(TypeError, match="qweight: expected dtype torch.int32"):
        from_gptq(qweight.long(), qzeros, scales, symmetric=False)
    with pytest.raises(ValueError, match="qweight: expected at least one row"):
        from_gptq(qweight[:0], None, scales, symmetric=True)
    k = qweight.shape[0] * 8
    with pytest.raises(TypeError, match="g_idx: expected an integer dtype, got torch.float32"):
        from_gptq(qweight, qzeros, scales, torch.arange(k, dtype=torch.float32) / k, symmetric=False)


# --- act-order -------------------------------------------------------------------------------


def _checkpoint_dequant(t, symmetric: bool, k: int, group_size: int) -> torch.Tensor:
    """Dequantise GPTQ v1 tensors in checkpoint row order straight from g_idx (no perm)."""
    q = unpack_rows(t.qweight)
    zeros = torch.full_like(unpack_cols(t.qzeros), 8) if symmetric else (unpack_cols(t.qzeros) + 1) & 0xF
    g_idx = torch.arange(k) // group_size if t.g_idx is None else t.g_idx.long()
    return (q - zeros[g_idx]).float() * t.scales.float()[g_idx]


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", [32, 128])
def test_act_order_reordered_gemm_equals_checkpoint_order(gen, symmetric, group_size):
    k, n = 256, 48
    w = torch.randn(k, n, generator=gen)
    t = quantize_gptq(w, group_size, symmetric=symmetric, act_order=True, seed=7)
    kw = from_gptq(*t, symmetric=symmetric)
    assert kw.perm is not None and kw.perm.dtype == torch.int32 and list(kw.perm.shape) == [k]
    assert torch.equal(torch.sort(kw.perm).values, torch.arange(k, dtype=torch.int32))
    # After reordering, kernel row i belongs to group i // G.
    assert torch.equal(t.g_idx[kw.perm.long()].long(), torch.arange(k) // group_size)

    a = torch.randn(5, k, generator=gen).to(torch.float16)
    direct = (a.float() @ _checkpoint_dequant(t, symmetric, k, group_size)).to(torch.float16)
    out = gemm_reference(a, kw.b_q, kw.scales, kw.zeros, kw.perm)
    err = (out.float() - direct.float()).norm() / direct.float().norm()
    assert err < 1e-3  # both are fp32 sums of the same products, rounded once to fp16


def test_act_order_reorders_every_column_slab(gen):
    # N spans three slabs of the load-time repacking (2048 columns each, the last one partial).
    k, n, group_size = 64, 4104, 16
    qweight = pack_rows(nibbles(gen, k, n))
    scales = torch.rand(k // group_size, n, generator=gen) + 0.5
    g_idx = (torch.randperm(k, generator=gen) // group_size).to(torch.int32)
    kw = from_gptq(qweight, None, scales, g_idx, symmetric=True)
    assert kw.perm is not None and kw.b_q.is_contiguous()
    assert torch.equal(kw.b_q, pack_rows(unpack_rows(qweight)[kw.perm.long()]))


@pytest.mark.parametrize("layout", ["gptq", "compressed_tensors"])
def test_without_act_order_the_packed_weight_is_not_unpacked(gen, layout):
    # GPTQ's qweight is b_q and compressed-tensors' weight_packed its transpose, nibble for nibble:
    # the conversion must take them as they are (no 8-bytes-a-weight copy at load on a large layer).
    q = nibbles(gen, 256, 64)
    b_q = pack_rows(q)
    scales = torch.rand(4, 64, generator=gen) + 0.5
    if layout == "gptq":
        kw = from_gptq(b_q, None, scales, symmetric=True)
        assert kw.b_q.data_ptr() == b_q.data_ptr()
    else:
        kw = from_compressed_tensors(pack_cols(q.t().contiguous()), scales.t().contiguous())
    assert torch.equal(kw.b_q, b_q) and kw.b_q.is_contiguous()


def test_trivial_g_idx_gives_no_perm(gen):
    t = quantize_gptq(torch.randn(128, 16, generator=gen), 32, symmetric=False)
    g_idx = (torch.arange(128) // 32).to(torch.int32)
    kw = from_gptq(t.qweight, t.qzeros, t.scales, g_idx, symmetric=False)
    assert kw.perm is None
    assert torch.equal(kw.b_q, t.qweight)


def test_g_idx_with_unequal_groups_is_rejected(gen):
    t = quantize_gptq(torch.randn(64, 8, generator=gen), 32, symmetric=True)
    g_idx = torch.zeros(64, dtype=torch.int32)
    g_idx[::3] = 1
    with pytest.raises(ValueError, match="g_idx: expected every group to hold exactly G = 32 rows"):
        from_gptq(t.qweight, t.qzeros, t.scales, g_idx, symmetric=True)


@pytest.mark.parametrize("symmetric", [True, False])
def test_channelwise(gen, symmetric):
    k, n = 96, 16
    w = torch.randn(k, n, generator=gen)
    t = quantize_gptq(w, -1, symmetric=symmetric)
    assert list(t.scales.shape) == [1, n] and list(t.qzeros.shape) == [1, n // 8]
    kw = from_gptq(t.qweight, t.qzeros, t.scales, torch.zeros(k, dtype=torch.int32), symmetric=symmetric)
    assert kw.group_size == k and kw.perm is None
    assert torch.equal(dequantize(kw.b_q, kw.scales, kw.zeros), _checkpoint_dequant(t, symmetric, k, k))


@pytest.mark.parametrize("fmt", ["gptq", "gptq_v2"])
@pytest.mark.parametrize("symmetric, act_order", [(True, False), (False, False), (False, True), (True, True)])
def test_to_gptq_inverts_from_gptq(gen, fmt, symmetric, act_order):
    t = quantize_gptq(torch.randn(128, 32, generator=gen), 32, symmetric=symmetric, act_order=act_order,
                      checkpoint_format=fmt, seed=3)
    back = to_gptq(from_gptq(*t, symmetric=symmetric, checkpoint_format=fmt), checkpoint_format=fmt)
    assert torch.equal(back.qweight, t.qweight)
    assert torch.equal(back.qzeros, t.qzeros)
    assert torch.equal(back.scales, t.scales)
    assert (back.g_idx is None) == (t.g_idx is None)
    if t.g_idx is not None:
        assert torch.equal(back.g_idx, t.g_idx)


def test_kernel_weights_properties_and_to():
    kw = KernelWeights(
        b_q=torch.zeros(32, 24, dtype=torch.int32),
        scales=torch.ones(2, 24, dtype=torch.float16),
        zeros=torch.zeros(2, 3, dtype=torch.int32),
        perm=None,
    )
    assert (kw.k, kw.n, kw.group_size) == (256, 24, 128)
    moved = kw.to("meta")
    assert moved.b_q.device.type == "meta" and moved.zeros.device.type == "meta" and moved.perm is None


# --- compressed-tensors ---------------------------------------------------------------------


def ct_pack(signed: torch.Tensor, packed_dim: int) -> torch.Tensor:
    """compressed-tensors pack_to_int32 for 4 bits, written out by the spec with Python ints:
    add 8 to the signed value, then 8 consecutive values along `packed_dim` per int32, the first
    in the lowest nibble."""
    u = (signed + 8).tolist()
    if packed_dim == 0:
        u = [list(col) for col in zip(*u)]
    words = []
    for row in u:
        out_row = []
        for c in range(0, len(row), 8):
            word = sum(v << (4 * i) for i, v in enumerate(row[c : c + 8]))
            out_row.append(word - (1 << 32) if word >= 1 << 31 else word)
        words.append(out_row)
    packed = torch.tensor(words, dtype=torch.int32)
    return packed.t().contiguous() if packed_dim == 0 else packed


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", [32, 64])  # 64 = K: the "channel" strategy
def test_from_compressed_tensors_matches_its_dequant_formula(gen, symmetric, group_size):
    n, k = 16, 64
    values = torch.randint(-8, 8, (n, k), generator=gen)
    scale = torch.rand(n, k // group_size, generator=gen).add(0.5).to(torch.bfloat16)
    zero_point = torch.randint(-8, 8, (n, k // group_size), generator=gen)
    weight_zero_point = None if symmetric else ct_pack(zero_point, packed_dim=0)
    assert weight_zero_point is None or list(weight_zero_point.shape) == [n // 8, k // group_size]

    kw = from_compressed_tensors(ct_pack(values, packed_dim=1), scale, weight_zero_point)

    zp = torch.zeros_like(zero_point) if symmetric else zero_point
    per_column = (values - zp.repeat_interleave(group_size, dim=1)).float()
    expected = per_column * scale.float().repeat_interleave(group_size, dim=1)
    assert kw.perm is None and (kw.zeros is None) == symmetric
    assert kw.scales.dtype == torch.bfloat16 and list(kw.scales.shape) == [k // group_size, n]
    assert torch.equal(dequantize(kw.b_q, kw.scales, kw.zeros), expected.t())


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("act_order", [False, True])
def test_compressed_tensors_round_trip(gen, symmetric, act_order):
    t = quantize_gptq(torch.randn(128, 24, generator=gen), 32, symmetric=symmetric, act_order=act_order, seed=11)
    kw = from_gptq(*t, symmetric=symmetric)
    ct = to_compressed_tensors(kw)
    assert list(ct.weight_packed.shape) == [24, 16] and list(ct.weight_scale.shape) == [24, 4]
    back = from_compressed_tensors(*ct)
    assert torch.equal(back.b_q, kw.b_q) and torch.equal(back.scales, kw.scales)
    for got, want in ((back.zeros, kw.zeros), (back.perm, kw.perm)):
        assert (got is None) == (want is None) and (got is None or torch.equal(got, want))


def test_compressed_tensors_uninitialised_g_idx_means_column_order(gen):
    n, k = 8, 64
    values = torch.randint(-8, 8, (n, k), generator=gen)
    kw = from_compressed_tensors(
        ct_pack(values, 1), torch.ones(n, 2, dtype=torch.float16), None, torch.full((k,), -1, dtype=torch.int32)
    )
    assert kw.perm is None
    assert torch.equal(dequantize(kw.b_q, kw.scales), values.float().t())


def test_compressed_tensors_argument_errors(gen):
    packed = ct_pack(torch.zeros(8, 64, dtype=torch.int64), 1)
    scale = torch.ones(8, 2, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"weight_zero_point: expected shape \[N/8, K/G\]"):
        from_compressed_tensors(packed, scale, torch.zeros(2, 1, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"weight_scale: expected shape \[N, K/G\]"):
        from_compressed_tensors(packed, scale.t().contiguous())
    with pytest.raises(ValueError, match="weight_packed: expected N"):
        from_compressed_tensors(torch.zeros(12, 8, dtype=torch.int32), torch.ones(12, 1, dtype=torch.float16))
    with pytest.raises(ValueError, match="weight_packed: expected at least one column"):
        from_compressed_tensors(packed[:, :0], scale)
    partly_initialised = torch.full((64,), -1, dtype=torch.int32)
    partly_initialised[:32] = 0
    with pytest.raises(ValueError, match="weight_g_idx: expected group indices, or -1 everywhere"):
        from_compressed_tensors(packed, scale, None, partly_initialised)
    with pytest.raises(ValueError, match="weight_g_idx: expected a 1-D tensor"):
        from_compressed_tensors(packed, scale, None, [0] * 64)


def test_compressed_tensors_conversion_gives_contiguous_kernel_tensors() -> None:
    """The checkpoint is [N, K/8]: its transpose must not leak out as a strided view."""
    for act_order in (False, True):
        kw = quantize(torch.randn(256, 64), 64, symmetric=False, act_order=act_order)
        ct = to_compressed_tensors(kw)
        back = from_compressed_tensors(ct.weight_packed, ct.weight_scale, ct.weight_zero_point, ct.weight_g_idx)
        for name in ("b_q", "scales", "zeros", "perm"):
            tensor = getattr(back, name)
            assert tensor is None or tensor.is_contiguous(), (name, act_order)
