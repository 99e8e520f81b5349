"""Kernel selection (platform mocked) and the MPLinearKernel-style layer path on the CPU.

Selection: each `can_implement` refusal and its reason, with the arch taken from
W4A16_RDNA3_ARCH or from a stand-in amdsmi module, the extension's build info mocked, and
torch mocked as a ROCm build where a test needs it.

Layers: a torch.nn.Module carrying a checkpoint's parameters under the names vLLM's GPTQ and
compressed-tensors methods give them goes through process_weights_after_loading and
apply_weights (on the CPU that runs the reference backend) and is compared with a dequantisation
written here from the checkpoint formats' definitions, independent of `formats`' reordering.
"""

import logging
import os
import sys
import types

import pytest
import torch

if not torch.cuda.is_available():
    # For the Triton-backend layer test: must be set before w4a16_rdna3.triton_w4a16 is imported.
    os.environ["TRITON_INTERPRET"] = "1"

from conftest import rel_error  # noqa: E402
from w4a16_rdna3 import _ops, kernels, platform  # noqa: E402
from w4a16_rdna3.formats import pack_rows, to_compressed_tensors, unpack_cols, unpack_rows  # noqa: E402
from w4a16_rdna3.kernels import (  # noqa: E402
    UINT4,
    UINT4B8,
    RDNA3W4A16LinearKernel,
    TritonW4A16LinearKernel,
    WeightType,
    choose_kernel,
    gptq_layer_config,
)
from w4a16_rdna3.quantize import quantize, quantize_gptq  # noqa: E402

RDNA3 = RDNA3W4A16LinearKernel.__name__
TRITON = TritonW4A16LinearKernel.__name__
HIP_BUILD = {"backend": "hip", "arches": ["gfx1100", "gfx1101", "gfx1102", "gfx1151"], "emulation": False}

# The reference backend computes in fp32 and rounds once to the activation dtype; the bound
# covers that one rounding (fp16: 2^-11, bf16: 2^-8 relative) with margin.
BOUND = {torch.float16: 2e-3, torch.bfloat16: 1e-2}


@pytest.fixture
def arch(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """Set the arch through W4A16_RDNA3_ARCH (None: unset) and forget the cached probe. The KFD
    topology is pointed at a missing directory: on an AMD machine the real card would answer."""
    monkeypatch.setattr(platform, "KFD_TOPOLOGY_NODES", tmp_path / "no_kfd_topology")

    def set_arch(value: str | None) -> None:
        if value is None:
            monkeypatch.delenv(platform.ARCH_ENV, raising=False)
        else:
            monkeypatch.setenv(platform.ARCH_ENV, value)
        platform.cache_clear()

    yield set_arch
    platform.cache_clear()


@pytest.fixture
def rocm(monkeypatch: pytest.MonkeyPatch, arch):
    """A ROCm torch on a gfx1100 with the extension built for it; tests change one thing each."""
    monkeypatch.setattr(torch.version, "hip", "6.2.41133")
    monkeypatch.setattr(_ops, "native_build_info", lambda: dict(HIP_BUILD))
    arch("gfx1100")
    return monkeypatch


def fake_amdsmi(monkeypatch: pytest.MonkeyPatch, *, arch: str | None = None, init_error: Exception | None = None):
    """Install a stand-in amdsmi module that reports `arch` for GPU 0, or fails in init."""
    module = types.ModuleType("amdsmi")

    def amdsmi_init() -> None:
        if init_error is not None:
            raise init_error

    module.amdsmi_init = amdsmi_init
    module.amdsmi_shut_down = lambda: None
    module.amdsmi_get_processor_handles = lambda: ["gpu0"]
    module.amdsmi_get_gpu_asic_info = lambda handle: {"target_graphics_version": arch}
    monkeypatch.setitem(sys.modules, "amdsmi", module)


TYPICAL = dict(k=4096, n=14336, group_size=128)


# ---- selection -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gfx1100_with_extension_chooses_rdna3(rocm, dtype):
    selection = choose_kernel(gptq_layer_config(**TYPICAL, act_dtype=dtype))
    assert selection.kernel is RDNA3W4A16LinearKernel
    assert selection.refusals == {}


def test_gfx1100_arch_from_amdsmi_chooses_rdna3(rocm, arch):
    arch(None)
    fake_amdsmi(rocm, arch="gfx1100")
    platform.cache_clear()
    selection = choose_kernel(gptq_layer_config(**TYPICAL))
    assert selection.kernel is RDNA3W4A16LinearKernel


def test_gfx1100_without_extension_falls_back_to_triton(rocm):
    rocm.setattr(_ops, "native_build_info", lambda: None)
    rocm.setattr(_ops, "native_unavailable_reason", lambda: "module w4a16_rdna3._C is not installed")
    selection = choose_kernel(gptq_layer_config(**TYPICAL))
    assert selection.kernel is TritonW4A16LinearKernel
    assert "native extension is not available: module w4a16_rdna3._C is not installed" in selection.refusals[RDNA3]
    assert TRITON not in selection.refusals


@pytest.mark.parametrize(
    "build, words",
    [
        ({"backend": "cuda", "arches": ["sm_90"], "emulation": False}, "built for cuda ['sm_90'], not for gfx1100"),
        ({"backend": "cuda", "arches": ["sm_90"], "emulation": True}, "RDNA3 emulation"),
        ({"backend": "hip", "arches": ["gfx942"], "emulation": False}, "built for hip ['gfx942'], not for gfx1100"),
    ],
)
def test_extension_built_for_another_target_is_refused(rocm, build, words):
    rocm.setattr(_ops, "native_build_info", lambda: build)
    selection = choose_kernel(gptq_layer_config(**TYPICAL))
    assert selection.kernel is TritonW4A16LinearKernel
    assert words in selection.refusals[RDNA3]


@pytest.mark.parametrize("other", ["gfx1101", "gfx1151", "gfx942", "gfx90a"])
def test_other_arches_fall_back_to_triton_naming_arch_and_source(rocm, arch, other):
    arch(other)
    selection = choose_kernel(gptq_layer_config(**TYPICAL))
    assert selection.kernel is TritonW4A16LinearKernel
    reason = selection.refusals[RDNA3]
    assert f"GPU arch is {other}, not gfx1100" in reason
    assert platform.ARCH_ENV in reason  # how the arch was detected


def test_other_arch_from_amdsmi_names_amdsmi(rocm, arch):
    arch(None)
    fake_amdsmi(rocm, arch="gfx1151")
    platform.cache_clear()
    reason = choose_kernel(gptq_layer_config(**TYPICAL)).refusals[RDNA3]
    assert "GPU arch is gfx1151" in reason and "amdsmi" in reason


def test_missing_amdsmi_is_a_reason_not_an_error(rocm, arch):
    arch(None)
    rocm.setitem(sys.modules, "amdsmi", None)  # `import amdsmi` raises ImportError
    platform.cache_clear()
    selection = choose_kernel(gptq_layer_config(**TYPICAL))
    assert selection.kernel is TritonW4A16LinearKernel
    assert "no GPU arch detected" in selection.refusals[RDNA3]
    assert "amdsmi is not installed" in selection.refusals[RDNA3]


def test_failing_amdsmi_init_is_a_reason(rocm, arch):
    arch(None)
    fake_amdsmi(rocm, init_error=RuntimeError("AMDSMI_STATUS_DRIVER_NOT_LOADED"))
    platform.cache_clear()
    reason = choose_kernel(gptq_layer_config(**TYPICAL)).refusals[RDNA3]
    assert "amdsmi_init failed" in reason and "DRIVER_NOT_LOADED" in reason


def test_cuda_or_cpu_torch_is_refused_first(rocm):
    rocm.setattr(torch.version, "hip", None)
    rocm.setattr(torch.version, "cuda", "13.0")
    reason = choose_kernel(gptq_layer_config(**TYPICAL)).refusals[RDNA3]
    assert "is not a ROCm build" in reason and "CUDA 13.0" in reason


def test_this_cpu_machine_chooses_triton():
    # Whatever this machine is, the fallback accepts a typical layer (on the CPU its apply runs
    # the reference), and the RDNA3 kernel's refusal is spelled out.
    selection = choose_kernel(gptq_layer_config(**TYPICAL))
    if torch.version.hip is None:
        assert selection.kernel is TritonW4A16LinearKernel
        assert selection.refusals[RDNA3]


# Layer refusals: both kernels refuse these, each with the same plain-words reason.
LAYER_REFUSALS = [
    (gptq_layer_config(**TYPICAL, act_dtype=torch.float32), "activation dtype is torch.float32"),
    (
        kernels.W4A16LayerConfig(
            (4096, 4096), (4096, 4096), WeightType("uint8b128", 8, 128), torch.float16, 128, False
        ),
        "weight type is uint8b128",
    ),
    (
        kernels.W4A16LayerConfig((4096, 4096), (4096, 4096), UINT4, torch.float16, 128, False),
        "uint4 without zero points",
    ),
    (gptq_layer_config(4096, 4096, 96), "group size 96 does not divide K of this partition (4096)"),
    (gptq_layer_config(4096, 4096, 128, k_partition=1984), "does not divide K of this partition (1984)"),
    (gptq_layer_config(4100, 4096, -1), "K of this partition (4100) is not a multiple of 8"),
    (gptq_layer_config(4096, 4100), "N of this partition (4100) is not a multiple of 8"),
    (gptq_layer_config(65536, 262144), "8192 x 262144 int32 words of 4-bit weights reach 2^31"),
    (
        gptq_layer_config(4096, 4096, 128, act_order=True, k_partition=2048),
        "act-order (g_idx) with K split across tensor-parallel ranks (2048 of 4096)",
    ),
    (
        kernels.W4A16LayerConfig(
            (4096, 4096), (4096, 4096), UINT4B8, torch.float16, 128, False, out_type=torch.float32
        ),
        "output dtype torch.float32 differs",
    ),
]


@pytest.mark.parametrize(
    "config, words", LAYER_REFUSALS, ids=[w.split(" ")[0] + str(i) for i, (_, w) in enumerate(LAYER_REFUSALS)]
)
def test_layer_refusals_have_reasons(rocm, config, words):
    selection = choose_kernel(config)
    assert selection.kernel is None
    assert words in selection.refusals[RDNA3]
    assert words in selection.refusals[TRITON]
    for kernel in (RDNA3W4A16LinearKernel, TritonW4A16LinearKernel):
        assert kernel.can_implement(config) == (False, selection.refusals[kernel.__name__])


@pytest.mark.parametrize(
    "config",
    [
        gptq_layer_config(4096, 4096, 128, act_order=True),  # act-order, K not split
        gptq_layer_config(4096, 4096, -1, k_partition=2048),  # channelwise, row-parallel
        gptq_layer_config(4096, 8, 32, symmetric=False, act_dtype=torch.bfloat16),  # N = 8, zero points
        gptq_layer_config(128, 4096, 128),  # K = one group
        gptq_layer_config(65536, 262136),  # one column short of 2^31 words of weights
    ],
)
def test_layers_both_kernels_accept(rocm, config):
    selection = choose_kernel(config)
    assert selection.kernel is RDNA3W4A16LinearKernel
    assert selection.refusals == {}


def test_choose_kernel_reports_every_refusal_in_order(rocm, arch):
    arch("gfx942")
    config = gptq_layer_config(4096, 4100)
    selection = choose_kernel(config, (TritonW4A16LinearKernel, RDNA3W4A16LinearKernel))
    assert list(selection.refusals) == [TRITON, RDNA3]
    # the platform refusal comes before the layer refusal
    assert "gfx942" in selection.refusals[RDNA3]


def test_constructing_a_kernel_that_cannot_implement_raises():
    with pytest.raises(ValueError, match="cannot implement this layer: activation dtype"):
        TritonW4A16LinearKernel(gptq_layer_config(**TYPICAL, act_dtype=torch.float32), "qweight", "scales")


def test_constructing_without_zero_point_name_raises():
    with pytest.raises(ValueError, match="w_zp_param_name"):
        TritonW4A16LinearKernel(gptq_layer_config(**TYPICAL, symmetric=False), "qweight", "scales")


# ---- layers through process_weights_after_loading + apply_weights ---------------------------


def _dequant_gptq(t, group_size: int, *, symmetric: bool, v1: bool) -> torch.Tensor:
    """W [K, N] fp32 from GPTQ checkpoint tensors, straight from the format's definition."""
    q = unpack_rows(t.qweight)
    k = q.shape[0]
    g_idx = t.g_idx.long() if t.g_idx is not None else torch.arange(k) // group_size
    zero = torch.full_like(q, 8) if symmetric else ((unpack_cols(t.qzeros) + (1 if v1 else 0)) & 0xF)[g_idx]
    return (q - zero).float() * t.scales.float()[g_idx]


def _dequant_ct(t, group_size: int) -> torch.Tensor:
    """W [K, N] fp32 from compressed-tensors pack-quantized tensors (stored nibble = value + 8)."""
    q = unpack_cols(t.weight_packed).t()
    k = q.shape[0]
    g_idx = t.weight_g_idx.long() if t.weight_g_idx is not None else torch.arange(k) // group_size
    zero = (
        torch.full_like(q, 8)
        if t.weight_zero_point is None
        else unpack_cols(t.weight_zero_point.t().contiguous())[g_idx]
    )
    return (q - zero).float() * t.weight_scale.t().float()[g_idx]


def _layer(**params: torch.Tensor | None) -> torch.nn.Module:
    """A layer holding copies of the checkpoint tensors, as vLLM's weight loaders copy into their
    parameters: processing may refill a parameter in place (vLLM's replace_parameter)."""
    layer = torch.nn.Module()
    for name, value in params.items():
        if value is not None:
            layer.register_parameter(name, torch.nn.Parameter(value.clone(), requires_grad=False))
    return layer


def _unused(layer: torch.nn.Module, name: str) -> bool:
    """No such parameter for the kernel: absent or None (without vLLM), or, under vLLM, kept for its
    next weight update and marked retired (vLLM 0.34.0's mark, set by this package under older ones)."""
    param = getattr(layer, name, None)
    return param is None or bool(getattr(param, "retired", False))


def _run(kernel, layer, k: int, n: int, dtype: torch.dtype, gen: torch.Generator, shape=(2, 3)):
    x = torch.randn(*shape, k, generator=gen).to(dtype)
    bias = torch.randn(n, generator=gen).to(dtype)
    kernel.process_weights_after_loading(layer)
    return x, bias, kernel.apply_weights(layer, x, bias)


GPTQ_CASES = [
    # k, n, group_size, symmetric, act_order, checkpoint format, dtype
    (256, 64, 32, True, False, "gptq", torch.float16),
    (256, 64, 32, False, False, "gptq", torch.float16),
    (256, 64, 64, False, False, "gptq_v2", torch.bfloat16),
    (256, 64, 32, True, True, "gptq", torch.bfloat16),
    (256, 64, 32, False, True, "gptq_v2", torch.float16),
    (256, 64, -1, True, False, "gptq", torch.float16),
    (128, 8, 128, False, False, "gptq", torch.float16),
]


@pytest.mark.parametrize("k, n, group_size, symmetric, act_order, fmt, dtype", GPTQ_CASES)
def test_gptq_layer_matches_reference(gen, k, n, group_size, symmetric, act_order, fmt, dtype):
    w = torch.randn(k, n, generator=gen) * 0.05
    t = quantize_gptq(
        w, group_size, symmetric=symmetric, act_order=act_order, dtype=dtype, checkpoint_format=fmt, seed=3
    )
    layer = _layer(qweight=t.qweight, qzeros=t.qzeros, scales=t.scales, g_idx=t.g_idx)
    config = gptq_layer_config(k, n, group_size, act_dtype=dtype, symmetric=symmetric, act_order=act_order)
    kernel = TritonW4A16LinearKernel(config, "qweight", "scales", "qzeros", "g_idx", gptq_checkpoint_format=fmt)

    x, bias, out = _run(kernel, layer, k, n, dtype, gen)

    g = k if group_size == -1 else group_size
    ref = x.float() @ _dequant_gptq(t, g, symmetric=symmetric, v1=fmt == "gptq") + bias.float()
    assert out.dtype == dtype and out.shape == (2, 3, n)
    assert rel_error(out, ref) < BOUND[dtype]
    # Kernel layout under the checkpoint's names; what the kernel does not read is dropped or retired.
    assert layer.qweight.dtype == torch.int32 and tuple(layer.qweight.shape) == (k // 8, n)
    assert layer.scales.dtype == dtype
    assert _unused(layer, "qzeros") == symmetric and (kernel.zeros_name is None) == symmetric
    assert _unused(layer, "g_idx") != act_order and (kernel.perm_name is None) != act_order
    assert all(not p.requires_grad for p in layer.parameters())


def test_apply_before_processing_raises(gen):
    # Asymmetric GPTQ: its qweight already has b_q's shape, so only the kernel can tell.
    k, n = 256, 64
    t = quantize_gptq(torch.randn(k, n, generator=gen), 32, symmetric=False, checkpoint_format="gptq")
    layer = _layer(qweight=t.qweight, qzeros=t.qzeros, scales=t.scales)
    kernel = TritonW4A16LinearKernel(gptq_layer_config(k, n, 32, symmetric=False), "qweight", "scales", "qzeros")
    x = torch.randn(1, k, generator=gen).half()
    with pytest.raises(RuntimeError, match="call process_weights_after_loading"):
        kernel.apply_weights(layer, x)
    kernel.process_weights_after_loading(layer)
    assert kernel.apply_weights(layer, x).shape == (1, n)


@pytest.mark.parametrize(
    "symmetric, act_order, group_size, dtype",
    [
        (True, False, 32, torch.float16),
        (False, False, 64, torch.bfloat16),
        (False, True, 32, torch.float16),
        (True, False, -1, torch.bfloat16),
    ],
)
def test_compressed_tensors_layer_matches_reference(gen, symmetric, act_order, group_size, dtype):
    k, n = 256, 64
    w = torch.randn(k, n, generator=gen) * 0.05
    t = to_compressed_tensors(quantize(w, group_size, symmetric=symmetric, act_order=act_order, dtype=dtype, seed=5))
    layer = _layer(
        weight_packed=t.weight_packed,
        weight_scale=t.weight_scale,
        weight_zero_point=t.weight_zero_point,
        weight_g_idx=t.weight_g_idx,
    )
    config = gptq_layer_config(k, n, group_size, act_dtype=dtype, symmetric=symmetric, act_order=act_order)
    kernel = TritonW4A16LinearKernel(config, "weight_packed", "weight_scale", "weight_zero_point", "weight_g_idx")

    x, bias, out = _run(kernel, layer, k, n, dtype, gen)

    ref = x.float() @ _dequant_ct(t, k if group_size == -1 else group_size) + bias.float()
    assert rel_error(out, ref) < BOUND[dtype]
    assert tuple(layer.weight_packed.shape) == (k // 8, n)  # now b_q [K/8, N]
    assert _unused(layer, "weight_zero_point") == symmetric and (kernel.zeros_name is None) == symmetric


def _tagged(layer: torch.nn.Module, name: str, **dims: int) -> None:
    """Tag a parameter with vLLM's dims (input_dim, output_dim, ...), as its parameter classes carry them."""
    for dim, value in dims.items():
        setattr(getattr(layer, name), dim, value)


@pytest.mark.parametrize("group_size, dtype", [(32, torch.float16), (64, torch.bfloat16)])
def test_gptq_layout_weight_with_compressed_tensors_zero_points(gen, group_size, dtype):
    # What vLLM's Quark W4A16 (and AWQ) methods hand over after their own conversion: the weight in
    # GPTQ's layout [K/8, N], the zero points in compressed-tensors' [N/8, K/G] holding the true zero.
    # At K = 256, N = 64, G = 32 both zero-point layouts are [8, 8]: only the dims tell them apart.
    k, n = 256, 64
    kw = quantize(torch.randn(k, n, generator=gen) * 0.05, group_size, symmetric=False, dtype=dtype, seed=4)
    q, zeros = unpack_rows(kw.b_q), unpack_cols(kw.zeros)  # [K, N], [K/G, N] true zeros
    w = (q - zeros.repeat_interleave(group_size, 0)).float() * kw.scales.float().repeat_interleave(group_size, 0)
    layer = _layer(weight=pack_rows(q), weight_scale=kw.scales, weight_zero_point=pack_rows(zeros.t().contiguous()))
    _tagged(layer, "weight", input_dim=0, output_dim=1, packed_dim=0)
    _tagged(layer, "weight_zero_point", input_dim=1, output_dim=0, packed_dim=0)
    config = gptq_layer_config(k, n, group_size, act_dtype=dtype, symmetric=False)
    kernel = TritonW4A16LinearKernel(config, "weight", "weight_scale", "weight_zero_point")

    x, bias, out = _run(kernel, layer, k, n, dtype, gen)

    assert rel_error(out, x.float() @ w + bias.float()) < BOUND[dtype]


def test_gptq_layout_zero_points_beside_a_compressed_tensors_weight_raise(gen):
    k, n = 256, 64
    t = to_compressed_tensors(quantize(torch.randn(k, n, generator=gen), 32, symmetric=False, seed=4))
    layer = _layer(weight_packed=t.weight_packed, weight_scale=t.weight_scale, weight_zero_point=t.weight_zero_point)
    _tagged(layer, "weight_packed", input_dim=1, output_dim=0, packed_dim=1)
    _tagged(layer, "weight_zero_point", input_dim=0, output_dim=1, packed_dim=1)
    config = gptq_layer_config(k, n, 32, symmetric=False)
    kernel = TritonW4A16LinearKernel(config, "weight_packed", "weight_scale", "weight_zero_point")
    with pytest.raises(ValueError, match="layer.weight_zero_point: zero points in GPTQ's layout"):
        kernel.process_weights_after_loading(layer)


def test_vllm_033_style_symmetric_gptq_ignores_stored_qzeros(gen):
    # vLLM 0.33.0's GPTQ method registers qzeros and passes its name with zero_points=False;
    # the zero then comes from uint4b8 (8), whatever the checkpoint stored (v2 stores 8, v1 7).
    k, n, dtype = 256, 32, torch.float16
    t = quantize_gptq(torch.randn(k, n, generator=gen), 64, symmetric=True, checkpoint_format="gptq_v2")
    layer = _layer(qweight=t.qweight, qzeros=t.qzeros, scales=t.scales)
    kernel = TritonW4A16LinearKernel(gptq_layer_config(k, n, 64), "qweight", "scales", "qzeros")
    x, bias, out = _run(kernel, layer, k, n, dtype, gen, shape=(1,))
    ref = x.float() @ _dequant_gptq(t, 64, symmetric=True, v1=False) + bias.float()
    assert rel_error(out, ref) < BOUND[dtype]
    assert _unused(layer, "qzeros") and kernel.zeros_name is None


def test_layout_comes_from_vllm_parameter_dims_before_names(gen):
    # vLLM's parameters carry input_dim; a compressed-tensors weight under a GPTQ-like name is
    # still read as [N, K/8].
    k, n, dtype = 128, 16, torch.float16
    t = to_compressed_tensors(quantize(torch.randn(k, n, generator=gen), 32, symmetric=True, dtype=dtype))
    layer = _layer(qweight=t.weight_packed, scales=t.weight_scale)
    layer.qweight.input_dim = 1
    layer.scales.input_dim = 1
    kernel = TritonW4A16LinearKernel(gptq_layer_config(k, n, 32), "qweight", "scales")
    x, bias, out = _run(kernel, layer, k, n, dtype, gen, shape=(5,))
    ref = x.float() @ _dequant_ct(t, 32) + bias.float()
    assert rel_error(out, ref) < BOUND[dtype]


@pytest.mark.parametrize("m", [1, 3, 17])
def test_apply_handles_any_leading_shape(gen, m):
    k, n, dtype = 128, 24, torch.float16
    t = quantize_gptq(torch.randn(k, n, generator=gen), 32, symmetric=True)
    layer = _layer(qweight=t.qweight, scales=t.scales)
    kernel = TritonW4A16LinearKernel(gptq_layer_config(k, n, 32), "qweight", "scales")
    x, _, out = _run(kernel, layer, k, n, dtype, gen, shape=(m,))
    out_nobias = kernel.apply_weights(layer, x)
    ref = x.float() @ _dequant_gptq(t, 32, symmetric=True, v1=True)
    assert out.shape == (m, n)
    assert rel_error(out_nobias, ref) < BOUND[dtype]


def test_wrong_weight_shape_names_the_parameter(gen):
    t = quantize_gptq(torch.randn(128, 16, generator=gen), 32)
    layer = _layer(qweight=t.qweight, scales=t.scales)
    kernel = TritonW4A16LinearKernel(gptq_layer_config(256, 16, 32), "qweight", "scales")
    with pytest.raises(ValueError, match=r"layer.qweight: expected a gptq packed weight of shape \[32, 16\]"):
        kernel.process_weights_after_loading(layer)


def test_missing_zero_points_names_the_parameter(gen):
    t = quantize_gptq(torch.randn(128, 16, generator=gen), 32, symmetric=False)
    layer = _layer(qweight=t.qweight, scales=t.scales)
    kernel = TritonW4A16LinearKernel(gptq_layer_config(128, 16, 32, symmetric=False), "qweight", "scales", "qzeros")
    with pytest.raises(ValueError, match="layer.qzeros: expected the zero points"):
        kernel.process_weights_after_loading(layer)


def test_cpu_weights_run_the_reference_backend(gen):
    t = quantize_gptq(torch.randn(128, 16, generator=gen), 32)
    layer = _layer(qweight=t.qweight, scales=t.scales)
    kernel = TritonW4A16LinearKernel(gptq_layer_config(128, 16, 32), "qweight", "scales")
    assert kernel.backend == "triton"
    kernel.process_weights_after_loading(layer)
    assert kernel.backend == "reference"


@pytest.mark.parametrize("dtype, m", [(torch.float16, 1), (torch.float16, 5), (torch.bfloat16, 1)])
def test_triton_backend_layer_matches_reference(gen, dtype, m):
    # On the CPU this runs the Triton kernel in its interpreter (bf16 only at small M there: the
    # interpreter computes bf16 tl.dot on raw bits, see tests/test_triton.py); on a GPU, for real.
    from w4a16_rdna3 import triton_w4a16

    if not torch.cuda.is_available() and not triton_w4a16._INTERPRETED:
        pytest.skip("w4a16_rdna3.triton_w4a16 was imported before TRITON_INTERPRET=1 was set")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    k, n = 256, 64
    t = quantize_gptq(torch.randn(k, n, generator=gen) * 0.05, 32, symmetric=False, act_order=True, dtype=dtype)
    layer = _layer(qweight=t.qweight, qzeros=t.qzeros, scales=t.scales, g_idx=t.g_idx).to(device)
    config = gptq_layer_config(k, n, 32, act_dtype=dtype, symmetric=False, act_order=True)
    kernel = TritonW4A16LinearKernel(config, "qweight", "scales", "qzeros", "g_idx")
    kernel.process_weights_after_loading(layer)
    kernel.backend = "triton"  # on CPU weights process_weights_after_loading chose the reference
    x = torch.randn(m, k, generator=gen).to(dtype).to(device)
    bias = torch.randn(n, generator=gen).to(dtype).to(device)

    out = kernel.apply_weights(layer, x, bias)

    ref = x.cpu().float() @ _dequant_gptq(t, 32, symmetric=False, v1=True) + bias.cpu().float()
    assert rel_error(out, ref) < BOUND[dtype]


def test_each_kernel_says_once_that_it_is_this_packages(gen, monkeypatch, caplog):
    # vLLM 0.33+ has its own RDNA3W4A16LinearKernel: its "Using ..." line cannot tell the two apart.
    from w4a16_rdna3 import kernels

    monkeypatch.setattr(kernels, "_ANNOUNCED", set())
    k, n = 256, 64
    with caplog.at_level(logging.INFO, logger="vllm.w4a16_rdna3"):
        for _ in range(2):
            t = quantize_gptq(torch.randn(k, n, generator=gen), 32, symmetric=True)
            layer = _layer(qweight=t.qweight, qzeros=t.qzeros, scales=t.scales)
            kernel = TritonW4A16LinearKernel(gptq_layer_config(k, n, 32), "qweight", "scales", "qzeros")
            kernel.process_weights_after_loading(layer)
    lines = [r.getMessage() for r in caplog.records if r.name == "vllm.w4a16_rdna3"]
    assert lines == ["w4a16_rdna3's TritonW4A16LinearKernel (module w4a16_rdna3.kernels, reference path) took its "
                     "first layer, [K, N] = [256, 64]"]
