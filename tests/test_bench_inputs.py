"""The benchmark's layers (CPU): what each layout option puts in them and counts as read."""

import torch

from w4a16_rdna3.bench import int4_bytes, random_int4_layer
from w4a16_rdna3.bench_gemm import Layout

K, N, G = 256, 64, 128


def test_act_order_layer_has_a_permutation_of_k() -> None:
    layer = random_int4_layer(K, N, G, torch.float16, torch.device("cpu"), zeros=True, seed=3, act_order=True)
    assert layer.perm is not None and layer.perm.dtype == torch.int32
    assert sorted(layer.perm.tolist()) == list(range(K))
    assert not torch.equal(layer.perm, torch.arange(K, dtype=torch.int32))
    assert layer.zeros is not None and layer.zeros.shape == (K // G, N // 8)


def test_symmetric_layer_has_neither_perm_nor_zeros() -> None:
    layer = random_int4_layer(K, N, G, torch.bfloat16, torch.device("cpu"), zeros=False, seed=3)
    assert layer.perm is None and layer.zeros is None
    assert layer.b_q.shape == (K // 8, N) and layer.scales.shape == (K // G, N)


def test_bytes_count_every_part_read() -> None:
    weights, scales = K * N // 2, (K // G) * N * 2
    assert int4_bytes(K, N, G, torch.float16, zeros=False) == weights + scales
    assert int4_bytes(K, N, G, torch.float16, zeros=True) == weights + scales + (K // G) * N // 2
    assert int4_bytes(K, N, G, torch.float16, zeros=False, act_order=True) == weights + scales + 4 * K


def test_layout_names_its_results() -> None:
    assert Layout().name() == "symmetric" and Layout().file_tag() == ""
    both = Layout(zeros=True, act_order=True)
    assert both.name() == "zero points + act-order" and both.file_tag() == "_zeros_act_order"
