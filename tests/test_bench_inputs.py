"""The benchmark's layers (CPU): what each layout option puts in them and counts as read."""

import pytest
import torch

from w4a16_rdna3 import bench
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


def test_weight_copies_exceed_twice_the_last_level_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """On ROCm the copies must exceed the Infinity Cache behind the L2, which torch does not report
    (an RX 7900 XTX has a 6 MB L2 and 96 MB behind it); on NVIDIA the L2 is the last level."""
    layer_bytes, l2 = 29 * 2**20, 6 * 2**20
    monkeypatch.setattr(bench, "l2_cache_bytes", lambda device: l2)
    device = torch.device("cpu")

    monkeypatch.setattr(torch.version, "hip", "6.4.0")
    copies = bench.copies_to_exceed_cache(layer_bytes, device)
    assert copies * layer_bytes >= 2 * bench.ROCM_LAST_LEVEL_CACHE_BYTES >= 2 * 96 * 2**20
    assert (copies - 1) * layer_bytes < 2 * bench.ROCM_LAST_LEVEL_CACHE_BYTES

    monkeypatch.setattr(torch.version, "hip", None)
    assert bench.copies_to_exceed_cache(layer_bytes, device) == 2  # 2 x 6 MB fits in one copy: the floor
    assert bench.copies_to_exceed_cache(2**20, device) == 12


def test_rotated_layers_are_distinct_and_enough_to_exceed_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "l2_cache_bytes", lambda device: 2**20)
    monkeypatch.setattr(torch.version, "hip", None)
    device = torch.device("cpu")
    layers = bench.rotated_int4_layers(K, N, G, torch.float16, device, zeros=False, act_order=True)
    layer_bytes = int4_bytes(K, N, G, torch.float16, zeros=False, act_order=True)
    assert len(layers) == bench.copies_to_exceed_cache(layer_bytes, device) > 2
    assert all(layer.perm is not None and layer.zeros is None for layer in layers)
    assert not torch.equal(layers[0].b_q, layers[1].b_q)
    assert torch.equal(layers[1].b_q, random_int4_layer(K, N, G, torch.float16, device, zeros=False, seed=1,
                                                        act_order=True).b_q)
