"""The round-to-nearest quantiser and the fp32 reference GEMM."""

import math

import pytest
import torch

from conftest import rel_error
from w4a16_rdna3.formats import from_gptq, pack_cols, pack_rows, unpack_cols
from w4a16_rdna3.quantize import quantize, quantize_gptq, random_layer
from w4a16_rdna3.reference import dequantize, gemm_reference


def dense_weights(kw) -> torch.Tensor:
    """Dequantised weights back in the original (checkpoint) row order."""
    w = dequantize(kw.b_q, kw.scales, kw.zeros)
    if kw.perm is None:
        return w
    original = torch.empty_like(w)
    original[kw.perm.long()] = w
    return original


# 4-bit RTN of normal weights: the step is range/15, the error about step/sqrt(12). Over 20 seeds
# the relative error measured 0.080-0.082 (G=32 asym) up to 0.117-0.121 (channelwise sym, K=256);
# each bound sits about 10% above the worst seen, so a quantiser that rounds worse fails.
@pytest.mark.parametrize(
    "group_size, symmetric, bound",
    [
        (32, False, 0.09),
        (32, True, 0.105),
        (128, False, 0.113),
        (128, True, 0.125),
        (-1, False, 0.125),
        (-1, True, 0.135),
    ],
)
@pytest.mark.parametrize("act_order", [False, True])
def test_quantisation_error_is_small(gen, group_size, symmetric, bound, act_order):
    w = torch.randn(256, 64, generator=gen) / 16
    kw = quantize(w, group_size, symmetric=symmetric, act_order=act_order, seed=5)
    assert (kw.perm is not None) == (act_order and group_size != -1)
    err = rel_error(dense_weights(kw), w)
    assert 0.02 < err < bound  # the lower bound proves it is a 4-bit result, not a copy


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_quantize_gptq_layout_and_dtype(gen, dtype):
    t = quantize_gptq(torch.randn(128, 32, generator=gen), 32, symmetric=False, dtype=dtype)
    assert t.qweight.dtype == torch.int32 and list(t.qweight.shape) == [16, 32]
    assert t.qzeros.dtype == torch.int32 and list(t.qzeros.shape) == [4, 4]
    assert t.scales.dtype == dtype and list(t.scales.shape) == [4, 32]
    assert t.g_idx is None


@pytest.mark.parametrize("fmt, stored", [("gptq", 7), ("gptq_v2", 8)])
def test_symmetric_qzeros_hold_the_stored_zero(gen, fmt, stored):
    t = quantize_gptq(torch.randn(64, 16, generator=gen), 32, symmetric=True, checkpoint_format=fmt)
    assert bool((unpack_cols(t.qzeros) == stored).all())


def test_all_positive_group_gets_zero_0_stored_as_15(gen):
    # The v1 "zero - 1" edge case arising from real data: min(w) >= 0 gives a true zero of 0.
    w = torch.rand(64, 16, generator=gen) + 0.1
    t = quantize_gptq(w, 32, symmetric=False, checkpoint_format="gptq")
    assert bool((unpack_cols(t.qzeros) == 15).all())
    kw = from_gptq(*t, symmetric=False)
    assert bool((unpack_cols(kw.zeros) == 0).all())
    assert rel_error(dequantize(kw.b_q, kw.scales, kw.zeros), w) < 0.05


def test_all_zero_group_dequantises_to_zero():
    w = torch.zeros(64, 8)
    w[32:] = 1.0
    kw = quantize(w, 32, symmetric=False)
    assert torch.equal(dequantize(kw.b_q, kw.scales, kw.zeros)[:32], torch.zeros(32, 8))


def test_act_order_groups_follow_the_seeded_permutation(gen):
    w = torch.randn(128, 8, generator=gen)
    t1 = quantize_gptq(w, 32, act_order=True, seed=1)
    t2 = quantize_gptq(w, 32, act_order=True, seed=1)
    t3 = quantize_gptq(w, 32, act_order=True, seed=2)
    assert t1.g_idx.dtype == torch.int32 and torch.equal(t1.g_idx, t2.g_idx)
    assert not torch.equal(t1.g_idx, t3.g_idx)
    assert torch.bincount(t1.g_idx.long()).tolist() == [32] * 4
    assert not torch.equal(t1.g_idx.long(), torch.arange(128) // 32)


@pytest.mark.parametrize(
    "shape, group_size, match",
    [
        ((64, 12), 32, "w: expected shape"),
        ((60, 16), 4, "w: expected shape"),
        ((64, 16), 48, "group_size"),
        ((64, 16), 4, "group_size"),
    ],
)
def test_quantize_gptq_rejects_bad_arguments(shape, group_size, match):
    with pytest.raises(ValueError, match=match):
        quantize_gptq(torch.zeros(shape), group_size)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_quantize_gptq_rejects_non_finite_weights(bad):
    w = torch.zeros(64, 16)
    w[3, 5] = bad
    with pytest.raises(ValueError, match="w: expected finite values"):
        quantize_gptq(w, 32)


def test_quantize_gptq_rejects_a_list():
    with pytest.raises(TypeError, match="w: expected a torch.Tensor, got list"):
        quantize_gptq([[1.0] * 16] * 64, 32)


def test_random_layer_is_seeded_and_scaled():
    kw = random_layer(512, 64, 128, symmetric=False, act_order=True, dtype=torch.bfloat16, device="cpu", seed=4)
    again = random_layer(512, 64, 128, symmetric=False, act_order=True, dtype=torch.bfloat16, device="cpu", seed=4)
    other = random_layer(512, 64, 128, symmetric=False, act_order=True, dtype=torch.bfloat16, device="cpu", seed=5)
    assert kw.scales.dtype == torch.bfloat16 and kw.perm is not None and kw.zeros is not None
    assert torch.equal(kw.b_q, again.b_q) and torch.equal(kw.perm, again.perm)
    assert not torch.equal(kw.b_q, other.b_q)
    std = float(dense_weights(kw).std())
    assert abs(std * math.sqrt(512) - 1) < 0.1


# --- reference -------------------------------------------------------------------------------


def direct_dequant(b_q: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None) -> torch.Tensor:
    """The kernel-layout definition read bit by bit with Python ints (independent of unpack_*)."""
    words, zero_words, s = b_q.tolist(), None if zeros is None else zeros.tolist(), scales.float().tolist()
    k, n = len(words) * 8, len(words[0])
    group_size = k // len(s)
    w = torch.empty(k, n)
    for row in range(k):
        g = row // group_size
        for col in range(n):
            q = ((words[row // 8][col] & 0xFFFFFFFF) >> (4 * (row % 8))) & 0xF
            z = 8 if zero_words is None else ((zero_words[g][col // 8] & 0xFFFFFFFF) >> (4 * (col % 8))) & 0xF
            w[row, col] = (q - z) * s[g][col]
    return w


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("with_zeros", [False, True])
@pytest.mark.parametrize("with_perm", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_gemm_reference_equals_direct_computation(gen, dtype, with_zeros, with_perm, with_bias):
    m, k, n, group_size = 3, 64, 16, 32
    b_q = pack_rows(torch.randint(0, 16, (k, n), generator=gen))
    scales = (torch.rand(k // group_size, n, generator=gen) / 8 + 0.01).to(dtype)
    zeros = pack_cols(torch.randint(0, 16, (k // group_size, n), generator=gen)) if with_zeros else None
    perm = torch.randperm(k, generator=gen).to(torch.int32) if with_perm else None
    bias = torch.randn(n, generator=gen).to(dtype) if with_bias else None
    a = torch.randn(m, k, generator=gen).to(dtype)

    x = a.float()
    if perm is not None:
        x = torch.stack([x[:, int(p)] for p in perm], dim=1)
    expected = x @ direct_dequant(b_q, scales, zeros)
    if bias is not None:
        expected += bias.float()

    out = gemm_reference(a, b_q, scales, zeros, perm, bias)
    assert out.dtype == dtype and list(out.shape) == [m, n]
    bound = 4e-3 if dtype == torch.bfloat16 else 5e-4  # one rounding of the fp32 result to dtype
    assert rel_error(out, expected) < bound


def test_gemm_reference_keeps_leading_dims(gen):
    kw = random_layer(64, 24, 32, symmetric=False, act_order=True, dtype=torch.float16, device="cpu", seed=9)
    a = torch.randn(2, 3, 64, generator=gen).to(torch.float16)
    out = gemm_reference(a, kw.b_q, kw.scales, kw.zeros, kw.perm)
    flat = gemm_reference(a.reshape(6, 64), kw.b_q, kw.scales, kw.zeros, kw.perm)
    assert list(out.shape) == [2, 3, 24]
    assert torch.equal(out.reshape(6, 24), flat)


def test_gemm_reference_checks_its_arguments(gen):
    kw = random_layer(64, 16, 32, symmetric=True, act_order=False, dtype=torch.float16, device="cpu", seed=1)
    a = torch.randn(2, 64, generator=gen).to(torch.bfloat16)
    with pytest.raises(TypeError, match=r"scales: expected dtype torch.bfloat16 \(same as a\)"):
        gemm_reference(a, kw.b_q, kw.scales)


def test_rel_error_never_passes_nan():
    ref = torch.ones(4)
    assert rel_error(ref.clone(), ref) == 0.0
    assert rel_error(torch.tensor([1.0, 1.0, float("nan"), 1.0]), ref) == math.inf
    assert rel_error(torch.ones(5), ref) == math.inf
    assert rel_error(torch.zeros(4), ref) == pytest.approx(1.0)
